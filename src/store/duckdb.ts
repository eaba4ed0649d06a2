/**
 * DuckDB store: the embedded default (a single file, zero set-up, Parquet export).
 *
 * Each batch is appended into temporary staging tables with DuckDB's appender, then moved with
 * `INSERT INTO ... SELECT ... ON CONFLICT DO NOTHING` inside one transaction, so a batch is stored
 * whole or not at all and records already held are skipped (counted as duplicates). Decimals are staged
 * as their exact strings and cast to DECIMAL(18,8) by DuckDB: no float on the way.
 *
 * Reads (`query`) run on a second connection of the same database instance, so an API read does not
 * queue behind a large batch write on the writer's connection (DuckDB's MVCC gives each read a
 * consistent snapshot of committed batches). Closed candles (`candles_v2`) are upserted: a candle
 * replaces the stored one only when it covers more trades (an amendment after a late trade); the same
 * candle written again is a duplicate.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename } from "node:path";
import type { DuckDBAppender, DuckDBConnection } from "@duckdb/node-api";
import type { CandleV2 } from "../schema/candles.js";
import type { QuoteV2, TradeV2 } from "../schema/records.js";
import {
  LAST_SEQUENCES_SQL,
  type LastSequence,
  type Row,
  type Store,
  toLastSequence,
  type WriteBatch,
  type WriteResult,
} from "./store.js";

// required, not imported: an ESM `import` of this CommonJS package has Node scan every one of its
// ~120 files for named exports (cjs-module-lexer), ~0.5 s of `k2 query`'s start against ~0.15 s
const { DuckDBInstance } = createRequire(import.meta.url)(
  "@duckdb/node-api",
) as typeof import("@duckdb/node-api");

const TRADE_COLUMNS = `
  message_id UUID NOT NULL,
  trade_id VARCHAR NOT NULL,
  symbol VARCHAR NOT NULL,
  exchange VARCHAR NOT NULL,
  asset_class VARCHAR NOT NULL,
  "timestamp" BIGINT NOT NULL,
  price DECIMAL(18,8) NOT NULL,
  quantity DECIMAL(18,8) NOT NULL,
  currency VARCHAR NOT NULL,
  side VARCHAR NOT NULL,
  trade_conditions VARCHAR[] NOT NULL,
  source_sequence BIGINT,
  ingestion_timestamp BIGINT NOT NULL,
  platform_sequence BIGINT NOT NULL,
  vendor_data JSON NOT NULL,
  PRIMARY KEY (exchange, symbol, trade_id)`;

/** Versioned, idempotent migrations. */
const MIGRATIONS: string[] = [
  `CREATE TABLE IF NOT EXISTS trades_v2 (${TRADE_COLUMNS})`,
  `CREATE TABLE IF NOT EXISTS agg_trades_v2 (${TRADE_COLUMNS})`,
  `CREATE TABLE IF NOT EXISTS quotes_v2 (
    message_id UUID NOT NULL,
    symbol VARCHAR NOT NULL,
    exchange VARCHAR NOT NULL,
    asset_class VARCHAR NOT NULL,
    "timestamp" BIGINT NOT NULL,
    bid_price DECIMAL(18,8) NOT NULL,
    bid_quantity DECIMAL(18,8) NOT NULL,
    ask_price DECIMAL(18,8) NOT NULL,
    ask_quantity DECIMAL(18,8) NOT NULL,
    currency VARCHAR NOT NULL,
    source_sequence BIGINT,
    ingestion_timestamp BIGINT NOT NULL,
    platform_sequence BIGINT NOT NULL,
    vendor_data JSON NOT NULL,
    PRIMARY KEY (exchange, symbol, message_id))`,
  `CREATE TABLE IF NOT EXISTS dead_letters (
    message_id UUID PRIMARY KEY,
    exchange VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    raw VARCHAR NOT NULL,
    received_at BIGINT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS sequence_gaps (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    data_type VARCHAR NOT NULL,
    from_sequence BIGINT NOT NULL,
    to_sequence BIGINT NOT NULL,
    detected_at BIGINT NOT NULL,
    PRIMARY KEY (exchange, symbol, data_type, from_sequence))`,
  `CREATE TABLE IF NOT EXISTS candles_v2 (
    exchange VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    asset_class VARCHAR NOT NULL,
    "interval" VARCHAR NOT NULL,
    interval_start BIGINT NOT NULL,
    interval_end BIGINT NOT NULL,
    open DECIMAL(18,8) NOT NULL,
    high DECIMAL(18,8) NOT NULL,
    low DECIMAL(18,8) NOT NULL,
    close DECIMAL(18,8) NOT NULL,
    volume DECIMAL(38,8) NOT NULL,
    quote_volume DECIMAL(38,16) NOT NULL,
    vwap DECIMAL(18,8),
    trade_count BIGINT NOT NULL,
    first_trade_id VARCHAR NOT NULL,
    last_trade_id VARCHAR NOT NULL,
    PRIMARY KEY (exchange, symbol, "interval", interval_start))`,
  // backfill outcome of each gap (rows of older files read as `open`, nothing backfilled)
  `ALTER TABLE sequence_gaps ADD COLUMN IF NOT EXISTS status VARCHAR DEFAULT 'open'`,
  `ALTER TABLE sequence_gaps ADD COLUMN IF NOT EXISTS backfilled BIGINT DEFAULT 0`,
];

/**
 * Upsert of one gap: an outcome (`status` other than `open`) replaces the stored one when it differs;
 * an `open` report of a gap already held changes nothing.
 */
const UPSERT_GAP = `INSERT INTO sequence_gaps
    (exchange, symbol, data_type, from_sequence, to_sequence, detected_at, status, backfilled)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  ON CONFLICT DO UPDATE SET status = excluded.status, backfilled = excluded.backfilled
  WHERE excluded.status <> 'open'
    AND (excluded.status <> sequence_gaps.status OR excluded.backfilled <> sequence_gaps.backfilled)`;

const STAGE_CANDLES = `CREATE TEMP TABLE IF NOT EXISTS stage_candles (
  exchange VARCHAR, symbol VARCHAR, asset_class VARCHAR, "interval" VARCHAR, interval_start BIGINT,
  interval_end BIGINT, open VARCHAR, high VARCHAR, low VARCHAR, close VARCHAR, volume VARCHAR,
  quote_volume VARCHAR, vwap VARCHAR, trade_count BIGINT, first_trade_id VARCHAR, last_trade_id VARCHAR)`;

/**
 * Moves staged candles into candles_v2. Within a batch the candle with the most trades per key wins
 * (a closed candle and its amendment can share a batch); against the table, a candle replaces the
 * stored one only when it covers more trades.
 */
const MOVE_CANDLES = `INSERT INTO candles_v2 SELECT exchange, symbol, asset_class, "interval", interval_start,
    interval_end, open::DECIMAL(18,8), high::DECIMAL(18,8), low::DECIMAL(18,8), close::DECIMAL(18,8),
    volume::DECIMAL(38,8), quote_volume::DECIMAL(38,16), vwap::DECIMAL(18,8), trade_count, first_trade_id,
    last_trade_id
  FROM stage_candles
  QUALIFY row_number() OVER (PARTITION BY exchange, symbol, "interval", interval_start
    ORDER BY trade_count DESC) = 1
  ON CONFLICT DO UPDATE SET open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume = excluded.volume, quote_volume = excluded.quote_volume,
    vwap = excluded.vwap, trade_count = excluded.trade_count, first_trade_id = excluded.first_trade_id,
    last_trade_id = excluded.last_trade_id, interval_end = excluded.interval_end
  WHERE excluded.trade_count > candles_v2.trade_count`;

const STAGE_TRADES = `CREATE TEMP TABLE IF NOT EXISTS stage_trades (
  message_id VARCHAR, trade_id VARCHAR, symbol VARCHAR, exchange VARCHAR, asset_class VARCHAR, ts DOUBLE,
  price VARCHAR, quantity VARCHAR, currency VARCHAR, side VARCHAR, trade_conditions VARCHAR,
  source_sequence DOUBLE, ingestion_timestamp DOUBLE, platform_sequence DOUBLE, vendor_data VARCHAR)`;
const STAGE_QUOTES = `CREATE TEMP TABLE IF NOT EXISTS stage_quotes (
  message_id VARCHAR, symbol VARCHAR, exchange VARCHAR, asset_class VARCHAR, ts DOUBLE,
  bid_price VARCHAR, bid_quantity VARCHAR, ask_price VARCHAR, ask_quantity VARCHAR, currency VARCHAR,
  source_sequence DOUBLE, ingestion_timestamp DOUBLE, platform_sequence DOUBLE, vendor_data VARCHAR)`;

const MOVE_TRADES = (table: string) => `INSERT INTO ${table} SELECT
  message_id::UUID, trade_id, symbol, exchange, asset_class, ts::BIGINT, price::DECIMAL(18,8), quantity::DECIMAL(18,8),
  currency, side, trade_conditions::JSON::VARCHAR[], source_sequence::BIGINT, ingestion_timestamp::BIGINT,
  platform_sequence::BIGINT, vendor_data::JSON FROM stage_trades ON CONFLICT DO NOTHING`;
const MOVE_QUOTES = `INSERT INTO quotes_v2 SELECT
  message_id::UUID, symbol, exchange, asset_class, ts::BIGINT, bid_price::DECIMAL(18,8), bid_quantity::DECIMAL(18,8),
  ask_price::DECIMAL(18,8), ask_quantity::DECIMAL(18,8), currency, source_sequence::BIGINT,
  ingestion_timestamp::BIGINT, platform_sequence::BIGINT, vendor_data::JSON FROM stage_quotes ON CONFLICT DO NOTHING`;

/**
 * The DuckDB file is held by another process: DuckDB allows one writer process per file, and no reader
 * beside a writer. The message names the file, the holder (pid and command line) and what to do.
 */
export class StoreLockedError extends Error {
  override name = "StoreLockedError";

  constructor(
    readonly path: string,
    readonly pid: number,
  ) {
    const holder = commandOf(pid);
    super(
      `${path} is held by ${holder ? `${holder} (pid ${pid})` : `pid ${pid}`}: DuckDB allows one process per file; query it through that process's REST API (/api/v1 on its --http-port) or stop that process`,
    );
  }

  /** The lock error DuckDB raised for `path`, as a {@link StoreLockedError}; null for any other error. */
  static from(e: unknown, path: string): StoreLockedError | null {
    const m = /Conflicting lock is held in .* \(PID (\d+)\)/.exec((e as Error)?.message ?? "");
    return m ? new StoreLockedError(path, Number(m[1])) : null;
  }
}

/** `k2 run …` for a k2 process (else the program's name), from /proc; null where unreadable. */
function commandOf(pid: number): string | null {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const cli = argv.findIndex((a) => /(^|\/)(cli\.js|k2)$/.test(a));
    if (cli >= 0 && argv[cli + 1]) return `k2 ${argv[cli + 1]}`;
    return argv[0] ? basename(argv[0]) : null;
  } catch {
    return null;
  }
}

export interface DuckDBStoreOptions {
  /** Database file path, or `:memory:`. */
  path: string;
  /** Open read-only (for `k2 query`). */
  readOnly?: boolean;
  /**
   * Run `query` on a connection of its own (default true), so reads never wait behind a batch write
   * on the writer's connection. False: one connection for both (what `bench/serve-reads.ts` compares).
   */
  separateReadConnection?: boolean;
}

export class DuckDBStore implements Store {
  readonly name = "duckdb";
  private instance!: InstanceType<typeof DuckDBInstance>;
  private conn!: DuckDBConnection;
  private stageTrades!: DuckDBAppender;
  private stageQuotes!: DuckDBAppender;
  private stageCandles!: DuckDBAppender;
  private chain: Promise<unknown> = Promise.resolve();
  /** Connection of `query` (the writer's connection when reads are not separated). */
  private readConn!: DuckDBConnection;
  private readChain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: DuckDBStoreOptions) {}

  async init(): Promise<void> {
    try {
      this.instance = await DuckDBInstance.create(
        this.opts.path,
        this.opts.readOnly ? { access_mode: "READ_ONLY" } : {},
      );
    } catch (e) {
      throw StoreLockedError.from(e, this.opts.path) ?? e;
    }
    this.conn = await this.instance.connect();
    this.readConn =
      this.opts.readOnly || this.opts.separateReadConnection === false
        ? this.conn
        : await this.instance.connect();
    if (this.opts.readOnly) return;
    for (const m of MIGRATIONS) await this.conn.run(m);
    await this.conn.run(STAGE_TRADES);
    await this.conn.run(STAGE_QUOTES);
    await this.conn.run(STAGE_CANDLES);
    this.stageTrades = await this.conn.createAppender("stage_trades", "main", "temp");
    this.stageQuotes = await this.conn.createAppender("stage_quotes", "main", "temp");
    this.stageCandles = await this.conn.createAppender("stage_candles", "main", "temp");
  }

  /** Serializes operations on the writer's connection. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Serializes operations on the read connection (the writer's chain when they share one). */
  private serialRead<T>(fn: () => Promise<T>): Promise<T> {
    if (this.readConn === this.conn) return this.serial(fn);
    const p = this.readChain.then(fn, fn);
    this.readChain = p.catch(() => undefined);
    return p;
  }

  write(batch: WriteBatch): Promise<WriteResult> {
    return this.serial(() => this.writeNow(batch));
  }

  private async writeNow(batch: WriteBatch): Promise<WriteResult> {
    const c = this.conn;
    const result: WriteResult = {
      trades: 0,
      aggTrades: 0,
      quotes: 0,
      deadLetters: 0,
      gaps: 0,
      candles: 0,
      duplicates: 0,
    };
    let total = 0;
    // Three round trips at most for the usual batch (trades and quotes): the event loop is busy
    // ingesting while DuckDB works, so every await costs a turn of it.
    let begun = false;
    const run = async (sql: string) => {
      const first = !begun;
      begun = true; // set before the await: a failing first statement still leaves BEGIN executed
      const r = await c.run(first ? `BEGIN TRANSACTION; ${sql}` : sql);
      return Number(r.rowsChanged);
    };
    const cleanup: string[] = [];
    try {
      for (const [records, table, key] of [
        [batch.trades, "trades_v2", "trades"],
        [batch.aggTrades, "agg_trades_v2", "aggTrades"],
      ] as const) {
        if (records.length === 0) continue;
        if (cleanup.includes("DELETE FROM stage_trades")) {
          await c.run("DELETE FROM stage_trades");
          cleanup.splice(cleanup.indexOf("DELETE FROM stage_trades"), 1);
        }
        appendTrades(this.stageTrades, records);
        result[key] = await run(MOVE_TRADES(table));
        total += records.length;
        cleanup.push("DELETE FROM stage_trades");
      }
      if (batch.quotes.length > 0) {
        appendQuotes(this.stageQuotes, batch.quotes);
        result.quotes = await run(MOVE_QUOTES);
        total += batch.quotes.length;
        cleanup.push("DELETE FROM stage_quotes");
      }
      for (const d of batch.deadLetters) {
        if (!begun) {
          await c.run("BEGIN TRANSACTION");
          begun = true;
        }
        const r = await c.run(
          "INSERT INTO dead_letters VALUES ($1::UUID, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
          [d.message_id, d.exchange, d.source, d.reason, d.raw, BigInt(d.received_at)],
        );
        result.deadLetters += Number(r.rowsChanged);
        total++;
      }
      for (const g of batch.gaps) {
        if (!begun) {
          await c.run("BEGIN TRANSACTION");
          begun = true;
        }
        const r = await c.run(UPSERT_GAP, [
          g.exchange,
          g.symbol,
          g.data_type,
          BigInt(g.from_sequence),
          BigInt(g.to_sequence),
          BigInt(g.detected_at),
          g.status ?? "open",
          BigInt(g.backfilled ?? 0),
        ]);
        result.gaps += Number(r.rowsChanged);
        total++;
      }
      if (batch.candles && batch.candles.length > 0) {
        appendCandles(this.stageCandles, batch.candles);
        // candles are derived, not source records: a candle written again is not a duplicate
        result.candles = await run(MOVE_CANDLES);
        cleanup.push("DELETE FROM stage_candles");
      }
      if (begun) await c.run(`${cleanup.map((x) => `${x}; `).join("")}COMMIT`);
    } catch (err) {
      await c.run("ROLLBACK").catch(() => undefined); // no-op error when no transaction is open
      this.stageTrades.clear();
      this.stageQuotes.clear();
      this.stageCandles.clear();
      await c.run("DELETE FROM stage_trades").catch(() => undefined);
      await c.run("DELETE FROM stage_quotes").catch(() => undefined);
      await c.run("DELETE FROM stage_candles").catch(() => undefined);
      throw err;
    }
    result.duplicates =
      total - result.trades - result.aggTrades - result.quotes - result.deadLetters - result.gaps;
    return result;
  }

  query(sql: string, params: (string | number | boolean | null)[] = []): Promise<Row[]> {
    return this.serialRead(async () => {
      const reader = await this.readConn.runAndReadAll(sql, params.length ? params : undefined);
      return reader.getRowObjectsJson() as Row[];
    });
  }

  async lastSequences(): Promise<LastSequence[]> {
    const rows = await this.query(LAST_SEQUENCES_SQL);
    return rows.map(toLastSequence);
  }

  async check(): Promise<string | null> {
    if (!this.conn) return "store not open";
    try {
      await this.serial(() => this.conn.run("SELECT 1"));
      return null;
    } catch (e) {
      return `store not writable: ${(e as Error).message}`;
    }
  }

  /** Upserts the one row of `k2_health` (created on first use) in its own transaction. */
  probeWrite(): Promise<void> {
    return this.serial(async () => {
      await this.conn.run(
        `CREATE TABLE IF NOT EXISTS k2_health (name VARCHAR PRIMARY KEY, written_at BIGINT NOT NULL);
         INSERT INTO k2_health VALUES ('probe', ${Date.now() * 1000})
           ON CONFLICT DO UPDATE SET written_at = excluded.written_at`,
      );
    });
  }

  /** Exports a table (or query) to a Parquet file. */
  async exportParquet(sqlOrTable: string, file: string): Promise<void> {
    const src = /^\w+$/.test(sqlOrTable) ? sqlOrTable : `(${sqlOrTable})`;
    await this.serial(() => this.conn.run(`COPY ${src} TO '${file.replace(/'/g, "''")}' (FORMAT PARQUET)`));
  }

  async close(): Promise<void> {
    await this.chain;
    await this.readChain;
    if (!this.conn) return;
    if (this.readConn && this.readConn !== this.conn) this.readConn.closeSync();
    if (!this.opts.readOnly) {
      this.stageTrades.closeSync();
      this.stageQuotes.closeSync();
      this.stageCandles.closeSync();
      await this.conn.run("CHECKPOINT").catch(() => undefined);
    }
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

function appendCandles(a: DuckDBAppender, records: CandleV2[]): void {
  for (const k of records) {
    a.appendVarchar(k.exchange);
    a.appendVarchar(k.symbol);
    a.appendVarchar(k.asset_class);
    a.appendVarchar(k.interval);
    a.appendBigInt(BigInt(k.interval_start));
    a.appendBigInt(BigInt(k.interval_end));
    a.appendVarchar(k.open);
    a.appendVarchar(k.high);
    a.appendVarchar(k.low);
    a.appendVarchar(k.close);
    a.appendVarchar(k.volume);
    a.appendVarchar(k.quote_volume);
    if (k.vwap === null) a.appendNull();
    else a.appendVarchar(k.vwap);
    a.appendBigInt(BigInt(k.trade_count));
    a.appendVarchar(k.first_trade_id);
    a.appendVarchar(k.last_trade_id);
    a.endRow();
  }
  a.flushSync();
}

/** JSON text of a vendor_data map (`{}` without serializing when empty, as bookTicker's is). */
function jsonObject(o: Record<string, string>): string {
  for (const _ in o) return JSON.stringify(o);
  return "{}";
}

// Integer columns (µs times, sequences) are staged as DOUBLE: they are JS numbers, exact below 2^53,
// and DuckDB casts them back to BIGINT exactly, with no BigInt allocated per value.
function appendTrades(a: DuckDBAppender, records: TradeV2[]): void {
  for (const t of records) {
    a.appendVarchar(t.message_id);
    a.appendVarchar(t.trade_id);
    a.appendVarchar(t.symbol);
    a.appendVarchar(t.exchange);
    a.appendVarchar(t.asset_class);
    a.appendDouble(t.timestamp);
    a.appendVarchar(t.price);
    a.appendVarchar(t.quantity);
    a.appendVarchar(t.currency);
    a.appendVarchar(t.side);
    a.appendVarchar(t.trade_conditions.length === 0 ? "[]" : JSON.stringify(t.trade_conditions));
    if (t.source_sequence === null) a.appendNull();
    else a.appendDouble(t.source_sequence);
    a.appendDouble(t.ingestion_timestamp);
    a.appendDouble(t.platform_sequence);
    a.appendVarchar(jsonObject(t.vendor_data));
    a.endRow();
  }
  a.flushSync();
}

function appendQuotes(a: DuckDBAppender, records: QuoteV2[]): void {
  for (const q of records) {
    a.appendVarchar(q.message_id);
    a.appendVarchar(q.symbol);
    a.appendVarchar(q.exchange);
    a.appendVarchar(q.asset_class);
    a.appendDouble(q.timestamp);
    a.appendVarchar(q.bid_price);
    a.appendVarchar(q.bid_quantity);
    a.appendVarchar(q.ask_price);
    a.appendVarchar(q.ask_quantity);
    a.appendVarchar(q.currency);
    if (q.source_sequence === null) a.appendNull();
    else a.appendDouble(q.source_sequence);
    a.appendDouble(q.ingestion_timestamp);
    a.appendDouble(q.platform_sequence);
    a.appendVarchar(jsonObject(q.vendor_data));
    a.endRow();
  }
  a.flushSync();
}
