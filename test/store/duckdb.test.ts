/** DuckDB store: the contract suite on a fresh file per test. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DuckDBStore } from "../../src/store/duckdb.js";
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
