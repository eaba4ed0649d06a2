/**
 * Operations: /health and /metrics while running, 503 when the feed is down, SIGTERM flushes every
 * buffer (stored + dead-lettered == frames received), bad flags name themselves.
 */
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, query, runCli, startCli, tempDir } from "../helpers/cli.js";
import { waitFor } from "../helpers/run.js";

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function metric(text: string, name: string, labels = ""): number {
  const re = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : "(\\{[^}]*\\})?"} (\\S+)$`, "m");
  const m = re.exec(text);
  return m ? Number(m[m.length - 1]) : Number.NaN;
}

describe("k2 run operations", () => {
  it("serves /health and /metrics, and SIGTERM flushes everything before exit", async () => {
    const db = join(tempDir(), "k2.duckdb");
    const k2 = startCli([
      "run",
      "--replay",
      sharedData("binance-spot/btcusdt_20240809.gz"),
      "--speed",
      "20",
      "--db",
      db,
      "--http-port",
      "0",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
    ]);
    const port = await k2.httpPort;
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/health`)).status === 200, 10_000, "healthy");
    const health = await fetch(`${base}/health`);
    expect(await health.text()).toBe("ok\n");
    // some frames in, but the 55k-frame replay is far from done at 20x
    await new Promise((r) => setTimeout(r, 2500));
    const m = await (await fetch(`${base}/metrics`)).text();
    expect(metric(m, "k2_connection_state", 'exchange="BINANCE"')).toBe(2);
    expect(
      metric(m, "k2_frames_received_total", 'exchange="BINANCE",stream="BTCUSDT.quotes"'),
    ).toBeGreaterThan(0);
    expect(metric(m, "k2_records_normalized_total", 'exchange="BINANCE",data_type="trades"')).toBeGreaterThan(
      0,
    );
    expect(m).toMatch(/^# TYPE k2_batch_write_seconds histogram$/m);
    expect(m).toMatch(/^# TYPE k2_venue_to_receipt_seconds histogram$/m);
    expect(m).toMatch(/^k2_reconnects_total|^# HELP k2_reconnects_total/m);
    expect(m).toMatch(/^# HELP k2_sequence_gaps_total/m);
    expect(m).toMatch(/^k2_consumer_lag \d+/m);

    k2.child.kill("SIGTERM");
    const exit = await k2.exited;
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0);
    const summary = lastJsonLine(exit.stdout);
    expect(summary.frames).toBeGreaterThan(0);
    expect(summary.frames).toBeLessThan(55281); // stopped mid-replay
    const [c] = await query(
      db,
      "SELECT (SELECT count(*) FROM trades_v2) AS trades, (SELECT count(*) FROM quotes_v2) AS quotes, (SELECT count(*) FROM dead_letters) AS dead",
    );
    expect(Number(c.trades) + Number(c.quotes) + Number(c.dead)).toBe(summary.frames);
    expect(Number(c.trades)).toBe(summary.trades);
    expect(Number(c.quotes)).toBe(summary.quotes);
    expect(exit.stderr).toMatch(/"reason":"SIGTERM".*shutting down/);
  });

  it("answers 503 with the reason while the feed cannot connect", async () => {
    const closed = await freePort();
    const k2 = startCli([
      "run",
      "--ws-url",
      `ws://127.0.0.1:${closed}`,
      "--db",
      join(tempDir(), "k2.duckdb"),
      "--http-port",
      "0",
    ]);
    try {
      const port = await k2.httpPort;
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      expect(r.status).toBe(503);
      // connecting, or the failure named (the cause, then the hint for a run without network)
      expect(await r.text()).toMatch(
        /^feed BINANCE (connecting|error: connection refused by 127\.0\.0\.1:\d+ .*)$/m,
      );
      await waitFor(() => /feed reconnecting with backoff/.test(k2.stderr()), 5000, "a reconnect");
    } finally {
      k2.child.kill("SIGINT");
      const exit = await k2.exited;
      // a run that got no frame failed, and says why
      expect(exit.code).toBe(1);
      expect(exit.stderr).toMatch(/the run got no frames \(BINANCE: connection refused/);
    }
  });

  it.each([
    [["run", "--http-port", "70000"], /--http-port: expected an integer from 0 to 65535, got "70000"/],
    [["run", "--streams", "trade,kline_1m"], /--streams: unknown Binance stream "kline_1m"/],
    [["run", "--exchange", "nasdaq"], /--exchange: unknown exchange "nasdaq"/],
    [
      ["run", "--speed", "fast", "--replay", sharedData("binance-spot/btcusdt_20240808.gz")],
      /--speed: expected a positive number/,
    ],
    [["run", "--replay", "/nonexistent.gz"], /--replay: cannot read "\/nonexistent.gz"/],
    [["run", "--exit-at-end"], /--exit-at-end: only meaningful with --replay FILE/],
    [["run", "--batch-size", "0"], /--batch-size: expected an integer from 1/],
    [["run", "--no-such-flag"], /unknown option '--no-such-flag'/],
    [["run", "--ws-workers", "65"], /--ws-workers: expected an integer from 0 to 64, got "65"/],
    [["query", "--db", "/nonexistent/k2.duckdb", "SELECT 1"], /--db: cannot open \/nonexistent\/k2.duckdb/],
    [["replay-server", "/nonexistent.gz"], /<file>: cannot read \/nonexistent.gz/],
  ])("k2 %j exits 2 naming the flag", async (args, message) => {
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
