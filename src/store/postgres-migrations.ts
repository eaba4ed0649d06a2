/**
 * PostgreSQL schema: versioned migrations and time partitioning of the market tables.
 *
 * Tables are the catalogue's (`src/schema/tables.ts`), created by {@link createTableSql} in PostgreSQL
 * types: NUMERIC(18,8) prices and quantities, BIGINT µs times, UUID message ids, JSONB vendor_data,
 * TEXT[] trade_conditions. A column added to the catalogue later (`addedIn: N`) is added by migration N
 * (`addedColumns(N)`).
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
 * Unique keys and partitioning: PostgreSQL only allows a unique key on a partitioned table when it
 * contains the partition column, so trades_v2 / agg_trades_v2 have PRIMARY KEY (exchange, symbol,
 * trade_id, "timestamp") and quotes_v2 none (its key is kept in `quote_keys`; see `postgres.ts`).
 *
 * Migrations are versioned in `k2_migrations`, idempotent, and serialized across processes with a
 * transaction-scoped advisory lock, so several processes may start at once.
 */
import type postgres from "postgres";
import { TABLES } from "../schema/tables.js";
import { addedColumnsSql, createTableSql } from "./sql.js";
import type { WriteBatch } from "./store.js";

/** How market tables are partitioned by time. */
export type Partitioning = "timescaledb" | "native";

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

interface Migration {
  version: number;
  name: string;
  up(tx: Tx, partitioning: Partitioning): Promise<void>;
}

/** The columns the catalogue marks `addedIn: version`, added to their tables. */
function addedColumns(version: number): Migration["up"] {
  return async (tx) => {
    for (const t of Object.values(TABLES)) {
      for (const sql of addedColumnsSql(t, "postgres", version)) await tx.unsafe(sql);
    }
  };
}

/** Versioned migrations, applied in order, each once (recorded in `k2_migrations`). */
const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: "schema-v2 tables, time-partitioned by day",
    async up(tx, partitioning) {
      const suffix = partitioning === "native" ? ` PARTITION BY RANGE ("timestamp")` : "";
      const tradeKey = [...TABLES.trades_v2.key, "timestamp"];
      await tx.unsafe(createTableSql(TABLES.trades_v2, "postgres", { key: tradeKey, suffix }));
      await tx.unsafe(createTableSql(TABLES.agg_trades_v2, "postgres", { key: tradeKey, suffix }));
      // the quote key is enforced by quote_keys (it does not contain the partition column)
      await tx.unsafe(createTableSql(TABLES.quotes_v2, "postgres", { key: null, suffix }));
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
      await tx.unsafe(createTableSql(TABLES.dead_letters, "postgres"));
      await tx.unsafe(createTableSql(TABLES.sequence_gaps, "postgres"));
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
      await tx.unsafe(createTableSql(TABLES.candles_v2, "postgres"));
    },
  },
  {
    version: 4,
    name: "sequence_gaps: backfill status and records backfilled",
    up: addedColumns(4),
  },
  {
    version: 5,
    name: "book_changes_v2 and book_snapshots_v2: order-book changes and periodic top-N snapshots",
    async up(tx) {
      await tx.unsafe(createTableSql(TABLES.book_changes_v2, "postgres"));
      await tx.unsafe(
        `CREATE INDEX IF NOT EXISTS book_changes_v2_symbol_ts ON book_changes_v2 (symbol, "timestamp")`,
      );
      // reads page by (timestamp, exchange, symbol, depth)
      await tx.unsafe(createTableSql(TABLES.book_snapshots_v2, "postgres"));
      await tx.unsafe(
        `CREATE INDEX IF NOT EXISTS book_snapshots_v2_time ON book_snapshots_v2 ("timestamp", exchange, symbol)`,
      );
    },
  },
];

/** The latest migration version this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** Options of {@link PostgresSchema.migrate}. */
export interface MigrateOptions {
  /** `auto`: TimescaleDB when available, else native (only used when the database is first migrated). */
  partitioning?: "auto" | Partitioning;
  /** Native partitioning: days created ahead at start, after today (default 7). */
  premakeDays?: number;
  /** Server notices. */
  onNotice?: (message: string) => void;
}

/** The schema state of one store: its partitioning and the day partitions known to exist. */
export class PostgresSchema {
  /** How the market tables are partitioned (known after `migrate`). */
  mode: Partitioning | null = null;
  /** Why TimescaleDB was not used (null when it is, or when the choice was made earlier). */
  timescaleUnavailable: string | null = null;
  /** `table/day` partitions known to exist (native partitioning). */
  private readonly partitions = new Set<string>();

  constructor(private readonly opts: MigrateOptions = {}) {}

  /**
   * Applies missing migrations under an advisory lock and creates the day partitions ahead.
   * @throws when the database was migrated by a newer k2, or `partitioning: "timescaledb"` is asked
   *   for but unavailable, or the recorded partitioning differs from the one asked for
   */
  async migrate(sql: Sql): Promise<void> {
    await sql.begin(async (tx) => {
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
      let mode: Partitioning;
      if (recorded) {
        mode = recorded.value as Partitioning;
        if (wanted !== "auto" && wanted !== mode) {
          throw new Error(`database is partitioned with ${mode}, not ${wanted}`);
        }
      } else {
        mode = await this.choosePartitioning(tx, wanted);
        await tx`INSERT INTO k2_meta (key, value) VALUES ('partitioning', ${mode})`;
      }
      this.mode = mode;
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await m.up(tx, mode);
        await tx`INSERT INTO k2_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      }
      if (mode === "native") {
        // the lock writers take for on-demand partitions (always after the migrations lock: no deadlock)
        await tx`SELECT pg_advisory_xact_lock(${LOCK_NS}, ${LOCK_PARTITIONS})`;
        const today = Math.floor(Date.now() / 86_400_000);
        const days: number[] = [];
        for (let d = today - 1; d <= today + (this.opts.premakeDays ?? 7); d++) days.push(d);
        for (const table of PARTITIONED) await this.createPartitions(tx, table, days);
      }
    });
    if (this.mode === "native") await this.loadPartitions(sql);
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
  private async loadPartitions(sql: Sql): Promise<void> {
    const rows = await sql`SELECT p.relname AS parent, c.relname AS child
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
  async ensurePartitions(sql: Sql, batch: WriteBatch): Promise<void> {
    if (this.mode !== "native") return;
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
    await sql.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${LOCK_NS}, ${LOCK_PARTITIONS})`;
      for (const [table, days] of missing) await this.createPartitions(tx, table, [...days]);
    });
  }
}

/** `trades_v2_p20240808` for day 19943 (days since epoch, UTC). */
export function partitionName(table: string, day: number): string {
  const d = new Date(day * 86_400_000);
  const ymd = `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, "0")}${String(d.getUTCDate()).padStart(2, "0")}`;
  return `${table}_p${ymd}`;
}
