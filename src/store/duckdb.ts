/**
 * DuckDB store: the embedded default (a single file, zero set-up, Parquet export).
 *
 * Each batch is appended into temporary staging tables with DuckDB's appender, a data chunk of up to
 * 2048 rows at a time filled column by column (`duckdb-chunk.ts`), then moved with
 * `INSERT INTO ... SELECT ... ON CONFLICT DO NOTHING` inside one transaction, so a batch is stored
 * whole or not at all and records already held are skipped (counted as duplicates). The trade tables
 * have no primary key (its index was most of the insert's cost): their move keeps a batch's first record
 * of each key and anti-joins the rest against the table's rows of the batch's time range
 * (`moveUnkeyedTrades`); files created with the key keep it and the conflict-checking move. DECIMAL(18,8)
 * values go in as the scaled integers of their exact strings: no float on the way.
 *
 * Reads (`query`) run on a second connection of the same database instance, so an API read does not
 * queue behind a large batch write on the writer's connection (DuckDB's MVCC gives each read a
 * consistent snapshot of committed batches). Closed candles (`candles_v2`) are upserted: a candle
 * replaces the stored one only when it covers more trades (an amendment after a late trade); the same
 * candle written again is a duplicate.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import type { DuckDBAppender, DuckDBConnection, DuckDBValue } from "@duckdb/node-api";
import type { TradeV2 } from "../schema/records.js";
import { type Column, TABLES, type Table } from "../schema/tables.js";
import { compileChunkAppend, stageCast, stageType } from "./duckdb-chunk.js";
import { type ReadDialect, SqlReads, type TextRows } from "./reads.js";
import { addedColumnsSql, columnList, createTableSql, ident, keyList, setNonKeyColumns } from "./sql.js";
import { emptyResult, type Row, type Store, type WriteBatch, type WriteResult } from "./store.js";

// required, not imported: an ESM `import` of this CommonJS package has Node scan every one of its
// ~120 files for named exports (cjs-module-lexer), ~0.5 s of `k2 query`'s start against ~0.15 s
const { DuckDBInstance, DuckDBDataChunk } = createRequire(import.meta.url)(
  "@duckdb/node-api",
) as typeof import("@duckdb/node-api");

const {
  trades_v2,
  agg_trades_v2,
  quotes_v2,
  dead_letters,
  sequence_gaps,
  candles_v2,
  book_changes_v2,
  book_snapshots_v2,
} = TABLES;

/**
 * Idempotent migrations, run at every start: the catalogue's tables, then the columns added to them
 * since (rows of older files read as the column's default).
 */
const MIGRATIONS: string[] = [
  // the trade tables without the primary key: see UNKEYED_TRADE_TABLES
  ...[trades_v2, agg_trades_v2].map((t) => createTableSql(t, "duckdb", { key: null })),
  ...[quotes_v2, dead_letters, sequence_gaps, candles_v2, book_changes_v2, book_snapshots_v2].map((t) =>
    createTableSql(t, "duckdb"),
  ),
  ...Object.values(TABLES).flatMap((t) => addedColumnsSql(t, "duckdb")),
];

/**
 * Upsert of one gap: an outcome (`status` other than `open`) replaces the stored one when it differs;
 * an `open` report of a gap already held changes nothing.
 */
const UPSERT_GAP = `INSERT INTO sequence_gaps (${columnList(sequence_gaps.columns)})
  VALUES (${sequence_gaps.columns.map((_, i) => `$${i + 1}`).join(", ")})
  ON CONFLICT DO UPDATE SET status = excluded.status, backfilled = excluded.backfilled
  WHERE excluded.status <> 'open'
    AND (excluded.status <> sequence_gaps.status OR excluded.backfilled <> sequence_gaps.backfilled)`;

const INSERT_DEAD_LETTER = `INSERT INTO dead_letters (${columnList(dead_letters.columns)})
  VALUES (${dead_letters.columns.map((c, i) => `$${i + 1}${c.type === "uuid" ? "::UUID" : ""}`).join(", ")})
  ON CONFLICT DO NOTHING`;

/** A record's values as bound parameters (BIGINT columns as BigInt, a missing added column as its default). */
function paramsOf(table: Table, r: object): DuckDBValue[] {
  return table.columns.map((c) => {
    let v = (r as Record<string, unknown>)[c.name];
    if (v === undefined) v = c.default ?? null;
    if (v === null) return null;
    return c.type === "micros" || c.type === "bigint" ? BigInt(v as number) : (v as DuckDBValue);
  });
}

/**
 * Staging: records are appended column-wise (`duckdb-chunk.ts`) to a temporary table of plain columns
 * (DECIMAL(18,8) and UUID as themselves, wider decimals as their exact text, integers as DOUBLE: they
 * are JS numbers, exact below 2^53, cast back to BIGINT exactly with no BigInt allocated per value),
 * then moved into the table with casts.
 */
class Staging {
  readonly create: string;
  /**
   * Drops and recreates the staging table, at the end of each batch's transaction. Emptying it with
   * DELETE leaves the deleted rows' memory behind (a temporary table is never checkpointed): a
   * million-row load peaked at 795 MiB RSS that way, 467 MiB with this.
   */
  readonly renew: string;
  readonly move: (table: string) => string;
  /** The move without its conflict clause: fails on the first record already held. */
  readonly moveNew: (table: string) => string;
  readonly append: (a: DuckDBAppender, records: readonly object[]) => void;
  /** The staged columns cast to the table's types, in catalogue order, each prefixed by `alias`. */
  readonly casts: (alias?: string) => string;

  constructor(
    readonly name: string,
    table: Table,
    conflict: string,
    select: (columns: string, from: string) => string = (columns, from) => `SELECT ${columns} FROM ${from}`,
  ) {
    const cols = table.columns;
    this.create = `CREATE TEMP TABLE IF NOT EXISTS ${name} (${cols.map((c) => `${ident(c.name)} ${stageType(c)}`).join(", ")})`;
    this.casts = (alias = "") =>
      cols.map((c) => `${alias}${ident(c.name)}${stageCast(c) === "" ? "" : `::${stageCast(c)}`}`).join(", ");
    const casts = this.casts();
    this.renew = `DROP TABLE IF EXISTS temp.main.${name}; ${this.create}`;
    this.move = (target) => `INSERT INTO ${target} (${columnList(cols)}) ${select(casts, name)} ${conflict}`;
    this.moveNew = (target) => `INSERT INTO ${target} (${columnList(cols)}) ${select(casts, name)}`;
    this.append = compileChunkAppend(cols, appenderChunk);
  }
}

const STAGE_TRADES = new Staging("stage_trades", trades_v2, "ON CONFLICT DO NOTHING");

/**
 * The trade tables (`trades_v2`, `agg_trades_v2`) of files created by this version have no primary key:
 * DuckDB maintains a primary key in an ART index, and inserting into it cost ~4× a plain insert and
 * grew with the table (1M staged trades in 10k-row batches: 57k rows/s with the key and
 * `ON CONFLICT DO NOTHING`, 168k rows/s this way; 3M rows: 27k against 115k rows/s, peak RSS 1.9 GB
 * against 0.9 GB). Idempotency is kept by {@link moveUnkeyedTrades} instead. Files created before keep
 * their key and the conflict-checking move (see {@link DuckDBStore.init}).
 */
const UNKEYED_TRADE_TABLES = ["trades_v2", "agg_trades_v2"] as const;

/**
 * The move of staged trades into a trade table without a primary key, storing each
 * (exchange, symbol, trade_id) once: of the staged rows repeating a key the first appended is kept
 * (`rowid` order), and a row whose key is held already is left out by an anti-join against the table's
 * rows of the batch's venue-time range `[lo, hi]` (µs, the staged trades' least and greatest
 * `timestamp`, inlined as constants so that DuckDB's zonemaps skip every row group outside it: the cost
 * stays that of the batch, not of the table).
 *
 * Relies on a trade's venue time being part of what the trade is: the same (exchange, symbol,
 * trade_id) always comes with the same `timestamp`, as every K2 source gives it (the venue's trade
 * time; Kraken v1 and the mapped-CSV loader derive the id from the time). Relies too on one writer per
 * table: DuckDB allows one writer process per file, and the store serializes its writes on one
 * connection.
 */
function moveUnkeyedTrades(table: string, lo: number, hi: number, repeats: boolean): string {
  const key = keyList(trades_v2);
  const on = trades_v2.key.map((k) => `t.${ident(k)} = s.${ident(k)}`).join(" AND ");
  // without a repeated key in the batch, the window that keeps the first of each key is not needed
  const staged = repeats
    ? `(SELECT * FROM stage_trades QUALIFY row_number() OVER (PARTITION BY ${key} ORDER BY rowid) = 1)`
    : "stage_trades";
  return `INSERT INTO ${table} (${columnList(trades_v2.columns)})
  SELECT ${STAGE_TRADES.casts("s.")} FROM ${staged} s
  ANTI JOIN (SELECT ${key} FROM ${table} WHERE "timestamp" BETWEEN ${lo} AND ${hi}) t ON ${on}`;
}

/**
 * False when no (exchange, symbol, trade_id) of `records` can repeat: each symbol's trade ids rise
 * strictly in batch order, shorter before longer and then by their text (so `BINANCE-99` before
 * `BINANCE-100`, the order of a venue's numbered ids as a feed or a loader delivers them), and ids that
 * rise strictly are all distinct. True otherwise (a repeat, or ids in any other order), for
 * {@link moveUnkeyedTrades} to keep the first of each key. Allocates nothing per record.
 */
function mayRepeatTradeKeys(records: readonly TradeV2[]): boolean {
  const last = new Map<string, Map<string, string>>();
  for (const r of records) {
    const id = r.trade_id;
    if (typeof id !== "string") return true;
    let bySymbol = last.get(r.exchange);
    if (bySymbol === undefined) {
      bySymbol = new Map();
      last.set(r.exchange, bySymbol);
    }
    const prev = bySymbol.get(r.symbol);
    if (prev !== undefined && !(id.length > prev.length || (id.length === prev.length && id > prev)))
      return true;
    bySymbol.set(r.symbol, id);
  }
  return false;
}

/**
 * The least and greatest `timestamp` of `records` (µs), as integer literals for {@link moveUnkeyedTrades}.
 * @throws Error `Conversion Error: …` when a timestamp is not a safe integer (the append would reject it)
 */
function timeRange(records: readonly { timestamp: number }[]): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const r of records) {
    const t = r.timestamp;
    if (!Number.isSafeInteger(t))
      throw new Error(`Conversion Error: "timestamp": ${String(t)} is not an integer`);
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  return [lo, hi];
}
const STAGE_QUOTES = new Staging("stage_quotes", quotes_v2, "ON CONFLICT DO NOTHING");

/**
 * Quotes appended straight to `quotes_v2` in the batch's transaction, with no staging table: DuckDB
 * checks the primary key as it appends, so a batch with a quote already held fails whole (a constraint
 * error), is rolled back and written again through {@link STAGE_QUOTES}, which leaves such quotes
 * out. The staging path costs a copy into the temporary table, the move's scan and casts, and the
 * table's drop and re-creation per batch; the store takes it only after a batch that held duplicates
 * (a restart's journal, a re-run replay) until a batch comes through whole again.
 *
 * Built from the table's columns in its physical order (`init`): a file whose columns were added by
 * migrations has them in the order they were added.
 */
function directAppend(columns: readonly Column[]): (a: DuckDBAppender, records: readonly object[]) => void {
  return compileChunkAppend(columns, appenderChunk, "table");
}

/** A data chunk of the appender's column types (reused by the appends `compileChunkAppend` builds). */
function appenderChunk(a: DuckDBAppender): InstanceType<typeof DuckDBDataChunk> {
  return DuckDBDataChunk.create(Array.from({ length: a.columnCount }, (_, i) => a.columnType(i)));
}
/**
 * Moves staged candles into candles_v2. Within a batch the candle with the most trades per key wins
 * (a closed candle and its amendment can share a batch); against the table, a candle replaces the
 * stored one only when it covers more trades.
 */
const STAGE_CANDLES = new Staging(
  "stage_candles",
  candles_v2,
  `ON CONFLICT DO UPDATE SET ${setNonKeyColumns(candles_v2)}
  WHERE excluded.trade_count > candles_v2.trade_count`,
  (columns, from) => `SELECT ${columns} FROM ${from}
  QUALIFY row_number() OVER (PARTITION BY ${keyList(candles_v2)} ORDER BY trade_count DESC) = 1`,
);

const STAGE_BOOK_CHANGES = new Staging("stage_book_changes", book_changes_v2, "ON CONFLICT DO NOTHING");
/** Snapshots are derived from the book: one taken again (a replay) is kept as first stored. */
const STAGE_BOOK_SNAPSHOTS = new Staging("stage_book_snapshots", book_snapshots_v2, "ON CONFLICT DO NOTHING");

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
  /**
   * DuckDB worker threads of a writable store (default {@link defaultWriterThreads}: one core left to
   * the ingesting event loop).
   */
  threads?: number;
  /**
   * DuckDB settings given when the database is opened (`memory_limit`, `temp_directory`,
   * `checkpoint_threshold`, …; see duckdb.org/docs/configuration/overview). `k2 load` bounds its
   * memory with these; the other commands open with DuckDB's defaults (and `threads`).
   */
  config?: Record<string, string>;
  /**
   * Bulk loads (`k2 load`) into a trade table with a primary key (a file created before the unkeyed
   * trade tables; the others need no conflict check): move the first staged trades of a batch with a plain INSERT, and only
   * when that meets a record already held (a constraint error) roll back and move them again with
   * `ON CONFLICT DO NOTHING`. A plain insert into the keyed table costs DuckDB about a third less
   * than the conflict-checking one; after a batch that held duplicates (a file loaded again) the
   * next batches go the conflict-checking way directly. Results are the same either way.
   */
  optimisticInserts?: boolean;
}

/**
 * DuckDB's threads for a writable embedded store: the cores less one (at least 1). DuckDB's default,
 * every core, spends its inserts' CPU on parallel overhead beside an event loop that needs a core of
 * its own: on 2 cores, 55k rows inserted with the key check took ~370 ms of CPU with 2 threads,
 * ~230 ms with 1.
 */
export function defaultWriterThreads(): number {
  return Math.max(1, availableParallelism() - 1);
}

/** DuckDB's fragments of the typed reads (`reads.ts`). */
const DUCKDB_READS: ReadDialect = {
  bucket: (len) => `("timestamp" // ${len}) * ${len}`,
  bucketInHaving: () => "interval_start",
  tradeOrder: `ORDER BY "timestamp", length(trade_id), trade_id`,
  first: (expr, by) => `first(${expr} ${by})`,
  last: (expr, by) => `last(${expr} ${by})`,
  anyValue: (expr) => `any_value(${expr})`,
  byteLength: (expr) => `strlen(${expr})`,
  jsonText: (expr) => `to_json(${expr})::VARCHAR`,
};

export class DuckDBStore extends SqlReads implements Store {
  readonly name = "duckdb";
  private instance!: InstanceType<typeof DuckDBInstance>;
  private conn!: DuckDBConnection;
  private stageTrades!: DuckDBAppender;
  private stageQuotes!: DuckDBAppender;
  private stageCandles!: DuckDBAppender;
  private stageBookChanges!: DuckDBAppender;
  private stageBookSnapshots!: DuckDBAppender;
  private chain: Promise<unknown> = Promise.resolve();
  /** Connection of `query` (the writer's connection when reads are not separated). */
  private readConn!: DuckDBConnection;
  private readChain: Promise<unknown> = Promise.resolve();
  /** With {@link DuckDBStoreOptions.optimisticInserts}: the last batch moved held duplicates. */
  private sawDuplicates = false;
  /** The direct quote append ({@link directAppend}) and its appender on `quotes_v2`, or null. */
  private quotesDirect: ((a: DuckDBAppender, records: readonly object[]) => void) | null = null;
  private quotesAppender: DuckDBAppender | null = null;
  /** The last batch's quotes held duplicates: the next quotes go through the staging table. */
  private quoteDuplicates = false;
  /**
   * The trade tables of this file that have a primary key (files created before the unkeyed trade
   * tables, {@link UNKEYED_TRADE_TABLES}): those keep the conflict-checking move.
   */
  private keyedTradeTables = new Set<string>();

  constructor(private readonly opts: DuckDBStoreOptions) {
    super(DUCKDB_READS);
  }

  async init(): Promise<void> {
    try {
      this.instance = await DuckDBInstance.create(
        this.opts.path,
        this.opts.readOnly
          ? { ...this.opts.config, access_mode: "READ_ONLY" }
          : { threads: String(this.opts.threads ?? defaultWriterThreads()), ...this.opts.config },
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
    const keyed = await this.conn.runAndReadAll(
      `SELECT DISTINCT table_name FROM duckdb_constraints()
       WHERE database_name = current_database() AND schema_name = 'main' AND constraint_type = 'PRIMARY KEY'
         AND table_name IN (${UNKEYED_TRADE_TABLES.map((t) => `'${t}'`).join(", ")})`,
    );
    this.keyedTradeTables = new Set(keyed.getRows().map((r) => String(r[0])));
    await this.conn.run(STAGE_TRADES.create);
    await this.conn.run(STAGE_QUOTES.create);
    await this.conn.run(STAGE_CANDLES.create);
    const physical = await this.conn.runAndReadAll(
      `SELECT column_name FROM duckdb_columns()
       WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'quotes_v2'
       ORDER BY column_index`,
    );
    const byName = new Map<string, Column>(quotes_v2.columns.map((col) => [col.name, col]));
    const order = physical.getRows().map((r) => byName.get(String(r[0])));
    // a column the catalogue does not know (a newer file): quotes keep the staging path
    if (order.length === quotes_v2.columns.length && order.every((col) => col !== undefined)) {
      this.quotesDirect = directAppend(order as Column[]);
      this.quotesAppender = await this.conn.createAppender("quotes_v2");
    }
    this.stageTrades = await this.conn.createAppender("stage_trades", "main", "temp");
    this.stageQuotes = await this.conn.createAppender("stage_quotes", "main", "temp");
    this.stageCandles = await this.conn.createAppender("stage_candles", "main", "temp");
    await this.conn.run(STAGE_BOOK_CHANGES.create);
    await this.conn.run(STAGE_BOOK_SNAPSHOTS.create);
    this.stageBookChanges = await this.conn.createAppender("stage_book_changes", "main", "temp");
    this.stageBookSnapshots = await this.conn.createAppender("stage_book_snapshots", "main", "temp");
  }

  /** Closes the appenders of `used` (flushed already), before their tables are dropped. */
  private closeAppenders(used: Set<Staging>): void {
    if (used.has(STAGE_TRADES)) this.stageTrades.closeSync();
    if (used.has(STAGE_QUOTES)) this.stageQuotes.closeSync();
    if (used.has(STAGE_CANDLES)) this.stageCandles.closeSync();
    if (used.has(STAGE_BOOK_CHANGES)) this.stageBookChanges.closeSync();
    if (used.has(STAGE_BOOK_SNAPSHOTS)) this.stageBookSnapshots.closeSync();
  }

  /** Opens new appenders on the staging tables of `used` (after {@link closeAppenders}). */
  private async openAppenders(used: Set<Staging>): Promise<void> {
    const open = (name: string) => this.conn.createAppender(name, "main", "temp");
    if (used.has(STAGE_TRADES)) this.stageTrades = await open("stage_trades");
    if (used.has(STAGE_QUOTES)) this.stageQuotes = await open("stage_quotes");
    if (used.has(STAGE_CANDLES)) this.stageCandles = await open("stage_candles");
    if (used.has(STAGE_BOOK_CHANGES)) this.stageBookChanges = await open("stage_book_changes");
    if (used.has(STAGE_BOOK_SNAPSHOTS)) this.stageBookSnapshots = await open("stage_book_snapshots");
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

  /**
   * A new appender on `quotes_v2` after a failed batch. The failed one still holds the rows it could not
   * append (a duplicate key at the flush) or had not flushed yet (a value that did not fit, thrown
   * between two chunks): they are cleared before it is closed. Otherwise its close, or its destruction
   * at garbage collection, would flush them: in autocommit, appending a failed batch's quotes outside
   * its transaction, or inside a later batch's transaction, aborting it ("Current transaction is
   * aborted") at a moment set by the collector.
   * @throws Error when the cleared appender cannot be closed (the connection is broken)
   */
  private async renewQuotesAppender(): Promise<void> {
    if (!this.quotesAppender) return;
    this.quotesAppender.clear();
    this.quotesAppender.closeSync();
    this.quotesAppender = await this.conn.createAppender("quotes_v2");
  }

  write(batch: WriteBatch): Promise<WriteResult> {
    return this.serial(() => this.writeNow(batch));
  }

  private async writeNow(batch: WriteBatch): Promise<WriteResult> {
    const c = this.conn;
    const result = emptyResult();
    let total = 0;
    // Three round trips at most for the usual batch (trades and quotes): the event loop is busy
    // ingesting while DuckDB works, so every await costs a turn of it.
    let begun = false;
    const begin = async () => {
      if (begun) return;
      await c.run("BEGIN TRANSACTION");
      begun = true;
    };
    const run = async (sql: string) => {
      const first = !begun;
      begun = true; // set before the await: a failing first statement still leaves BEGIN executed
      const r = await c.run(first ? `BEGIN TRANSACTION; ${sql}` : sql);
      return Number(r.rowsChanged);
    };
    const used = new Set<Staging>();
    let closed = false;
    /** The quotes went to their table directly: a key error anywhere in the batch may be theirs. */
    let directQuotes = false;
    try {
      for (const [records, table, key] of [
        [batch.trades, "trades_v2", "trades"],
        [batch.aggTrades, "agg_trades_v2", "aggTrades"],
      ] as const) {
        if (records.length === 0) continue;
        if (used.has(STAGE_TRADES)) await c.run("DELETE FROM stage_trades"); // trades and aggTrades in one batch
        const range = this.keyedTradeTables.has(table) ? null : timeRange(records);
        STAGE_TRADES.append(this.stageTrades, records);
        if (range) {
          result[key] = await run(moveUnkeyedTrades(table, range[0], range[1], mayRepeatTradeKeys(records)));
        } else if (this.opts.optimisticInserts && !begun && !this.sawDuplicates) {
          // the staged rows were appended outside the transaction, so a rollback keeps them
          try {
            result[key] = await run(STAGE_TRADES.moveNew(table));
          } catch (e) {
            if (!isDuplicateKeyError(e)) throw e;
            await c.run("ROLLBACK");
            begun = false;
            this.sawDuplicates = true;
            result[key] = await run(STAGE_TRADES.move(table));
          }
        } else {
          result[key] = await run(STAGE_TRADES.move(table));
          if (this.opts.optimisticInserts) this.sawDuplicates = result[key] < records.length;
        }
        total += records.length;
        used.add(STAGE_TRADES);
      }
      if (batch.quotes.length > 0) {
        const direct = this.quoteDuplicates ? null : this.quotesDirect;
        if (direct && this.quotesAppender) {
          await begin();
          directQuotes = true;
          direct(this.quotesAppender, batch.quotes);
          result.quotes = batch.quotes.length;
        } else {
          STAGE_QUOTES.append(this.stageQuotes, batch.quotes);
          result.quotes = await run(STAGE_QUOTES.move("quotes_v2"));
          used.add(STAGE_QUOTES);
          this.quoteDuplicates = result.quotes < batch.quotes.length;
        }
        total += batch.quotes.length;
      }
      // dead letters and gaps: few per batch, one parameterized statement each
      for (const [records, sql, table, key] of [
        [batch.deadLetters, INSERT_DEAD_LETTER, dead_letters, "deadLetters"],
        [batch.gaps, UPSERT_GAP, sequence_gaps, "gaps"],
      ] as const) {
        for (const r of records) {
          await begin();
          result[key] += Number((await c.run(sql, paramsOf(table, r))).rowsChanged);
          total++;
        }
      }
      if (batch.candles && batch.candles.length > 0) {
        STAGE_CANDLES.append(this.stageCandles, batch.candles);
        // candles are derived, not source records: a candle written again is not a duplicate
        result.candles = await run(STAGE_CANDLES.move("candles_v2"));
        used.add(STAGE_CANDLES);
      }
      if (batch.bookChanges && batch.bookChanges.length > 0) {
        STAGE_BOOK_CHANGES.append(this.stageBookChanges, batch.bookChanges);
        result.bookChanges = await run(STAGE_BOOK_CHANGES.move("book_changes_v2"));
        total += batch.bookChanges.length;
        used.add(STAGE_BOOK_CHANGES);
      }
      if (batch.bookSnapshots && batch.bookSnapshots.length > 0) {
        STAGE_BOOK_SNAPSHOTS.append(this.stageBookSnapshots, batch.bookSnapshots);
        // derived from the book, as candles: a snapshot taken again is not a duplicate
        result.bookSnapshots = await run(STAGE_BOOK_SNAPSHOTS.move("book_snapshots_v2"));
        used.add(STAGE_BOOK_SNAPSHOTS);
      }
      if (begun) {
        // the staging tables used are dropped and recreated in the batch's transaction
        this.closeAppenders(used);
        closed = true;
        await c.run(`${[...used].map((st) => `${st.renew}; `).join("")}COMMIT`);
      }
    } catch (err) {
      await c.run("ROLLBACK").catch(() => undefined); // no-op error when no transaction is open
      if (closed) await this.openAppenders(used); // the rollback restored the tables
      if (directQuotes) await this.renewQuotesAppender();
      this.stageTrades.clear();
      this.stageQuotes.clear();
      this.stageCandles.clear();
      this.stageBookChanges.clear();
      this.stageBookSnapshots.clear();
      for (const t of ["stage_book_changes", "stage_book_snapshots"]) {
        await c.run(`DELETE FROM ${t}`).catch(() => undefined);
      }
      await c.run("DELETE FROM stage_trades").catch(() => undefined);
      await c.run("DELETE FROM stage_quotes").catch(() => undefined);
      await c.run("DELETE FROM stage_candles").catch(() => undefined);
      if (directQuotes && isDuplicateKeyError(err)) {
        // a quote already held (at the append, or at the commit): the batch again, its quotes through
        // the staging table, which leaves the held ones out
        this.quoteDuplicates = true;
        return this.writeNow(batch);
      }
      throw err;
    }
    if (closed) await this.openAppenders(used);
    result.duplicates =
      total -
      result.trades -
      result.aggTrades -
      result.quotes -
      result.deadLetters -
      result.gaps -
      (result.bookChanges ?? 0);
    return result;
  }

  query(sql: string, params: (string | number | boolean | null)[] = []): Promise<Row[]> {
    return this.serialRead(async () => {
      const reader = await this.readConn.runAndReadAll(sql, params.length ? params : undefined);
      return reader.getRowObjectsJson() as Row[];
    });
  }

  /**
   * A text page query (`reads.ts` {@link TextRows}): the first column's strings are taken from the
   * result as they are (no conversion of the other columns); `row` converts one row on demand.
   */
  override queryTexts(sql: string, params: (string | number | boolean | null)[]): Promise<TextRows> {
    return this.serialRead(async () => {
      const reader = await this.readConn.runAndReadAll(sql, params.length ? params : undefined);
      const n = reader.currentRowCount;
      const texts = new Array<string | null>(n);
      for (let i = 0; i < n; i++) texts[i] = reader.value(0, i) as string | null;
      return {
        texts,
        row(index: number) {
          const out: Record<string, string | null> = {};
          for (let c = 0; c < reader.columnCount; c++) {
            const v = reader.value(c, index);
            out[reader.columnName(c)] = v === null ? null : String(v);
          }
          return out;
        },
      };
    });
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
      this.stageBookChanges.closeSync();
      this.stageBookSnapshots.closeSync();
      this.quotesAppender?.closeSync();
      await this.conn.run("CHECKPOINT").catch(() => undefined);
    }
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/**
 * True for DuckDB's error on a key already held: a statement's (`Constraint Error: … duplicate key …`),
 * or an appender flush's, against the table (`Duplicate key "…" violates primary key constraint.`) or
 * twice in the appended rows (`PRIMARY KEY or UNIQUE constraint violation: duplicate key "…"`).
 */
function isDuplicateKeyError(e: unknown): boolean {
  return /^Constraint Error: .*duplicate key|duplicate key .*violates (primary key|unique) constraint|constraint violation: duplicate key/i.test(
    (e as Error)?.message ?? "",
  );
}
