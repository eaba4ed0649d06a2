/**
 * The REST routes of `/api/v1`, as one table: path, OpenAPI schema and handler. A handler reads its
 * parameters with `ParamReader` (every 400 names its parameter) and asks the {@link MarketDataSource}.
 * Trades, quotes, book snapshots and gaps are one kind of route (`marketRoute`: exchange, symbol, time range, keyset
 * page, newest first by default). The order of the table is the order of the OpenAPI document.
 */
import { Readable } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { DeadLetterFull, MarketQuery, Page, PageQuery, SortOrder } from "../../store/page.js";
import { QueryParamError } from "../../store/page.js";
import { docs } from "./openapi.js";
import { LIMITS, ParamReader } from "./params.js";
import type { MarketDataSource } from "./source.js";

/** One route: `GET /api/v1{path}`. */
export interface RouteSpec {
  path: string;
  /** OpenAPI schema (documentation only). */
  schema: object;
  /**
   * Answers a request. `maxBytes` is the byte budget of a list page's rows.
   * @throws {QueryParamError} on a bad parameter (the API answers 400)
   */
  handle(
    source: MarketDataSource,
    req: FastifyRequest,
    reply: FastifyReply,
    maxBytes: number,
  ): Promise<unknown>;
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

/**
 * A paged list route taking the parameters `names`: `read` gets the request's `ParamReader` and a
 * `page()` that reads the page parameters (range, limit, order, cursor) and adds the byte budget; it
 * reads its own filters before calling it, so parameters are checked in document order.
 */
function pagedRoute(
  path: string,
  schema: object,
  names: readonly string[],
  limits: { default: number; max: number },
  order: SortOrder,
  read: (source: MarketDataSource, p: ParamReader, page: () => PageQuery) => Promise<unknown>,
): RouteSpec {
  return {
    path,
    schema,
    handle: (source, req, _reply, maxBytes) => {
      const p = new ParamReader(req.query, names);
      return read(source, p, () => ({
        ...p.range(),
        limit: p.int("limit", 1, limits.max, limits.default),
        order: p.order(order),
        cursor: p.cursor(),
        maxBytes,
      }));
    },
  };
}

/** A stored-records route: exchange, symbol, from/to, limit, cursor, order (default desc). */
function marketRoute(
  path: string,
  schema: object,
  read: (source: MarketDataSource, q: MarketQuery) => Promise<Page<unknown>>,
): RouteSpec {
  return pagedRoute(path, schema, MARKET_PARAMS, LIMITS.records, "desc", (source, p, page) =>
    read(source, { exchange: p.exchange(), symbol: p.symbol(), ...page() }),
  );
}

/** A route without parameters answering `{"data": …}`. */
function dataRoute(
  path: string,
  schema: object,
  read: (source: MarketDataSource) => unknown[] | Promise<unknown[]>,
): RouteSpec {
  return {
    path,
    schema,
    handle: async (source, req) => {
      new ParamReader(req.query, []);
      return { data: await read(source) };
    },
  };
}

/** The routes, in the order of the API document. */
export const ROUTES: readonly RouteSpec[] = [
  dataRoute("/ticks", docs.ticks, (source) => source.ticks()),
  marketRoute("/trades", docs.trades, (source, q) => source.trades(q)),
  marketRoute("/quotes", docs.quotes, (source, q) => source.quotes(q)),
  marketRoute("/book/snapshots", docs.bookSnapshots, (source, q) => source.bookSnapshots(q)),
  pagedRoute("/candles", docs.candles, CANDLE_PARAMS, LIMITS.candles, "asc", (source, p, page) =>
    source.candles({
      exchange: p.exchange(),
      symbol: p.symbol("symbol", true) as string,
      interval: p.interval(),
      ...page(),
      source: p.oneOf("source", ["trades", "live"] as const, "trades"),
    }),
  ),
  dataRoute("/symbols", docs.symbols, (source) => source.symbols()),
  marketRoute("/gaps", docs.gaps, (source, q) => source.gaps(q)),
  pagedRoute(
    "/dead-letters",
    docs.deadLetters,
    DEAD_LETTER_PARAMS,
    LIMITS.records,
    "desc",
    (source, p, page) => source.deadLetters({ exchange: p.exchange(), ...page() }),
  ),
  {
    path: "/dead-letters/:message_id",
    schema: docs.deadLetter,
    handle: async (source, req, reply) => {
      new ParamReader(req.query, []);
      const id = messageIdParam((req.params as { message_id?: string }).message_id);
      const d = await source.deadLetter(id);
      if (!d) return reply.code(404).send({ error: "not_found", reason: `no dead letter ${id}` });
      reply.type("application/json; charset=utf-8").header("cache-control", "no-store");
      return reply.send(Readable.from(deadLetterJson(d), { objectMode: false }));
    },
  },
];

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
