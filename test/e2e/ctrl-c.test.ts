/**
 * Ctrl-C, as a terminal sends it: SIGINT to the whole foreground process group, gateway workers
 * included. A clean shutdown logs at info (no `gateway worker exited` error, no error at all) and exits
 * 0; the summary's `frames_per_s` is the rate over the run's active span (first frame to last batch
 * stored), not diluted by the time the process sat idle after its replay ended.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, type RunningCli, startCli, tempDir } from "../helpers/cli.js";
import { waitFor } from "../helpers/run.js";
import { TestClient } from "../serve/helpers.js";

const running: RunningCli[] = [];
afterEach(() => {
  for (const k2 of running.splice(0)) {
    if (k2.child.exitCode === null && k2.child.signalCode === null)
      process.kill(-(k2.child.pid as number), "SIGKILL");
  }
});

const IDLE_MS = 5_000;

describe("Ctrl-C on k2 run with gateway workers", () => {
  it("shuts down at info level, exits 0, and reports frames/s over the active span", async () => {
    const k2 = startCli(
      [
        "run",
        "--replay",
        sharedData("binance-spot/btcusdt_20240808.gz"),
        "--speed",
        "max",
        "--db",
        join(tempDir(), "k2.duckdb"),
        "--http-port",
        "0",
        "--ws-workers",
        "2",
        "--log-format",
        "json",
      ],
      { detached: true },
    );
    running.push(k2);
    const port = await k2.httpPort;
    // a browser connected: the gateway workers are running
    const client = await TestClient.open(`ws://127.0.0.1:${port}/ws`);
    const reply = await client.request({ op: "subscribe", id: "s", channel: "trades", symbols: ["BTCUSDT"] });
    expect(reply.type).not.toBe("error");
    await waitFor(() => /replay finished: /.test(k2.stderr()), 60_000, "the replay finished log line");
    await new Promise((r) => setTimeout(r, IDLE_MS));

    process.kill(-(k2.child.pid as number), "SIGINT");
    const result = await k2.exited;
    const logs = result.stderr
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { level: number | string; msg: string });
    const errors = logs.filter((l) =>
      typeof l.level === "number" ? l.level >= 50 : /error|fatal/.test(l.level),
    );
    expect(errors.map((l) => l.msg)).toEqual([]);
    expect(result.code).toBe(0);
    await client.closed;
    expect(client.closeCode).toBe(1001);

    const s = lastJsonLine(result.stdout);
    const frames = Number(s.frames);
    const active = Number(s.active_ms);
    const elapsed = Number(s.elapsed_ms);
    expect(frames).toBe(37_797);
    expect(Number(s.frames_per_s)).toBe(Math.round((frames * 1000) / active));
    // the idle time after the replay (≥ 5 s) is in elapsed_ms, not in the rate's span
    expect(elapsed - active).toBeGreaterThanOrEqual(IDLE_MS - 2_500);
    process.stdout.write(
      `Ctrl-C: exit ${result.code}, ${frames} frames, active ${active} ms → ${s.frames_per_s} frames/s; elapsed ${elapsed} ms\n`,
    );
  }, 120_000);
});

describe("a SIGTERM during start-up", () => {
  it("is kept, not fatal: k2 run starts, stops in order and exits 0 with its summary", async () => {
    const k2 = startCli(
      [
        "run",
        "--replay",
        sharedData("binance-spot/btcusdt_20240808.gz"),
        "--db",
        join(tempDir(), "k2.duckdb"),
      ].concat(["--http-port", "0", "--log-format", "json"]),
      { detached: true },
    );
    running.push(k2);
    // well before "http listening": the command is still loading its modules and opening the store.
    // The run command listens for the signal before it imports the store, so once DuckDB's native
    // library is mapped the handler is in place (a fixed delay raced Node's own start-up on a busy
    // machine: the signal came first and its default action killed the process)
    await waitFor(
      () => readFileSync(`/proc/${k2.child.pid}/maps`, "utf8").includes("duckdb.node"),
      30_000,
      "DuckDB's native library loaded by k2 run",
    );
    expect(k2.stderr()).not.toMatch(/http listening/);
    k2.child.kill("SIGTERM");
    const result = await k2.exited;
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toHaveProperty("frames");
  }, 60_000);
});
