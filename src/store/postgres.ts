/**
 * PostgreSQL store: the server-side backend for deployments that outgrow one process (`k2 persist`
 * processes writing concurrently, `k2 serve` reading). Uses the `postgres` package (porsager/postgres,
 * https://github.com/porsager/postgres) and its connection pool.
 *
 * Tables are the catalogue's (`src/schema/tables.ts`), with the same column order as DuckDB's; their
 * migrations and time partitioning (TimescaleDB or native day partitions) are in
 * `postgres-migrations.ts`.
 *
 * Unique keys and partitioning. PostgreSQL (and TimescaleDB) only allow a unique key on a partitioned
 * table when it contains the partition column, so:
 * - trades_v2 / agg_trades_v2: PRIMARY KEY (exchange, symbol, trade_id, "timestamp"). A trade's
 *   `timestamp` is the venue's execution time, part of the venue record (Binance `T`), so the same trade
 *   received twice (redelivery, reconnect, second replay) has the same key and is a duplicate. A venue
 *   that re-sent one trade id with a different execution time would get two rows here (DuckDB: one).
 * - quotes_v2: a quote's `timestamp` may be the receipt time (Binance bookTicker carries no venue time),
 *   so the same quote ingested twice can have two timestamps. The schema key (exchange, symbol,
 *   message_id) is therefore enforced by an unpartitioned key table `quote_keys` (PRIMARY KEY
 *   (exchange, symbol, message_id), plus the quote's `timestamp` for pruning): one statement inserts the
 *   keys `ON CONFLICT DO NOTHING RETURNING` and only the quotes whose key was new go into quotes_v2.
 *   Dropping old quote partitions should be paired with `DELETE FROM quote_keys WHERE "timestamp" < X`.
 * - dead_letters (message_id) and sequence_gaps (exchange, symbol, data_type, from_sequence) are small
 *   and not partitioned; a gap's `status` and `backfilled` count (migration 4) are upserted when its
 *   backfill finishes.
 * - candles_v2 (closed OHLCV candles of the live aggregator, migration 3): PRIMARY KEY (exchange, symbol,
 *   "interval", interval_start), not partitioned (one row per symbol and interval, not per trade).
 *
 * Writes: one transaction per batch (`BEGIN` … `COMMIT`); any error rolls the whole batch back and is
 * thrown, so the caller (the bus consumer) retries it; a batch is never half-committed. Rows go in with
 * `INSERT … SELECT … FROM unnest($1::uuid[], …) ON CONFLICT DO NOTHING` (one statement per table and
 * batch, prepared once per connection), or with `insertMethod: "copy"`: COPY into a temporary staging
 * table, then `INSERT … SELECT … ON CONFLICT DO NOTHING`. `bench/store.ts` measures both; unnest is the
 * default because it was faster here (see README). Candles (a few per batch) always go in by unnest, as
 * an upsert with DuckDB's semantics: within a batch the candle with the most trades per key wins
 * (`DISTINCT ON … ORDER BY trade_count DESC`); against the table a candle replaces the stored one only
 * when its trade_count is larger (`ON CONFLICT … DO UPDATE … WHERE excluded.trade_count >
 * candles_v2.trade_count`), so the same candle written again changes nothing.
 *
 * Reads: NUMERIC and BIGINT values come back as exact strings (never parsed to floats), JSON/JSONB as
 * objects, timestamps as ISO strings.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import postgres from "postgres";
import type { BookChangeV2, BookSnapshotV2 } from "../schema/books.js";
import type { CandleV2 } from "../schema/candles.js";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../schema/records.js";
import { type Column, type LogicalType, TABLES, type Table } from "../schema/tables.js";
import { type Partitioning, PostgresSchema } from "./postgres-migrations.js";
import { type ReadDialect, SqlReads } from "./reads.js";
import { columnList, compileRowLoop, ident, keyList, levelsJson, setNonKeyColumns } from "./sql.js";
import { emptyResult, type Row, type Store, type WriteBatch, type WriteResult } from "./store.js";

export type { Partitioning } from "./postgres-migrations.js";

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database` (libpq-style URL; see the postgres package). */
  url: string;
  /** Pool size: most connections open at once (default 10). */
  max?: number;
  /** Only read (for `k2 query`): no migrations, queries run in `READ ONLY` transactions. */
  readOnly?: boolean;
  /**
   * `auto` (default): TimescaleDB when the extension is available, else native partitions. Only used
   * when the database is first migrated; afterwards the recorded choice is kept.
   */
  partitioning?: "auto" | Partitioning;
  /** Native partitioning: days created ahead at start, after today (default 7). */
  premakeDays?: number;
  /** Row loading: `unnest` arrays (default) or `copy` into a staging table. */
  insertMethod?: "unnest" | "copy";
  /** Server notices (e.g. `relation already exists, skipping`); ignored by default. */
  onNotice?: (message: string) => void;
}

type Tx = postgres.TransactionSql;
type Sql = postgres.Sql;

/**
 * Type parsers of the postgres package, pinned: NUMERIC (oid 1700) and BIGINT (oid 20) stay exact
 * strings (the package's defaults, made explicit so no upgrade turns them into floats).
 */
const EXACT_TYPES = {
  numeric: { to: 1700, from: [1700], serialize: (x: string) => String(x), parse: (x: string) => x },
  bigint: {
    to: 20,
    from: [20],
    serialize: (x: string | number | bigint) => String(x),
    parse: (x: string) => x,
  },
};

/** PostgreSQL store (see the file header). */
/** PostgreSQL's fragments of the typed reads (`reads.ts`). */
const POSTGRES_READS: ReadDialect = {
  // floor to a multiple of len (as intervalStart); `/` and `%` truncate toward zero
  bucket: (len) => `("timestamp" - (("timestamp" % ${len}) + ${len}) % ${len})`,
  bucketInHaving: (bucket) => bucket,
  tradeOrder: `ORDER BY "timestamp", length(trade_id), trade_id COLLATE "C"`,
  // identical aggregate calls are computed once, so first and last of a column share one sorted array
  first: (expr, by) => `(array_agg(${expr} ${by}))[1]`,
  last: (expr, by) => `(array_agg(${expr} ${by}))[count(*)::int]`,
  anyValue: (expr) => `min(${expr})`,
  byteLength: (expr) => `octet_length(${expr})`,
};

export class PostgresStore extends SqlReads implements Store {
  readonly name = "postgres";
  private sql: Sql | null = null;
  private readonly schema: PostgresSchema;

  constructor(private readonly opts: PostgresStoreOptions) {
    super(POSTGRES_READS);
    this.schema = new PostgresSchema(opts);
  }

  /** How the market tables are partitioned (known after `init`). */
  get partitioning(): Partitioning | null {
    return this.schema.mode;
  }

  /** Why TimescaleDB was not used (null when it is, or when the choice was made earlier). */
  get timescaleUnavailable(): string | null {
    return this.schema.timescaleUnavailable;
  }

  /**
   * Connects, then (unless read-only) applies missing migrations under an advisory lock and creates the
   * day partitions ahead (`postgres-migrations.ts`).
   * @throws when the server is unreachable, the database was migrated by a newer k2, or
   *   `partitioning: "timescaledb"` is asked for but unavailable
   */
  async init(): Promise<void> {
    const onNotice = this.opts.onNotice;
    this.sql = postgres(this.opts.url, {
      max: this.opts.max ?? 10,
      onnotice: (n) => onNotice?.(String(n.message)),
      types: EXACT_TYPES,
      connection: { application_name: "k2" },
    }) as unknown as Sql;
    if (this.opts.readOnly) {
      await this.sql`SELECT 1`;
      return;
    }
    await this.schema.migrate(this.sql);
  }

  private db(): Sql {
    if (!this.sql) throw new Error("postgres store not initialised (call init first)");
    return this.sql;
  }

  /**
   * Writes the batch in one transaction: everything is stored (or recognised as held) or nothing is.
   * @throws the server's error (e.g. `numeric field overflow` for a price that does not fit
   *   NUMERIC(18,8), connection loss); the transaction is rolled back and the caller retries
   */
  async write(batch: WriteBatch): Promise<WriteResult> {
    if (this.opts.readOnly) throw new Error("postgres store opened read-only");
    const sql = this.db();
    await this.schema.ensurePartitions(sql, batch);
    const copy = this.opts.insertMethod === "copy";
    const result = emptyResult();
    await sql.begin(async (tx) => {
      for (const [records, table, key] of [
        [batch.trades, "trades_v2", "trades"],
        [batch.aggTrades, "agg_trades_v2", "aggTrades"],
      ] as const) {
        if (records.length === 0) continue;
        result[key] = await (copy ? COPY_TRADES : UNNEST_TRADES).write(tx, records, table);
      }
      if (batch.quotes.length > 0) {
        result.quotes = await (copy ? COPY_QUOTES : UNNEST_QUOTES).write(tx, batch.quotes);
      }
      if (batch.deadLetters.length > 0)
        result.deadLetters = await UNNEST_DEAD_LETTERS.write(tx, batch.deadLetters);
      if (batch.gaps.length > 0) result.gaps = await UNNEST_GAPS.write(tx, batch.gaps);
      // candles are derived, not source records: a candle written again is not a duplicate
      if (batch.candles && batch.candles.length > 0) {
        result.candles = await UNNEST_CANDLES.write(tx, batch.candles);
      }
      if (batch.bookChanges && batch.bookChanges.length > 0) {
        result.bookChanges = await UNNEST_BOOK_CHANGES.write(tx, batch.bookChanges);
      }
      // snapshots are derived from the book, as candles: one taken again is not a duplicate
      if (batch.bookSnapshots && batch.bookSnapshots.length > 0) {
        result.bookSnapshots = await UNNEST_BOOK_SNAPSHOTS.write(tx, batch.bookSnapshots);
      }
    });
    const total =
      batch.trades.length +
      batch.aggTrades.length +
      batch.quotes.length +
      batch.deadLetters.length +
      batch.gaps.length +
      (batch.bookChanges?.length ?? 0);
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

  /**
   * Runs a parameterized query (`$1`, `$2`, … placeholders) and returns JSON-safe rows: NUMERIC and
   * BIGINT as exact strings, JSON/JSONB as objects, timestamps as ISO strings, bytea as `\x…` hex.
   * A read-only store runs it in a `READ ONLY` transaction (writes fail with SQLSTATE 25006).
   */
  async query(text: string, params: (string | number | boolean | null)[] = []): Promise<Row[]> {
    const sql = this.db();
    const rows = this.opts.readOnly
      ? await sql.begin("read only", (tx) => tx.unsafe(text, params))
      : await sql.unsafe(text, params);
    return (rows as unknown as Record<string, unknown>[]).map((r) => {
      const out: Row = {};
      for (const k of Object.keys(r)) out[k] = jsonSafe(r[k]);
      return out;
    });
  }

  /**
   * Null when the server answers within 2 s and accepts writes (not a hot standby), else the reason.
   */
  async check(): Promise<string | null> {
    if (!this.sql) return "store not open";
    const sql = this.sql;
    let timer: NodeJS.Timeout | undefined;
    try {
      const probe = sql`SELECT pg_is_in_recovery() AS standby`;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("no answer within 2 s")), 2000);
      });
      const [r] = await Promise.race([probe, timeout]);
      if (r.standby && !this.opts.readOnly) return "store not writable: postgres is a read-only standby";
      return null;
    } catch (e) {
      return `store not reachable: ${(e as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Upserts the one row of `k2_health` (created on first use); fails when the server cannot write. */
  async probeWrite(): Promise<void> {
    const sql = this.db();
    await sql.unsafe(
      "CREATE TABLE IF NOT EXISTS k2_health (name TEXT PRIMARY KEY, written_at BIGINT NOT NULL)",
    );
    await sql`INSERT INTO k2_health VALUES ('probe', ${Date.now() * 1000})
      ON CONFLICT (name) DO UPDATE SET written_at = excluded.written_at`;
  }

  async close(): Promise<void> {
    const sql = this.sql;
    this.sql = null;
    if (sql) await sql.end({ timeout: 5 });
  }
}

function jsonSafe(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === "bigint") return v.toString();
  if (Buffer.isBuffer(v)) return `\\x${v.toString("hex")}`;
  if (Array.isArray(v)) return v.map(jsonSafe);
  return v;
}

/** PostgreSQL array literal of text elements (`{"a","b c"}`), for a `text[]` cast. */
function textArrayLiteral(xs: string[]): string {
  if (xs.length === 0) return "{}";
  return `{${xs.map((x) => `"${noNul(x).replace(/[\\"]/g, "\\$&")}"`).join(",")}}`;
}

/** PostgreSQL text cannot hold U+0000: it is replaced by U+FFFD (a venue never sends it in a field). */
function noNul(s: string): string {
  return s.includes("\0") ? s.replaceAll("\0", "\uFFFD") : s;
}

/** vendor_data as JSON text for JSONB (which rejects `\u0000`: such values get U+FFFD). */
function vendorJson(v: Record<string, string>): string {
  const json = JSON.stringify(v);
  if (!json.includes("\\u0000")) return json;
  const clean: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) clean[noNul(k)] = noNul(x);
  return JSON.stringify(clean);
}

/** A field in COPY text format: `\N` for null; backslash, newline, carriage return and tab escaped. */
function copyField(v: string | number | null): string {
  if (v === null) return "\\N";
  if (typeof v === "number") return String(v);
  const s = noNul(v);
  return /[\\\n\r\t]/.test(s)
    ? s.replace(/[\\\n\r\t]/g, (c) => (c === "\\" ? "\\\\" : c === "\n" ? "\\n" : c === "\r" ? "\\r" : "\\t"))
    : s;
}

/** Array type of an unnest parameter, per logical type (text[] and JSON travel as text). */
const ARRAY_TYPE: Record<LogicalType, string> = {
  uuid: "uuid[]",
  text: "text[]",
  "decimal(18,8)": "numeric[]",
  "decimal(38,8)": "numeric[]",
  "decimal(38,16)": "numeric[]",
  micros: "int8[]",
  bigint: "int8[]",
  "text[]": "text[]",
  "string map": "text[]",
  // postgres.js sends a JS boolean array as one boolean: booleans travel as "t"/"f" text, cast after
  boolean: "text[]",
  levels: "text[]",
};
/** Column type of a COPY staging table, per logical type. */
const STAGE_TYPE: Record<LogicalType, string> = {
  uuid: "UUID",
  text: "TEXT",
  "decimal(18,8)": "NUMERIC",
  "decimal(38,8)": "NUMERIC",
  "decimal(38,16)": "NUMERIC",
  micros: "BIGINT",
  bigint: "BIGINT",
  "text[]": "TEXT[]",
  "string map": "TEXT",
  boolean: "BOOLEAN",
  levels: "TEXT",
};

/** The SELECT list moving unnested or staged columns into the table (text → text[], text → JSONB). */
function castList(columns: readonly Column[], prefix = ""): string {
  return columns
    .map((c) => {
      const col = `${prefix}${ident(c.name)}`;
      if (c.type === "text[]") return `${col}::text[]`;
      if (c.type === "boolean") return `${col}::boolean`;
      return c.type === "string map" || c.type === "levels" ? `${col}::jsonb` : col;
    })
    .join(", ");
}

/** The JS expression of a column's value as sent: text arrays as literals, maps as JSON, text cleaned of NUL. */
function sendExpr(c: Column, value: string, clean: ReadonlySet<string>): string {
  if (c.type === "text[]") return `textArrayLiteral(${value})`;
  if (c.type === "string map") return `vendorJson(${value})`;
  if (c.type === "levels") return `levelsJson(${value})`;
  if (c.type === "boolean")
    return c.nullable ? `(${value} === null ? null : ${value} ? "t" : "f")` : `(${value} ? "t" : "f")`;
  if (clean.has(c.name)) return `noNul(${value})`;
  return value;
}

const HELPERS = { textArrayLiteral, vendorJson, levelsJson, noNul, copyField };

/**
 * Rows of one table written with `INSERT … SELECT … FROM unnest($1::uuid[], …)`: one statement per
 * table and batch, prepared once per connection, its parallel arrays built in one pass.
 */
class UnnestWrite<T> {
  private readonly arrays: (records: readonly T[]) => unknown[][];
  private readonly sqlFor: (table: string) => string;

  /**
   * @param statement the SQL given the target table, its column list and the unnest source (`unnest(…) AS s(…)`)
   * @param clean text columns whose NULs are replaced (they may hold any text received)
   */
  constructor(
    table: Table,
    statement: (target: string, columns: string, source: string) => string,
    clean: readonly string[] = [],
  ) {
    const cols = table.columns;
    const cleanSet = new Set(clean);
    const source = `unnest(${cols.map((c, i) => `$${i + 1}::${ARRAY_TYPE[c.type]}`).join(", ")}) AS s(${columnList(cols)})`;
    this.sqlFor = (target) => statement(target, columnList(cols), source);
    this.arrays = compileRowLoop(cols, {
      params: ["records"],
      head: `const n = records.length; const cols = [${cols.map(() => "new Array(n)").join(", ")}];`,
      column: (value, c, k) => `cols[${k}][i] = ${sendExpr(c, value, cleanSet)};`,
      tail: "return cols;",
      helpers: HELPERS,
    });
    this.table = table.name;
  }

  private readonly table: string;

  /** Writes `records` into `target` (default the table); returns the rows inserted or updated. */
  async write(tx: Tx, records: readonly T[], target = this.table): Promise<number> {
    const r = await tx.unsafe(this.sqlFor(target), this.arrays(records) as never[], { prepare: true });
    return r.count;
  }
}

/**
 * Rows written with COPY into a temporary staging table (`k2_stage_<table>_t`, emptied at commit), then
 * moved by `statement`. vendor_data is staged as TEXT and cast to JSONB by the INSERT that moves the
 * rows: a value JSONB rejects then fails that INSERT with the server's error (a COPY that fails is never
 * answered by the postgres client, whose write would wait forever).
 */
class CopyWrite<T> {
  private readonly lines: (records: readonly T[]) => string;
  private readonly stage: (target: string) => string;
  private readonly move: (target: string) => string;
  private readonly table: string;

  constructor(table: Table, statement: (target: string, columns: string, source: string) => string) {
    const cols = table.columns;
    this.table = table.name;
    this.stage = (target) =>
      `CREATE TEMP TABLE IF NOT EXISTS k2_stage_${target}_t (${cols.map((c) => `${ident(c.name)} ${STAGE_TYPE[c.type]}`).join(", ")}) ON COMMIT DELETE ROWS`;
    this.move = (target) => statement(target, columnList(cols), `k2_stage_${target}_t`);
    const none = new Set<string>();
    this.lines = compileRowLoop(cols, {
      params: ["records"],
      head: 'let s = "";',
      column: (value, c, k) => {
        const sep = k === 0 ? "" : '"\\t" + ';
        const isInt = c.type === "micros" || c.type === "bigint";
        const field = isInt && !c.nullable ? `String(${value})` : `copyField(${sendExpr(c, value, none)})`;
        return `s += ${sep}${field};`;
      },
      rowEnd: 's += "\\n";',
      tail: "return s;",
      helpers: HELPERS,
    });
  }

  /** Stages `records` (COPY, in chunks of ~1000 rows) and moves them into `target`; returns rows inserted. */
  async write(tx: Tx, records: readonly T[], target = this.table): Promise<number> {
    await tx.unsafe(this.stage(target));
    const writable = await tx.unsafe(`COPY k2_stage_${target}_t FROM STDIN`).writable();
    const lines = this.lines;
    function* chunks() {
      for (let i = 0; i < records.length; i += 1000) yield lines(records.slice(i, i + 1000));
    }
    await pipeline(Readable.from(chunks()), writable);
    const r = await tx.unsafe(this.move(target));
    return r.count;
  }
}

const { trades_v2, quotes_v2, dead_letters, sequence_gaps, candles_v2, book_changes_v2, book_snapshots_v2 } =
  TABLES;

const insertTrades = (target: string, columns: string, source: string) =>
  `INSERT INTO ${target} (${columns}) SELECT ${castList(trades_v2.columns)} FROM ${source} ON CONFLICT DO NOTHING`;

const QUOTE_KEY = keyList(quotes_v2);
/**
 * Quotes: keys first (schema key across partitions), then the quotes whose key was new. `DISTINCT ON`
 * keeps one of several copies of a quote within the batch.
 */
const insertQuotes = (target: string, columns: string, source: string) => `WITH s AS (
    SELECT DISTINCT ON (${QUOTE_KEY}) * FROM ${source}
  ), k AS (
    INSERT INTO quote_keys (${QUOTE_KEY}, "timestamp")
    SELECT ${QUOTE_KEY}, "timestamp" FROM s
    ON CONFLICT DO NOTHING
    RETURNING ${QUOTE_KEY}
  )
  INSERT INTO ${target} (${columns})
  SELECT ${castList(quotes_v2.columns, "s.")}
  FROM s JOIN k USING (${QUOTE_KEY})`;

const UNNEST_TRADES = new UnnestWrite<TradeV2>(trades_v2, insertTrades);
const COPY_TRADES = new CopyWrite<TradeV2>(trades_v2, insertTrades);
const UNNEST_QUOTES = new UnnestWrite<QuoteV2>(quotes_v2, insertQuotes);
const COPY_QUOTES = new CopyWrite<QuoteV2>(quotes_v2, insertQuotes);

const UNNEST_DEAD_LETTERS = new UnnestWrite<DeadLetter>(
  dead_letters,
  (target, columns, source) =>
    `INSERT INTO ${target} (${columns}) SELECT ${castList(dead_letters.columns)} FROM ${source} ON CONFLICT DO NOTHING`,
  ["exchange", "source", "reason", "raw"],
);

/**
 * An upsert from `source`: `DISTINCT ON` the key keeps one row per key of the batch, the first in
 * `pick` order (an `ON CONFLICT DO UPDATE` may not touch one row twice); a stored row gets `set` only
 * `when` the condition holds.
 */
function upsert(table: Table, pick: string, set: string, when: string) {
  const key = keyList(table);
  return (target: string, columns: string, source: string) => `INSERT INTO ${target} (${columns})
  SELECT DISTINCT ON (${key}) ${castList(table.columns)}
  FROM ${source}
  ORDER BY ${key}, ${pick}
  ON CONFLICT (${key}) DO UPDATE SET ${set}
  WHERE ${when}`;
}

/**
 * Gaps are upserted: an outcome (`status` other than `open`) replaces the stored status and count when
 * they differ; an `open` report of a gap already held changes nothing. Of several reports of one gap in
 * a batch, an outcome goes before an `open` one, then the most records backfilled.
 */
const UNNEST_GAPS = new UnnestWrite<SequenceGap>(
  sequence_gaps,
  upsert(
    sequence_gaps,
    "(status = 'open'), backfilled DESC",
    "status = excluded.status, backfilled = excluded.backfilled",
    `excluded.status <> 'open'
    AND (excluded.status <> sequence_gaps.status OR excluded.backfilled <> sequence_gaps.backfilled)`,
  ),
);

/**
 * Upsert of closed candles: per key, the candle with the most trades of the batch; a stored candle is
 * replaced only by one with a larger trade_count (an amendment after a late trade).
 */
const UNNEST_CANDLES = new UnnestWrite<CandleV2>(
  candles_v2,
  upsert(
    candles_v2,
    "trade_count DESC",
    setNonKeyColumns(candles_v2),
    "excluded.trade_count > candles_v2.trade_count",
  ),
  ["first_trade_id", "last_trade_id"],
);

/** Insert-once of a table by its key (book changes and book snapshots). */
const insertOnce = (table: Table) => (target: string, columns: string, source: string) =>
  `INSERT INTO ${target} (${columns}) SELECT ${castList(table.columns)} FROM ${source} ON CONFLICT DO NOTHING`;

/** Book changes (`--store-book-changes`), once per (exchange, symbol, message_id). */
const UNNEST_BOOK_CHANGES = new UnnestWrite<BookChangeV2>(book_changes_v2, insertOnce(book_changes_v2));
/** Top-N book snapshots, once per (exchange, symbol, depth, timestamp). */
const UNNEST_BOOK_SNAPSHOTS = new UnnestWrite<BookSnapshotV2>(
  book_snapshots_v2,
  insertOnce(book_snapshots_v2),
);
