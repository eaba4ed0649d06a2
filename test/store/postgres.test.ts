/**
 * PostgreSQL store: the contract suite (default unnest loading; COPY in postgres-copy.test.ts) plus what
 * only PostgreSQL has:
 * day partitions, the migrations table, exact type parsing and read-only queries. Needs the loopback
 * server (`K2_TEST_PG_URL`, default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStore } from "../../src/store/postgres.js";
import { DAY_US, partitionName } from "../../src/store/postgres-migrations.js";
import { emptyBatch } from "../../src/store/store.js";
import { DAY0_US, quote, storeContract, trade } from "./contract.js";
import { createTestDatabase, postgresHarness, type TestDatabase } from "./pg.js";

storeContract("postgres (unnest)", postgresHarness("unnest"));

describe("postgres store", () => {
  let db: TestDatabase;
  let store: PostgresStore;

  beforeAll(async () => {
    db = await createTestDatabase();
    // three processes starting at once
    const stores = [0, 1, 2].map(() => new PostgresStore({ url: db.url, max: 2 }));
    await Promise.all(stores.map((s) => s.init()));
    for (const s of stores.slice(1)) await s.close();
    store = stores[0];
  });

  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  it("applies each migration once, under the advisory lock, when several stores start at once", async () => {
    const rows = await store.query(
      "SELECT version, count(*) AS n FROM k2_migrations GROUP BY version ORDER BY version",
    );
    expect(rows).toEqual([
      { version: 1, n: "1" },
      { version: 2, n: "1" },
      { version: 3, n: "1" },
      { version: 4, n: "1" },
      { version: 5, n: "1" },
    ]);
  });

  it("applies only the missing migrations to a database at an older version", async () => {
    // back to version 1: without migration 2's indexes, migration 3's candles_v2, migration 4's gap
    // status columns and migration 5's book tables, with a gap row written by that version
    await store.query("DROP INDEX trades_v2_symbol_time, agg_trades_v2_symbol_time, quotes_v2_symbol_time");
    await store.query("DROP TABLE candles_v2");
    await store.query("DROP TABLE book_changes_v2, book_snapshots_v2");
    await store.query("ALTER TABLE sequence_gaps DROP COLUMN status, DROP COLUMN backfilled");
    await store.query(
      "INSERT INTO sequence_gaps VALUES ('BINANCE', 'BTCUSDT', 'trades', 10, 14, 1723075200000000)",
    );
    await store.query("DELETE FROM k2_migrations WHERE version IN (2, 3, 4, 5)");
    const upgrade = new PostgresStore({ url: db.url, max: 1 });
    await upgrade.init();
    await upgrade.close();
    const idx = await store.query(
      "SELECT indexname FROM pg_indexes WHERE indexname LIKE '%_symbol_time' ORDER BY 1",
    );
    expect(idx.map((r) => r.indexname)).toEqual([
      "agg_trades_v2_symbol_time",
      "quotes_v2_symbol_time",
      "trades_v2_symbol_time",
    ]);
    const [candles] = await store.query("SELECT to_regclass('candles_v2') IS NOT NULL AS e");
    expect(candles.e).toBe(true);
    const [books] = await store.query(
      "SELECT to_regclass('book_changes_v2') IS NOT NULL AND to_regclass('book_snapshots_v2') IS NOT NULL AS e",
    );
    expect(books.e).toBe(true);
    const versions = await store.query("SELECT version FROM k2_migrations ORDER BY version");
    expect(versions.map((r) => r.version)).toEqual([1, 2, 3, 4, 5]);
    // the old gap row reads as open, nothing backfilled
    expect(await store.query("SELECT from_sequence, status, backfilled FROM sequence_gaps")).toEqual([
      { from_sequence: "10", status: "open", backfilled: "0" },
    ]);
    await store.query("DELETE FROM sequence_gaps");
  });

  it("refuses a database migrated by a newer k2", async () => {
    await store.query("INSERT INTO k2_migrations (version, name) VALUES (99, 'from the future')");
    const old = new PostgresStore({ url: db.url, max: 1 });
    try {
      await expect(old.init()).rejects.toThrow(/schema version 99 is newer than this k2 knows \(5\)/);
    } finally {
      await old.close();
      await store.query("DELETE FROM k2_migrations WHERE version = 99");
    }
  });

  it("uses TimescaleDB when available, else native day partitions with a default partition", async () => {
    const [ext] = await store.query(
      "SELECT count(*) AS n FROM pg_available_extensions WHERE name = 'timescaledb'",
    );
    const timescale = ext.n !== "0";
    expect(store.partitioning).toBe(timescale ? "timescaledb" : "native");
    if (timescale) return;
    const [kind] = await store.query("SELECT relkind::text AS k FROM pg_class WHERE relname = 'trades_v2'");
    expect(kind.k).toBe("p");
    // made ahead: today and the next 7 days, for every partitioned table
    const today = Math.floor(Date.now() / 86_400_000);
    const names = ["trades_v2", "agg_trades_v2", "quotes_v2"].flatMap((t) =>
      [today, today + 7].map((d) => partitionName(t, d)),
    );
    const held = await store.query(
      "SELECT relname FROM pg_class WHERE relname = ANY($1::text[]) AND relispartition",
      [`{${names.join(",")}}`],
    );
    expect(held.map((r) => r.relname).sort()).toEqual([...names].sort());
  });

  it("creates the day partitions a batch needs on demand and keeps the default partition empty", async () => {
    if (store.partitioning !== "native") return;
    const days = [0, 1, 3].map((d) => DAY0_US + d * DAY_US + 42);
    const b = emptyBatch();
    b.trades = days.map((ts, i) => trade(500 + i, { timestamp: ts }));
    b.aggTrades = days.map((ts, i) => trade(500 + i, { timestamp: ts }, "aggtrades"));
    b.quotes = days.map((ts, i) => quote(500 + i, { timestamp: ts }));
    expect(await store.write(b)).toMatchObject({ trades: 3, aggTrades: 3, quotes: 3 });
    for (const table of ["trades_v2", "agg_trades_v2", "quotes_v2"]) {
      const rows = await store.query(
        `SELECT tableoid::regclass::text AS part, count(*) AS n FROM ${table} GROUP BY 1 ORDER BY 1`,
      );
      expect(rows).toEqual(
        ["20240808", "20240809", "20240811"].map((d) => ({ part: `${table}_p${d}`, n: "1" })),
      );
      const [def] = await store.query(`SELECT count(*) AS n FROM ${table}_default`);
      expect(def.n).toBe("0");
    }
    // the boundary: the last µs of a day and the first of the next go to different partitions
    const edge = emptyBatch();
    edge.trades = [
      trade(600, { timestamp: DAY0_US + 5 * DAY_US - 1 }),
      trade(601, { timestamp: DAY0_US + 5 * DAY_US }),
    ];
    await store.write(edge);
    const parts = await store.query(
      `SELECT tableoid::regclass::text AS part FROM trades_v2 WHERE trade_id IN ('BINANCE-3735683859', 'BINANCE-3735683860') ORDER BY trade_id`,
    );
    expect(parts.map((r) => r.part)).toEqual(["trades_v2_p20240812", "trades_v2_p20240813"]);
  });

  it("returns NUMERIC and BIGINT as exact strings, JSONB as objects, timestamps as ISO strings", async () => {
    const [r] = await store.query(
      `SELECT 12345678901234567890.123456789012::numeric AS n, 9007199254740993::bigint AS b, 7::int AS i,
         '{"a":"1","b":[1,2]}'::jsonb AS j, '2024-08-08T00:00:00Z'::timestamptz AS t,
         ARRAY[1.5, 2.25]::numeric[] AS na, $1::text AS p`,
      ["x"],
    );
    expect(r).toEqual({
      n: "12345678901234567890.123456789012",
      b: "9007199254740993",
      i: 7,
      j: { a: "1", b: [1, 2] },
      t: "2024-08-08T00:00:00.000Z",
      na: ["1.5", "2.25"],
      p: "x",
    });
  });

  it("opens read-only for queries: reads work, writes are refused", async () => {
    const ro = new PostgresStore({ url: db.url, readOnly: true });
    await ro.init();
    try {
      const [r] = await ro.query("SELECT count(*) AS n FROM k2_migrations");
      expect(r.n).toBe("5");
      await expect(ro.query("DELETE FROM trades_v2")).rejects.toThrow(/read-only transaction/);
      await expect(ro.write(emptyBatch())).rejects.toThrow(/read-only/);
      expect(await ro.check()).toBeNull();
    } finally {
      await ro.close();
    }
  });

  it("reports an unreachable server in check() instead of throwing", async () => {
    const down = new PostgresStore({ url: "postgres://postgres@127.0.0.1:1/none", readOnly: true });
    await expect(down.init()).rejects.toThrow();
    expect(await down.check()).toMatch(/store not reachable/);
    await down.close();
  });
});
