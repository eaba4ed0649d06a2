import { type Command, Option } from "commander";
import type { StoreSpec } from "../store/spec.js";
import type { Store } from "../store/store.js";
import { exitWithError } from "./common.js";

/** Registers `k2 query`. */
export function registerQuery(program: Command): void {
  program
    .command("query")
    .description("run a read-only SQL query over a DuckDB file or a PostgreSQL database")
    .requiredOption(
      "--db <spec>",
      "DuckDB file PATH, duckdb:PATH or postgres://USER@HOST:5432/DB (read-only transaction)",
    )
    .addOption(
      new Option("--format <fmt>", "output format").choices(["json", "csv", "table"]).default("table"),
    )
    .argument("<sql>", "SQL (read-only)")
    .action(async (sql: string, opts: { db: string; format: "json" | "csv" | "table" }) => {
      const { parseStoreSpec, StoreSpecError } = await import("../store/spec.js");
      let spec: StoreSpec;
      try {
        spec = parseStoreSpec(opts.db);
      } catch (e) {
        if (e instanceof StoreSpecError) exitWithError(e.message);
        throw e;
      }
      // a DuckDB file does not load the PostgreSQL client (start-up time counts)
      const [{ formatRows }, { DuckDBStore, StoreLockedError }] = await Promise.all([
        import("../query-format.js"),
        import("../store/duckdb.js"),
      ]);
      const store: Store =
        spec.kind === "duckdb"
          ? new DuckDBStore({ path: spec.path, readOnly: true })
          : (await import("../store/index.js")).createStore(opts.db, { readOnly: true });
      try {
        await store.init();
      } catch (e) {
        const shown = spec.kind === "duckdb" ? spec.path : spec.display;
        await store.close().catch(() => undefined);
        if (e instanceof StoreLockedError) exitWithError(`--db: ${e.message}`);
        exitWithError(`--db: cannot open ${shown} read-only: ${(e as Error).message}`);
      }
      try {
        const rows = await store.query(sql);
        process.stdout.write(formatRows(rows, opts.format));
      } catch (e) {
        exitWithError(`query failed: ${(e as Error).message}`, 1);
      } finally {
        await store.close();
      }
    });
}
