/**
 * The DuckDB store as `k2 load` opens it: optimistic inserts (a plain INSERT first, `ON CONFLICT DO
 * NOTHING` only after it meets a duplicate) store exactly what the conflict-checking path stores, batch
 * by batch, dead letters included; and the load's memory settings reach DuckDB. Through the CLI: a file
 * loaded in several batches over part of itself stores each trade once and counts the rest as duplicates.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { BinanceAggTradesParser } from "../../src/loaders/binance-aggtrades.js";
import { deadLetter } from "../../src/loaders/load.js";
import type { TradeV2 } from "../../src/schema/records.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { emptyBatch } from "../../src/store/store.js";
import { ensureBuilt, runCli, summaryOf, tempDir } from "./helpers.js";

/**
 * aggTrades rows with ids `from..from+n-1` (one parser, so platform sequences continue); a trade's time
 * follows from its id, as a venue's does (the same trade in two files has the same time).
 */
function rows(from: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = from + i;
    out.push(
      `${id},61685.${String(i % 100).padStart(2, "0")}000000,0.00017000,${id},${id},${1723161600437 + id},${i % 2 === 0 ? "True" : "False"},True`,
    );
  }
  return out;
}

function trades(parser: BinanceAggTradesParser, lines: string[]): TradeV2[] {
  return lines.map((l, i) => parser.parse(l, i + 1, 1_723_161_700_000_000)!);
}

async function count(store: DuckDBStore, table: string): Promise<number> {
  const [r] = await store.query(`SELECT count(*)::INTEGER AS n FROM ${table}`);
  return Number(r.n);
}

describe("DuckDB store with optimistic inserts (k2 load)", () => {
  it("stores new batches, falls back on duplicates (held or within the batch), keeps each batch atomic", async () => {
    const store = new DuckDBStore({ path: ":memory:", optimisticInserts: true });
    await store.init();
    try {
      const parser = new BinanceAggTradesParser("BTCUSDT");
      const b1 = emptyBatch();
      b1.aggTrades.push(...trades(parser, rows(1000, 500)));
      expect(await store.write(b1)).toMatchObject({ aggTrades: 500, duplicates: 0 });

      // half held already, half new, plus a dead letter: the plain INSERT fails, the batch goes again
      const b2 = emptyBatch();
      b2.aggTrades.push(...trades(parser, rows(1250, 500)));
      b2.deadLetters.push(deadLetter("BINANCE", "f.csv", "f.csv", 7, "bad row", "x,y", 1));
      expect(await store.write(b2)).toMatchObject({ aggTrades: 250, deadLetters: 1, duplicates: 250 });

      // after duplicates the next batch checks conflicts directly: all new, all stored
      const b3 = emptyBatch();
      b3.aggTrades.push(...trades(parser, rows(2000, 100)));
      expect(await store.write(b3)).toMatchObject({ aggTrades: 100, duplicates: 0 });

      // back on the plain path: a batch holding one trade twice stores it once
      const b4 = emptyBatch();
      const twice = trades(parser, rows(3000, 10));
      b4.aggTrades.push(...twice, twice[3]);
      expect(await store.write(b4)).toMatchObject({ aggTrades: 10, duplicates: 1 });

      expect(await count(store, "agg_trades_v2")).toBe(500 + 250 + 100 + 10);
      expect(await count(store, "dead_letters")).toBe(1);
      const [ids] = await store.query(
        "SELECT count(DISTINCT trade_id)::INTEGER AS n, min(source_sequence)::INTEGER AS lo, max(source_sequence)::INTEGER AS hi FROM agg_trades_v2",
      );
      expect(ids).toEqual({ n: 860, lo: 1000, hi: 3009 });

      // a batch that fails for another reason is not retried and stores nothing
      const bad = emptyBatch();
      const t = trades(parser, rows(4000, 2));
      bad.aggTrades.push(t[0], { ...t[1], price: "not a number" });
      await expect(store.write(bad)).rejects.toThrow();
      expect(await count(store, "agg_trades_v2")).toBe(860);
      const after = emptyBatch();
      after.aggTrades.push(t[0]);
      expect(await store.write(after)).toMatchObject({ aggTrades: 1, duplicates: 0 });
    } finally {
      await store.close();
    }
  });

  it("opens DuckDB with the settings given (memory_limit, temp_directory)", async () => {
    const dir = await tempDir("bulk");
    const store = new DuckDBStore({
      path: join(dir, "limits.duckdb"),
      config: { memory_limit: "100MB", temp_directory: join(dir, "spill") },
    });
    await store.init();
    try {
      const [r] = await store.query(
        "SELECT current_setting('memory_limit') AS m, current_setting('temp_directory') AS t",
      );
      // DuckDB prints the limit in its own unit (100MB → 95.3 MiB)
      expect(String(r.m)).toMatch(/^95\.3 MiB$/);
      expect(r.t).toBe(join(dir, "spill"));
    } finally {
      await store.close();
    }
  });
});

describe("k2 load binance-aggtrades in several batches", () => {
  beforeAll(() => ensureBuilt(), 600_000);

  it("a file overlapping what is stored loads only the new trades; bad --memory-limit exits 2", async () => {
    const dir = await tempDir("bulk");
    const db = join(dir, "overlap.duckdb");
    const first = join(dir, "first.csv");
    const second = join(dir, "second.csv");
    await writeFile(first, `${rows(5000, 2500).join("\n")}\n`);
    // ids 6000..8999: the first 1,500 held already, the other 1,500 new
    await writeFile(second, `${rows(6000, 3000).join("\n")}\n`);
    const load = async (file: string, extra: string[] = []) => {
      const r = await runCli(
        [
          "load",
          "binance-aggtrades",
          file,
          "--symbol",
          "BTCUSDT",
          "--db",
          db,
          "--batch-size",
          "1000",
          ...extra,
        ],
        120_000,
      );
      expect(r.code, r.stderr).toBe(0);
      return summaryOf(r);
    };
    expect(await load(first, ["--memory-limit", "64MB"])).toMatchObject({
      rows: 2500,
      loaded: 2500,
      duplicates: 0,
    });
    expect(await load(second)).toMatchObject({ rows: 3000, loaded: 1500, duplicates: 1500 });
    expect(await load(second)).toMatchObject({ rows: 3000, loaded: 0, duplicates: 3000 });

    const store = new DuckDBStore({ path: db, readOnly: true });
    await store.init();
    try {
      expect(await count(store, "agg_trades_v2")).toBe(4000);
    } finally {
      await store.close();
    }

    const bad = await runCli([
      "load",
      "binance-aggtrades",
      first,
      "--symbol",
      "BTCUSDT",
      "--db",
      db,
      "--memory-limit",
      "lots",
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--memory-limit/);
  }, 300_000);
});
