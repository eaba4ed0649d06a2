/**
 * What a newcomer sees when a run cannot get data (the built CLI, never a real exchange): a venue that
 * cannot be reached is one log line naming the cause (DNS lookup, refused, HTTP status on the upgrade)
 * with the offline hint, the same cause on `/health` and `/api/v1/status`; a run or a recording that got
 * no frames exits non-zero with a sentence; `--symbols` a recording does not hold is refused before
 * anything starts, and `/api/v1/status` lists the symbols actually subscribed.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, type RunningCli, runCli, startCli, tempDir } from "../helpers/cli.js";
import { waitFor } from "../helpers/run.js";

const HINT = "no network? try: npm start -- --replay ../shared/data/binance-spot/btcusdt_20240808.gz";

/** The JSON log lines of a k2 child's stderr. */
function logLines(stderr: string): { level: number; msg: string; [k: string]: unknown }[] {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

/** A TCP port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const running: RunningCli[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const k2 of running.splice(0)) if (k2.child.exitCode === null) k2.child.kill("SIGKILL");
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

describe("a venue that cannot be reached", () => {
  it("DNS: one line naming the cause with the offline hint, the cause on /health and /api/v1/status, exit 1 without frames", async () => {
    const k2 = startCli([
      "run",
      "--ws-url",
      "wss://nonexistent.invalid/ws",
      "--db",
      join(tempDir(), "k2.duckdb"),
      "--http-port",
      "0",
      "--ws-workers",
      "0",
      "--log-format",
      "json",
    ]);
    running.push(k2);
    const base = `http://127.0.0.1:${await k2.httpPort}`;
    // several failed attempts (the backoff starts at 1 s, jittered)
    let status: { feeds: { reconnects: number; error: string | null; state: string }[]; problems: string[] };
    await waitFor(
      async () => {
        status = await (await fetch(`${base}/api/v1/status`)).json();
        return status.feeds[0].reconnects >= 2;
      },
      60_000,
      "two failed connection attempts",
    );
    // ENOTFOUND, or EAI_AGAIN where no resolver answers at all
    const cause = status!.feeds[0].error!;
    expect(cause).toMatch(
      /^DNS lookup failed for nonexistent\.invalid \(getaddrinfo (ENOTFOUND|EAI_AGAIN)\)$/,
    );
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(503);
    expect(await health.text()).toContain(`feed BINANCE error: ${cause}; ${HINT}`);
    // the cause is said once at WARN, however many attempts fail the same way; the raw error is not
    const warned = logLines(k2.stderr()).filter((l) => l.level >= 40);
    expect(warned.map((l) => l.msg)).toEqual([
      `feed BINANCE cannot connect to wss://nonexistent.invalid/ws: ${cause}; retrying with backoff. ${HINT}`,
    ]);
    expect(k2.stderr()).not.toContain('"err":"getaddrinfo');
    k2.child.kill("SIGINT");
    const r = await k2.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`k2: the run got no frames (BINANCE: ${cause})`);
    expect(lastJsonLine(r.stdout).frames).toBe(0);
  });

  it("refused: k2 record says why it recorded nothing and exits 1", async () => {
    const port = await closedPort();
    const out = join(tempDir(), "none.gz");
    const r = await runCli(["record", "--out", out, "--ws-url", `ws://127.0.0.1:${port}`, "--duration", "1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `feed BINANCE cannot connect to ws://127.0.0.1:${port}: connection refused by 127.0.0.1:${port} (ECONNREFUSED); retrying with backoff`,
    );
    expect(r.stderr).toContain(
      `k2: recorded no frames in 1 s: connection refused by 127.0.0.1:${port} (ECONNREFUSED); ${out} holds no frames`,
    );
    expect(lastJsonLine(r.stdout)).toEqual({ frames: 0, out });
  });

  it("an HTTP status on the upgrade, and TLS spoken to a plain HTTP server, are named", async () => {
    const server = createHttpServer((_req, res) => res.writeHead(403).end("forbidden"));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const r = await runCli([
      "record",
      "--out",
      join(tempDir(), "none.gz"),
      "--ws-url",
      `ws://127.0.0.1:${port}`,
      "--duration",
      "1",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `k2: recorded no frames in 1 s: 127.0.0.1:${port} answered the WebSocket upgrade with HTTP 403`,
    );
    const tls = await runCli([
      "record",
      "--out",
      join(tempDir(), "none.gz"),
      "--ws-url",
      `wss://127.0.0.1:${port}`,
      "--duration",
      "1",
    ]);
    expect(tls.code).toBe(1);
    expect(tls.stderr).toMatch(
      new RegExp(`k2: recorded no frames in 1 s: TLS handshake with 127\\.0\\.0\\.1:${port} failed \\(`),
    );
  });
});

describe("a run that gets nothing", () => {
  const btc = sharedData("binance-spot/btcusdt_20240808.gz");

  it("--symbols the recording does not hold: refused before starting, exit 2", async () => {
    const r = await runCli([
      "run",
      "--symbols",
      "ETHUSDT",
      "--replay",
      btc,
      "--exit-at-end",
      "--db",
      join(tempDir(), "k2.duckdb"),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("k2: --symbols: btcusdt_20240808.gz holds BTCUSDT, not ETHUSDT");
    expect(r.stderr).not.toContain("WebSocket was closed before the connection was established");
    expect(r.stdout).toBe("");
  });

  it("a subscription that matches nothing in the recording: exit 1 with a sentence", async () => {
    const r = await runCli([
      "run",
      "--streams",
      "aggTrade", // the recording holds trade, bookTicker and depth frames only
      "--replay",
      btc,
      "--exit-at-end",
      "--db",
      join(tempDir(), "k2.duckdb"),
    ]);
    expect(r.code).toBe(1);
    expect(lastJsonLine(r.stdout).frames).toBe(0);
    expect(r.stderr).toContain("k2: the run got no frames (BINANCE: no market data on the subscription)");
    expect(r.stderr).not.toContain("WebSocket was closed before the connection was established");
  });

  it("/api/v1/status lists the symbols subscribed: a BTCUSDT recording's, not the venue's defaults", async () => {
    const k2 = startCli([
      "run",
      "--replay",
      btc,
      "--speed",
      "max",
      "--db",
      join(tempDir(), "k2.duckdb"),
      "--http-port",
      "0",
      "--ws-workers",
      "0",
    ]);
    running.push(k2);
    const status = await (await fetch(`http://127.0.0.1:${await k2.httpPort}/api/v1/status`)).json();
    expect(status.symbols).toEqual(["BTCUSDT"]);
  });
});

describe("a batch run beside a k2 that serves on 8080", () => {
  it("takes any free port, not 8080, unless --http-port says so", async () => {
    // hold 127.0.0.1:8080 when it is free; when something else holds it, the point stands the same
    const holder = createNetServer();
    await new Promise<void>((resolve) => {
      holder.once("error", () => resolve());
      holder.listen(8080, "127.0.0.1", () => resolve());
    });
    try {
      const r = await runCli([
        "run",
        "--replay",
        sharedData("binance-spot/btcusdt_20240808.gz"),
        "--exit-at-end",
        "--db",
        join(tempDir(), "k2.duckdb"),
      ]);
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(lastJsonLine(r.stdout).trades).toBe(9757);
      const port = Number(/http listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(r.stderr)?.[1]);
      expect(port).toBeGreaterThan(0);
      expect(port).not.toBe(8080);
    } finally {
      await new Promise<void>((resolve) => (holder.listening ? holder.close(() => resolve()) : resolve()));
    }
  });
});

describe("k2 replay-server", () => {
  it("plays at the recorded pace unless told, as k2 run --replay does", async () => {
    const k2 = startCli(["replay-server", sharedData("binance-spot/btcusdt_20240808.gz"), "--port", "0"]);
    running.push(k2);
    k2.httpPort.catch(() => undefined); // a replay server has no HTTP listening line
    await waitFor(() => k2.stderr().includes("replay server listening"), 30_000, "the listening line");
    const line = logLines(k2.stderr()).find((l) => l.msg === "replay server listening");
    expect(line?.speed).toBe(1);
  });
});
