/**
 * The store contract every backend implements (DuckDB embedded default, PostgreSQL for servers).
 *
 * Tables follow schema-v2: `trades_v2`, `agg_trades_v2` (Binance aggregate trades, same columns),
 * `quotes_v2`, plus `dead_letters`, `sequence_gaps` and `candles_v2` (closed OHLCV candles). Prices and quantities are DECIMAL(18,8) and
 * times are BIGINT µs since epoch. Writes are idempotent: unique keys (exchange, symbol, trade_id) for
 * trades and (exchange, symbol, message_id) for quotes (message_id is derived from the venue's
 * update id, so this is the schema's "source_sequence or message_id"); a record already held is
 * skipped and counted as a duplicate.
 */
import type { BookChangeV2, BookSnapshotV2 } from "../schema/books.js";
import type { CandleV2 } from "../schema/candles.js";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../schema/records.js";
import type {
  CandleQuery,
  DeadLetterFull,
  DeadLetterItem,
  DeadLetterQuery,
  MarketQuery,
  Page,
  SymbolStats,
  TextPage,
} from "./page.js";

/** One batch to write atomically. */
export interface WriteBatch {
  trades: TradeV2[];
  aggTrades: TradeV2[];
  quotes: QuoteV2[];
  deadLetters: DeadLetter[];
  /**
   * Sequence gaps, upserted by (exchange, symbol, data_type, from_sequence): a gap reported with an
   * outcome (`status` other than `open`) replaces the stored status and `backfilled` count; an `open`
   * report of a gap already held changes nothing (a duplicate).
   */
  gaps: SequenceGap[];
  /**
   * Closed OHLCV candles for `candles_v2` (optional: absent in batches without candles). A store
   * upserts them by (exchange, symbol, interval, interval_start), keeping the candle with the larger
   * trade_count, so a candle amended after a late trade replaces the earlier one.
   */
  candles?: CandleV2[];
  /**
   * Book changes for `book_changes_v2` (optional; only with `--store-book-changes`), inserted once by
   * (exchange, symbol, message_id): a change already held is a duplicate.
   */
  bookChanges?: BookChangeV2[];
  /**
   * Top-N book snapshots for `book_snapshots_v2` (optional), inserted once by (exchange, symbol, depth,
   * timestamp); derived from the book like candles, so one taken again is not counted a duplicate.
   */
  bookSnapshots?: BookSnapshotV2[];
}

/** What a write did. `duplicates` counts records (of any table) already held. */
export interface WriteResult {
  trades: number;
  aggTrades: number;
  quotes: number;
  deadLetters: number;
  gaps: number;
  /** Candles inserted or amended (when the batch had candles). */
  candles?: number;
  /** Book changes inserted (when the batch had some). */
  bookChanges?: number;
  /** Book snapshots inserted (when the batch had some). */
  bookSnapshots?: number;
  duplicates: number;
}

/**
 * The highest venue sequence stored for one (exchange, symbol, data type): what a restarted feed resumes
 * its gap detection from (`SequenceTracker.resume`).
 */
export interface LastSequence {
  exchange: string;
  symbol: string;
  /** `trades` (from trades_v2) or `aggtrades` (from agg_trades_v2). */
  data_type: "trades" | "aggtrades";
  /** max(source_sequence): Binance trade id `t` / aggregate id `a`, Kraken v2 trade id. */
  sequence: number;
}

/** Highest source_sequence per (exchange, symbol) of both trade tables (SQL both stores run). */
export const LAST_SEQUENCES_SQL = `SELECT exchange, symbol, 'trades' AS data_type, max(source_sequence) AS sequence
    FROM trades_v2 WHERE source_sequence IS NOT NULL GROUP BY exchange, symbol
  UNION ALL
  SELECT exchange, symbol, 'aggtrades' AS data_type, max(source_sequence) AS sequence
    FROM agg_trades_v2 WHERE source_sequence IS NOT NULL GROUP BY exchange, symbol`;

/** A row of the last-sequences query (BIGINT as string or number) as a {@link LastSequence}. */
export function toLastSequence(r: Record<string, unknown>): LastSequence {
  return {
    exchange: String(r.exchange),
    symbol: String(r.symbol),
    data_type: r.data_type === "aggtrades" ? "aggtrades" : "trades",
    sequence: Number(r.sequence),
  };
}

/** A row as JSON-safe values: DECIMAL and BIGINT columns come back as strings. */
export type Row = Record<string, unknown>;

/**
 * The typed reads of a store, each answered in the backend's own SQL dialect (`reads.ts`). Pages are
 * keyset pages: pass `next_cursor` back as `cursor` with the same order until it is null.
 * @throws {QueryParamError} (parameter `cursor`) on a cursor made for another read or order
 */
export interface StoreReads {
  /** Stored trades (`trades_v2`) in (timestamp, exchange, symbol, trade id) order. */
  trades(q: MarketQuery): Promise<Page<TradeV2>>;
  /** Stored quotes (`quotes_v2`) in (timestamp, exchange, symbol, platform_sequence, message_id) order. */
  quotes(q: MarketQuery): Promise<Page<QuoteV2>>;
  /**
   * {@link trades} as JSON text (`page.ts` {@link TextPage}): the same rows, cursor and order. Optional:
   * a reader without it is read typed.
   */
  tradesText?(q: MarketQuery): Promise<TextPage>;
  /** {@link quotes} as JSON text, as {@link tradesText}. Optional. */
  quotesText?(q: MarketQuery): Promise<TextPage>;
  /**
   * Stored top-N book snapshots (`book_snapshots_v2`) in (timestamp, exchange, symbol, depth) order.
   */
  bookSnapshots(q: MarketQuery): Promise<Page<BookSnapshotV2>>;
  /** Sequence gaps in (detected_at, exchange, symbol, data_type, from_sequence) order. */
  gaps(q: MarketQuery): Promise<Page<SequenceGap>>;
  /** Dead letters in (received_at, message_id) order, `raw` cut to 4,096 characters. */
  deadLetters(q: DeadLetterQuery): Promise<Page<DeadLetterItem>>;
  /** One dead letter in full (its raw text streamed in chunks), or null. `messageId`: lower-case UUID. */
  deadLetter(messageId: string): Promise<DeadLetterFull | null>;
  /** OHLCV candles computed from the stored trades, in (interval_start, exchange) order. */
  tradeCandles(q: CandleQuery): Promise<Page<CandleV2>>;
  /** Closed candles stored in candles_v2, in (interval_start, exchange) order. */
  storedCandles(q: CandleQuery): Promise<Page<CandleV2>>;
  /** Instruments with stored trades or quotes, in (exchange, symbol) order, at most `limit`. */
  symbols(limit: number): Promise<SymbolStats[]>;
}

export interface Store extends StoreReads {
  /** Backend name for logs and metrics (`duckdb`, `postgres`). */
  readonly name: string;
  /** Creates or migrates the tables (idempotent). */
  init(): Promise<void>;
  /**
   * Writes a batch atomically: every record is stored (or recognised as held) or none is.
   * @throws on a storage failure; the caller retries the whole batch
   */
  write(batch: WriteBatch): Promise<WriteResult>;
  /**
   * Runs a parameterized read query (`?` placeholders for DuckDB, `$1` for PostgreSQL) and returns
   * JSON-safe rows. Never interpolate values into `sql`.
   */
  query(sql: string, params?: (string | number | boolean | null)[]): Promise<Row[]>;
  /**
   * The highest `source_sequence` per (exchange, symbol) in trades_v2 and agg_trades_v2 (rows without a
   * sequence are ignored), in one query. Order unspecified.
   */
  lastSequences(): Promise<LastSequence[]>;
  /** Null when the store is writable, else the reason it is not. */
  check(): Promise<string | null>;
  /**
   * A write that really reaches the storage: upserts one row of the tiny `k2_health` table (created
   * on first use). Used to tell a record the store rejects (poison) from a store that cannot write.
   * @throws the store's error when it cannot write (disk full, read-only, connection lost)
   */
  probeWrite?(): Promise<void>;
  close(): Promise<void>;
}

/** An empty batch. */
export function emptyBatch(): WriteBatch {
  return { trades: [], aggTrades: [], quotes: [], deadLetters: [], gaps: [] };
}

/** A write result counting nothing yet (candles included; book counts are set by batches that have books). */
export function emptyResult(): WriteResult {
  return {
    trades: 0,
    aggTrades: 0,
    quotes: 0,
    deadLetters: 0,
    gaps: 0,
    candles: 0,
    duplicates: 0,
  };
}

/** Number of records in a batch. */
export function batchSize(b: WriteBatch): number {
  return (
    b.trades.length +
    b.aggTrades.length +
    b.quotes.length +
    b.deadLetters.length +
    b.gaps.length +
    (b.candles?.length ?? 0) +
    (b.bookChanges?.length ?? 0) +
    (b.bookSnapshots?.length ?? 0)
  );
}
