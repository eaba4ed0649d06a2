/**
 * Store selection from the `--db` value (`k2 run`, `k2 persist`, `k2 serve`, `k2 query`, `k2 load`;
 * `k2 export` takes DuckDB only):
 *
 *   PATH, duckdb:PATH                      DuckDB file (embedded default; `:memory:` for a throwaway one)
 *   postgres://user:pw@host:5432/db        PostgreSQL (also `postgresql://`); `?max=N` sets the pool
 *                                          size (default 10); other URL parameters go to the postgres
 *                                          package (e.g. `sslmode=require`)
 */
import { DuckDBStore, type DuckDBStoreOptions } from "./duckdb.js";
import { PostgresStore, type PostgresStoreOptions } from "./postgres.js";
import { parseStoreSpec } from "./spec.js";
import type { Store } from "./store.js";

// the parsing lives apart from the stores, so the CLI checks `--db` without loading DuckDB or postgres
export { parseStoreSpec, redactUrl, type StoreSpec, StoreSpecError } from "./spec.js";

/**
 * Creates (without initialising) the store a `--db` value names: a bare path or `duckdb:PATH` →
 * {@link DuckDBStore}; `postgres://…` / `postgresql://…` → {@link PostgresStore}.
 * @throws {StoreSpecError} as {@link parseStoreSpec}
 */
export function createStore(
  spec: string,
  opts: {
    readOnly?: boolean;
    postgres?: Partial<PostgresStoreOptions>;
    /** Options of a DuckDB store (settings, optimistic inserts); ignored for PostgreSQL. */
    duckdb?: Omit<DuckDBStoreOptions, "path" | "readOnly">;
  } = {},
): Store {
  const p = parseStoreSpec(spec);
  if (p.kind === "duckdb") return new DuckDBStore({ ...opts.duckdb, path: p.path, readOnly: opts.readOnly });
  return new PostgresStore({
    ...opts.postgres,
    url: p.url,
    max: p.max ?? opts.postgres?.max,
    readOnly: opts.readOnly,
  });
}
