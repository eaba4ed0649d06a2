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
 *   GET /api/v1/dead-letters   rejected frames with their reason and raw text
 *
 * Times are accepted as µs since the epoch or ISO-8601 (see `params.ts`) and returned as µs. A bad
 * parameter is a 400 `{"error":"bad_request","parameter":"from","reason":"..."}`; any other failure is
 * a 500 `{"error":"internal_error"}` (details only in the log). Pages: `{"data":[...],"next_cursor":...}`;
 * pass `next_cursor` back as `cursor` with the same `order` for the next page until it is null.
 *
 * Validation is done by `ParamReader` (so that every 400 names its parameter); the JSON schemas on the
 * routes document the API and are not used to validate or serialize (responses are `JSON.stringify`,
 * so decimal strings go out exactly as computed).
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyError, FastifyInstance } from "fastify";
import { CANDLE_INTERVALS } from "../schema/candles.js";
import { ParamReader } from "./params.js";
import { type MarketDataSource, QueryParamError } from "./source.js";

/** Page size bounds. */
export const LIMITS = {
  /** trades, quotes, gaps, dead letters */
  records: { default: 100, max: 1000 },
  candles: { default: 500, max: 5000 },
} as const;

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
          "decimal strings (DECIMAL(18,8)); candle quote_volume has 16 places.",
      },
      tags: [{ name: "market data" }, { name: "operations" }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
}

/**
 * Registers the `/api/v1` routes on `app`.
 * @param logger where internal (500) errors are logged
 */
export async function registerApi(
  app: FastifyInstance,
  source: MarketDataSource,
  logger?: ApiLogger,
): Promise<void> {
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
        });
      });
    },
    { prefix: "/api/v1" },
  );
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
    description: "page size",
  }),
  cursor: { type: "string", description: "next_cursor of the previous page (same order)" },
  order: (d: string) => ({ type: "string", enum: ["asc", "desc"], default: d }),
};
const pageOf = (item: object) => ({
  type: "object",
  properties: {
    data: { type: "array", items: item },
    next_cursor: { type: "string", nullable: true, description: "null on the last page" },
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
          raw: { type: "string" },
          received_at: us("receipt time"),
        },
      }),
      400: badRequest,
    },
  },
};
