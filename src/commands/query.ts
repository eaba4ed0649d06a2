import { type Command, Option } from "commander";
import { formatRows } from "../query-format.js";
import { DuckDBStore } from "../store/duckdb.js";
import { fail } from "./common.js";

/** Registers `k2 query`. */
export function registerQuery(program: Command): void {
  program
    .command("query")
    .description("run a read-only SQL query over a DuckDB file")
    .requiredOption("--db <path>", "DuckDB file")
    .addOption(
      new Option("--format <fmt>", "output format").choices(["json", "csv", "table"]).default("table"),
    )
    .argument("<sql>", "SQL (read-only)")
    .action(async (sql: string, opts: { db: string; format: "json" | "csv" | "table" }) => {
      const store = new DuckDBStore({ path: opts.db, readOnly: true });
      try {
        await store.init();
      } catch (e) {
        fail(`--db: cannot open ${opts.db} read-only: ${(e as Error).message}`);
      }
      try {
        const rows = await store.query(sql);
        process.stdout.write(formatRows(rows, opts.format));
      } catch (e) {
        fail(`query failed: ${(e as Error).message}`, 1);
      } finally {
        await store.close();
      }
    });
}
