/**
 * PostgreSQL store: the server-side backend for deployments that outgrow one process (`k2 persist`
 * processes writing concurrently, `k2 serve` reading). Uses the `postgres` package (porsager/postgres,
 * https://github.com/porsager/postgres) and its connection pool.
 *
 * Tables are those of the DuckDB store (schema-v2), with the same column order: NUMERIC(18,8) prices and
 * quantities, BIGINT µs times, UUID message ids, JSONB vendor_data, TEXT[] trade_conditions.
 *
 * Time partitioning by day on the µs `"timestamp"` column:
 * - TimescaleDB hypertables with 1-day chunks when the `timescaledb` extension is available
 *   (`pg_available_extensions`) and can be created;
 * - otherwise native declarative partitioning (`PARTITION BY RANGE ("timestamp")`), one partition per
 *   UTC day (`trades_v2_p20240808` holds [2024-08-08T00:00Z, 2024-08-09T00:00Z) in µs), created ahead of
 *   time at start (yesterday..today+`premakeDays`) and on demand before a batch that has records for a
 *   day without one, plus a default partition (`trades_v2_default`) as a safety net.
 * The choice is made once, at the first migration, and recorded in `k2_meta`.
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
 *   NUMERIC(18,8) open/high/low/close/vwap, NUMERIC(38,8) volume, NUMERIC(38,16) quote_volume (exact
 *   Σ price·quantity), BIGINT µs interval_start/interval_end, as DuckDB's DECIMAL columns.
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
 * Migrations are versioned in `k2_migrations`, idempotent, and serialized across processes with a
 * transaction-scoped advisory lock, so several processes may start at once.
 *
 * Reads: NUMERIC and BIGINT values come back as exact strings (never parsed to floats), JSON/JSONB as
 * objects, timestamps as ISO strings.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import postgres from "postgres";
import type { CandleV2 } from "../schema/candles.js";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../schema/records.js";
import {
  LAST_SEQUENCES_SQL,
  type LastSequence,
  type Row,
  type Store,
  toLastSequence,
  type WriteBatch,
  type WriteResult,
} from "./store.js";

/** How market tables are partitioned by time. */
export type Partitioning = "timescaledb" | "native";

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

/** One UTC day in µs. */
export const DAY_US = 86_400_000_000;
/** Advisory lock namespace `K2` and the locks in it (pg_advisory_xact_lock(int, int)). */
const LOCK_NS = 0x4b32;
const LOCK_MIGRATIONS = 1;
const LOCK_PARTITIONS = 2;
/** The time-partitioned tables. */
const PARTITIONED = ["trades_v2", "agg_trades_v2", "quotes_v2"] as const;
type PartitionedTable = (typeof PARTITIONED)[number];

type Tx = postgres.TransactionSql;
type Sql = postgres.Sql;

const TRADE_COLUMNS = `
  message_id UUID NOT NULL,
  trade_id TEXT NOT NULL,
  symbol TEXT NOT NULL,
  exchange TEXT NOT NULL,
  asset_class TEXT NOT NULL,
  "timestamp" BIGINT NOT NULL,
  price NUMERIC(18,8) NOT NULL,
  quantity NUMERIC(18,8) NOT NULL,
  currency TEXT NOT NULL,
  side TEXT NOT NULL,
  trade_conditions TEXT[] NOT NULL,
  source_sequence BIGINT,
  ingestion_timestamp BIGINT NOT NULL,
  platform_sequence BIGINT NOT NULL,
  vendor_data JSONB NOT NULL,
  PRIMARY KEY (exchange, symbol, trade_id, "timestamp")`;

const QUOTE_COLUMNS = `
  message_id UUID NOT NULL,
  symbol TEXT NOT NULL,
  exchange TEXT NOT NULL,
  asset_class TEXT NOT NULL,
  "timestamp" BIGINT NOT NULL,
  bid_price NUMERIC(18,8) NOT NULL,
  bid_quantity NUMERIC(18,8) NOT NULL,
  ask_price NUMERIC(18,8) NOT NULL,
  ask_quantity NUMERIC(18,8) NOT NULL,
  currency TEXT NOT NULL,
  source_sequence BIGINT,
  ingestion_timestamp BIGINT NOT NULL,
  platform_sequence BIGINT NOT NULL,
  vendor_data JSONB NOT NULL`;

interface Migration {
  version: number;
  name: string;
  up(tx: Tx, partitioning: Partitioning): Promise<void>;
}

/** Versioned migrations, applied in order, each once (recorded in `k2_migrations`). */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "schema-v2 tables, time-partitioned by day",
    async up(tx, partitioning) {
      const suffix = partitioning === "native" ? ` PARTITION BY RANGE ("timestamp")` : "";
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS trades_v2 (${TRADE_COLUMNS})${suffix}`);
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS agg_trades_v2 (${TRADE_COLUMNS})${suffix}`);
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS quotes_v2 (${QUOTE_COLUMNS})${suffix}`);
      for (const table of PARTITIONED) {
        if (partitioning === "native") {
          await tx.unsafe(`CREATE TABLE IF NOT EXISTS ${table}_default PARTITION OF ${table} DEFAULT`);
        } else {
          await tx.unsafe(
            `SELECT create_hypertable('${table}', 'timestamp', chunk_time_interval => ${DAY_US}::bigint,
               create_default_indexes => false, if_not_exists => true)`,
          );
        }
      }
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS quote_keys (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        message_id UUID NOT NULL,
        "timestamp" BIGINT NOT NULL,
        PRIMARY KEY (exchange, symbol, message_id))`);
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS dead_letters (
        message_id UUID PRIMARY KEY,
        exchange TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        raw TEXT NOT NULL,
        received_at BIGINT NOT NULL)`);
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS sequence_gaps (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        data_type TEXT NOT NULL,
        from_sequence BIGINT NOT NULL,
        to_sequence BIGINT NOT NULL,
        detected_at BIGINT NOT NULL,
        PRIMARY KEY (exchange, symbol, data_type, from_sequence))`);
    },
  },
  {
    version: 2,
    name: "indexes for time-range reads per symbol",
    async up(tx) {
      for (const table of PARTITIONED) {
        await tx.unsafe(`CREATE INDEX IF NOT EXISTS ${table}_symbol_time ON ${table} (symbol, "timestamp")`);
      }
    },
  },
  {
    version: 3,
    name: "candles_v2: closed OHLCV candles of the live aggregator",
    async up(tx) {
      // the columns of DuckDB's candles_v2, in its order; exact NUMERIC like its DECIMAL columns
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS candles_v2 (
        exchange TEXT NOT NULL,
        symbol TEXT NOT NULL,
        asset_class TEXT NOT NULL,
        "interval" TEXT NOT NULL,
        interval_start BIGINT NOT NULL,
        interval_end BIGINT NOT NULL,
        open NUMERIC(18,8) NOT NULL,
        high NUMERIC(18,8) NOT NULL,
        low NUMERIC(18,8) NOT NULL,
        close NUMERIC(18,8) NOT NULL,
        volume NUMERIC(38,8) NOT NULL,
        quote_volume NUMERIC(38,16) NOT NULL,
        vwap NUMERIC(18,8),
        trade_count BIGINT NOT NULL,
        first_trade_id TEXT NOT NULL,
        last_trade_id TEXT NOT NULL,
        PRIMARY KEY (exchange, symbol, "interval", interval_start))`);
    },
  },
  {
    version: 4,
    name: "sequence_gaps: backfill status and records backfilled",
    async up(tx) {
      await tx.unsafe(`ALTER TABLE sequence_gaps
        ADD COLUMN IF NOT EXISTS status TEXT NOT NULL DEFAULT 'open',
        ADD COLUMN IF NOT EXISTS backfilled BIGINT NOT NULL DEFAULT 0`);
    },
  },
];

/** The latest migration version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

const INSERT_TRADE_COLUMNS = `message_id, trade_id, symbol, exchange, asset_class, "timestamp", price, quantity,
  currency, side, trade_conditions, source_sequence, ingestion_timestamp, platform_sequence, vendor_data`;
const INSERT_QUOTE_COLUMNS = `message_id, symbol, exchange, asset_class, "timestamp", bid_price, bid_quantity,
  ask_price, ask_quantity, currency, source_sequence, ingestion_timestamp, platform_sequence, vendor_data`;

/** Multi-row insert of trades from 15 parallel arrays. */
const UNNEST_TRADES = (table: string) => `INSERT INTO ${table} (${INSERT_TRADE_COLUMNS})
  SELECT message_id, trade_id, symbol, exchange, asset_class, ts, price, quantity, currency, side,
    trade_conditions::text[], source_sequence, ingestion_timestamp, platform_sequence, vendor_data::jsonb
  FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::numeric[],
    $8::numeric[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[], $14::int8[], $15::text[])
    AS s(message_id, trade_id, symbol, exchange, asset_class, ts, price, quantity, currency, side,
      trade_conditions, source_sequence, ingestion_timestamp, platform_sequence, vendor_data)
  ON CONFLICT DO NOTHING`;

/**
 * Quotes: keys first (schema key across partitions), then the quotes whose key was new. `DISTINCT ON`
 * keeps one of several copies of a quote within the batch.
 */
const QUOTES_FROM = (source: string) => `WITH s AS (
    SELECT DISTINCT ON (exchange, symbol, message_id) * FROM ${source}
  ), k AS (
    INSERT INTO quote_keys (exchange, symbol, message_id, "timestamp")
    SELECT exchange, symbol, message_id, ts FROM s
    ON CONFLICT DO NOTHING
    RETURNING exchange, symbol, message_id
  )
  INSERT INTO quotes_v2 (${INSERT_QUOTE_COLUMNS})
  SELECT s.message_id, s.symbol, s.exchange, s.asset_class, s.ts, s.bid_price, s.bid_quantity, s.ask_price,
    s.ask_quantity, s.currency, s.source_sequence, s.ingestion_timestamp, s.platform_sequence,
    s.vendor_data::jsonb
  FROM s JOIN k USING (exchange, symbol, message_id)`;
const UNNEST_QUOTES = QUOTES_FROM(`unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int8[],
    $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::text[], $11::int8[], $12::int8[],
    $13::int8[], $14::text[])
    AS u(message_id, symbol, exchange, asset_class, ts, bid_price, bid_quantity, ask_price, ask_quantity,
      currency, source_sequence, ingestion_timestamp, platform_sequence, vendor_data)`);

const UNNEST_DEAD_LETTERS = `INSERT INTO dead_letters (message_id, exchange, source, reason, raw, received_at)
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[])
  ON CONFLICT DO NOTHING`;
/**
 * Gaps are upserted: an outcome (`status` other than `open`) replaces the stored status and count when
 * they differ; an `open` report of a gap already held changes nothing. `DISTINCT ON` keeps one report
 * per gap of the batch (an outcome before an `open` one, then the most records backfilled), as an
 * `ON CONFLICT DO UPDATE` may not touch one row twice.
 */
const UNNEST_GAPS = `INSERT INTO sequence_gaps
  (exchange, symbol, data_type, from_sequence, to_sequence, detected_at, status, backfilled)
  SELECT DISTINCT ON (exchange, symbol, data_type, from_sequence) *
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[], $7::text[], $8::int8[])
    AS s(exchange, symbol, data_type, from_sequence, to_sequence, detected_at, status, backfilled)
  ORDER BY exchange, symbol, data_type, from_sequence, (status = 'open'), backfilled DESC
  ON CONFLICT (exchange, symbol, data_type, from_sequence) DO UPDATE SET
    status = excluded.status, backfilled = excluded.backfilled
  WHERE excluded.status <> 'open'
    AND (excluded.status <> sequence_gaps.status OR excluded.backfilled <> sequence_gaps.backfilled)`;

/**
 * Upsert of closed candles from 16 parallel arrays. `DISTINCT ON` keeps, per key, the candle with the
 * most trades of the batch (an `ON CONFLICT DO UPDATE` may not touch one row twice); a stored candle is
 * replaced only by one with a larger trade_count (an amendment after a late trade).
 */
const UNNEST_CANDLES = `INSERT INTO candles_v2 (exchange, symbol, asset_class, "interval", interval_start,
    interval_end, open, high, low, close, volume, quote_volume, vwap, trade_count, first_trade_id,
    last_trade_id)
  SELECT DISTINCT ON (exchange, symbol, "interval", interval_start) *
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::numeric[],
    $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[], $12::numeric[], $13::numeric[],
    $14::int8[], $15::text[], $16::text[])
    AS s(exchange, symbol, asset_class, "interval", interval_start, interval_end, open, high, low, close,
      volume, quote_volume, vwap, trade_count, first_trade_id, last_trade_id)
  ORDER BY exchange, symbol, "interval", interval_start, trade_count DESC
  ON CONFLICT (exchange, symbol, "interval", interval_start) DO UPDATE SET
    interval_end = excluded.interval_end, open = excluded.open, high = excluded.high, low = excluded.low,
    close = excluded.close, volume = excluded.volume, quote_volume = excluded.quote_volume,
    vwap = excluded.vwap, trade_count = excluded.trade_count, first_trade_id = excluded.first_trade_id,
    last_trade_id = excluded.last_trade_id
  WHERE excluded.trade_count > candles_v2.trade_count`;

/**
 * COPY staging tables: per session, emptied at commit (and discarded on rollback). vendor_data is
 * staged as TEXT and cast to JSONB by the INSERT that moves the rows: a value JSONB rejects then fails
 * that INSERT with the server's error (a COPY that fails is never answered by the postgres client,
 * whose write would wait forever).
 */
const STAGE_TRADES = (table: string) => `CREATE TEMP TABLE IF NOT EXISTS k2_stage_${table}_t (
  message_id UUID, trade_id TEXT, symbol TEXT, exchange TEXT, asset_class TEXT, ts BIGINT, price NUMERIC,
  quantity NUMERIC, currency TEXT, side TEXT, trade_conditions TEXT[], source_sequence BIGINT,
  ingestion_timestamp BIGINT, platform_sequence BIGINT, vendor_data TEXT) ON COMMIT DELETE ROWS`;
const STAGE_QUOTES = `CREATE TEMP TABLE IF NOT EXISTS k2_stage_quotes_v2_t (
  message_id UUID, symbol TEXT, exchange TEXT, asset_class TEXT, ts BIGINT, bid_price NUMERIC,
  bid_quantity NUMERIC, ask_price NUMERIC, ask_quantity NUMERIC, currency TEXT, source_sequence BIGINT,
  ingestion_timestamp BIGINT, platform_sequence BIGINT, vendor_data TEXT) ON COMMIT DELETE ROWS`;
const MOVE_TRADES = (table: string) => `INSERT INTO ${table} (${INSERT_TRADE_COLUMNS})
  SELECT message_id, trade_id, symbol, exchange, asset_class, ts, price, quantity, currency, side,
    trade_conditions, source_sequence, ingestion_timestamp, platform_sequence, vendor_data::jsonb
  FROM k2_stage_${table}_t ON CONFLICT DO NOTHING`;
const MOVE_QUOTES = QUOTES_FROM("k2_stage_quotes_v2_t");

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
export class PostgresStore implements Store {
  readonly name = "postgres";
  private sql: Sql | null = null;
  private mode: Partitioning | null = null;
  /** `table/day` partitions known to exist (native partitioning). */
  private readonly partitions = new Set<string>();
  /** Why TimescaleDB was not used (null when it is, or when the choice was made earlier). */
  timescaleUnavailable: string | null = null;

  constructor(private readonly opts: PostgresStoreOptions) {}

  /** How the market tables are partitioned (known after `init`). */
  get partitioning(): Partitioning | null {
    return this.mode;
  }

  /**
   * Connects, then (unless read-only) applies missing migrations under an advisory lock and creates the
   * day partitions ahead.
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
    await this.sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${LOCK_NS}, ${LOCK_MIGRATIONS})`;
      await tx.unsafe(`CREATE TABLE IF NOT EXISTS k2_migrations (
        version INT PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      await tx.unsafe("CREATE TABLE IF NOT EXISTS k2_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      const applied = new Set((await tx`SELECT version FROM k2_migrations`).map((r) => Number(r.version)));
      const newest = Math.max(0, ...applied);
      if (newest > SCHEMA_VERSION) {
        throw new Error(`database schema version ${newest} is newer than this k2 knows (${SCHEMA_VERSION})`);
      }
      const [recorded] = await tx`SELECT value FROM k2_meta WHERE key = 'partitioning'`;
      const wanted = this.opts.partitioning ?? "auto";
      if (recorded) {
        this.mode = recorded.value as Partitioning;
        if (wanted !== "auto" && wanted !== this.mode) {
          throw new Error(`database is partitioned with ${this.mode}, not ${wanted}`);
        }
      } else {
        this.mode = await this.choosePartitioning(tx, wanted);
        await tx`INSERT INTO k2_meta (key, value) VALUES ('partitioning', ${this.mode})`;
      }
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await m.up(tx, this.mode);
        await tx`INSERT INTO k2_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      }
      if (this.mode === "native") {
        // the lock writers take for on-demand partitions (always after the migrations lock: no deadlock)
        await tx`SELECT pg_advisory_xact_lock(${LOCK_NS}, ${LOCK_PARTITIONS})`;
        const today = Math.floor(Date.now() / 86_400_000);
        const days: number[] = [];
        for (let d = today - 1; d <= today + (this.opts.premakeDays ?? 7); d++) days.push(d);
        for (const table of PARTITIONED) await this.createPartitions(tx, table, days);
      }
    });
    if (this.mode === "native") await this.loadPartitions();
  }

  private async choosePartitioning(tx: Tx, wanted: "auto" | Partitioning): Promise<Partitioning> {
    if (wanted === "native") return "native";
    const [available] = await tx`SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'`;
    if (!available) {
      this.timescaleUnavailable = "extension timescaledb is not in pg_available_extensions";
    } else {
      try {
        await tx.savepoint((sp) => sp.unsafe("CREATE EXTENSION IF NOT EXISTS timescaledb"));
        return "timescaledb";
      } catch (e) {
        this.timescaleUnavailable = `CREATE EXTENSION timescaledb failed: ${(e as Error).message}`;
      }
    }
    if (wanted === "timescaledb") throw new Error(`partitioning timescaledb: ${this.timescaleUnavailable}`);
    return "native";
  }

  /** Partition names already attached to the partitioned tables. */
  private async loadPartitions(): Promise<void> {
    const rows = await this.db()`SELECT p.relname AS parent, c.relname AS child
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relname IN ('trades_v2', 'agg_trades_v2', 'quotes_v2')
        AND p.relnamespace = c.relnamespace AND pg_table_is_visible(p.oid)`;
    for (const r of rows) {
      const m = /_p(\d{4})(\d{2})(\d{2})$/.exec(String(r.child));
      if (m) this.partitions.add(`${r.parent}/${Date.UTC(+m[1], +m[2] - 1, +m[3]) / 86_400_000}`);
    }
  }

  /** Creates the day partitions (days since epoch) of `table` that do not exist; caller holds the lock. */
  private async createPartitions(tx: Tx, table: PartitionedTable, days: number[]): Promise<void> {
    for (const day of days) {
      const name = partitionName(table, day);
      const [exists] = await tx`SELECT to_regclass(${name}) IS NOT NULL AS e`;
      if (!exists.e) {
        try {
          await tx.savepoint((sp) =>
            sp.unsafe(
              `CREATE TABLE ${name} PARTITION OF ${table}
               FOR VALUES FROM (${day * DAY_US}) TO (${(day + 1) * DAY_US})`,
            ),
          );
        } catch (e) {
          // 23514: the default partition already holds rows of that day; they stay there
          if ((e as { code?: string }).code !== "23514") throw e;
          this.opts.onNotice?.(`${name} not created: default partition holds rows of that day`);
        }
      }
      this.partitions.add(`${table}/${day}`);
    }
  }

  /** Native partitioning: creates, in a transaction of its own, the day partitions a batch needs. */
  private async ensurePartitions(batch: WriteBatch): Promise<void> {
    const missing = new Map<PartitionedTable, Set<number>>();
    const scan = (table: PartitionedTable, records: { timestamp: number }[]) => {
      let last = Number.NaN;
      for (const r of records) {
        const day = Math.floor(r.timestamp / DAY_US);
        if (day === last) continue;
        last = day;
        if (this.partitions.has(`${table}/${day}`)) continue;
        let s = missing.get(table);
        if (!s) {
          s = new Set();
          missing.set(table, s);
        }
        s.add(day);
      }
    };
    scan("trades_v2", batch.trades);
    scan("agg_trades_v2", batch.aggTrades);
    scan("quotes_v2", batch.quotes);
    if (missing.size === 0) return;
    await this.db().begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${LOCK_NS}, ${LOCK_PARTITIONS})`;
      for (const [table, days] of missing) await this.createPartitions(tx, table, [...days]);
    });
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
    if (this.mode === "native") await this.ensurePartitions(batch);
    const copy = this.opts.insertMethod === "copy";
    const result: WriteResult = {
      trades: 0,
      aggTrades: 0,
      quotes: 0,
      deadLetters: 0,
      gaps: 0,
      candles: 0,
      duplicates: 0,
    };
    await sql.begin(async (tx) => {
      for (const [records, table, key] of [
        [batch.trades, "trades_v2", "trades"],
        [batch.aggTrades, "agg_trades_v2", "aggTrades"],
      ] as const) {
        if (records.length === 0) continue;
        result[key] = copy ? await copyTrades(tx, table, records) : await unnestTrades(tx, table, records);
      }
      if (batch.quotes.length > 0) {
        result.quotes = copy ? await copyQuotes(tx, batch.quotes) : await unnestQuotes(tx, batch.quotes);
      }
      if (batch.deadLetters.length > 0) result.deadLetters = await insertDeadLetters(tx, batch.deadLetters);
      if (batch.gaps.length > 0) result.gaps = await insertGaps(tx, batch.gaps);
      // candles are derived, not source records: a candle written again is not a duplicate
      if (batch.candles && batch.candles.length > 0) result.candles = await upsertCandles(tx, batch.candles);
    });
    const total =
      batch.trades.length +
      batch.aggTrades.length +
      batch.quotes.length +
      batch.deadLetters.length +
      batch.gaps.length;
    result.duplicates =
      total - result.trades - result.aggTrades - result.quotes - result.deadLetters - result.gaps;
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

  async lastSequences(): Promise<LastSequence[]> {
    const rows = await this.query(LAST_SEQUENCES_SQL);
    return rows.map(toLastSequence);
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

/** `trades_v2_p20240808` for day 19943 (days since epoch, UTC). */
export function partitionName(table: string, day: number): string {
  const d = new Date(day * 86_400_000);
  const ymd = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, "0")}${String(d.getUTCDate()).padStart(2, "0")}`;
  return `${table}_p${ymd}`;
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

async function unnestTrades(tx: Tx, table: string, records: TradeV2[]): Promise<number> {
  const n = records.length;
  const cols: unknown[][] = Array.from({ length: 15 }, () => new Array(n));
  for (let i = 0; i < n; i++) {
    const t = records[i];
    cols[0][i] = t.message_id;
    cols[1][i] = t.trade_id;
    cols[2][i] = t.symbol;
    cols[3][i] = t.exchange;
    cols[4][i] = t.asset_class;
    cols[5][i] = t.timestamp;
    cols[6][i] = t.price;
    cols[7][i] = t.quantity;
    cols[8][i] = t.currency;
    cols[9][i] = t.side;
    cols[10][i] = textArrayLiteral(t.trade_conditions);
    cols[11][i] = t.source_sequence;
    cols[12][i] = t.ingestion_timestamp;
    cols[13][i] = t.platform_sequence;
    cols[14][i] = vendorJson(t.vendor_data);
  }
  const r = await tx.unsafe(UNNEST_TRADES(table), cols as never[], { prepare: true });
  return r.count;
}

async function unnestQuotes(tx: Tx, records: QuoteV2[]): Promise<number> {
  const n = records.length;
  const cols: unknown[][] = Array.from({ length: 14 }, () => new Array(n));
  for (let i = 0; i < n; i++) {
    const q = records[i];
    cols[0][i] = q.message_id;
    cols[1][i] = q.symbol;
    cols[2][i] = q.exchange;
    cols[3][i] = q.asset_class;
    cols[4][i] = q.timestamp;
    cols[5][i] = q.bid_price;
    cols[6][i] = q.bid_quantity;
    cols[7][i] = q.ask_price;
    cols[8][i] = q.ask_quantity;
    cols[9][i] = q.currency;
    cols[10][i] = q.source_sequence;
    cols[11][i] = q.ingestion_timestamp;
    cols[12][i] = q.platform_sequence;
    cols[13][i] = vendorJson(q.vendor_data);
  }
  const r = await tx.unsafe(UNNEST_QUOTES, cols as never[], { prepare: true });
  return r.count;
}

async function insertDeadLetters(tx: Tx, letters: DeadLetter[]): Promise<number> {
  const cols = [
    letters.map((d) => d.message_id),
    letters.map((d) => noNul(d.exchange)),
    letters.map((d) => noNul(d.source)),
    letters.map((d) => noNul(d.reason)),
    letters.map((d) => noNul(d.raw)),
    letters.map((d) => d.received_at),
  ];
  const r = await tx.unsafe(UNNEST_DEAD_LETTERS, cols as never[], { prepare: true });
  return r.count;
}

async function insertGaps(tx: Tx, gaps: SequenceGap[]): Promise<number> {
  const cols = [
    gaps.map((g) => g.exchange),
    gaps.map((g) => g.symbol),
    gaps.map((g) => g.data_type),
    gaps.map((g) => g.from_sequence),
    gaps.map((g) => g.to_sequence),
    gaps.map((g) => g.detected_at),
    gaps.map((g) => g.status ?? "open"),
    gaps.map((g) => g.backfilled ?? 0),
  ];
  const r = await tx.unsafe(UNNEST_GAPS, cols as never[], { prepare: true });
  return r.count;
}

/** Upserts closed candles (see UNNEST_CANDLES); returns the candles inserted or amended. */
async function upsertCandles(tx: Tx, candles: CandleV2[]): Promise<number> {
  const cols = [
    candles.map((k) => k.exchange),
    candles.map((k) => k.symbol),
    candles.map((k) => k.asset_class),
    candles.map((k) => k.interval),
    candles.map((k) => k.interval_start),
    candles.map((k) => k.interval_end),
    candles.map((k) => k.open),
    candles.map((k) => k.high),
    candles.map((k) => k.low),
    candles.map((k) => k.close),
    candles.map((k) => k.volume),
    candles.map((k) => k.quote_volume),
    candles.map((k) => k.vwap),
    candles.map((k) => k.trade_count),
    candles.map((k) => noNul(k.first_trade_id)),
    candles.map((k) => noNul(k.last_trade_id)),
  ];
  const r = await tx.unsafe(UNNEST_CANDLES, cols as never[], { prepare: true });
  return r.count;
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

/** Streams rows to `COPY table FROM STDIN` in chunks of ~1000 rows. */
async function copyRows<T>(tx: Tx, table: string, records: T[], line: (r: T) => string): Promise<void> {
  const writable = await tx.unsafe(`COPY ${table} FROM STDIN`).writable();
  function* chunks() {
    for (let i = 0; i < records.length; i += 1000) {
      let s = "";
      const end = Math.min(records.length, i + 1000);
      for (let j = i; j < end; j++) s += line(records[j]);
      yield s;
    }
  }
  await pipeline(Readable.from(chunks()), writable);
}

async function copyTrades(tx: Tx, table: string, records: TradeV2[]): Promise<number> {
  await tx.unsafe(STAGE_TRADES(table));
  await copyRows(
    tx,
    `k2_stage_${table}_t`,
    records,
    (t) =>
      `${copyField(t.message_id)}\t${copyField(t.trade_id)}\t${copyField(t.symbol)}\t${copyField(t.exchange)}\t${copyField(t.asset_class)}\t${t.timestamp}\t${copyField(t.price)}\t${copyField(t.quantity)}\t${copyField(t.currency)}\t${copyField(t.side)}\t${copyField(textArrayLiteral(t.trade_conditions))}\t${copyField(t.source_sequence)}\t${t.ingestion_timestamp}\t${t.platform_sequence}\t${copyField(vendorJson(t.vendor_data))}\n`,
  );
  const r = await tx.unsafe(MOVE_TRADES(table));
  return r.count;
}

async function copyQuotes(tx: Tx, records: QuoteV2[]): Promise<number> {
  await tx.unsafe(STAGE_QUOTES);
  await copyRows(
    tx,
    "k2_stage_quotes_v2_t",
    records,
    (q) =>
      `${copyField(q.message_id)}\t${copyField(q.symbol)}\t${copyField(q.exchange)}\t${copyField(q.asset_class)}\t${q.timestamp}\t${copyField(q.bid_price)}\t${copyField(q.bid_quantity)}\t${copyField(q.ask_price)}\t${copyField(q.ask_quantity)}\t${copyField(q.currency)}\t${copyField(q.source_sequence)}\t${q.ingestion_timestamp}\t${q.platform_sequence}\t${copyField(vendorJson(q.vendor_data))}\n`,
  );
  const r = await tx.unsafe(MOVE_QUOTES);
  return r.count;
}
