/** Defaults of the historical loaders, apart from the loader so the CLI's help shows them cheaply. */

/** Default records per store write (the embedded store reaches ~80k rows/s from 5,000 up). */
export const DEFAULT_LOAD_BATCH = 20_000;

/**
 * Default DuckDB `memory_limit` of `k2 load` (env `K2_LOAD_MEMORY_LIMIT`, flag `--memory-limit`): what
 * DuckDB may hold in memory (its buffers and the primary-key index) before it spills to its temp
 * directory. The loader's own JS heap (two batches) comes on top.
 */
export const DEFAULT_LOAD_MEMORY_LIMIT = "256MB";
