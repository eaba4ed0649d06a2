/**
 * REST API v1 (Fastify) over a {@link MarketDataSource}, with its OpenAPI 3 document at `/docs`
 * (Swagger UI) and `/docs/json` (@fastify/swagger, @fastify/swagger-ui).
 *
 *   GET /api/v1/ticks          latest trade and best bid/ask per symbol (memory, O(1) per symbol)
 *   GET /api/v1/trades         stored trades, time range, keyset pages (cursor), asc or desc
 *   GET /api/v1/quotes         stored quotes, likewise
 *   GET /api/v1/candles        OHLCV + trade count, volume, quote volume, VWAP (exact decimal strings)
 *   GET /api/v1/symbols        instruments with stored data or live ticks
 *   GET /api/v1/gaps           detected sequence gaps
 *   GET /api/v1/dead-letters   rejected frames with their reason and raw text (cut to 4,096 characters)
 *   GET /api/v1/dead-letters/{message_id}   one rejected frame in full (streamed)
 *
 * Times are accepted as µs since the epoch or ISO-8601 (see `params.ts`) and returned as µs. A bad
 * parameter is a 400 `{"error":"bad_request","parameter":"from","reason":"..."}`; any other failure is
 * a 500 `{"error":"internal_error"}` (details only in the log). Pages: `{"data":[...],"next_cursor":...}`;
 * pass `next_cursor` back as `cursor` with the same `order` for the next page until it is null.
 *
 * Bounded responses: every paged list stops adding rows at a byte budget (`maxResponseBytes`,
 * `K2_API_MAX_RESPONSE_BYTES`, default 4 MiB) and returns `next_cursor` for the rest, so a page may hold
 * fewer than `limit` rows; dead letters carry at most 4,096 characters of their raw frame (cut by the
 * store), with `raw_truncated`, `raw_bytes` and `raw_url`, and the full frame is streamed from the store
 * in 256 Ki-character chunks by `GET /api/v1/dead-letters/{message_id}`. So the memory one request
 * takes is bounded whatever the stored rows hold. Every route also takes `token` (the API token, see
 * `auth.ts`).
 *
 * Validation is done by `ParamReader` (so that every 400 names its parameter); the JSON schemas on the
 * routes document the API and are not used to validate or serialize (responses are `JSON.stringify`,
 * so decimal strings go out exactly as computed).
 */
import { Readable } from "node:stream";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyError, FastifyInstance } from "fastify";
import { CANDLE_INTERVALS } from "../schema/candles.js";
import { ParamReader } from "./params.js";
import {
  DEAD_LETTER_PREVIEW_CHARS,
  type DeadLetterFull,
  type MarketDataSource,
  QueryParamError,
} from "./source.js";

/** Page size bounds. */
export const LIMITS = {
  /** trades, quotes, gaps, dead letters */
  records: { default: 100, max: 1000 },
  candles: { default: 500, max: 5000 },
} as const;

/** Default byte budget of one list response (`K2_API_MAX_RESPONSE_BYTES`), bytes. */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * Bytes of a list response kept for its envelope (`{"data":[...],"next_cursor":"..."}`, a cursor of up
 * to 1,024 characters, a few open candles): the rows get the budget minus this.
 */
const ENVELOPE_BYTES = 8 * 1024;

/** Options of {@link registerApi}. */
export interface ApiOptions {
  /** Byte budget of one list response, bytes (default {@link DEFAULT_MAX_RESPONSE_BYTES}; at least 16 KiB). */
  maxResponseBytes?: number;
}

/** Minimal logger the API reports internal errors to. */
export interface ApiLogger {
  error(obj: object, msg: string): void;
}

/**
 * Registers the OpenAPI document (`/docs`, `/docs/json`). Call before registering routes that should
 * appear in it (it documents every route added after it).
 */
export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "K2 market data API",
        version: "1.0.0",
        description:
          "Trades, quotes, OHLCV candles, ticks, symbols, sequence gaps and dead letters. Times are µs " +
          "since the epoch (UTC); parameters also accept ISO-8601. Prices and quantities are exact " +
          "decimal strings (DECIMAL(18,8)); candle quote_volume has 16 places.\n\n" +
          "**Bounded responses.** A list page holds at most `limit` rows and at most the server's byte " +
          "budget (K2_API_MAX_RESPONSE_BYTES, default 4 MiB): rows stop before the budget and " +
          "`next_cursor` continues from there, so a page may hold fewer than `limit` rows; page on " +
          "until `next_cursor` is null. Dead letters in lists carry the first 4,096 characters of " +
          "`raw` (`raw_truncated`, `raw_bytes`), the whole frame is at `raw_url` " +
          "(`GET /api/v1/dead-letters/{message_id}`, streamed).\n\n" +
          "**Authentication.** When the server has API tokens (K2_API_TOKENS), every route here and " +
          "this document need one: `Authorization: Bearer <token>` or the query parameter `token`, " +
          "accepted by every route.",
      },
      tags: [{ name: "market data" }, { name: "operations" }],
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer" },
          queryToken: { type: "apiKey", in: "query", name: "token" },
        },
      },
      security: [{ bearer: [] }, { queryToken: [] }],
    },
  });
  await app.register(swaggerUi, {
    routePrefix: "/docs",
    // the page fetches the document and tries requests with the token of its own URL (/docs?token=...)
    uiConfig: { requestInterceptor: withPageToken },
  });
}

/**
 * Swagger UI request interceptor, serialized into the page by @fastify/swagger-ui (`toString()`, so it
 * must be self-contained and run in a browser). With `?token=` on the page's URL it adds that token to
 * same-origin requests, and repairs the document URL, which Swagger UI builds by appending `/./json`
 * to the page URL, query string included.
 */
export function withPageToken(req: Record<string, unknown>): Record<string, unknown> {
  const loc = (globalThis as unknown as { location: { href: string } }).location;
  const page = new URL(loc.href);
  const token = page.searchParams.get("token");
  if (!token) return req;
  let u = new URL(String(req.url), page.href);
  if (u.origin !== page.origin) return req;
  if (u.pathname === page.pathname && u.search === `${page.search}/./json`) {
    u = new URL(`${page.pathname.replace(/\/?$/, "/")}json`, page.origin);
  }
  if (!u.searchParams.has("token")) u.searchParams.set("token", token);
  req.url = u.href;
  return req;
}

/**
 * Registers the `/api/v1` routes on `app`.
 * @param logger where internal (500) errors are logged
 */
export async function registerApi(
  app: FastifyInstance,
  source: MarketDataSource,
  logger?: ApiLogger,
  opts: ApiOptions = {},
): Promise<void> {
  const maxBytes = Math.max(opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES, 16 * 1024) - ENVELOPE_BYTES;
  await app.register(
    async (api) => {
      // ParamReader validates (400s name the parameter); schemas are documentation only
      api.setValidatorCompiler(() => () => true);
      api.setSerializerCompiler(() => (data) => JSON.stringify(data));
      api.setErrorHandler((err: FastifyError, req, reply) => {
        if (err instanceof QueryParamError) {
          return reply.code(400).send({ error: "bad_request", parameter: err.parameter, reason: err.reason });
        }
        if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
          return reply.code(err.statusCode).send({ error: "bad_request", reason: err.message });
        }
        logger?.error({ err: err.message, url: req.url }, "api request failed");
        return reply.code(500).send({ error: "internal_error" });
      });
      api.setNotFoundHandler((_req, reply) => reply.code(404).send({ error: "not_found" }));

      api.get("/ticks", { schema: docs.ticks }, async (req) => {
        new ParamReader(req.query, []);
        return { data: source.ticks() };
      });

      api.get("/trades", { schema: docs.trades }, async (req) => {
        const p = new ParamReader(req.query, MARKET_PARAMS);
        return source.trades({
          exchange: p.exchange(),
          symbol: p.symbol(),
          ...p.range(),
          limit: p.int("limit", 1, LIMITS.records.max, LIMITS.records.default),
          order: p.order("desc"),
          cursor: p.cursor(),
          maxBytes,
        });
      });

      api.get("/quotes", { schema: docs.quotes }, async (req) => {
        const p = new ParamReader(req.query, MARKET_PARAMS);
        return source.quotes({
          exchange: p.exchange(),
          symbol: p.symbol(),
          ...p.range(),
          limit: p.int("limit", 1, LIMITS.records.max, LIMITS.records.default),
          order: p.order("desc"),
          cursor: p.cursor(),
          maxBytes,
        });
      });

      api.get("/candles", { schema: docs.candles }, async (req) => {
        const p = new ParamReader(req.query, CANDLE_PARAMS);
        return source.candles({
          exchange: p.exchange(),
          symbol: p.symbol("symbol", true) as string,
          interval: p.interval(),
          ...p.range(),
          limit: p.int("limit", 1, LIMITS.candles.max, LIMITS.candles.default),
          order: p.order("asc"),
          cursor: p.cursor(),
          source: p.oneOf("source", ["trades", "live"] as const, "trades"),
          maxBytes,
        });
      });

      api.get("/symbols", { schema: docs.symbols }, async (req) => {
        new ParamReader(req.query, []);
        return { data: await source.symbols() };
      });

      api.get("/gaps", { schema: docs.gaps }, async (req) => {
        const p = new ParamReader(req.query, MARKET_PARAMS);
        return source.gaps({
          exchange: p.exchange(),
          symbol: p.symbol(),
          ...p.range(),
          limit: p.int("limit", 1, LIMITS.records.max, LIMITS.records.default),
          order: p.order("desc"),
          cursor: p.cursor(),
          maxBytes,
        });
      });

      api.get("/dead-letters", { schema: docs.deadLetters }, async (req) => {
        const p = new ParamReader(req.query, DEAD_LETTER_PARAMS);
        return source.deadLetters({
          exchange: p.exchange(),
          ...p.range(),
          limit: p.int("limit", 1, LIMITS.records.max, LIMITS.records.default),
          order: p.order("desc"),
          cursor: p.cursor(),
          maxBytes,
        });
      });

      api.get("/dead-letters/:message_id", { schema: docs.deadLetter }, async (req, reply) => {
        new ParamReader(req.query, []);
        const id = messageIdParam((req.params as { message_id?: string }).message_id);
        const d = await source.deadLetter(id);
        if (!d) return reply.code(404).send({ error: "not_found", reason: `no dead letter ${id}` });
        reply.type("application/json; charset=utf-8").header("cache-control", "no-store");
        return reply.send(Readable.from(deadLetterJson(d), { objectMode: false }));
      });
    },
    { prefix: "/api/v1" },
  );
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The `message_id` path parameter: a UUID, lower-cased.
 * @throws {QueryParamError} naming `message_id`
 */
function messageIdParam(v: string | undefined): string {
  if (!v || !UUID.test(v))
    throw new QueryParamError("message_id", "expected a dead letter's message_id (a UUID)");
  return v.toLowerCase();
}

/**
 * A dead letter as JSON text, in pieces: the fields, then `raw` one store chunk at a time (each
 * chunk's JSON string escape without its quotes; chunks end on whole code points, so the escapes join
 * up), so the response is produced as the client reads it.
 */
async function* deadLetterJson(d: DeadLetterFull): AsyncGenerator<string> {
  const { rawChunks: _, raw_chars: __, ...fields } = d;
  const head = JSON.stringify({ ...fields, raw_truncated: false });
  yield `${head.slice(0, -1)},"raw":"`;
  for await (const part of d.rawChunks()) yield JSON.stringify(part).slice(1, -1);
  yield `"}`;
}

const MARKET_PARAMS = ["exchange", "symbol", "from", "to", "limit", "cursor", "order"] as const;
const CANDLE_PARAMS = [
  "exchange",
  "symbol",
  "interval",
  "from",
  "to",
  "limit",
  "cursor",
  "order",
  "source",
] as const;
const DEAD_LETTER_PARAMS = ["exchange", "from", "to", "limit", "cursor", "order"] as const;

// ---- OpenAPI documentation (JSON schema) ----

const dec = (description: string) => ({ type: "string", description, example: "61707.68000000" });
const us = (description: string) => ({ type: "integer", description: `${description}, µs since epoch UTC` });
const time = (description: string) => ({
  type: "string",
  description: `${description}: µs since the epoch (e.g. 1723075200000000) or ISO-8601 with a zone (2024-08-08T00:00:00Z)`,
});
const q = {
  exchange: { type: "string", description: "exchange code, case-insensitive (binance)" },
  symbol: { type: "string", description: "venue symbol, case-insensitive (BTCUSDT)" },
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
const stringMap = { type: "object", additionalProperties: { type: "string" } };
const trade = {
  type: "object",
  properties: {
    message_id: { type: "string", format: "uuid" },
    trade_id: { type: "string", example: "BINANCE-3735683259" },
    symbol: { type: "string" },
    exchange: { type: "string" },
    asset_class: { type: "string" },
    timestamp: us("exchange trade time"),
    price: dec("DECIMAL(18,8)"),
    quantity: dec("DECIMAL(18,8)"),
    currency: { type: "string" },
    side: { type: "string", enum: ["BUY", "SELL", "UNKNOWN"], description: "aggressor side" },
    trade_conditions: { type: "array", items: { type: "string" } },
    source_sequence: { type: "integer", nullable: true },
    ingestion_timestamp: us("receipt time"),
    platform_sequence: { type: "integer" },
    vendor_data: stringMap,
  },
};
const quote = {
  type: "object",
  properties: {
    message_id: { type: "string", format: "uuid" },
    symbol: { type: "string" },
    exchange: { type: "string" },
    asset_class: { type: "string" },
    timestamp: us("venue time, else receipt time"),
    bid_price: dec("best bid, DECIMAL(18,8)"),
    bid_quantity: dec("DECIMAL(18,8)"),
    ask_price: dec("best ask, DECIMAL(18,8)"),
    ask_quantity: dec("DECIMAL(18,8)"),
    currency: { type: "string" },
    source_sequence: { type: "integer", nullable: true },
    ingestion_timestamp: us("receipt time"),
    platform_sequence: { type: "integer" },
    vendor_data: stringMap,
  },
};
const candle = {
  type: "object",
  properties: {
    exchange: { type: "string" },
    symbol: { type: "string" },
    asset_class: { type: "string" },
    interval: { type: "string", enum: [...CANDLE_INTERVALS] },
    interval_start: us("inclusive interval start"),
    interval_end: us("exclusive interval end"),
    open: dec("first trade price (by time, then trade id)"),
    high: dec("highest price"),
    low: dec("lowest price"),
    close: dec("last trade price (by time, then trade id)"),
    volume: dec("Σ quantity, 8 places"),
    quote_volume: { type: "string", description: "Σ price·quantity, exact, 16 places" },
    vwap: { type: "string", nullable: true, description: "quote_volume / volume, half-even, 8 places" },
    trade_count: { type: "integer" },
    first_trade_id: { type: "string" },
    last_trade_id: { type: "string" },
    closed: { type: "boolean", description: "false while the interval is still open (source=live)" },
  },
};
const tick = {
  type: "object",
  properties: {
    exchange: { type: "string" },
    symbol: { type: "string" },
    asset_class: { type: "string" },
    currency: { type: "string" },
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

const docs = {
  ticks: {
    tags: ["market data"],
    summary: "Latest trade and best bid/ask per symbol (from memory)",
    response: { 200: { type: "object", properties: { data: { type: "array", items: tick } } } },
  },
  trades: {
    tags: ["market data"],
    summary: "Stored trades in a time range, newest or oldest first, keyset pages",
    querystring: marketQuery("trades"),
    response: { 200: pageOf(trade), 400: badRequest },
  },
  quotes: {
    tags: ["market data"],
    summary: "Stored best bid/ask quotes in a time range, keyset pages",
    querystring: marketQuery("quotes"),
    response: { 200: pageOf(quote), 400: badRequest },
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
                exchange: { type: "string" },
                symbol: { type: "string" },
                asset_class: { type: "string" },
                currency: { type: "string" },
                trades: { type: "integer" },
                quotes: { type: "integer" },
                first_timestamp: { type: "integer", nullable: true },
                last_timestamp: { type: "integer", nullable: true },
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
      200: pageOf({
        type: "object",
        properties: {
          exchange: { type: "string" },
          symbol: { type: "string" },
          data_type: { type: "string" },
          from_sequence: { type: "integer" },
          to_sequence: { type: "integer" },
          detected_at: us("detection time"),
        },
      }),
      400: badRequest,
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
      200: pageOf({
        type: "object",
        properties: {
          message_id: { type: "string", format: "uuid" },
          exchange: { type: "string" },
          source: { type: "string" },
          reason: { type: "string" },
          raw: {
            type: "string",
            description: `the raw frame, at most its first ${DEAD_LETTER_PREVIEW_CHARS} characters`,
          },
          raw_truncated: { type: "boolean", description: "true when `raw` is only the start of the frame" },
          raw_bytes: { type: "integer", description: "size of the whole raw frame, UTF-8 bytes" },
          raw_url: {
            type: "string",
            description: "path of the whole dead letter: /api/v1/dead-letters/{message_id}",
          },
          received_at: us("receipt time"),
        },
      }),
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
      200: {
        type: "object",
        properties: {
          message_id: { type: "string", format: "uuid" },
          exchange: { type: "string" },
          source: { type: "string" },
          reason: { type: "string" },
          received_at: us("receipt time"),
          raw_bytes: { type: "integer", description: "size of the raw frame, UTF-8 bytes" },
          raw_truncated: { type: "boolean", enum: [false] },
          raw: { type: "string", description: "the whole raw frame as received" },
        },
      },
      400: badRequest,
      404: {
        type: "object",
        properties: { error: { type: "string", enum: ["not_found"] }, reason: { type: "string" } },
      },
    },
  },
};
