/**
 * The CLI's first contact: `./k2` (the checkout's launcher) and `--version`, logs readable on demand
 * (`--log-format pretty`, the default on a terminal) and JSON otherwise, bad formats refused with exit 2.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, runCli, startCli, tempDir } from "../helpers/cli.js";
import { ROOT } from "../serve/helpers.js";

const run = promisify(execFile);
const CAPTURE = sharedData("binance-spot/ethusdt_20240808.gz");

describe("k2 launcher and version", () => {
  it("./k2 runs the checkout's build and --version prints package.json's version", async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    const r = await run(join(ROOT, "k2"), ["--version"], { cwd: tempDir() });
    expect(r.stdout.trim()).toBe(version);
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("a busy HTTP port", () => {
  it("stops start-up with exit 2 and a sentence naming --http-port, no stack trace", async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", () => r()));
    const port = (holder.address() as AddressInfo).port;
    try {
      const r = await runCli([
        "run",
        "--replay",
        CAPTURE,
        "--db",
        join(tempDir(), "k2.duckdb"),
        "--http-port",
        String(port),
      ]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n").at(-1)).toBe(
        `k2: --http-port: 127.0.0.1:${port} is in use (another k2?); pass --http-port 0 for any free port`,
      );
      expect(r.stderr).not.toMatch(/\n\s+at /);
    } finally {
      holder.close();
    }
  });
});

describe("a DuckDB file held by a running k2", () => {
  it("k2 query and a second k2 run say who holds it and what to do, exit 2", async () => {
    const db = join(tempDir(), "k2.duckdb");
    const holder = startCli(["run", "--replay", CAPTURE, "--speed", "1", "--db", db, "--http-port", "0"]);
    try {
      await holder.httpPort;
      const expected = new RegExp(
        `^k2: --db: ${db.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is held by k2 run \\(pid ${holder.child.pid}\\): DuckDB allows one process per file; query it through that process's REST API`,
      );
      const q = await runCli(["query", "--db", db, "SELECT count(*) FROM trades_v2"]);
      expect(q.code).toBe(2);
      expect(q.stderr.trim()).toMatch(expected);
      const second = await runCli(["run", "--replay", CAPTURE, "--db", db, "--http-port", "0"]);
      expect(second.code).toBe(2);
      expect(second.stderr.trim().split("\n").at(-1)).toMatch(expected);
      expect(second.stderr).not.toMatch(/\n\s+at /);
    } finally {
      holder.child.kill("SIGTERM");
      await holder.exited;
    }
  });
});

describe("log format", () => {
  const replayArgs = (db: string) => [
    "run",
    "--replay",
    CAPTURE,
    "--exit-at-end",
    "--db",
    db,
    "--http-port",
    "0",
    "--symbols",
    "ETHUSDT",
    "--streams",
    "trade",
  ];

  it("writes readable lines with --log-format pretty, JSON lines when stderr is not a terminal", async () => {
    const dir = tempDir();
    const pretty = await runCli(["--log-format", "pretty", ...replayArgs(join(dir, "a.duckdb"))]);
    expect(pretty.code, pretty.stderr).toBe(0);
    const prettyLines = pretty.stderr.split("\n").filter((l) => l.length > 0);
    expect(prettyLines.length).toBeGreaterThan(3);
    for (const l of prettyLines) expect(l).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR|DEBUG): /);
    expect(pretty.stderr).toMatch(/INFO: stopped \{"frames":6106,"trades":6106,/);
    // stdout keeps the machine-readable summary
    expect(lastJsonLine(pretty.stdout)).toMatchObject({ trades: 6106 });

    const json = await runCli(replayArgs(join(dir, "b.duckdb")));
    expect(json.code, json.stderr).toBe(0);
    const jsonLines = json.stderr.split("\n").filter((l) => l.length > 0);
    for (const l of jsonLines) expect(JSON.parse(l)).toHaveProperty("level");
  });

  it("refuses an unknown format with exit 2, naming the flag or the variable", async () => {
    const flag = await runCli(["--log-format", "xml", "query", "--db", "x.duckdb", "SELECT 1"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--log-format.*'xml' is invalid.*json, pretty/);
    const env = await runCli(["query", "--db", "x.duckdb", "SELECT 1"], { env: { K2_LOG_FORMAT: "yaml" } });
    expect(env.code).toBe(2);
    expect(env.stderr).toMatch(/^k2: --log-format \(K2_LOG_FORMAT\): expected json or pretty, got "yaml"/);
  });
});
