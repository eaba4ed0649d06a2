/**
 * The OpenAPI 3.0 schemas of the REST routes (documentation only: responses are not validated or
 * serialized by them). Record schemas (trades, quotes, candles, gaps, dead letters) are derived from the
 * table catalogue (`src/schema/tables.ts`): a column's type, nullability (`nullable: true`, OpenAPI 3.0's
 * form), description, example and values.
 */
import { CANDLE_INTERVALS } from "../../schema/candles.js";
import { LIVE_BOOK_DEFAULT_DEPTH, MAX_LIVE_BOOK_DEPTH } from "../../schema/live-book.js";
import { type Column, DEAD_LETTER_COLUMNS, type LogicalType, TABLES } from "../../schema/tables.js";
import { DEAD_LETTER_PREVIEW_CHARS } from "../../store/page.js";
import { readColumns } from "../../store/sql.js";
import { LIMITS } from "./params.js";

const JSON_TYPE: Record<LogicalType, object> = {
  uuid: { type: "string", format: "uuid" },
  text: { type: "string" },
  "decimal(18,8)": { type: "string" },
  "decimal(38,8)": { type: "string" },
  "decimal(38,16)": { type: "string" },
  micros: { type: "integer" },
  bigint: { type: "integer" },
  "text[]": { type: "array", items: { type: "string" } },
  "string map": { type: "object", additionalProperties: { type: "string" } },
  levels: {
    type: "array",
    description: "price levels as [price, quantity] pairs of exact DECIMAL(18,8) strings",
    items: { type: "array", items: { type: "string" }, minItems: 2, maxItems: 2 },
  },
  boolean: { type: "boolean" },
};

/** The OpenAPI 3.0 schema of a column's JSON value. */
export function columnSchema(c: Column): object {
  const description =
    c.description === undefined
      ? undefined
      : c.type === "micros"
        ? `${c.description}, µs since epoch UTC`
        : c.description;
  return {
    ...JSON_TYPE[c.type],
    ...(c.values && c.apiEnum !== false ? { enum: [...c.values] } : {}),
    ...(c.nullable ? { nullable: true } : {}),
    ...(description === undefined ? {} : { description }),
    ...(c.example === undefined ? {} : { example: c.example }),
  };
}

/** An object schema of `columns` (catalogue order), then `extra` properties. */
function objectOf(columns: readonly Column[], extra: Record<string, object> = {}): object {
  return {
    type: "object",
    properties: { ...Object.fromEntries(columns.map((c) => [c.name, columnSchema(c)])), ...extra },
  };
}

const dec = (description: string) => ({ type: "string", description, example: "61707.68000000" });
const us = (description: string) => ({ type: "integer", description: `${description}, µs since epoch UTC` });
const time = (description: string) => ({
  type: "string",
  description:
    `${description}: µs since the epoch (e.g. 1723075200000000; a bare integer other than 0 must be at ` +
    "least 10^14, so seconds and ms are refused with a 400 naming the unit they look like), an integer " +
    "with a unit suffix (1723075200s, 1723075200000ms, 1723075200000000us) or ISO-8601 with a zone " +
    "(2024-08-08T00:00:00Z)",
});
const q = {
  exchange: {
    type: "string",
    description:
      "exchange code, case-insensitive (binance); one no venue, stored record or live tick has is a 400 " +
      "naming the known ones",
  },
  symbol: {
    type: "string",
    description:
      "venue symbol, case-insensitive, upper-cased as stored (btcusdt is BTCUSDT; the /ws gateway takes " +
      "the same rule); one with no stored trade or quote and no live tick (on that exchange) is a 404",
  },
  from: time("inclusive start"),
  to: time("exclusive end"),
  limit: (d: number, m: number) => ({
    type: "integer",
    minimum: 1,
    maximum: m,
    default: d,
    description: "most rows in the page (fewer when the response byte budget is reached first)",
  }),
  cursor: { type: "string", description: "next_cursor of the previous page (same order)" },
  order: (d: string) => ({ type: "string", enum: ["asc", "desc"], default: d }),
};
const pageOf = (item: object) => ({
  type: "object",
  properties: {
    data: { type: "array", items: item },
    next_cursor: {
      type: "string",
      nullable: true,
      description: "null on the last page; also set when the page stopped at the byte budget",
    },
  },
});
const badRequest = {
  description: "bad parameter",
  type: "object",
  properties: {
    error: { type: "string", enum: ["bad_request"] },
    parameter: { type: "string", description: "the parameter at fault" },
    reason: { type: "string" },
  },
};
/** 404 of a route that names a symbol: the symbol is unknown (nothing stored or live). */
const unknownSymbol = {
  description: "unknown symbol: nothing stored or live (on that exchange)",
  type: "object",
  properties: {
    error: { type: "string", enum: ["not_found"] },
    parameter: { type: "string", enum: ["symbol"] },
    reason: { type: "string" },
  },
};
/** A dead letter as listed: `raw` cut, then its sizes and the path of the whole frame, then received_at. */
const deadLetterItem = objectOf(
  DEAD_LETTER_COLUMNS.filter((c) => c.name !== "received_at").map((c) =>
    c.name === "raw"
      ? { ...c, description: `the raw frame, at most its first ${DEAD_LETTER_PREVIEW_CHARS} characters` }
      : c,
  ),
  {
    raw_truncated: { type: "boolean", description: "true when `raw` is only the start of the frame" },
    raw_bytes: { type: "integer", description: "size of the whole raw frame, UTF-8 bytes" },
    raw_url: {
      type: "string",
      description: "path of the whole dead letter: /api/v1/dead-letters/{message_id}",
    },
    received_at: us("receipt time"),
  },
);
const trade = objectOf(TABLES.trades_v2.columns);
const quote = objectOf(TABLES.quotes_v2.columns);
const bookSnapshot = objectOf(TABLES.book_snapshots_v2.columns);
const candle = objectOf(TABLES.candles_v2.columns, {
  closed: { type: "boolean", description: "false while the interval is still open (source=live)" },
});
/** The instrument fields that ticks and symbols share. */
const instrument = {
  exchange: { type: "string" },
  symbol: { type: "string" },
  asset_class: { type: "string" },
  currency: { type: "string" },
};
const tick = {
  type: "object",
  properties: {
    ...instrument,
    last_price: { ...dec("last trade price"), nullable: true },
    last_quantity: { type: "string", nullable: true },
    last_side: { type: "string", nullable: true },
    last_trade_id: { type: "string", nullable: true },
    last_trade_time: { type: "integer", nullable: true },
    bid_price: { type: "string", nullable: true },
    bid_quantity: { type: "string", nullable: true },
    ask_price: { type: "string", nullable: true },
    ask_quantity: { type: "string", nullable: true },
    quote_time: { type: "integer", nullable: true },
    spread: { type: "string", nullable: true, description: "ask − bid, DECIMAL(18,8)" },
  },
};
const levels = (what: string) => ({
  type: "array",
  description: `${what}, [price, quantity] DECIMAL(18,8) strings`,
  items: { type: "array", items: { type: "string" }, minItems: 2, maxItems: 2 },
  example: [["61707.68000000", "0.51300000"]],
});
/** A live top-N of a maintained book (`schema/live-book.ts` LiveBookTop; also the `book.{N}` frames' data). */
const liveBook = {
  type: "object",
  properties: {
    exchange: { type: "string", example: "BINANCE" },
    symbol: { type: "string", example: "BTCUSDT" },
    state: {
      type: "string",
      enum: ["live", "syncing"],
      description: "syncing: waiting for a snapshot (first, or after a sequence break); no levels then",
    },
    timestamp: { ...us("venue time of the last change applied (Binance E)"), nullable: true },
    depth: { type: "integer", description: "N asked for; fewer levels when the book holds fewer" },
    bids: levels("best N bids, highest price first"),
    asks: levels("best N asks, lowest price first"),
    last_source_sequence: {
      type: "integer",
      nullable: true,
      description: "last venue sequence applied to the book (Binance final update id u)",
    },
    last_resync_timestamp: {
      ...us("time of the last resync (book discarded after a sequence break and rebuilt)"),
      nullable: true,
    },
  },
};
const reasoned = (description: string, error: string) => ({
  description,
  type: "object",
  properties: { error: { type: "string", enum: [error] }, reason: { type: "string" } },
});

const marketQuery = (what: string) => ({
  type: "object",
  properties: {
    exchange: q.exchange,
    symbol: q.symbol,
    from: q.from,
    to: q.to,
    limit: q.limit(LIMITS.records.default, LIMITS.records.max),
    cursor: q.cursor,
    order: q.order("desc"),
  },
  description: what,
});

export const docs = {
  ticks: {
    tags: ["market data"],
    summary: "Latest trade and best bid/ask per symbol (from memory)",
    response: { 200: { type: "object", properties: { data: { type: "array", items: tick } } } },
  },
  book: {
    tags: ["market data"],
    summary: "Live top-N of a maintained L2 book (from memory)",
    description:
      "The best `depth` levels of the order book this process maintains for the symbol (`k2 run " +
      "--streams depth,bookTicker` on Binance), with the last venue sequence applied and the time of " +
      "the last resync. 404 when no book is kept for the symbol; 503 (with Retry-After) while the book " +
      "waits for a snapshot.",
    querystring: {
      type: "object",
      required: ["symbol"],
      properties: {
        exchange: {
          ...q.exchange,
          description: "exchange code (binance); omitted: any venue keeping the symbol",
        },
        symbol: q.symbol,
        depth: {
          type: "integer",
          minimum: 1,
          maximum: MAX_LIVE_BOOK_DEPTH,
          default: LIVE_BOOK_DEFAULT_DEPTH,
          description: "levels per side",
        },
      },
    },
    response: {
      200: liveBook,
      400: badRequest,
      404: reasoned("no book is kept for that symbol", "not_found"),
      503: reasoned("the book is waiting for a snapshot (first, or after a sequence break)", "unavailable"),
    },
  },
  trades: {
    tags: ["market data"],
    summary: "Stored trades in a time range, newest or oldest first, keyset pages",
    querystring: marketQuery("trades"),
    response: { 200: pageOf(trade), 400: badRequest, 404: unknownSymbol },
  },
  quotes: {
    tags: ["market data"],
    summary: "Stored best bid/ask quotes in a time range, keyset pages",
    querystring: marketQuery("quotes"),
    response: { 200: pageOf(quote), 400: badRequest, 404: unknownSymbol },
  },
  bookSnapshots: {
    tags: ["market data"],
    summary: "Stored top-N order-book snapshots (book_snapshots_v2) in a time range, keyset pages",
    description:
      "The best --book-depth levels of each kept book at every --book-interval boundary (venue clock), " +
      "ordered by (timestamp, exchange, symbol, depth). Levels are [price, quantity] pairs of exact " +
      "DECIMAL(18,8) strings, best first.",
    querystring: marketQuery("book snapshots"),
    response: { 200: pageOf(bookSnapshot), 400: badRequest },
  },
  candles: {
    tags: ["market data"],
    summary: "OHLCV candles with trade count, volume, quote volume and VWAP (exact)",
    description:
      "source=trades (default) computes candles from the stored trades; source=live returns the candles " +
      "closed by the live aggregator (candles_v2) and, in `open`, the candles still open. from/to are " +
      "widened to whole intervals.",
    querystring: {
      type: "object",
      required: ["symbol", "interval"],
      properties: {
        exchange: q.exchange,
        symbol: q.symbol,
        interval: { type: "string", enum: [...CANDLE_INTERVALS] },
        from: q.from,
        to: q.to,
        limit: q.limit(LIMITS.candles.default, LIMITS.candles.max),
        cursor: q.cursor,
        order: q.order("asc"),
        source: { type: "string", enum: ["trades", "live"], default: "trades" },
      },
    },
    response: {
      200: {
        type: "object",
        properties: {
          data: { type: "array", items: candle },
          next_cursor: { type: "string", nullable: true },
          open: { type: "array", items: candle, description: "source=live only" },
        },
      },
      400: badRequest,
      404: unknownSymbol,
    },
  },
  symbols: {
    tags: ["market data"],
    summary: "Instruments with stored data or live ticks",
    response: {
      200: {
        type: "object",
        properties: {
          data: {
            type: "array",
            items: {
              type: "object",
              properties: {
                ...instrument,
                trades: { type: "integer" },
                quotes: { type: "integer" },
                first_timestamp: {
                  type: "integer",
                  nullable: true,
                  description:
                    "earliest venue time of a stored trade or venue-stamped quote, µs (a quote stamped " +
                    "with its receipt time, e.g. a Binance bookTicker, does not count)",
                },
                last_timestamp: {
                  type: "integer",
                  nullable: true,
                  description: "latest venue time, likewise, µs",
                },
                last_price: { type: "string", nullable: true },
              },
            },
          },
        },
      },
    },
  },
  gaps: {
    tags: ["operations"],
    summary: "Detected sequence gaps (missing venue sequences), by detection time",
    querystring: marketQuery("sequence gaps"),
    response: {
      200: pageOf(objectOf(readColumns(TABLES.sequence_gaps))),
      400: badRequest,
      404: unknownSymbol,
    },
  },
  deadLetters: {
    tags: ["operations"],
    summary: "Frames rejected by normalization, with reason and raw text",
    querystring: {
      type: "object",
      properties: {
        exchange: q.exchange,
        from: q.from,
        to: q.to,
        limit: q.limit(LIMITS.records.default, LIMITS.records.max),
        cursor: q.cursor,
        order: q.order("desc"),
      },
    },
    response: {
      200: pageOf(deadLetterItem),
      400: badRequest,
    },
  },
  deadLetter: {
    tags: ["operations"],
    summary: "One dead letter with its whole raw frame (streamed from the store)",
    description:
      "The `raw_url` of a dead-letter list item. The raw text is read from the store in chunks of " +
      "256 Ki characters and streamed, so its size is not bounded by the list byte budget.",
    params: {
      type: "object",
      required: ["message_id"],
      properties: { message_id: { type: "string", format: "uuid" } },
    },
    response: {
      200: objectOf(
        DEAD_LETTER_COLUMNS.filter((c) => c.name !== "raw"),
        {
          raw_bytes: { type: "integer", description: "size of the raw frame, UTF-8 bytes" },
          raw_truncated: { type: "boolean", enum: [false] },
          raw: { type: "string", description: "the whole raw frame as received" },
        },
      ),
      400: badRequest,
      404: {
        type: "object",
        properties: { error: { type: "string", enum: ["not_found"] }, reason: { type: "string" } },
      },
    },
  },
};
