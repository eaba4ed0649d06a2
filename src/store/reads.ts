/**
 * The store's typed reads (trades, quotes, gaps, dead letters, candles, symbols), shared by both SQL
 * backends: each backend gives its {@link ReadDialect} (the few fragments where DuckDB and PostgreSQL
 * differ) and runs the SQL on its own connection (`Store.query`).
 *
 * Every value from a request is bound as a query parameter (`$1`, `$2`, …: numbered, as both engines
 * accept, since a value may be used twice); the SQL text is assembled only from the catalogue's column
 * names and the fixed fragments here (sort directions from `ASC`/`DESC`). Pages use keyset pagination on
 * a unique sort key (never OFFSET), fetching `limit + 1` rows to know whether another page follows, so
 * no query holds more than one page in memory.
 *
 * Candles from trades: per (exchange, symbol, interval_start = timestamp // length · length),
 * `first`/`last` price ordered by trade order (timestamp, length(trade_id), trade_id), `max`/`min`
 * price, Σ quantity (DECIMAL(38,8)), Σ price·quantity on DECIMAL(38,8) casts (exact DECIMAL(38,16):
 * DuckDB multiplies DECIMAL(18,8) in 64 bits and would overflow at BTC prices), count; VWAP is divided
 * exactly in JS by `vwapFromSums` (half-even, 8 places). The live aggregator produces the same strings.
 */
import type { BookSnapshotV2 } from "../schema/books.js";
import {
  type CandleInterval,
  type CandleV2,
  INTERVAL_US,
  intervalStart,
  isCandleInterval,
} from "../schema/candles.js";
import { decimalToScaledUnits, unitsToString, vwapFromSums } from "../schema/decimal.js";
import type { AssetClass, QuoteV2, SequenceGap, TradeV2 } from "../schema/records.js";
import { TABLES, type Table } from "../schema/tables.js";
import { type CursorValueType, decodeCursor, encodeCursor } from "./cursor.js";
import {
  type CandleQuery,
  DEAD_LETTER_PREVIEW_CHARS,
  type DeadLetterFull,
  type DeadLetterItem,
  type DeadLetterQuery,
  type MarketQuery,
  type Page,
  type PageQuery,
  pageText,
  type SymbolStats,
  type TextPage,
} from "./page.js";
import { columnList, ident, readColumns, rowMapper, selectList } from "./sql.js";
import { LAST_SEQUENCES_SQL, type LastSequence, type Row, toLastSequence } from "./store.js";

type Param = string | number | boolean | null;

/**
 * The SQL fragments where the dialects differ (arguments are fixed SQL fragments or placeholders):
 * PostgreSQL has no `first`/`last` aggregates (an ordered `array_agg` is subscripted instead), no `//`
 * (integer `/` truncates, so the bucket subtracts the floor remainder), no `any_value` before version
 * 16 (`min`), and no output-column aliases in HAVING; it compares trade ids with `COLLATE "C"` (byte
 * order, as DuckDB and the live aggregator do).
 */
export interface ReadDialect {
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
  /**
   * JSON text of the text value `expr` (a JSON string, escaped), or of the text list `expr` (a JSON
   * array of strings). Absent: the dialect builds no JSON text, and the text reads convert typed rows.
   */
  jsonText?(expr: string): string;
}

/**
 * Rows of a text page query (`SqlReads.queryTexts`): the first column of every row as text (null
 * where SQL gave NULL), and any row's columns as exact strings (null where NULL).
 */
export interface TextRows {
  texts: (string | null)[];
  row(index: number): Record<string, string | null>;
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
interface KeysetSpec<T> {
  kind: string;
  table: string;
  select: string;
  /** Column holding the time filtered by from/to (µs BIGINT). */
  timeColumn: string;
  /** Sort key, unique per row; the first part is `timeColumn`. */
  key: KeyPart[];
  map: (r: Row) => T;
}

/**
 * Trades or quotes: newest or oldest first by (timestamp, exchange, symbol, then `tail`, which makes the
 * key unique).
 */
function marketSpec<T>(kind: string, table: Table, tail: KeyPart[]): KeysetSpec<T> {
  return {
    kind,
    table: table.name,
    select: selectList(table),
    timeColumn: `"timestamp"`,
    key: [
      { expr: `"timestamp"`, type: "int" },
      { expr: "exchange", type: "str" },
      { expr: "symbol", type: "str" },
      ...tail,
    ],
    map: rowMapper(table),
  };
}

const TRADES = marketSpec<TradeV2>("trades", TABLES.trades_v2, [
  { expr: "length(trade_id)", type: "int" },
  { expr: "trade_id", type: "str" },
]);

const QUOTES = marketSpec<QuoteV2>("quotes", TABLES.quotes_v2, [
  { expr: "platform_sequence", type: "int" },
  { expr: "message_id::VARCHAR", type: "str" },
]);

/** Stored book snapshots: (timestamp, exchange, symbol, depth), the table's key. */
const BOOK_SNAPSHOTS = marketSpec<BookSnapshotV2>("book-snapshots", TABLES.book_snapshots_v2, [
  { expr: "depth", type: "int" },
]);

const GAPS: KeysetSpec<SequenceGap> = {
  kind: "gaps",
  table: "sequence_gaps",
  select: selectList(TABLES.sequence_gaps),
  timeColumn: "detected_at",
  key: [
    { expr: "detected_at", type: "int" },
    { expr: "exchange", type: "str" },
    { expr: "symbol", type: "str" },
    { expr: "data_type", type: "str" },
    { expr: "from_sequence", type: "int" },
  ],
  map: rowMapper(TABLES.sequence_gaps),
};

const deadLetterRow = rowMapper<DeadLetterItem>(TABLES.dead_letters);

/**
 * Dead letters: `raw` cut to {@link DEAD_LETTER_PREVIEW_CHARS} characters by the store (a large frame
 * never enters this process whole), with its full length in characters and UTF-8 bytes.
 */
const deadLetters = (d: ReadDialect): KeysetSpec<DeadLetterItem> => ({
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
  map: (r) => {
    const { received_at, ...fields } = deadLetterRow(r);
    return {
      ...fields,
      raw_truncated: Number(r.raw_chars) > DEAD_LETTER_PREVIEW_CHARS,
      raw_bytes: Number(r.raw_bytes),
      raw_url: `/api/v1/dead-letters/${fields.message_id}`,
      received_at,
    };
  },
});

/** Characters of a dead letter's raw text read per query by {@link SqlReads.deadLetter}. */
export const DEAD_LETTER_CHUNK_CHARS = 256 * 1024;

const storedCandleRow = rowMapper<Omit<CandleV2, "closed">>(TABLES.candles_v2);

/**
 * The typed reads of a SQL store (a base class of both backends): each backend passes its
 * {@link ReadDialect} and implements `query`.
 */
export abstract class SqlReads {
  private readonly deadLetterSpec: KeysetSpec<DeadLetterItem>;

  constructor(private readonly dialect: ReadDialect) {
    this.deadLetterSpec = deadLetters(dialect);
  }

  /** Runs a parameterized read query (`$1` placeholders) and returns JSON-safe rows. */
  abstract query(sql: string, params?: Param[]): Promise<Row[]>;

  /**
   * Runs a parameterized read query whose first column is text and gives that column of every row
   * without converting the others (read one row at a time with `row`). Optional: where absent, the
   * text reads convert typed rows.
   */
  queryTexts?(sql: string, params: Param[]): Promise<TextRows>;

  /**
   * The highest `source_sequence` per (exchange, symbol) in trades_v2 and agg_trades_v2 (rows without a
   * sequence are ignored), in one query. Order unspecified.
   */
  async lastSequences(): Promise<LastSequence[]> {
    const rows = await this.query(LAST_SEQUENCES_SQL);
    return rows.map(toLastSequence);
  }

  /** Stored trades (`trades_v2`) in (timestamp, exchange, symbol, trade id) order. */
  trades(q: MarketQuery): Promise<Page<TradeV2>> {
    return this.keysetPage(TRADES, q, filters(q));
  }

  /** Stored quotes (`quotes_v2`) in (timestamp, exchange, symbol, platform_sequence, message_id) order. */
  quotes(q: MarketQuery): Promise<Page<QuoteV2>> {
    return this.keysetPage(QUOTES, q, filters(q));
  }

  /**
   * {@link trades} as JSON text ({@link TextPage}: `JSON.parse(json)` equals the typed page's data,
   * property for property, with the same `next_cursor`). Where the dialect builds JSON (DuckDB), each
   * record's text is built in SQL: this process handles one string per record.
   * @throws {QueryParamError} on a cursor of another query (as {@link trades})
   */
  tradesText(q: MarketQuery): Promise<TextPage> {
    return this.textPage(TRADES, TABLES.trades_v2, q, () => this.trades(q));
  }

  /** {@link quotes} as JSON text, as {@link tradesText}. */
  quotesText(q: MarketQuery): Promise<TextPage> {
    return this.textPage(QUOTES, TABLES.quotes_v2, q, () => this.quotes(q));
  }

  /**
   * Stored top-N book snapshots (`book_snapshots_v2`) in (timestamp, exchange, symbol, depth) order,
   * levels as `[price, quantity]` DECIMAL(18,8) string pairs, best first.
   */
  bookSnapshots(q: MarketQuery): Promise<Page<BookSnapshotV2>> {
    return this.keysetPage(BOOK_SNAPSHOTS, q, filters(q));
  }

  /** Detected sequence gaps in (detected_at, exchange, symbol, data_type, from_sequence) order. */
  gaps(q: MarketQuery): Promise<Page<SequenceGap>> {
    return this.keysetPage(GAPS, q, filters(q));
  }

  /**
   * Dead letters in (received_at, message_id) order, `raw` cut to {@link DEAD_LETTER_PREVIEW_CHARS}
   * characters.
   */
  deadLetters(q: DeadLetterQuery): Promise<Page<DeadLetterItem>> {
    return this.keysetPage(this.deadLetterSpec, q, filters(q));
  }

  /**
   * One dead letter in full: its fields and sizes by one query, then its raw text in chunks of
   * {@link DEAD_LETTER_CHUNK_CHARS} characters, one query each (`substr` in the store), so at most one
   * chunk is held at a time. Null when there is none.
   * @param messageId a lower-case UUID (the API checks it)
   */
  async deadLetter(messageId: string): Promise<DeadLetterFull | null> {
    const p = new Params();
    const rows = await this.query(
      `SELECT message_id::VARCHAR AS message_id, exchange, source, reason, received_at,
         length(raw) AS raw_chars, ${this.dialect.byteLength("raw")} AS raw_bytes
       FROM dead_letters WHERE message_id = ${p.s(messageId)}::UUID`,
      p.values,
    );
    const r = rows[0];
    if (!r) return null;
    const chars = Number(r.raw_chars);
    const query = (sql: string, params: Param[]) => this.query(sql, params);
    return {
      message_id: String(r.message_id),
      exchange: String(r.exchange),
      source: String(r.source),
      reason: String(r.reason),
      received_at: Number(r.received_at),
      raw_bytes: Number(r.raw_bytes),
      raw_chars: chars,
      async *rawChunks() {
        for (let start = 1; start <= chars; start += DEAD_LETTER_CHUNK_CHARS) {
          const c = new Params();
          // INTEGER: PostgreSQL has substr(text, int, int) only
          const part = await query(
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
    spec: KeysetSpec<T>,
    q: PageQuery,
    eq: [column: string, value: string][],
  ): Promise<Page<T>> {
    const { sql, params } = this.keysetSql(spec, q, eq, spec.select);
    const rows = await this.query(sql, params);
    return page(rows, q, spec.map, (last) => keysetCursor(spec, q, last));
  }

  /**
   * The SQL of a keyset page over `spec` (selecting `select` and the key as `_k0`, `_k1`, …): equality
   * filters (fixed column names, bound values), the time range, the cursor's "strictly after" row
   * comparison, ORDER BY the key, LIMIT limit + 1.
   */
  private keysetSql<T>(
    spec: KeysetSpec<T>,
    q: PageQuery,
    eq: [column: string, value: string][],
    select: string,
  ): { sql: string; params: Param[] } {
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
    const sql = `SELECT ${select}, ${spec.key.map((k, i) => `${k.expr} AS _k${i}`).join(", ")}
      FROM ${spec.table}${where.length ? ` WHERE ${where.join(" AND ")}` : ""}
      ORDER BY ${spec.key.map((k) => `${k.expr} ${dir}`).join(", ")}
      LIMIT ${p.big(q.limit + 1)}`;
    return { sql, params: p.values };
  }

  /**
   * A keyset page of `spec` as JSON text: built in SQL when the dialect and the connection can (the
   * record JSON over the page's rows only, in an outer query), else the typed page stringified. A page
   * with a byte budget, or one where SQL gave a NULL record (a NULL in a column the typed mapper
   * converts), is read typed.
   */
  private async textPage<T>(
    spec: KeysetSpec<T>,
    table: Table,
    q: MarketQuery,
    typed: () => Promise<Page<T>>,
  ): Promise<TextPage> {
    const json = this.dialect.jsonText && recordJson(table, this.dialect.jsonText);
    if (!json || !this.queryTexts || q.maxBytes !== undefined) return pageText(await typed());
    const { sql, params } = this.keysetSql(spec, q, filters(q), columnList(readColumns(table)));
    const dir = q.order === "asc" ? "ASC" : "DESC";
    const keys = spec.key.map((_, i) => `_k${i}`);
    const rows = await this.queryTexts(
      `SELECT ${json} AS _json, ${keys.join(", ")} FROM (${sql}) AS page
       ORDER BY ${keys.map((k) => `${k} ${dir}`).join(", ")}`,
      params,
    );
    const more = rows.texts.length > q.limit;
    const texts = more ? rows.texts.slice(0, q.limit) : rows.texts;
    if (texts.some((t) => t === null)) return pageText(await typed());
    const next = more ? keysetCursor(spec, q, rows.row(texts.length - 1)) : null;
    return { json: `[${texts.join(",")}]`, next_cursor: next };
  }

  /**
   * Candles computed from trades_v2 (see the file comment): OHLC DECIMAL(18,8), volume with 8 places,
   * quote_volume with 16, interval_start µs, in (interval_start, exchange) order.
   * @throws {QueryParamError} on a cursor of another query; {RangeError} on an unknown interval
   */
  async tradeCandles(q: CandleQuery): Promise<Page<CandleV2>> {
    const d = this.dialect;
    const len = intervalLength(q.interval);
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
    const rows = await this.query(sql, p.values);
    return candlePage(rows, q, (r) => {
      const volume = unitsToString(decimalToScaledUnits(String(r.volume), 8), 8);
      const quoteVolume = unitsToString(decimalToScaledUnits(String(r.quote_volume), 16), 16);
      const start = Number(r.interval_start);
      return {
        exchange: String(r.exchange),
        symbol: String(r.symbol),
        asset_class: r.asset_class as AssetClass,
        interval: q.interval,
        interval_start: start,
        interval_end: start + len,
        open: dec8(r.open),
        high: dec8(r.high),
        low: dec8(r.low),
        close: dec8(r.close),
        volume,
        quote_volume: quoteVolume,
        vwap: vwapFromSums(quoteVolume, volume),
        trade_count: Number(r.trade_count),
        first_trade_id: String(r.first_trade_id),
        last_trade_id: String(r.last_trade_id),
        closed: true,
      };
    });
  }

  /**
   * Candles closed by the live aggregator and stored in candles_v2 (the same SQL on both dialects), in
   * (interval_start, exchange) order.
   * @throws {QueryParamError} on a cursor of another query; {RangeError} on an unknown interval
   */
  async storedCandles(q: CandleQuery): Promise<Page<CandleV2>> {
    intervalLength(q.interval);
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
    const sql = `SELECT ${selectList(TABLES.candles_v2)}
      FROM candles_v2 WHERE ${where.join(" AND ")}
      ORDER BY interval_start ${dir}, exchange ${dir}
      LIMIT ${p.big(q.limit + 1)}`;
    const rows = await this.query(sql, p.values);
    return candlePage(rows, q, (r) => ({ ...storedCandleRow(r), closed: true }));
  }

  /**
   * Instruments with stored trades or quotes, with their counts and first/last venue times, in
   * (exchange, symbol) order; at most `limit`. The times are the records' own venue times: a trade's
   * time, and a quote's only when the venue stamped it (a quote whose `timestamp` is its receipt time,
   * `timestamp = ingestion_timestamp`, e.g. a Binance bookTicker, does not count), so a replay's
   * 2024 trades are never set beside its 2026 receipt times; null when no stored record has one.
   */
  async symbols(limit: number): Promise<SymbolStats[]> {
    const p = new Params();
    const limitP = p.big(limit);
    const any = this.dialect.anyValue;
    const rows = await this.query(
      `WITH t AS (
         SELECT exchange, symbol, ${any("asset_class")} AS asset_class, ${any("currency")} AS currency,
           count(*) AS n, min("timestamp") AS first_ts, max("timestamp") AS last_ts
         FROM trades_v2 GROUP BY exchange, symbol),
       q AS (
         SELECT exchange, symbol, ${any("asset_class")} AS asset_class, ${any("currency")} AS currency,
           count(*) AS n,
           min(CASE WHEN "timestamp" <> ingestion_timestamp THEN "timestamp" END) AS first_ts,
           max(CASE WHEN "timestamp" <> ingestion_timestamp THEN "timestamp" END) AS last_ts
         FROM quotes_v2 GROUP BY exchange, symbol)
       SELECT coalesce(t.exchange, q.exchange) AS exchange, coalesce(t.symbol, q.symbol) AS symbol,
         coalesce(t.asset_class, q.asset_class) AS asset_class, coalesce(t.currency, q.currency) AS currency,
         coalesce(t.n, 0) AS trades, coalesce(q.n, 0) AS quotes,
         least(t.first_ts, q.first_ts) AS first_ts, greatest(t.last_ts, q.last_ts) AS last_ts
       FROM t FULL OUTER JOIN q ON t.exchange = q.exchange AND t.symbol = q.symbol
       ORDER BY exchange, symbol LIMIT ${limitP}`,
      p.values,
    );
    return rows.map((r) => ({
      exchange: String(r.exchange),
      symbol: String(r.symbol),
      asset_class: r.asset_class as AssetClass,
      currency: String(r.currency),
      trades: Number(r.trades),
      quotes: Number(r.quotes),
      first_timestamp: r.first_ts === null ? null : Number(r.first_ts),
      last_timestamp: r.last_ts === null ? null : Number(r.last_ts),
    }));
  }
}

/** Length of a candle interval in µs. @throws {RangeError} when the interval is unknown */
function intervalLength(interval: CandleInterval): number {
  if (!isCandleInterval(interval)) throw new RangeError(`unknown interval ${interval}`);
  return INTERVAL_US[interval];
}

/**
 * A page of `rows` (at most `limit + 1` of them): the first `limit` mapped, cut further at the byte
 * budget, and the cursor of the last row kept when more follow.
 */
/** The cursor after `last`, a row of a keyset page over `spec` (its key as `_k0`, `_k1`, …). */
function keysetCursor<T>(spec: KeysetSpec<T>, q: PageQuery, last: Record<string, unknown>): string {
  return encodeCursor(
    spec.kind,
    q.order,
    spec.key.map((k, i) => (k.type === "int" ? Number(last[`_k${i}`]) : String(last[`_k${i}`]))),
  );
}

function page<T>(
  rows: Row[],
  q: PageQuery,
  map: (r: Row) => T,
  cursorOf: (lastRow: Row, lastItem: T) => string,
): Page<T> {
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
  return { data, next_cursor: more && last ? cursorOf(last, data[data.length - 1]) : null };
}

function candlePage(rows: Row[], q: CandleQuery, map: (r: Row) => CandleV2): Page<CandleV2> {
  return page(rows, q, map, (_, c) => encodeCursor("candles", q.order, [c.interval_start, c.exchange]));
}

/**
 * How many of `items`, from the first, fit in `maxBytes` UTF-8 bytes of JSON (one comma each); at
 * least one. All of them when `maxBytes` is undefined.
 */
export function withinBudget(items: readonly unknown[], maxBytes: number | undefined): number {
  if (maxBytes === undefined) return items.length;
  let bytes = 0;
  for (let i = 0; i < items.length; i++) {
    bytes += Buffer.byteLength(JSON.stringify(items[i])) + 1;
    if (i > 0 && bytes > maxBytes) return i;
  }
  return items.length;
}

/**
 * SQL of one record's JSON text over the read columns of `table`, in catalogue order, as
 * `JSON.stringify` of the typed mapper's record would parse: UUIDs and DECIMAL(18,8) as strings (the
 * store's exact text: DuckDB writes a DECIMAL(18,8) with its 8 places, as the canonical string),
 * integers as numbers, text escaped by `jsonText`, JSON columns as stored; a nullable column's NULL
 * as `null`, a text list's or map's as `[]`/`{}` (as the mapper). Any other NULL makes the text NULL
 * (`||`). Null when a column's type has no JSON text here (the typed read serves).
 */
export function recordJson(table: Table, jsonText: (expr: string) => string): string | null {
  const parts: string[] = [];
  for (const c of readColumns(table)) {
    const col = ident(c.name);
    let v: string;
    switch (c.type) {
      case "uuid":
      case "decimal(18,8)":
        v = `'"' || ${col}::VARCHAR || '"'`;
        break;
      case "micros":
      case "bigint":
        v = `${col}::VARCHAR`;
        break;
      case "text":
        v = jsonText(col);
        break;
      case "text[]":
        v = `coalesce(${jsonText(col)}, '[]')`;
        break;
      case "string map":
        v = `coalesce(${col}::VARCHAR, '{}')`;
        break;
      default:
        return null;
    }
    if (c.nullable && c.type !== "text[]" && c.type !== "string map") v = `coalesce(${v}, 'null')`;
    parts.push(`'${parts.length === 0 ? "{" : ","}${JSON.stringify(c.name)}:' || ${v}`);
  }
  return `(${parts.join(" || ")} || '}')`;
}

/** Equality filters on fixed column names. */
function filters(q: { exchange?: string; symbol?: string }): [string, string][] {
  const f: [string, string][] = [];
  if (q.exchange !== undefined) f.push(["exchange", q.exchange]);
  if (q.symbol !== undefined) f.push(["symbol", q.symbol]);
  return f;
}

/** Widens [from, to) to whole intervals: from down to its interval start, to up to an interval end. */
export function widen(
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

/** A DECIMAL(18,8) column value as its canonical string. */
function dec8(v: unknown): string {
  return unitsToString(decimalToScaledUnits(String(v), 8), 8);
}
