/**
 * `npm run bench`: runs every benchmark in turn and prints one JSON line per benchmark.
 * Benchmarks are separate scripts under bench/ so each starts in a fresh process.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const BENCHES = ["ingest.js", "persist.js", "store.js", "bus.js", "gateway.js", "cli-start.js"];
for (const b of BENCHES) {
  const path = fileURLToPath(new URL(`./${b}`, import.meta.url));
  if (!existsSync(path)) continue;
  const r = spawnSync(process.execPath, [path, ...process.argv.slice(2)], { stdio: "inherit" });
  if (r.status !== 0) process.exitCode = 1;
}
