#!/usr/bin/env node
/**
 * Completes package-lock.json with the other platforms' optional binary packages.
 *
 * The npm registry reachable from K2's machines does not serve every platform build of packages such
 * as @duckdb/node-bindings, @biomejs/biome and rollup (e.g. @biomejs/cli-android-arm64 answers 404).
 * `npm install` then leaves those optional packages out of the lock file, and `npm ci` refuses the lock
 * file as out of sync. This script adds a lock entry for each missing optional platform package, with
 * the os/cpu/libc its name states, so `npm ci` sees a complete lock and skips them on this platform as
 * it would anyway. Run it after every `npm install` that changes dependencies: `npm run lock:platforms`.
 */
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages;

const OS = ["android", "darwin", "freebsd", "linux", "openbsd", "openharmony", "sunos", "win32", "aix", "netbsd", "cygwin"];
const CPU = { x64: "x64", arm64: "arm64", arm: "arm", ia32: "ia32", loong64: "loong64", ppc64: "ppc64", riscv64: "riscv64", s390x: "s390x", mips64el: "mips64el", ppc64le: "ppc64" };

function platformOf(name) {
  const base = name.split("/").pop();
  const parts = base.split("-");
  const os = parts.find((p) => OS.includes(p));
  const cpu = parts.map((p) => CPU[p]).find(Boolean);
  if (!os || !cpu) return null;
  const out = { os: [os], cpu: [cpu] };
  if (os === "linux") {
    if (parts.some((p) => p === "musl" || p.endsWith("musleabihf"))) out.libc = ["musl"];
    else if (parts.some((p) => p === "gnu" || p.endsWith("gnueabihf"))) out.libc = ["glibc"];
  }
  return out;
}

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  if (!path || !entry.optionalDependencies) continue;
  const parentDir = path.slice(0, path.lastIndexOf("node_modules/"));
  for (const [dep, version] of Object.entries(entry.optionalDependencies)) {
    // where npm would place it: next to the parent, or hoisted at the top
    const candidates = [`${path}/node_modules/${dep}`, `${parentDir}node_modules/${dep}`, `node_modules/${dep}`];
    if (candidates.some((c) => packages[c])) continue;
    const platform = platformOf(dep);
    if (!platform) continue;
    packages[`node_modules/${dep}`] = { version, ...platform, optional: true };
    added++;
  }
}
lock.packages = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
process.stdout.write(`lock-platforms: added ${added} optional platform entries\n`);
