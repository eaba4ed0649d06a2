/**
 * A fast CLI start, asserted by structure rather than timing (the timing is `bench/cli-start.ts`):
 * `k2 --help` and every command's `--help` load commander and a few constants only, and
 * `k2 query` over a DuckDB file loads DuckDB but not the PostgreSQL client, the HTTP server or the
 * bus clients. The modules a run resolves are recorded by the loader hook `test/helpers/import-log.mjs`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { runCli } from "../helpers/cli.js";
import { tempDir } from "../serve/helpers.js";

const HOOK = fileURLToPath(new URL("../helpers/import-log.mjs", import.meta.url));

/** Packages a start-up must not load unless its command needs them. */
const HEAVY = [
  "@duckdb/node-api",
  "fastify",
  "@fastify/swagger",
  "postgres",
  "@nats-io/transport-node",
  "@nats-io/jetstream",
  "@platformatic/kafka",
  "ws",
  "pino",
  "zod",
  "prom-client",
  "luxon",
  "cli-progress",
];

/** k2 modules the registrations may load: commander options, descriptions and help text only. */
const LIGHT = /^(cli|commands\/[a-z-]+|ops\/log-format|serve\/ws\/defaults|loaders\/defaults|store\/spec)$/;

/** k2's own modules among the loaded URLs, as `commands/query` (relative to dist/src, no .js). */
function ownModules(urls: string[]): string[] {
  const own = new Set<string>();
  for (const u of urls) {
    const m = /\/dist\/src\/(.+)\.js$/.exec(u);
    if (m) own.add(m[1]);
  }
  return [...own].sort();
}

const tmp = tempDir();
afterAll(() => tmp.cleanup());
let runs = 0;

/** Runs `k2 ...args` with the import log; returns its result and the packages it loaded. */
async function traced(args: string[]) {
  const log = join(tmp.dir, `imports-${++runs}.log`);
  const r = await runCli(args, {
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import=${HOOK}`, K2_IMPORT_LOG: log },
  });
  const urls = readFileSync(log, "utf8").split("\n").filter(Boolean);
  const packages = new Set<string>();
  for (const url of urls) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (m) packages.add(m[1]);
  }
  return { ...r, urls, packages: [...packages].sort() };
}

describe("k2 start-up loads only what the command needs", () => {
  it("--help and each command's --help load commander only, no store, server, bus or logger", async () => {
    for (const args of [
      ["--help"],
      ["run", "--help"],
      ["serve", "--help"],
      ["query", "--help"],
      ["export", "--help"],
      ["record", "--help"],
      ["replay-server", "--help"],
      ["load", "csv", "--help"],
    ]) {
      const r = await traced(args);
      expect(r.code, `k2 ${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain("Usage: k2");
      // the hook saw the run (a log without commander would pass the next line for nothing)
      expect(r.packages, `k2 ${args.join(" ")}`).toEqual(["commander"]);
      // of k2's own modules, only the registrations and the constants their help shows
      expect(ownModules(r.urls).filter((m) => !LIGHT.test(m))).toEqual([]);
    }
    const top = await traced(["--help"]);
    // the help text's defaults still come from the code (serve/ws/defaults.ts)
    expect(top.stdout).toContain("at least 8 printable ASCII");
    expect(top.stdout).toContain("(default 256,");
  });

  it("a bad flag is refused with exit 2 before any store is loaded", async () => {
    const r = await traced(["query", "--db", "ftp://x", "SELECT 1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--db: unsupported store");
    expect(r.packages).toEqual(["commander"]);
    expect(ownModules(r.urls).filter((m) => !LIGHT.test(m))).toEqual([]);
  });

  it("k2 query over a DuckDB file loads DuckDB, not the PostgreSQL client, the server or the bus", async () => {
    const db = join(tmp.dir, "small.duckdb");
    const store = new DuckDBStore({ path: db });
    await store.init();
    await store.close();
    const r = await traced(["query", "--db", db, "--format", "json", "SELECT count(*) AS n FROM trades_v2"]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([{ n: "0" }]);
    expect(r.packages).toContain("@duckdb/node-api");
    expect(ownModules(r.urls)).toContain("store/duckdb");
    expect(ownModules(r.urls)).not.toContain("store/postgres");
    const heavy = r.packages.filter((p) => HEAVY.includes(p) && p !== "@duckdb/node-api");
    expect(heavy).toEqual([]);
  });
});
