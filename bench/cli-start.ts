/**
 * CLI start-up: median wall time (ms) of `k2 --help` and of `k2 query --db small.duckdb --format json
 * "SELECT count(*) FROM trades_v2"`, each a fresh `node` process run `--runs` times one after
 * another, beside `node -e 0` (Node's own start on this machine, the floor). Targets: `--help`
 * < 150 ms, the query < 300 ms; {@link BASELINE} gives the figures before the commands loaded their
 * modules lazily. `--baseline-cli DIST/src/cli.js` measures an older build in the same run.
 *
 *   npm run build && node dist/bench/cli-start.js [--runs 10] [--db small.duckdb] [--baseline-cli PATH]
 *
 * Without `--db`, the small DuckDB file is made first by `k2 run --replay
 * ../shared/data/binance-spot/ethusdt_20240808.gz --exit-at-end` (6,106 trades) in a temporary folder.
 * Prints one line per measurement and a JSON summary as the last line.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CLI = join(ROOT, "dist/src/cli.js");
const CAPTURE = resolve(ROOT, "../shared/data/binance-spot/ethusdt_20240808.gz");

/** Targets of the issue, ms. */
const TARGET = { help_ms: 150, query_ms: 300 };
/**
 * Medians (ms, 10 runs each, hyperfine, one run on the shared 2-core development machine) of the build
 * before the commands loaded their modules lazily and after; `floor_ms` is `node -e 0` in that run.
 */
const BASELINE = {
  before_help_ms: 876,
  before_query_ms: 1217,
  after_help_ms: 87,
  after_query_ms: 196,
  floor_ms: 89,
};

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    db: { type: "string" },
    "baseline-cli": { type: "string" },
  },
});
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs < 1) throw new Error(`--runs: expected a whole number > 0`);

/** Median wall time (ms) of `node ...args` run `runs` times; throws when a run exits non-zero. */
function medianMs(label: string, args: string[]): number {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, {
      encoding: "utf8",
      env: { ...process.env, K2_LOG_FORMAT: "json" },
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${label}: exit ${r.status}\n${r.stderr}`);
    times.push(ms);
  }
  times.sort((a, b) => a - b);
  const mid = Math.floor(times.length / 2);
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  console.log(
    `${label}: median ${median.toFixed(0)} ms (min ${times[0].toFixed(0)}, max ${times.at(-1)!.toFixed(0)})`,
  );
  return Math.round(median);
}

const tmp = mkdtempSync(join(tmpdir(), "k2-bench-cli-"));
try {
  let db = values.db;
  if (!db) {
    db = join(tmp, "small.duckdb");
    const r = spawnSync(
      process.execPath,
      [CLI, "run", "--replay", CAPTURE, "--exit-at-end", "--db", db, "--http-port", "0", "--ws-workers", "0"],
      { encoding: "utf8", env: { ...process.env, K2_LOG_LEVEL: "warn" } },
    );
    if (r.status !== 0) throw new Error(`making ${db}: exit ${r.status}\n${r.stderr}`);
  }
  const query = ["query", "--db", db, "--format", "json", "SELECT count(*) FROM trades_v2"];
  const floor = medianMs("node -e 0", ["-e", "0"]);
  const help = medianMs("k2 --help", [CLI, "--help"]);
  const q = medianMs("k2 query", [CLI, ...query]);
  const summary: Record<string, unknown> = {
    bench: "cli-start",
    runs,
    floor_ms: floor,
    help_ms: help,
    query_ms: q,
    target: TARGET,
    help_within_target: help < TARGET.help_ms,
    query_within_target: q < TARGET.query_ms,
    baseline: BASELINE,
  };
  const old = values["baseline-cli"];
  if (old) {
    summary.baseline_cli = old;
    summary.baseline_help_ms = medianMs("baseline k2 --help", [old, "--help"]);
    summary.baseline_query_ms = medianMs("baseline k2 query", [old, ...query]);
  }
  console.log(JSON.stringify(summary));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
