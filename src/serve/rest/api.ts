/**
 * REST API v1 (Fastify) over a {@link MarketDataSource}, with its OpenAPI 3 document at `/docs`
 * (Swagger UI) and `/docs/json` (@fastify/swagger, @fastify/swagger-ui).
 *
 *   GET /api/v1/ticks          latest trade and best bid/ask per symbol (memory, O(1) per symbol)
 *   GET /api/v1/trades         stored trades, time range, keyset pages (cursor), asc or desc
 *   GET /api/v1/quotes         stored quotes, likewise
 *   GET /api/v1/book/snapshots stored top-N order-book snapshots (book_snapshots_v2), likewise
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
 * The routes are the table in `routes.ts`. Validation is done by `ParamReader` (so that every 400 names
 * its parameter); the JSON schemas on the routes (`openapi.ts`) document the API and are not used to
 * validate or serialize (responses are `JSON.stringify`, so decimal strings go out exactly as computed).
 */
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { FastifyError, FastifyInstance } from "fastify";
import { QueryParamError } from "../../store/page.js";
import { ROUTES } from "./routes.js";
import { type MarketDataSource, NotFoundError } from "./source.js";

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
        if (err instanceof NotFoundError) {
          return reply.code(404).send({ error: "not_found", parameter: err.parameter, reason: err.reason });
        }
        if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
          return reply.code(err.statusCode).send({ error: "bad_request", reason: err.message });
        }
        logger?.error({ err: err.message, url: req.url }, "api request failed");
        return reply.code(500).send({ error: "internal_error" });
      });

      for (const route of ROUTES) {
        api.get(route.path, { schema: route.schema }, (req, reply) =>
          route.handle(source, req, reply, maxBytes),
        );
      }
    },
    { prefix: "/api/v1" },
  );
}
