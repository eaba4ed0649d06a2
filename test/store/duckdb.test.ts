/** DuckDB store: the contract suite on a fresh file per test. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { TABLES } from "../../src/schema/tables.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { createTableSql } from "../../src/store/sql.js";
import { emptyBatch, type WriteBatch } from "../../src/store/store.js";
import { core, quote, storeContract, trade } from "./contract.js";

/** Tables of the file with a primary key, by name. */
async function keyedTables(store: DuckDBStore): Promise<string[]> {
  const rows = await store.query(
    "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' ORDER BY table_name",
  );
  return rows.map((r) => String(r.table_name));
}

/** Writes a DuckDB file at `path` as an earlier version left it: `statements` run on a fresh file. */
async function writeOldFile(path: string, statements: string[]): Promise<void> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(path);
  const c = await instance.connect();
  for (const sql of statements) await c.run(sql);
  c.closeSync();
  instance.closeSync();
}

function trades(t: WriteBatch["trades"], aggTrades: WriteBatch["aggTrades"] = []): WriteBatch {
  return { ...emptyBatch(), trades: t, aggTrades };
}

storeContract("duckdb", {
  // one writer process per file (DuckDB's file lock); concurrency is PostgreSQL's job
  concurrentWriters: false,
  async fresh() {
    const dir = mkdtempSync(join(tmpdir(), "k2-store-"));
    return {
      open: () => new DuckDBStore({ path: join(dir, "k2.duckdb") }),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
});

describe("duckdb store migrations", () => {
  it("adds the gap status columns to a file written before them; old gaps read as open", async () => {
    const dir = mkdtempSync(join(tmpdir(), "k2-store-"));
    const path = join(dir, "old.duckdb");
    try {
      // a sequence_gaps table as earlier versions created it, with one row
      await writeOldFile(path, [
        `CREATE TABLE sequence_gaps (exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL,
        data_type VARCHAR NOT NULL, from_sequence BIGINT NOT NULL, to_sequence BIGINT NOT NULL,
        detected_at BIGINT NOT NULL, PRIMARY KEY (exchange, symbol, data_type, from_sequence))`,
        "INSERT INTO sequence_gaps VALUES ('BINANCE', 'BTCUSDT', 'trades', 10, 14, 1)",
      ]);
      const store = new DuckDBStore({ path });
      await store.init();
      try {
        expect(await store.query("SELECT from_sequence, status, backfilled FROM sequence_gaps")).toEqual([
          { from_sequence: "10", status: "open", backfilled: "0" },
        ]);
        await store.write({
          ...emptyBatch(),
          gaps: [
            {
              exchange: "BINANCE",
              symbol: "BTCUSDT",
              data_type: "trades",
              from_sequence: 10,
              to_sequence: 14,
              detected_at: 1,
              status: "filled",
              backfilled: 5,
            },
          ],
        });
        expect(await store.query("SELECT status, backfilled FROM sequence_gaps")).toEqual([
          { status: "filled", backfilled: "5" },
        ]);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("duckdb direct quote appends", () => {
  it("leave nothing behind a duplicate batch that a garbage collection could flush into a later batch's transaction", async () => {
    // the collector destroys a dropped appender, and destroying flushes what it still holds
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const dir = mkdtempSync(join(tmpdir(), "k2-store-"));
    const store = new DuckDBStore({ path: join(dir, "k2.duckdb") });
    await store.init();
    try {
      for (let round = 0; round < 5; round++) {
        const quotes = [quote(round * 10), quote(round * 10 + 1)];
        await store.write({ ...emptyBatch(), quotes });
        // the same quotes again: the direct append fails on the held keys, the batch goes through staging
        expect((await store.write({ ...emptyBatch(), quotes })).duplicates).toBe(2);
        // a new batch, with collections between each of its statements
        let writing = true;
        const collect = (async () => {
          while (writing) {
            gc();
            await new Promise((r) => setImmediate(r));
          }
        })();
        const next = { ...emptyBatch(), trades: [trade(round)], quotes: [quote(round * 10 + 2)] };
        try {
          expect(core(await store.write(next))).toMatchObject({ trades: 1, quotes: 1, duplicates: 0 });
        } finally {
          writing = false;
          await collect;
        }
      }
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("duckdb trade tables without a primary key", () => {
  it("creates them unkeyed and still stores each trade once: the first of a batch, none held already", async () => {
    const dir = mkdtempSync(join(tmpdir(), "k2-store-"));
    const store = new DuckDBStore({ path: join(dir, "k2.duckdb") });
    try {
      await store.init();
      const keyed = await keyedTables(store);
      expect(keyed).not.toContain("trades_v2");
      expect(keyed).not.toContain("agg_trades_v2");
      expect(keyed).toContain("quotes_v2");
      // trade 5 twice in one batch: the first appended is the one stored
      const first = await store.write(
        trades([trade(5, { platform_sequence: 500 }), trade(5, { platform_sequence: 501 }), trade(9)]),
      );
      expect(first).toMatchObject({ trades: 2, duplicates: 1 });
      // a later batch whose time range covers the held trades from far before to far after them
      const again = await store.write(
        trades(
          [
            trade(-100_000, { platform_sequence: 7 }),
            trade(5, { platform_sequence: 502 }),
            trade(9),
            trade(100_000, { platform_sequence: 8 }),
          ],
          [trade(5, {}, "aggtrades")],
        ),
      );
      expect(again).toMatchObject({ trades: 2, aggTrades: 1, duplicates: 2 });
      // the same trade id in another symbol is another trade
      expect(await store.write(trades([trade(5, { symbol: "ETHUSDT" })]))).toMatchObject({ trades: 1 });
      const rows = await store.query(
        'SELECT trade_id, symbol, platform_sequence FROM trades_v2 ORDER BY symbol, "timestamp"',
      );
      expect(rows.map((r) => [r.trade_id, r.symbol, String(r.platform_sequence)])).toEqual([
        ["BINANCE-3735583259", "BTCUSDT", "7"],
        ["BINANCE-3735683264", "BTCUSDT", "500"],
        ["BINANCE-3735683268", "BTCUSDT", "10"],
        ["BINANCE-3735783259", "BTCUSDT", "8"],
        ["BINANCE-3735683264", "ETHUSDT", "6"],
      ]);
      expect(await store.query("SELECT count(*)::INTEGER AS n FROM agg_trades_v2")).toEqual([{ n: 1 }]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps working on a file created with the trade tables' primary key (kept, conflict-checked)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "k2-store-"));
    const path = join(dir, "old.duckdb");
    try {
      // the trade tables as earlier versions created them, each with one trade
      await writeOldFile(
        path,
        [TABLES.trades_v2, TABLES.agg_trades_v2].flatMap((t) => [
          createTableSql(t, "duckdb"),
          `INSERT INTO ${t.name} SELECT '${trade(1).message_id}'::UUID, 'BINANCE-3735683260', 'BTCUSDT',
           'BINANCE', 'crypto', ${trade(1).timestamp}, 61707.68, 0.001, 'USDT', 'SELL', [], 3735683260,
           ${trade(1).ingestion_timestamp}, 2, '{}'`,
        ]),
      );
      for (const optimisticInserts of [false, true]) {
        const store = new DuckDBStore({ path, optimisticInserts });
        await store.init();
        try {
          expect(await keyedTables(store)).toEqual(expect.arrayContaining(["agg_trades_v2", "trades_v2"]));
          const n = optimisticInserts ? 3 : 2;
          // the held trade 1 again (a later receipt), new ones, one of them twice
          const r = await store.write(
            trades(
              [trade(1, { ingestion_timestamp: trade(1).ingestion_timestamp + 1 }), trade(n), trade(n)],
              [trade(1, {}, "aggtrades"), trade(n, {}, "aggtrades")],
            ),
          );
          expect(r).toMatchObject({ trades: 1, aggTrades: 1, duplicates: 3 });
        } finally {
          await store.close();
        }
      }
      const store = new DuckDBStore({ path, readOnly: true });
      await store.init();
      try {
        expect(await store.query("SELECT count(*)::INTEGER AS n FROM trades_v2")).toEqual([{ n: 3 }]);
        expect(await store.query("SELECT count(*)::INTEGER AS n FROM agg_trades_v2")).toEqual([{ n: 3 }]);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
