import { extname } from "node:path";
import type { Command } from "commander";
import { exitWithError } from "./common.js";

const TABLES = ["trades_v2", "agg_trades_v2", "quotes_v2", "candles_v2", "dead_letters", "sequence_gaps"];

/** Registers `k2 export`: a table or a read-only query of a DuckDB file to Parquet. */
export function registerExport(program: Command): void {
  program
    .command("export")
    .description("export a table or query of a DuckDB file to Parquet")
    .requiredOption("--db <path>", "DuckDB file")
    .requiredOption("--out <file>", "Parquet file to write (.parquet)")
    .option("--table <name>", `table to export (${TABLES.join(", ")})`)
    .option("--sql <query>", "read-only query to export instead of a table")
    .action(async (opts: { db: string; out: string; table?: string; sql?: string }) => {
      if (!!opts.table === !!opts.sql) exitWithError("--table/--sql: give exactly one of them");
      if (opts.table && !TABLES.includes(opts.table)) {
        exitWithError(`--table: unknown table "${opts.table}" (expected ${TABLES.join(", ")})`);
      }
      if (extname(opts.out) !== ".parquet")
        exitWithError(`--out: expected a .parquet file name, got "${opts.out}"`);
      const { parseStoreSpec } = await import("../store/spec.js");
      let path: string;
      try {
        const spec = parseStoreSpec(opts.db);
        if (spec.kind !== "duckdb") {
          exitWithError(
            "--db: k2 export reads a DuckDB file, not a PostgreSQL URL; from PostgreSQL, export with psql: \\copy (SELECT …) TO 'file.csv' CSV HEADER",
          );
        }
        path = spec.path;
      } catch (e) {
        exitWithError((e as Error).message);
      }
      const { DuckDBStore, StoreLockedError } = await import("../store/duckdb.js");
      const store = new DuckDBStore({ path, readOnly: true });
      try {
        await store.init();
      } catch (e) {
        if (e instanceof StoreLockedError) exitWithError(`--db: ${e.message}`);
        exitWithError(`--db: cannot open ${opts.db} read-only: ${(e as Error).message}`);
      }
      try {
        await store.exportParquet(opts.table ?? opts.sql!, opts.out);
        const [r] = await store.query("SELECT count(*) AS n FROM read_parquet($1)", [opts.out]);
        process.stdout.write(`${JSON.stringify({ out: opts.out, rows: Number(r.n) })}\n`);
      } catch (e) {
        exitWithError(`export failed: ${(e as Error).message}`, 1);
      } finally {
        await store.close();
      }
    });
}
