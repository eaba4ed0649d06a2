/**
 * End-to-end ingest benchmark: `k2 run --replay btcusdt_20240809.gz --speed max --exit-at-end` into a
 * fresh DuckDB file, as a user runs it. Reports frames/s from the first market data frame received to
 * the end of the final store flush (the replay server's gunzip is outside the window only insofar as
 * it runs on its own thread), the wall time of the whole command, and peak RSS.
 *
 * Target (issue "Binance ingestion end to end"): ≥ 50,000 frames/s on the 2-core machine.
 *   node dist/bench/ingest.js [--runs N] [--file PATH] [--node-flags "--max-semi-space-size=4"]
 *     [--env MALLOC_ARENA_MAX=2]
 *
 * `--node-flags`: V8/Node flags for the k2 process (space-separated); `--env`: NAME=VALUE pairs
 * (space-separated) added to its environment. `./k2 run` and `npm start` give
 * `--max-semi-space-size=4` and `MALLOC_ARENA_MAX=2`, this bench neither unless told.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const runs = Number(opt("--runs", "5"));
const file = opt(
  "--file",
  fileURLToPath(new URL("../../../shared/data/binance-spot/btcusdt_20240809.gz", import.meta.url)),
);
const cli = fileURLToPath(new URL("../src/cli.js", import.meta.url));
const nodeFlags = opt("--node-flags", "").split(" ").filter(Boolean);
const extraEnv = Object.fromEntries(
  opt("--env", "")
    .split(" ")
    .filter(Boolean)
    .map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]),
);

interface Sample {
  frames: number;
  frames_per_s: number;
  elapsed_ms: number;
  receive_ms: number;
  wall_ms: number;
  max_rss_mb: number;
}

const samples: Sample[] = [];
for (let i = 0; i < runs; i++) {
  const dir = mkdtempSync(join(tmpdir(), "k2-bench-"));
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      ...nodeFlags,
      cli,
      "run",
      "--replay",
      file,
      "--speed",
      "max",
      "--exit-at-end",
      "--db",
      join(dir, "bench.duckdb"),
      "--http-port",
      "0",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
    ],
    { encoding: "utf8", env: { ...process.env, ...extraEnv, K2_LOG_LEVEL: "warn" } },
  );
  const wall = performance.now() - t0;
  rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) {
    process.stderr.write(r.stderr);
    throw new Error(`k2 run exited ${r.status}`);
  }
  const s = JSON.parse(r.stdout.trim().split("\n").pop()!);
  samples.push({ ...s, wall_ms: Math.round(wall) });
  process.stderr.write(
    `run ${i + 1}/${runs}: ${s.frames} frames in ${s.elapsed_ms} ms → ${s.frames_per_s} frames/s, rss ${s.max_rss_mb} MiB\n`,
  );
}
const fps = samples.map((s) => s.frames_per_s).sort((a, b) => a - b);
const result = {
  bench: "ingest_e2e_duckdb",
  file: file.split("/").pop(),
  frames: samples[0].frames,
  runs,
  frames_per_s_best: fps[fps.length - 1],
  frames_per_s_median: fps[Math.floor(fps.length / 2)],
  frames_per_s_worst: fps[0],
  elapsed_ms_median: samples.map((s) => s.elapsed_ms).sort((a, b) => a - b)[Math.floor(runs / 2)],
  wall_ms_median: samples.map((s) => s.wall_ms).sort((a, b) => a - b)[Math.floor(runs / 2)],
  max_rss_mb: Math.max(...samples.map((s) => s.max_rss_mb)),
  target_frames_per_s: 50_000,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
