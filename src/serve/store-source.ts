/**
 * `StoreMarketDataSource`: the {@link MarketDataSource} over a {@link Store} (history: DuckDB or
 * PostgreSQL SQL, see {@link SqlDialect}) and a {@link LiveFeed} (ticks and open candles from memory).
 *
 * Every value from a request is bound as a query parameter (`$1`, `$2`, ...); the SQL text is assembled
 * only from the fixed fragments in this file (table and column names, sort directions from
 * `ASC`/`DESC`). Pages use keyset pagination on a unique sort key (never OFFSET), fetching `limit + 1`
 * rows to know whether another page follows, so no query holds more than one page in memory.
 *
 * Candles from trades: per (exchange, symbol, interval_start = timestamp // length · length),
 * `first`/`last` price ordered by trade order (timestamp, length(trade_id), trade_id), `max`/`min`
 * price, Σ quantity (DECIMAL(38,8)), Σ price·quantity on DECIMAL(38,8) casts (exact DECIMAL(38,16):
 * DuckDB multiplies DECIMAL(18,8) in 64 bits and would overflow at BTC prices), count; VWAP is divided
 * exactly in JS by `vwapFromSums` (half-even, 8 places). The live aggregator produces the same strings.
 *
 * Dialects. The SQL is shared except for a few fragments ({@link SqlDialect}): PostgreSQL has no
 * `first`/`last` aggregates (an ordered `array_agg` is subscripted instead), no `//` (integer `/`
 * truncates, so the bucket subtracts the floor remainder), no `any_value` before version 16 (`min`), and
 * no output-column aliases in HAVING; it compares trade ids with `COLLATE "C"` (byte order, as DuckDB
 * and the live aggregator do). NUMERIC sums are exact on both, so the candles are the same strings.
 */
import type { CandleAggregator } from "../candles/candles.js";
import {
  type CandleInterval,
  type CandleV2,
  INTERVAL_US,
  intervalStart,
  isCandleInterval,
} from "../schema/candles.js";
import { decimalToScaledUnits, unitsToString, vwapFromSums } from "../schema/decimal.js";
import type { AssetClass, DataType, QuoteV2, SequenceGap, Side, TradeV2 } from "../schema/records.js";
import type { Row, Store } from "../store/store.js";
import { type CursorValueType, decodeCursor, encodeCursor } from "./cursor.js";
import type { LiveFeed, Tick } from "./live.js";
import {
  type CandlePage,
  type CandleQuery,
  DEAD_LETTER_PREVIEW_CHARS,
  type DeadLetterFull,
  type DeadLetterItem,
  type MarketDataSource,
  type MarketQuery,
  type Page,
  type PageQuery,
  type SymbolInfo,
} from "./source.js";

type Param = string | number | boolean | null;

/** The SQL dialect of the store a source reads: DuckDB (`k2 run` default) or PostgreSQL. */
export type SqlDialect = "duckdb" | "postgres";

/** The fragments where the dialects differ. Arguments are fixed SQL fragments or placeholders. */
interface DialectSql {
  /** Start of the interval holding the µs BIGINT `"timestamp"`, for an interval of `len` µs. */
  bucket(len: string): string;
  /** How HAVING refers to the grouped `interval_start` (`bucket` is its expression). */
  bucketInHaving(bucket: string): string;
  /** Trade order inside a candle, as an aggregate's ORDER BY clause. */
  tradeOrder: string;
  /** `expr` of the first row in `by` order (an aggregate). */
  first(expr: string, by: string): string;
  /** `expr` of the last row in `by` order (an aggregate). */
  last(expr: string, by: string): string;
  /** Some value of `expr`, which is constant within each group (an aggregate). */
  anyValue(expr: string): string;
  /** Size of the text `expr` in UTF-8 bytes. */
  byteLength(expr: string): string;
}

const DIALECTS: Record<SqlDialect, DialectSql> = {
  duckdb: {
    bucket: (len) => `("timestamp" // ${len}) * ${len}`,
    bucketInHaving: () => "interval_start",
    tradeOrder: `ORDER BY "timestamp", length(trade_id), trade_id`,
    first: (expr, by) => `first(${expr} ${by})`,
    last: (expr, by) => `last(${expr} ${by})`,
    anyValue: (expr) => `any_value(${expr})`,
    byteLength: (expr) => `strlen(${expr})`,
  },
  postgres: {
    // floor to a multiple of len (as intervalStart); `/` and `%` truncate toward zero
    bucket: (len) => `("timestamp" - (("timestamp" % ${len}) + ${len}) % ${len})`,
    bucketInHaving: (bucket) => bucket,
    tradeOrder: `ORDER BY "timestamp", length(trade_id), trade_id COLLATE "C"`,
    // identical aggregate calls are computed once, so first and last of a column share one sorted array
    first: (expr, by) => `(array_agg(${expr} ${by}))[1]`,
    last: (expr, by) => `(array_agg(${expr} ${by}))[count(*)::int]`,
    anyValue: (expr) => `min(${expr})`,
    byteLength: (expr) => `octet_length(${expr})`,
  },
};

/** The dialect of a store, from its name (`postgres` → PostgreSQL, anything else → DuckDB). */
export function dialectOf(store: Store): SqlDialect {
  return store.name === "postgres" ? "postgres" : "duckdb";
}

/** Collects bound parameters; returns their `$n` placeholders. */
class Params {
  readonly values: Param[] = [];
  /** A string parameter. */
  s(v: string): string {
    this.values.push(v);
    return `$${this.values.length}`;
  }
  /** A BIGINT parameter (bound as its decimal text and cast, so it never passes through a double). */
  big(v: number): string {
    this.values.push(String(v));
    return `$${this.values.length}::BIGINT`;
  }
}

/** One column of a keyset sort key: a fixed SQL expression and the cursor value type. */
interface KeyPart {
  expr: string;
  type: CursorValueType;
}

/** A paginated table read. Every string here is a fixed fragment, never a request value. */
interface KeysetSpec {
  kind: string;
  table: string;
  select: string;
  /** Column holding the time filtered by from/to (µs BIGINT). */
  timeColumn: string;
  /** Sort key, unique per row; the first part is `timeColumn`. */
  key: KeyPart[];
}

const TRADE_SPEC: KeysetSpec = {
  kind: "trades",
  table: "trades_v2",
  select: `message_id::VARCHAR AS message_id, trade_id, symbol, exchange, asset_class, "timestamp", price,
    quantity, currency, side, trade_conditions, source_sequence, ingestion_timestamp, platform_sequence,
    vendor_data::VARCHAR AS vendor_data`,
  timeColumn: `"timestamp"`,
  key: [
    { expr: `"timestamp"`, type: "int" },
    { expr: "exchange", type: "str" },
    { expr: "symbol", type: "str" },
    { expr: "length(trade_id)", type: "int" },
    { expr: "trade_id", type: "str" },
  ],
};

const QUOTE_SPEC: KeysetSpec = {
  kind: "quotes",
  table: "quotes_v2",
  select: `message_id::VARCHAR AS message_id, symbol, exchange, asset_class, "timestamp", bid_price,
    bid_quantity, ask_price, ask_quantity, currency, source_sequence, ingestion_timestamp, platform_sequence,
    vendor_data::VARCHAR AS vendor_data`,
  timeColumn: `"timestamp"`,
  key: [
    { expr: `"timestamp"`, type: "int" },
    { expr: "exchange", type: "str" },
    { expr: "symbol", type: "str" },
    { expr: "platform_sequence", type: "int" },
    { expr: "message_id::VARCHAR", type: "str" },
  ],
};

const GAP_SPEC: KeysetSpec = {
  kind: "gaps",
  table: "sequence_gaps",
  select: "exchange, symbol, data_type, from_sequence, to_sequence, detected_at",
  timeColumn: "detected_at",
  key: [
    { expr: "detected_at", type: "int" },
    { expr: "exchange", type: "str" },
    { expr: "symbol", type: "str" },
    { expr: "data_type", type: "str" },
    { expr: "from_sequence", type: "int" },
  ],
};

/**
 * Dead letters: `raw` cut to {@link DEAD_LETTER_PREVIEW_CHARS} characters by the store (a large frame
 * never enters this process whole), with its full length in characters and UTF-8 bytes.
 */
const deadLetterSpec = (d: DialectSql): KeysetSpec => ({
  kind: "dead-letters",
  table: "dead_letters",
  select: `message_id::VARCHAR AS message_id, exchange, source, reason,
    substr(raw, 1, ${DEAD_LETTER_PREVIEW_CHARS}) AS raw, length(raw) AS raw_chars,
    ${d.byteLength("raw")} AS raw_bytes, received_at`,
  timeColumn: "received_at",
  key: [
    { expr: "received_at", type: "int" },
    { expr: "message_id::VARCHAR", type: "str" },
  ],
});

/** Characters of a dead letter's raw text read per query by {@link StoreMarketDataSource.deadLetter}. */
export const DEAD_LETTER_CHUNK_CHARS = 256 * 1024;

/** Largest number of instruments `symbols()` returns. */
const MAX_SYMBOLS = 10_000;

/** Options of {@link StoreMarketDataSource}. */
export interface StoreSourceOptions {
  store: Store;
  live: LiveFeed;
  /** The live aggregator, for the open candles of `source: "live"` (optional). */
  candles?: CandleAggregator;
  /** SQL dialect of `store` (default: from the store's name, {@link dialectOf}). */
  dialect?: SqlDialect;
}

export class StoreMarketDataSource implements MarketDataSource {
  readonly live: LiveFeed;
  private readonly store: Store;
  private readonly aggregator: CandleAggregator | undefined;
  private readonly sql: DialectSql;
  private readonly deadLetterSpec: KeysetSpec;

  constructor(opts: StoreSourceOptions) {
    this.store = opts.store;
    this.live = opts.live;
    this.aggregator = opts.candles;
    this.sql = DIALECTS[opts.dialect ?? dialectOf(opts.store)];
    this.deadLetterSpec = deadLetterSpec(this.sql);
  }

  ticks(): Tick[] {
    return this.live.ticks();
  }

  async trades(q: MarketQuery): Promise<Page<TradeV2>> {
    return this.keysetPage(TRADE_SPEC, q, filters(q), toTrade);
  }

  async quotes(q: MarketQuery): Promise<Page<QuoteV2>> {
    return this.keysetPage(QUOTE_SPEC, q, filters(q), toQuote);
  }

  async gaps(q: MarketQuery): Promise<Page<SequenceGap>> {
    return this.keysetPage(GAP_SPEC, q, filters(q), toGap);
  }

  async deadLetters(q: PageQuery & { exchange?: string }): Promise<Page<DeadLetterItem>> {
    return this.keysetPage(this.deadLetterSpec, q, filters(q), toDeadLetter);
  }

  /**
   * One dead letter in full: its fields and sizes by one query, then its raw text in chunks of
   * {@link DEAD_LETTER_CHUNK_CHARS} characters, one query each (`substr` in the store), so at most one
   * chunk is held here at a time.
   * @param messageId a lower-case UUID (the API checks it)
   */
  async deadLetter(messageId: string): Promise<DeadLetterFull | null> {
    const p = new Params();
    const rows = await this.store.query(
      `SELECT message_id::VARCHAR AS message_id, exchange, source, reason, received_at,
         length(raw) AS raw_chars, ${this.sql.byteLength("raw")} AS raw_bytes
       FROM dead_letters WHERE message_id = ${p.s(messageId)}::UUID`,
      p.values,
    );
    const r = rows[0];
    if (!r) return null;
    const chars = Number(r.raw_chars);
    const store = this.store;
    return {
      message_id: String(r.message_id),
      exchange: String(r.exchange),
      source: String(r.source),
      reason: String(r.reason),
      received_at: num(r.received_at),
      raw_bytes: Number(r.raw_bytes),
      raw_chars: chars,
      async *rawChunks() {
        for (let start = 1; start <= chars; start += DEAD_LETTER_CHUNK_CHARS) {
          const c = new Params();
          // INTEGER: PostgreSQL has substr(text, int, int) only
          const part = await store.query(
            `SELECT substr(raw, ${c.s(String(start))}::INTEGER, ${c.s(String(DEAD_LETTER_CHUNK_CHARS))}::INTEGER)
               AS part FROM dead_letters WHERE message_id = ${c.s(messageId)}::UUID`,
            c.values,
          );
          if (!part[0]) throw new Error(`dead letter ${messageId} was removed while being read`);
          yield String(part[0].part);
        }
      },
    };
  }

  /**
   * Runs a keyset page over `spec`: equality filters (fixed column names, bound values), the time
   * range, the cursor's "strictly after" row comparison, ORDER BY the key, LIMIT limit + 1.
   */
  private async keysetPage<T>(
    spec: KeysetSpec,
    q: PageQuery,
    eq: [column: string, value: string][],
    map: (r: Row) => T,
  ): Promise<Page<T>> {
    const p = new Params();
    const where: string[] = [];
    for (const [column, value] of eq) where.push(`${column} = ${p.s(value)}`);
    if (q.from !== undefined) where.push(`${spec.timeColumn} >= ${p.big(q.from)}`);
    if (q.to !== undefined) where.push(`${spec.timeColumn} < ${p.big(q.to)}`);
    const asc = q.order === "asc";
    if (q.cursor !== undefined) {
      const after = decodeCursor(
        q.cursor,
        spec.kind,
        q.order,
        spec.key.map((k) => k.type),
      );
      const bound = spec.key.map((k, i) =>
        k.type === "int" ? p.big(after[i] as number) : p.s(after[i] as string),
      );
      // the single-column bound lets DuckDB prune row groups by their min/max
      where.push(`${spec.timeColumn} ${asc ? ">=" : "<="} ${bound[0]}`);
      where.push(`(${spec.key.map((k) => k.expr).join(", ")}) ${asc ? ">" : "<"} (${bound.join(", ")})`);
    }
    const dir = asc ? "ASC" : "DESC";
    const sql = `SELECT ${spec.select}, ${spec.key.map((k, i) => `${k.expr} AS _k${i}`).join(", ")}
      FROM ${spec.table}${where.length ? ` WHERE ${where.join(" AND ")}` : ""}
      ORDER BY ${spec.key.map((k) => `${k.expr} ${dir}`).join(", ")}
      LIMIT ${p.big(q.limit + 1)}`;
    const rows = await this.store.query(sql, p.values);
    let more = rows.length > q.limit;
    if (more) rows.length = q.limit;
    const data = rows.map(map);
    const kept = withinBudget(data, q.maxBytes);
    if (kept < data.length) {
      more = true;
      data.length = kept;
      rows.length = kept;
    }
    const last = rows[rows.length - 1];
    return {
      data,
      next_cursor:
        more && last
          ? encodeCursor(
              spec.kind,
              q.order,
              spec.key.map((k, i) => (k.type === "int" ? Number(last[`_k${i}`]) : String(last[`_k${i}`]))),
            )
          : null,
    };
  }

  async candles(q: CandleQuery): Promise<CandlePage> {
    if (!isCandleInterval(q.interval)) throw new RangeError(`unknown interval ${q.interval}`);
    const page = q.source === "live" ? await this.storedCandles(q) : await this.tradeCandles(q);
    if (q.source === "live" && this.aggregator) {
      const open: CandleV2[] = [];
      const exchanges = q.exchange ? [q.exchange] : this.exchangesOf(q.symbol);
      for (const ex of exchanges) {
        const c = this.aggregator.openCandle(ex, q.symbol, q.interval);
        if (c && inRange(c, q)) open.push(c);
      }
      return { ...page, open };
    }
    return q.source === "live" ? { ...page, open: [] } : page;
  }

  private exchangesOf(symbol: string): string[] {
    return this.live
      .ticks()
      .filter((t) => t.symbol === symbol)
      .map((t) => t.exchange);
  }

  /**
   * Candles computed from trades_v2 (see the file comment): OHLC DECIMAL(18,8), volume with 8 places,
   * quote_volume with 16, interval_start µs, in (interval_start, exchange) order.
   */
  private async tradeCandles(q: CandleQuery): Promise<CandlePage> {
    const d = this.sql;
    const len = INTERVAL_US[q.interval];
    const p = new Params();
    const lenP = p.big(len);
    const bucket = d.bucket(lenP);
    const where: string[] = [`symbol = ${p.s(q.symbol)}`];
    if (q.exchange) where.push(`exchange = ${p.s(q.exchange)}`);
    const [fromUs, toUs] = widen(q.from, q.to, q.interval);
    if (fromUs !== undefined) where.push(`"timestamp" >= ${p.big(fromUs)}`);
    if (toUs !== undefined) where.push(`"timestamp" < ${p.big(toUs)}`);
    const asc = q.order === "asc";
    let having = "";
    if (q.cursor !== undefined) {
      const [start, exchange] = decodeCursor(q.cursor, "candles", q.order, ["int", "str"]) as [
        number,
        string,
      ];
      const startP = p.big(start);
      // whole intervals only: trades of the cursor's interval are still needed by its other exchanges
      where.push(asc ? `"timestamp" >= ${startP}` : `"timestamp" < ${startP} + ${lenP}`);
      having = `HAVING (${d.bucketInHaving(bucket)}, exchange) ${asc ? ">" : "<"} (${startP}, ${p.s(exchange)})`;
    }
    const by = d.tradeOrder;
    const dir = asc ? "ASC" : "DESC";
    const sql = `SELECT exchange, symbol, ${d.anyValue("asset_class")} AS asset_class,
        ${bucket} AS interval_start,
        ${d.first("price", by)} AS open, max(price) AS high, min(price) AS low,
        ${d.last("price", by)} AS close,
        sum(quantity::DECIMAL(38,8)) AS volume,
        sum(price::DECIMAL(38,8) * quantity::DECIMAL(38,8)) AS quote_volume,
        count(*) AS trade_count,
        ${d.first("trade_id", by)} AS first_trade_id, ${d.last("trade_id", by)} AS last_trade_id
      FROM trades_v2 WHERE ${where.join(" AND ")}
      GROUP BY exchange, symbol, interval_start
      ${having}
      ORDER BY interval_start ${dir}, exchange ${dir}
      LIMIT ${p.big(q.limit + 1)}`;
    const rows = await this.store.query(sql, p.values);
    return this.candlePage(rows, q, (r) => {
      const volume = unitsToString(decimalToScaledUnits(String(r.volume), 8), 8);
      const quoteVolume = unitsToString(decimalToScaledUnits(String(r.quote_volume), 16), 16);
      return candleOf(r, q.interval, volume, quoteVolume, vwapFromSums(quoteVolume, volume), true);
    });
  }

  /**
   * Candles closed by the live aggregator and stored in candles_v2 (the same SQL on both dialects), in
   * (interval_start, exchange) order.
   */
  private async storedCandles(q: CandleQuery): Promise<CandlePage> {
    const p = new Params();
    const where: string[] = [`symbol = ${p.s(q.symbol)}`, `"interval" = ${p.s(q.interval)}`];
    if (q.exchange) where.push(`exchange = ${p.s(q.exchange)}`);
    const [fromUs, toUs] = widen(q.from, q.to, q.interval);
    if (fromUs !== undefined) where.push(`interval_start >= ${p.big(fromUs)}`);
    if (toUs !== undefined) where.push(`interval_start < ${p.big(toUs)}`);
    const asc = q.order === "asc";
    if (q.cursor !== undefined) {
      const [start, exchange] = decodeCursor(q.cursor, "candles", q.order, ["int", "str"]) as [
        number,
        string,
      ];
      where.push(`(interval_start, exchange) ${asc ? ">" : "<"} (${p.big(start)}, ${p.s(exchange)})`);
    }
    const dir = asc ? "ASC" : "DESC";
    const sql = `SELECT exchange, symbol, asset_class, interval_start, open, high, low, close, volume,
        quote_volume, vwap, trade_count, first_trade_id, last_trade_id
      FROM candles_v2 WHERE ${where.join(" AND ")}
      ORDER BY interval_start ${dir}, exchange ${dir}
      LIMIT ${p.big(q.limit + 1)}`;
    const rows = await this.store.query(sql, p.values);
    return this.candlePage(rows, q, (r) =>
      candleOf(
        r,
        q.interval,
        unitsToString(decimalToScaledUnits(String(r.volume), 8), 8),
        unitsToString(decimalToScaledUnits(String(r.quote_volume), 16), 16),
        r.vwap === null ? null : dec8(r.vwap),
        true,
      ),
    );
  }

  private candlePage(rows: Row[], q: CandleQuery, map: (r: Row) => CandleV2): CandlePage {
    let more = rows.length > q.limit;
    if (more) rows.length = q.limit;
    const data = rows.map(map);
    const kept = withinBudget(data, q.maxBytes);
    if (kept < data.length) {
      more = true;
      data.length = kept;
    }
    const last = data[data.length - 1];
    return {
      data,
      next_cursor:
        more && last ? encodeCursor("candles", q.order, [last.interval_start, last.exchange]) : null,
    };
  }

  async symbols(): Promise<SymbolInfo[]> {
    const p = new Params();
    const limit = p.big(MAX_SYMBOLS);
    const any = this.sql.anyValue;
    const rows = await this.store.query(
      `WITH t AS (
         SELECT exchange, symbol, ${any("asset_class")} AS asset_class, ${any("currency")} AS currency,
           count(*) AS n, min("timestamp") AS first_ts, max("timestamp") AS last_ts
         FROM trades_v2 GROUP BY exchange, symbol),
       q AS (
         SELECT exchange, symbol, ${any("asset_class")} AS asset_class, ${any("currency")} AS currency,
           count(*) AS n, min("timestamp") AS first_ts, max("timestamp") AS last_ts
         FROM quotes_v2 GROUP BY exchange, symbol)
       SELECT coalesce(t.exchange, q.exchange) AS exchange, coalesce(t.symbol, q.symbol) AS symbol,
         coalesce(t.asset_class, q.asset_class) AS asset_class, coalesce(t.currency, q.currency) AS currency,
         coalesce(t.n, 0) AS trades, coalesce(q.n, 0) AS quotes,
         least(t.first_ts, q.first_ts) AS first_ts, greatest(t.last_ts, q.last_ts) AS last_ts
       FROM t FULL OUTER JOIN q ON t.exchange = q.exchange AND t.symbol = q.symbol
       ORDER BY exchange, symbol LIMIT ${limit}`,
      p.values,
    );
    const out = new Map<string, SymbolInfo>();
    for (const r of rows) {
      const exchange = String(r.exchange);
      const symbol = String(r.symbol);
      out.set(`${exchange}\u0000${symbol}`, {
        exchange,
        symbol,
        asset_class: r.asset_class as AssetClass,
        currency: String(r.currency),
        trades: Number(r.trades),
        quotes: Number(r.quotes),
        first_timestamp: r.first_ts === null ? null : Number(r.first_ts),
        last_timestamp: r.last_ts === null ? null : Number(r.last_ts),
        last_price: this.live.tick(exchange, symbol)?.last_price ?? null,
      });
    }
    for (const t of this.live.ticks()) {
      const key = `${t.exchange}\u0000${t.symbol}`;
      if (out.has(key) || out.size >= MAX_SYMBOLS) continue;
      out.set(key, {
        exchange: t.exchange,
        symbol: t.symbol,
        asset_class: t.asset_class,
        currency: t.currency,
        trades: 0,
        quotes: 0,
        first_timestamp: null,
        last_timestamp: null,
        last_price: t.last_price,
      });
    }
    return [...out.values()].sort((a, b) =>
      a.exchange === b.exchange ? cmp(a.symbol, b.symbol) : cmp(a.exchange, b.exchange),
    );
  }
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * How many of `items`, from the first, fit in `maxBytes` UTF-8 bytes of JSON (one comma each); at
 * least one. All of them when `maxBytes` is undefined.
 */
function withinBudget(items: readonly unknown[], maxBytes: number | undefined): number {
  if (maxBytes === undefined) return items.length;
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    bytes += Buffer.byteLength(JSON.stringify(items[i])) + 1;
    if (i > 0 && bytes > maxBytes) return i;
  }
  return items.length;
}

/** Equality filters on fixed column names. */
function filters(q: { exchange?: string; symbol?: string }): [string, string][] {
  const f: [string, string][] = [];
  if (q.exchange !== undefined) f.push(["exchange", q.exchange]);
  if (q.symbol !== undefined) f.push(["symbol", q.symbol]);
  return f;
}

/** Widens [from, to) to whole intervals: from down to its interval start, to up to an interval end. */
function widen(
  from: number | undefined,
  to: number | undefined,
  interval: CandleInterval,
): [number | undefined, number | undefined] {
  const len = INTERVAL_US[interval];
  return [
    from === undefined ? undefined : intervalStart(from, interval),
    to === undefined ? undefined : intervalStart(to - 1, interval) + len,
  ];
}

function inRange(c: CandleV2, q: CandleQuery): boolean {
  const [fromUs, toUs] = widen(q.from, q.to, q.interval);
  return (
    (fromUs === undefined || c.interval_start >= fromUs) && (toUs === undefined || c.interval_start < toUs)
  );
}

/** A DECIMAL(18,8) column value as its canonical string. */
function dec8(v: unknown): string {
  return unitsToString(decimalToScaledUnits(String(v), 8), 8);
}

function num(v: unknown): number {
  return Number(v);
}

function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

function vendorData(v: unknown): Record<string, string> {
  if (typeof v === "string") return JSON.parse(v) as Record<string, string>;
  return (v ?? {}) as Record<string, string>;
}

function candleOf(
  r: Row,
  interval: CandleInterval,
  volume: string,
  quoteVolume: string,
  vwap: string | null,
  closed: boolean,
): CandleV2 {
  const start = num(r.interval_start);
  return {
    exchange: String(r.exchange),
    symbol: String(r.symbol),
    asset_class: r.asset_class as AssetClass,
    interval,
    interval_start: start,
    interval_end: start + INTERVAL_US[interval],
    open: dec8(r.open),
    high: dec8(r.high),
    low: dec8(r.low),
    close: dec8(r.close),
    volume,
    quote_volume: quoteVolume,
    vwap,
    trade_count: num(r.trade_count),
    first_trade_id: String(r.first_trade_id),
    last_trade_id: String(r.last_trade_id),
    closed,
  };
}

function toTrade(r: Row): TradeV2 {
  return {
    message_id: String(r.message_id),
    trade_id: String(r.trade_id),
    symbol: String(r.symbol),
    exchange: String(r.exchange),
    asset_class: r.asset_class as AssetClass,
    timestamp: num(r.timestamp),
    price: dec8(r.price),
    quantity: dec8(r.quantity),
    currency: String(r.currency),
    side: r.side as Side,
    trade_conditions: (r.trade_conditions ?? []) as string[],
    source_sequence: numOrNull(r.source_sequence),
    ingestion_timestamp: num(r.ingestion_timestamp),
    platform_sequence: num(r.platform_sequence),
    vendor_data: vendorData(r.vendor_data),
  };
}

function toQuote(r: Row): QuoteV2 {
  return {
    message_id: String(r.message_id),
    symbol: String(r.symbol),
    exchange: String(r.exchange),
    asset_class: r.asset_class as AssetClass,
    timestamp: num(r.timestamp),
    bid_price: dec8(r.bid_price),
    bid_quantity: dec8(r.bid_quantity),
    ask_price: dec8(r.ask_price),
    ask_quantity: dec8(r.ask_quantity),
    currency: String(r.currency),
    source_sequence: numOrNull(r.source_sequence),
    ingestion_timestamp: num(r.ingestion_timestamp),
    platform_sequence: num(r.platform_sequence),
    vendor_data: vendorData(r.vendor_data),
  };
}

function toGap(r: Row): SequenceGap {
  return {
    exchange: String(r.exchange),
    symbol: String(r.symbol),
    data_type: r.data_type as DataType,
    from_sequence: num(r.from_sequence),
    to_sequence: num(r.to_sequence),
    detected_at: num(r.detected_at),
  };
}

function toDeadLetter(r: Row): DeadLetterItem {
  const id = String(r.message_id);
  return {
    message_id: id,
    exchange: String(r.exchange),
    source: String(r.source),
    reason: String(r.reason),
    raw: String(r.raw),
    raw_truncated: Number(r.raw_chars) > DEAD_LETTER_PREVIEW_CHARS,
    raw_bytes: Number(r.raw_bytes),
    raw_url: `/api/v1/dead-letters/${id}`,
    received_at: num(r.received_at),
  };
}
