/**
 * The catalogue of K2's tables: for each stored record shape, its columns in order (name, logical type,
 * nullability, description) and its unique key. Everything else that lists a table's fields is derived
 * from here: the record types (`TradeV2` …) and zod validators (`records.ts`, `validators.ts`), both stores'
 * CREATE TABLE statements, staging and insert column lists, SELECT lists and row mappers
 * (`src/store/sql.ts`), and the REST API's OpenAPI schemas. The Avro schemas (`schema/*.avsc`) are
 * checked against it by a test.
 *
 * Adding a column: add it here with `addedIn` (the PostgreSQL migration version that adds it; DuckDB
 * adds every `addedIn` column at start), plus that migration in `src/store/postgres-migrations.ts`. A
 * column added after a table's creation is optional in the record type (records written before it, e.g.
 * still on the bus, lack it) and is stored as its `default` (else null) when absent.
 *
 * Logical types and their values in records:
 * - `uuid`: lower-case UUID string;
 * - `text`: string (with `values`: one of them);
 * - `decimal(18,8)`: canonical DECIMAL(18,8) string (`"61707.68000000"`, see `decimal.ts`);
 *   `decimal(38,8)` / `decimal(38,16)`: exact sums with 8 / 16 places (candle volume, quote volume);
 * - `micros`: µs since the epoch UTC, a JS number (exact below 2^53);
 * - `bigint`: any other 64-bit integer (sequences, counts), a JS number;
 * - `text[]`: array of strings; `string map`: object of string values;
 * - `boolean`;
 * - `levels`: order-book levels, an array of `[price, quantity]` pairs of canonical DECIMAL(18,8)
 *   strings (`[["61707.68000000", "0.50000000"], …]`). Stored as JSON text of those string pairs
 *   (DuckDB `JSON`, PostgreSQL `JSONB`): the strings are kept as written, so the values stay exact
 *   and read back as the same canonical strings; in Avro an array of `[price, quantity]` arrays of
 *   `decimal(18,8)`.
 */

/** Logical column types (see the file comment for their record values). */
export type LogicalType =
  | "uuid"
  | "text"
  | "decimal(18,8)"
  | "decimal(38,8)"
  | "decimal(38,16)"
  | "micros"
  | "bigint"
  | "text[]"
  | "string map"
  | "boolean"
  | "levels";

/** One order-book price level, `[price, quantity]`, both canonical DECIMAL(18,8) strings. */
export type BookLevel = [price: string, quantity: string];

/** One column of a table. */
export interface Column {
  name: string;
  type: LogicalType;
  /** May hold null (SQL NULL, JSON null, Avro `["null", …]`). Default false. */
  nullable?: boolean;
  /**
   * What the column holds, as the REST API's OpenAPI schema says it (µs columns get ", µs since epoch
   * UTC" appended there).
   */
  description?: string;
  /** Example value for the API document. */
  example?: string;
  /** The values a `text` column may hold (an enum in Avro; in the API document unless `apiEnum: false`). */
  values?: readonly string[];
  /** Whether the API document lists `values` (default true). */
  apiEnum?: boolean;
  /** Pattern a `text` value must match, when stricter than its logical type (validators only). */
  pattern?: RegExp;
  /** Least length of a `text` value (validators only). */
  minLength?: number;
  /** A `bigint` value may not be negative (validators only). */
  nonNegative?: boolean;
  /**
   * PostgreSQL migration version that added this column to an existing table (absent: created with the
   * table). Such a column is optional in the record type.
   */
  addedIn?: number;
  /** Value stored when a record lacks an `addedIn` column (a SQL literal's value); else null. */
  default?: string | number;
  /** Returned by the store's typed reads and the REST API (default true). */
  read?: boolean;
}

/** A table: its columns in storage order and its unique key (what makes a write idempotent). */
export interface Table {
  name: string;
  columns: readonly Column[];
  /** Unique key columns (PostgreSQL adds the partition column to it on partitioned tables). */
  key: readonly string[];
}

/** Asset classes (schema-v2). */
export const ASSET_CLASS_VALUES = ["equities", "crypto", "futures", "options"] as const;
/** Aggressor sides of a trade. */
export const SIDE_VALUES = ["BUY", "SELL", "UNKNOWN"] as const;
/** What a sequence gap's numbers count: a data type, or `frames` of a connection. */
export const GAP_DATA_TYPE_VALUES = ["trades", "aggtrades", "quotes", "frames"] as const;
/** Backfill outcomes of a sequence gap. */
export const GAP_STATUS_VALUES = ["open", "filled", "partial", "unfillable"] as const;
/** Candle intervals, shortest first. */
export const CANDLE_INTERVAL_VALUES = ["1s", "1m", "5m", "15m", "1h", "1d"] as const;

/** Example of a DECIMAL(18,8) value in the API document. */
const PRICE_EXAMPLE = "61707.68000000";

/** A DECIMAL(18,8) column (price or quantity) with the API document's example value. */
const price = <N extends string>(name: N, description: string) =>
  ({ name, type: "decimal(18,8)", description, example: PRICE_EXAMPLE }) as const;

const c = {
  // idempotency key; deterministic UUID v8 where the venue gives an id
  messageId: { name: "message_id", type: "uuid" },
  // venue symbol, upper case (BTCUSDT, BTC-USD)
  symbol: { name: "symbol", type: "text", pattern: /^[A-Z0-9][A-Z0-9._/-]*$/ },
  // exchange code, upper case (BINANCE)
  exchange: { name: "exchange", type: "text", pattern: /^[A-Z0-9_]+$/ },
  assetClass: { name: "asset_class", type: "text", values: ASSET_CLASS_VALUES, apiEnum: false },
  // quote currency (BTCUSDT → USDT)
  currency: { name: "currency", type: "text", minLength: 1 },
  sourceSequence: { name: "source_sequence", type: "bigint", nullable: true },
  ingestionTimestamp: { name: "ingestion_timestamp", type: "micros", description: "receipt time" },
  // monotonic per (exchange, symbol) within this platform
  platformSequence: { name: "platform_sequence", type: "bigint", nonNegative: true },
  // every venue field not mapped to a column, as strings
  vendorData: { name: "vendor_data", type: "string map" },
} as const satisfies Record<string, Column>;

/** The columns ending both trades and quotes: sequences, receipt time, venue fields. */
const venueTail = [c.sourceSequence, c.ingestionTimestamp, c.platformSequence, c.vendorData] as const;

/** Columns of trades_v2 and agg_trades_v2: one executed trade (aggregate trades: per taker order). */
export const TRADE_COLUMNS = [
  c.messageId,
  { name: "trade_id", type: "text", example: "BINANCE-3735683259", minLength: 1 },
  c.symbol,
  c.exchange,
  c.assetClass,
  { name: "timestamp", type: "micros", description: "exchange trade time" },
  price("price", "DECIMAL(18,8)"),
  price("quantity", "DECIMAL(18,8)"),
  c.currency,
  { name: "side", type: "text", values: SIDE_VALUES, description: "aggressor side" },
  { name: "trade_conditions", type: "text[]" },
  ...venueTail,
] as const satisfies readonly Column[];

/** Columns of quotes_v2: one best bid/ask (Binance `bookTicker`). */
export const QUOTE_COLUMNS = [
  c.messageId,
  c.symbol,
  c.exchange,
  c.assetClass,
  { name: "timestamp", type: "micros", description: "venue time, else receipt time" },
  price("bid_price", "best bid, DECIMAL(18,8)"),
  price("bid_quantity", "DECIMAL(18,8)"),
  price("ask_price", "best ask, DECIMAL(18,8)"),
  price("ask_quantity", "DECIMAL(18,8)"),
  c.currency,
  ...venueTail,
] as const satisfies readonly Column[];

/** Columns of dead_letters: a frame that could not be normalized, kept with its raw text. */
export const DEAD_LETTER_COLUMNS = [
  // deterministic from source, receipt time and raw text: a replayed dead letter is stored once
  { name: "message_id", type: "uuid" },
  { name: "exchange", type: "text" },
  // where the frame came from, e.g. binance:btcusdt@trade or a file path and line
  { name: "source", type: "text" },
  // why it was rejected
  { name: "reason", type: "text" },
  // the raw frame text as received
  { name: "raw", type: "text" },
  { name: "received_at", type: "micros", description: "receipt time" },
] as const satisfies readonly Column[];

/** Columns of sequence_gaps: venue sequences `from_sequence..to_sequence` (inclusive) never arrived. */
export const SEQUENCE_GAP_COLUMNS = [
  c.exchange,
  // the symbol, or for a per-connection sequence the connection's symbols joined by `,`
  { name: "symbol", type: "text" },
  // what the sequence numbers: a data type, or frames of a connection
  { name: "data_type", type: "text", values: GAP_DATA_TYPE_VALUES, apiEnum: false },
  { name: "from_sequence", type: "bigint" },
  { name: "to_sequence", type: "bigint" },
  { name: "detected_at", type: "micros", description: "detection time" },
  {
    name: "status",
    type: "text",
    values: GAP_STATUS_VALUES,
    description: "backfill outcome (absent = open)",
    addedIn: 4,
    default: "open",
    // the REST gap list predates the backfill columns and keeps its shape
    read: false,
  },
  {
    name: "backfilled",
    type: "bigint",
    description: "records recovered by the backfill (absent = 0)",
    addedIn: 4,
    default: 0,
    read: false,
  },
] as const satisfies readonly Column[];

/** Columns of candles_v2: one closed OHLCV candle of the live aggregator. */
export const CANDLE_COLUMNS = [
  { name: "exchange", type: "text" },
  { name: "symbol", type: "text" },
  c.assetClass,
  { name: "interval", type: "text", values: CANDLE_INTERVAL_VALUES },
  { name: "interval_start", type: "micros", description: "inclusive interval start" },
  { name: "interval_end", type: "micros", description: "exclusive interval end" },
  price("open", "first trade price (by time, then trade id)"),
  price("high", "highest price"),
  price("low", "lowest price"),
  price("close", "last trade price (by time, then trade id)"),
  { name: "volume", type: "decimal(38,8)", description: "Σ quantity, 8 places", example: PRICE_EXAMPLE },
  { name: "quote_volume", type: "decimal(38,16)", description: "Σ price·quantity, exact, 16 places" },
  {
    name: "vwap",
    type: "decimal(18,8)",
    nullable: true,
    description: "quote_volume / volume, half-even, 8 places",
  },
  { name: "trade_count", type: "bigint" },
  { name: "first_trade_id", type: "text" },
  { name: "last_trade_id", type: "text" },
] as const satisfies readonly Column[];

/** Columns of book_changes_v2: one venue book message of one symbol (a snapshot, or level changes). */
export const BOOK_CHANGE_COLUMNS = [
  // deterministic from exchange, symbol and the venue's sequences where it sends them
  c.messageId,
  c.exchange,
  c.symbol,
  {
    name: "timestamp",
    type: "micros",
    description: "venue time of the change where sent, else receipt time",
  },
  {
    name: "is_snapshot",
    type: "boolean",
    description: "the levels are a whole book (REST snapshot, Kraken as/bs, Coinbase snapshot)",
  },
  {
    name: "bids",
    type: "levels",
    description: "bid levels [price, quantity], DECIMAL(18,8) strings; quantity 0 = level removed",
  },
  { name: "asks", type: "levels", description: "ask levels, as bids" },
  {
    name: "first_source_sequence",
    type: "bigint",
    nullable: true,
    description: "first venue sequence covered (Binance U, snapshot lastUpdateId, Coinbase sequence_num)",
  },
  {
    name: "last_source_sequence",
    type: "bigint",
    nullable: true,
    description: "last venue sequence covered (Binance u, snapshot lastUpdateId, Coinbase sequence_num)",
  },
  c.ingestionTimestamp,
  c.vendorData,
] as const satisfies readonly Column[];

/** Columns of book_snapshots_v2: the best N levels of a maintained book, taken every interval. */
export const BOOK_SNAPSHOT_COLUMNS = [
  c.exchange,
  c.symbol,
  { name: "timestamp", type: "micros", description: "the interval boundary the book is taken at" },
  {
    name: "depth",
    type: "bigint",
    nonNegative: true,
    description: "N requested (--book-depth); bids/asks hold fewer when the book does",
  },
  { name: "bids", type: "levels", description: "best N bids [price, quantity], highest price first" },
  { name: "asks", type: "levels", description: "best N asks [price, quantity], lowest price first" },
  {
    name: "last_source_sequence",
    type: "bigint",
    nullable: true,
    description: "last venue sequence applied to the book when taken",
  },
  {
    name: "last_resync_timestamp",
    type: "micros",
    nullable: true,
    description: "time of the book's last resync",
  },
] as const satisfies readonly Column[];

/** Every stored table, by name. */
export const TABLES = {
  trades_v2: { name: "trades_v2", columns: TRADE_COLUMNS, key: ["exchange", "symbol", "trade_id"] },
  agg_trades_v2: { name: "agg_trades_v2", columns: TRADE_COLUMNS, key: ["exchange", "symbol", "trade_id"] },
  quotes_v2: { name: "quotes_v2", columns: QUOTE_COLUMNS, key: ["exchange", "symbol", "message_id"] },
  dead_letters: { name: "dead_letters", columns: DEAD_LETTER_COLUMNS, key: ["message_id"] },
  sequence_gaps: {
    name: "sequence_gaps",
    columns: SEQUENCE_GAP_COLUMNS,
    key: ["exchange", "symbol", "data_type", "from_sequence"],
  },
  candles_v2: {
    name: "candles_v2",
    columns: CANDLE_COLUMNS,
    key: ["exchange", "symbol", "interval", "interval_start"],
  },
  book_changes_v2: {
    name: "book_changes_v2",
    columns: BOOK_CHANGE_COLUMNS,
    key: ["exchange", "symbol", "message_id"],
  },
  book_snapshots_v2: {
    name: "book_snapshots_v2",
    columns: BOOK_SNAPSHOT_COLUMNS,
    key: ["exchange", "symbol", "depth", "timestamp"],
  },
} as const satisfies Record<string, Table>;

/** Name of a stored table. */
export type TableName = keyof typeof TABLES;

// ---- record types derived from the columns ----

type ValueOf<C extends Column> = C extends { values: readonly (infer V)[] }
  ? V
  : C["type"] extends "micros" | "bigint"
    ? number
    : C["type"] extends "text[]"
      ? string[]
      : C["type"] extends "string map"
        ? Record<string, string>
        : C["type"] extends "boolean"
          ? boolean
          : C["type"] extends "levels"
            ? BookLevel[]
            : string;
type Nullable<C extends Column> = C extends { nullable: true } ? null : never;
type Simplify<T> = { [K in keyof T]: T[K] };

/**
 * The record of a list of columns: a property per column, `null` allowed where nullable, optional
 * where the column was added after the table's creation.
 */
export type RecordOf<Cs extends readonly Column[]> = Simplify<
  {
    -readonly [C in Cs[number] as C extends { addedIn: number } ? never : C["name"]]:
      | ValueOf<C>
      | Nullable<C>;
  } & {
    -readonly [C in Cs[number] as C extends { addedIn: number } ? C["name"] : never]?:
      | ValueOf<C>
      | Nullable<C>;
  }
>;
