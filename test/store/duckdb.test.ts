/** DuckDB store: the contract suite on a fresh file per test. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { emptyBatch } from "../../src/store/store.js";
import { storeContract } from "./contract.js";

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
      const { DuckDBInstance } = await import("@duckdb/node-api");
      const instance = await DuckDBInstance.create(path);
      const c = await instance.connect();
      await c.run(`CREATE TABLE sequence_gaps (exchange VARCHAR NOT NULL, symbol VARCHAR NOT NULL,
        data_type VARCHAR NOT NULL, from_sequence BIGINT NOT NULL, to_sequence BIGINT NOT NULL,
        detected_at BIGINT NOT NULL, PRIMARY KEY (exchange, symbol, data_type, from_sequence))`);
      await c.run("INSERT INTO sequence_gaps VALUES ('BINANCE', 'BTCUSDT', 'trades', 10, 14, 1)");
      c.closeSync();
      instance.closeSync();
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
