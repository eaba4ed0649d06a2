import type { Command } from "commander";
import { DEFAULT_LOAD_BATCH, DEFAULT_LOAD_MEMORY_LIMIT } from "../loaders/defaults.js";
import type { LoadSummary, RowParser } from "../loaders/load.js";
import { exitWithError } from "./common.js";

interface LoadFlags {
  db?: string;
  batchSize: string;
  memoryLimit?: string;
  tempDir?: string;
}

/** DuckDB settings of a load: `memory_limit` and, when given, `temp_directory`. */
export interface LoadDuckDBSettings {
  memory_limit: string;
  temp_directory?: string;
}

/** `--memory-limit`, else `K2_LOAD_MEMORY_LIMIT`, else the default; `--temp-dir`, else `K2_LOAD_TEMP_DIR`. */
function duckdbSettingsOf(flags: LoadFlags): LoadDuckDBSettings {
  const limit = (flags.memoryLimit ?? process.env.K2_LOAD_MEMORY_LIMIT ?? DEFAULT_LOAD_MEMORY_LIMIT).trim();
  if (!/^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i.test(limit)) {
    exitWithError(`--memory-limit: expected a size like 256MB or 1GiB, got "${limit}"`);
  }
  const settings: LoadDuckDBSettings = { memory_limit: limit };
  const temp = flags.tempDir ?? process.env.K2_LOAD_TEMP_DIR;
  if (temp !== undefined) {
    if (temp.trim() === "") exitWithError("--temp-dir: empty path");
    settings.temp_directory = temp;
  }
  return settings;
}

function batchSizeOf(v: string): number {
  const n = /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > 1_000_000) {
    exitWithError(`--batch-size: expected an integer from 1 to 1000000, got "${v}"`);
  }
  return n;
}

async function dbOf(flags: LoadFlags): Promise<string> {
  const { parseStoreSpec } = await import("../store/spec.js");
  const db = flags.db ?? process.env.K2_DB ?? "k2.duckdb";
  try {
    parseStoreSpec(db);
  } catch (e) {
    exitWithError((e as Error).message);
  }
  return db;
}

/** A loader's row parser and the exchange its rows belong to. */
interface LoaderParser {
  parser: RowParser;
  exchange: string;
}

/**
 * Checks the shared flags, makes the loader's parser (`makeParser`; an error of one of `inputErrors`
 * is bad input: its message, exit 2), opens the file and the store, loads into `target`, prints the
 * summary line; exits 2 on bad input, 1 on failure.
 */
async function runLoad(
  file: string,
  flags: LoadFlags,
  target: "trades" | "aggTrades",
  inputErrors: (abstract new (...args: never[]) => Error)[],
  makeParser: () => Promise<LoaderParser>,
): Promise<void> {
  const db = await dbOf(flags);
  const batchSize = batchSizeOf(flags.batchSize);
  const duckdb = duckdbSettingsOf(flags);
  let made: LoaderParser;
  try {
    made = await makeParser();
  } catch (e) {
    if (inputErrors.some((E) => e instanceof E)) exitWithError((e as Error).message);
    throw e;
  }
  const { parser, exchange } = made;
  const [{ MappingError }, { loadTrades }, { openLineSource, SourceError }, { createStore }] =
    await Promise.all([
      import("../loaders/csv.js"),
      import("../loaders/load.js"),
      import("../loaders/source.js"),
      import("../store/index.js"),
    ]);
  let source: Awaited<ReturnType<typeof openLineSource>>;
  try {
    source = await openLineSource(file);
  } catch (e) {
    if (e instanceof SourceError) exitWithError(`<file>: ${e.message}`);
    throw e;
  }
  // a DuckDB store holds at most memory_limit (spilling to temp_directory, by default <db>.tmp) and
  // inserts each batch with a plain INSERT first (see DuckDBStoreOptions.optimisticInserts)
  const store = createStore(db, { duckdb: { config: { ...duckdb }, optimisticInserts: true } });
  try {
    await store.init();
  } catch (e) {
    source.close();
    exitWithError(`--db: cannot open ${db}: ${(e as Error).message}`);
  }
  let summary: LoadSummary;
  try {
    summary = await loadTrades({
      file,
      source,
      parser,
      store,
      target,
      exchange,
      batchSize,
      progress: process.stderr.isTTY === true,
    });
  } catch (e) {
    await store.close().catch(() => undefined);
    if (e instanceof MappingError) exitWithError(e.message);
    if (e instanceof SourceError) exitWithError(`<file>: ${file}: ${e.message}`, 1);
    exitWithError(`load failed: ${(e as Error).message}`, 1);
  }
  await store.close();
  // the JSON line counts rejected rows; the first few say why, on stderr
  for (const r of summary.firstRejects)
    process.stderr.write(`k2: ${file}:${r.line}: rejected: ${r.reason}\n`);
  const more = summary.rejected - summary.firstRejects.length;
  if (summary.rejected > 0) {
    process.stderr.write(
      `k2: ${summary.rejected.toLocaleString("en-US")} rows rejected${more > 0 ? ` (${more.toLocaleString("en-US")} more not shown)` : ""}; every one is in dead_letters with its line and reason\n`,
    );
  }
  process.stdout.write(
    `${JSON.stringify({
      rows: summary.rows,
      loaded: summary.loaded,
      duplicates: summary.duplicates,
      rejected: summary.rejected,
      table: summary.table,
      elapsed_ms: summary.elapsed_ms,
    })}\n`,
  );
}

/** Adds the flags every loader shares: `--db`, `--batch-size`, `--memory-limit`, `--temp-dir`. */
function withStoreFlags(c: Command): Command {
  return c
    .option(
      "--db <spec>",
      "store: DuckDB file PATH or postgres://USER@HOST:5432/DB (env K2_DB; default ./k2.duckdb)",
    )
    .option("--batch-size <n>", "records per store write", String(DEFAULT_LOAD_BATCH))
    .option(
      "--memory-limit <size>",
      `DuckDB memory_limit: memory DuckDB may hold before spilling to --temp-dir (env K2_LOAD_MEMORY_LIMIT; default ${DEFAULT_LOAD_MEMORY_LIMIT})`,
    )
    .option(
      "--temp-dir <dir>",
      "DuckDB temp_directory for spilling (env K2_LOAD_TEMP_DIR; default DuckDB's <db>.tmp)",
    );
}

/** Registers `k2 load binance-aggtrades` and `k2 load csv`. */
export function registerLoad(program: Command): void {
  const load = program
    .command("load")
    .description(
      "load historical trade files into the store (streamed, idempotent, bad rows to dead_letters)",
    );

  const aggTrades = load
    .command("binance-aggtrades")
    .description(
      "Binance public-data aggTrades CSV or ZIP (ms or µs times, with or without header) → agg_trades_v2",
    )
    .argument("<file>", "aggTrades .csv, .zip (one CSV inside) or .gz")
    .option(
      "--symbol <symbol>",
      "venue symbol, e.g. BTCUSDT (default: from a SYMBOL-aggTrades-... file name)",
    );
  withStoreFlags(aggTrades).action(async (file: string, opts: LoadFlags & { symbol?: string }) => {
    const m = await import("../loaders/binance-aggtrades.js");
    const symbol = opts.symbol ?? m.symbolFromFileName(file);
    if (!symbol) exitWithError("--symbol: required (the file name does not start with SYMBOL-aggTrades-)");
    await runLoad(file, opts, "aggTrades", [m.SymbolError], async () => ({
      parser: new m.BinanceAggTradesParser(symbol),
      exchange: m.BINANCE_AGGTRADES_EXCHANGE,
    }));
  });

  const csv = load
    .command("csv")
    .description("a trade CSV described by a mapping JSON (e.g. ASX equities) → trades_v2")
    .argument("<file>", "trade .csv (or .gz / .zip with one CSV)")
    .requiredOption("--mapping <file>", "mapping JSON: columns, timestamp format and time zone, constants");
  withStoreFlags(csv).action(async (file: string, opts: LoadFlags & { mapping: string }) => {
    const m = await import("../loaders/csv.js");
    await runLoad(file, opts, "trades", [m.MappingError], async () => {
      const parser = new m.MappedCsvParser(await m.readMapping(opts.mapping), file);
      return { parser, exchange: parser.exchange };
    });
  });
}
