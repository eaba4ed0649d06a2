#!/usr/bin/env node
/**
 * Guards `nextWrite()` of the `postgres` client (3.4.x) against a connection whose socket is already
 * gone. Unpatched, a small write scheduled with `setImmediate` that fires after the connection closed
 * calls `null.write(...)` and the TypeError, thrown from a timer, takes the whole process down: seen
 * here when PostgreSQL restarts under `k2 persist` (porsager/postgres issues #1154 and #1208; the fix
 * of PR #1209, not released yet, is applied here: the pending queries are rejected with
 * CONNECTION_CLOSED, which the store retries). Runs on `npm install`/`npm ci` (`postinstall`); patches
 * nothing when the code is not the known unguarded one (a fixed release), and says what it did.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const UNGUARDED = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const GUARDED = `  function nextWrite(fn) {
    if (!socket) { // k2: scripts/patch-postgres.mjs (porsager/postgres#1208)
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options, socket))
      return false
    }
    const x = socket.write(chunk, fn)`;

/** The installed `postgres` package's folder (its exports do not include package.json). */
function packageRoot() {
  let dir;
  try {
    dir = dirname(createRequire(join(process.cwd(), "package.json")).resolve("postgres"));
  } catch {
    return null; // not installed: nothing to patch
  }
  while (!existsSync(join(dir, "package.json")) || !dir.endsWith("postgres")) {
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
  return dir;
}

const root = packageRoot();
if (!root) process.exit(0);
for (const rel of ["src/connection.js", "cjs/src/connection.js"]) {
  const file = join(root, rel);
  if (!existsSync(file)) continue;
  const text = readFileSync(file, "utf8");
  if (text.includes("k2: scripts/patch-postgres.mjs")) continue;
  if (!text.includes(UNGUARDED)) {
    console.log(`patch-postgres: ${rel} differs from 3.4.9's unguarded nextWrite; left as it is`);
    continue;
  }
  writeFileSync(file, text.replace(UNGUARDED, GUARDED));
  console.log(`patch-postgres: guarded nextWrite in ${rel}`);
}
