/**
 * Feed liveness through the whole pipeline (`startRun`): a replay server that stalls mid-stream is
 * judged dead within pingInterval + pongTimeout, `/health` answers 503 naming the exchange and the
 * silence (and `k2_feed_silent` is 1) until the reconnected feed delivers again, and nothing is lost;
 * frames that are not valid UTF-8 land in dead_letters as base64 of their exact bytes.
 */
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { parseFaults } from "../../src/replay/faults.js";
import { startRun } from "../../src/run.js";
import { sharedData } from "../helpers/capture.js";
import { silentLogger, testConfig, waitFor } from "../helpers/run.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe("a stalled venue", () => {
  it("is detected within its deadline, makes /health 503 with the reason, then recovers with nothing lost", async () => {
    const server = new BinanceReplayServer({
      file: FILE,
      speed: "max",
      faults: parseFaults("stall=60s@3000"),
    });
    await server.start();
    cleanup.push(() => server.stop());
    const ended = new Promise((r) => server.once("end", r));
    const config = testConfig({ wsUrl: server.url, batchMaxWaitMs: 200 });
    const run = await startRun(config, silentLogger(), {
      // deadlines shrunk; the reconnect waits ~1 s so the 503 window is wide enough to observe. The pong
      // timeout is 1 s, not 200 ms: on a loaded CI machine a pong 200 ms late judged the idle connection
      // after the replay's end dead too (a second dead connection, k2_feed_silent 1 at the end)
      liveness: { pingIntervalMs: 200, pongTimeoutMs: 1000, backoffInitialMs: 1000, random: () => 0.999 },
    });
    cleanup.push(() => run.stop("cleanup"));
    const conn = run.feed.connection;
    const base = `http://127.0.0.1:${run.httpPort}`;
    let stalledAt = 0;
    let errorAt = 0;
    let reason = "";
    conn.on("state", (s, r) => {
      if (s === "ERROR" && !errorAt) {
        errorAt = performance.now();
        reason = r ?? "";
      }
    });
    await waitFor(() => server.faultCounts()?.stalls === 1, 20_000, "the stall");
    stalledAt = performance.now();
    // 503 with the reason while the feed is dead
    let body = "";
    await waitFor(
      async () => {
        const res = await fetch(`${base}/health`);
        body = await res.text();
        return res.status === 503 && /silent/.test(body);
      },
      10_000,
      "/health 503",
    );
    expect(body).toMatch(
      /feed BINANCE silent for \d+\.\d s, reconnecting \(last connection: silent for \d+\.\d s: no frames and no pong\)/,
    );
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/k2_feed_silent\{exchange="BINANCE"\} 1/);
    expect(metrics).toMatch(/k2_feed_last_frame_age_seconds\{exchange="BINANCE"\} \d/);
    expect(reason).toMatch(/^silent for \d+\.\d s: no frames and no pong$/);
    // judged dead after ping interval + pong timeout (1.2 s), well before the 60 s stall ends
    expect(errorAt - stalledAt).toBeLessThan(5000);
    // the reconnected feed is served from where the stall began: healthy again, nothing lost
    await waitFor(async () => (await fetch(`${base}/health`)).status === 200, 20_000, "/health 200 again");
    await ended;
    await waitFor(
      async () => {
        const [r] = await run.store.query(
          "SELECT (SELECT count(*) FROM trades_v2) + (SELECT count(*) FROM quotes_v2) AS n",
        );
        return Number(r.n) === 37797;
      },
      30_000,
      "every trade and quote stored",
    );
    const after = await (await fetch(`${base}/metrics`)).text();
    expect(after).toMatch(/k2_feed_silent\{exchange="BINANCE"\} 0/);
    expect(conn.deadConnections).toBe(1);
  });
});

describe("raw bytes through the pipeline", () => {
  it("stores frames that are not UTF-8 as dead letters with base64 of the exact bytes", async () => {
    const bad = Buffer.from([0x7b, 0x22, 0xe2, 0x28, 0xa1, 0x22, 0x7d]);
    const binaryBad = Buffer.from([0xff, 0xfe, 0x00, 0x01]);
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise((r) => wss.once("listening", r));
    cleanup.push(() => new Promise((r) => wss.close(r)));
    let connections = 0;
    wss.on("connection", (ws) => {
      connections++;
      ws.send(bad, { binary: false });
      ws.send(binaryBad, { binary: true });
      ws.send('{"result":null,"id":1}');
    });
    const port = (wss.address() as { port: number }).port;
    const run = await startRun(
      testConfig({ wsUrl: `ws://127.0.0.1:${port}`, batchMaxWaitMs: 100 }),
      silentLogger(),
    );
    cleanup.push(() => run.stop("cleanup"));
    await waitFor(
      async () => Number((await run.store.query("SELECT count(*) AS n FROM dead_letters"))[0].n) === 2,
      10_000,
      "two dead letters",
    );
    const rows = await run.store.query("SELECT reason, raw, source FROM dead_letters ORDER BY reason DESC");
    expect(rows.map((r) => [r.reason, r.raw])).toEqual([
      ["invalid UTF-8 in text frame; raw is base64 of the exact bytes", bad.toString("base64")],
      ["invalid UTF-8 in binary frame; raw is base64 of the exact bytes", binaryBad.toString("base64")],
    ]);
    expect(Buffer.from(String(rows[0].raw), "base64").equals(bad)).toBe(true);
    expect(run.feed.connection.state).toBe("CONNECTED");
    expect(connections).toBe(1);
    expect(run.feed.counts.rejected).toBe(2);
  });
});
