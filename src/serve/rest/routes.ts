/**
 * The REST routes of `/api/v1`, as one table: path, OpenAPI schema and handler. A handler reads its
 * parameters with `ParamReader` (every 400 names its parameter) and asks the {@link MarketDataSource}.
 * Trades, quotes, book snapshots and gaps are one kind of route (`marketRoute`: exchange, symbol, time range, keyset
 * page, newest first by default). The order of the table is the order of the OpenAPI document.
 */
import { Readable } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";
import { LIVE_BOOK_DEFAULT_DEPTH, liveBookTop, MAX_LIVE_BOOK_DEPTH } from "../../schema/live-book.js";
import type { DeadLetterFull, MarketQuery, Page, PageQuery, SortOrder } from "../../store/page.js";
import { QueryParamError } from "../../store/page.js";
import { docs } from "./openapi.js";
import { LIMITS, ParamReader } from "./params.js";
import { type MarketDataSource, NotFoundError } from "./source.js";

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

/**
 * Explains an empty first page (no cursor) whose filter names what the source has never seen: an
 * exchange no venue, stored record or live tick has is a 400 naming the known exchanges; a symbol
 * with no stored trade or quote and no live tick (on `exchange`, when given) is a 404 that says so.
 * A known instrument with nothing in the range keeps its empty page. Runs only on empty pages, so a
 * page with rows costs nothing more.
 * @throws {QueryParamError} on an unknown exchange
 * @throws {NotFoundError} on an unknown symbol
 */
async function explainEmpty<P extends { data: unknown[]; open?: unknown[] }>(
  source: MarketDataSource,
  page: P,
  q: { exchange?: string; symbol?: string; cursor?: string },
): Promise<P> {
  if (page.data.length > 0 || (page.open?.length ?? 0) > 0 || q.cursor !== undefined) return page;
  if (q.exchange !== undefined && !(await source.has(q.exchange, undefined))) {
    const known = await source.exchanges();
    if (!known.includes(q.exchange)) {
      throw new QueryParamError("exchange", `unknown exchange ${q.exchange} (known: ${known.join(", ")})`);
    }
  }
  if (q.symbol !== undefined && !(await source.has(q.exchange, q.symbol))) {
    const where = q.exchange === undefined ? "on any exchange" : `on ${q.exchange}`;
    throw new NotFoundError(
      "symbol",
      `no ${q.symbol} ${where}: nothing stored or live (see /api/v1/symbols)`,
    );
  }
  return page;
}

/** A stored-records route: exchange, symbol, from/to, limit, cursor, order (default desc). */
function marketRoute(
  path: string,
  schema: object,
  read: (source: MarketDataSource, q: MarketQuery) => Promise<Page<unknown>>,
): RouteSpec {
  return pagedRoute(path, schema, MARKET_PARAMS, LIMITS.records, "desc", async (source, p, page) => {
    const q: MarketQuery = { exchange: p.exchange(), symbol: p.symbol(), ...page() };
    return explainEmpty(source, await read(source, q), q);
  });
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

/**
 * `GET /book`: the live top-`depth` of a maintained book (200), 404 with a reason when no book is kept
 * for the symbol, 503 with a reason and `Retry-After: 1` while it waits for a snapshot.
 */
const bookRoute: RouteSpec = {
  path: "/book",
  schema: docs.book,
  handle: async (source, req, reply) => {
    const p = new ParamReader(req.query, ["exchange", "symbol", "depth"]);
    const exchange = p.exchange();
    const symbol = p.symbol("symbol", true) as string;
    const depth = p.int("depth", 1, MAX_LIVE_BOOK_DEPTH, LIVE_BOOK_DEFAULT_DEPTH);
    const books = source.books;
    const view = exchange ? books?.book(exchange, symbol) : books?.books().find((b) => b.symbol === symbol);
    const name = `${exchange ? `${exchange} ` : ""}${symbol}`;
    if (!view) {
      const kept = books?.books().map((b) => `${b.exchange} ${b.symbol}`) ?? [];
      return reply.code(404).send({
        error: "not_found",
        reason:
          kept.length === 0
            ? `no book is kept for ${name}: this process keeps no order books (run with --streams depth)`
            : `no book is kept for ${name}; books are kept for ${kept.sort().join(", ")}`,
      });
    }
    if (view.state !== "live") {
      reply.header("retry-after", "1");
      return reply.code(503).send({
        error: "unavailable",
        reason: `the book of ${view.exchange} ${view.symbol} is waiting for a snapshot${view.last_resync_timestamp === null ? "" : " after a sequence break"}`,
      });
    }
    reply.header("cache-control", "no-store");
    return liveBookTop(view, depth);
  },
};

/** The routes, in the order of the API document. */
export const ROUTES: readonly RouteSpec[] = [
  dataRoute("/ticks", docs.ticks, (source) => source.ticks()),
  bookRoute,
  marketRoute("/trades", docs.trades, (source, q) => source.trades(q)),
  marketRoute("/quotes", docs.quotes, (source, q) => source.quotes(q)),
  marketRoute("/book/snapshots", docs.bookSnapshots, (source, q) => source.bookSnapshots(q)),
  pagedRoute("/candles", docs.candles, CANDLE_PARAMS, LIMITS.candles, "asc", async (source, p, page) => {
    const q = {
      exchange: p.exchange(),
      symbol: p.symbol("symbol", true) as string,
      interval: p.interval(),
      ...page(),
      source: p.oneOf("source", ["trades", "live"] as const, "trades"),
    };
    return explainEmpty(source, await source.candles(q), q);
  }),
  dataRoute("/symbols", docs.symbols, (source) => source.symbols()),
  marketRoute("/gaps", docs.gaps, (source, q) => source.gaps(q)),
  pagedRoute(
    "/dead-letters",
    docs.deadLetters,
    DEAD_LETTER_PARAMS,
    LIMITS.records,
    "desc",
    async (source, p, page) => {
      const q = { exchange: p.exchange(), ...page() };
      return explainEmpty(source, await source.deadLetters(q), q);
    },
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
