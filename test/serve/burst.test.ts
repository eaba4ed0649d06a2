/**
 * A whole capture at --speed max to 20 clients subscribed before the first frame (the feed connects to
 * a replay server started after the clients). Each client stops reading for 3 s early in the burst,
 * so it falls behind, is served from its own queue (quotes conflated), and rejoins its group once
 * caught up. Every client must still get every trade in
 * venue order, quotes in order (possibly conflated) ending with the capture's last quote, and the same
 * trades as every other client.
 */
import { createServer } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { type RunningPipeline, startRun } from "../../src/run.js";
import {
  CAPTURE,
  FIRST_TRADE_ID,
  LAST_TRADE_ID,
  sleep,
  TestClient,
  TRADES_IN_CAPTURE,
  tempDir,
} from "./helpers.js";

const CLIENTS = 20;
const tmp = tempDir();
let run: RunningPipeline | null = null;
let replay: BinanceReplayServer | null = null;

afterAll(async () => {
  await run?.stop("test done");
  await replay?.stop();
  tmp.cleanup();
});

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const addr = srv.address();
  await new Promise((r) => srv.close(r));
  return typeof addr === "object" && addr ? addr.port : 0;
}

describe("a --speed max burst to 20 subscribed clients", () => {
  it("delivers every trade in order to every client; quotes stay ordered and end on the last quote", async () => {
    const replayPort = await freePort();
    const config = resolveRunConfig(
      {
        wsUrl: `ws://127.0.0.1:${replayPort}`,
        httpPort: "0",
        db: `${tmp.dir}/k2.duckdb`,
        symbols: "BTCUSDT",
        streams: "trade,bookTicker",
      },
      { K2_WS_MAX_QUEUE: "1000000", K2_WS_HIGH_WATER_BYTES: "65536" },
    );
    run = await startRun(config, createLogger("error"), { backoffInitialMs: 100 });
    const url = `ws://127.0.0.1:${run.httpPort}/ws`;
    const trades: number[][] = [];
    const quotes: number[][] = [];
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        trades[i] = [];
        quotes[i] = [];
        const c = await TestClient.open(url, {}, () => false);
        let received = 0;
        c.ws.on("message", (d) => {
          // stop reading early in the burst until the gateway has had to queue (and conflate) for the
          // stalled clients — however fast this machine delivers, so the queue path is always taken
          // (at most 30 s)
          if (++received === 3000) {
            c.ws.pause();
            void (async () => {
              const until = performance.now() + 30_000;
              while (performance.now() < until && ((await run?.gateway?.stats())?.conflated ?? 0) === 0)
                await sleep(50);
              c.ws.resume();
            })();
          }
          const m = JSON.parse(String(d));
          if (m.type === "trade") trades[i].push(m.data.source_sequence);
          else if (m.type === "quote") quotes[i].push(m.data.source_sequence);
        });
        await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
        await c.request({ op: "subscribe", channel: "quotes", symbols: ["*"], id: 2 });
        return c;
      }),
    );
    // one group per gateway process: all 20 clients have the same subscriptions
    const before = await run.gateway!.stats();
    expect(before.workers).toBe(2);
    expect(before.clients).toBe(CLIENTS);
    expect(before.groups).toBe(before.workers);
    replay = new BinanceReplayServer({ file: CAPTURE, port: replayPort, speed: "max" });
    await replay.start();
    const deadline = performance.now() + 60_000;
    while (trades.some((t) => t.at(-1) !== LAST_TRADE_ID)) {
      if (performance.now() > deadline) throw new Error("clients did not receive the last trade within 60 s");
      await sleep(200);
    }
    await sleep(500);
    const stats = await run.gateway!.stats();
    const [lastQuote] = await lastQuoteSequence(run);
    for (let i = 0; i < CLIENTS; i++) {
      expect(trades[i].length).toBe(TRADES_IN_CAPTURE);
      expect(trades[i][0]).toBe(FIRST_TRADE_ID);
      for (let k = 1; k < trades[i].length; k++) {
        if (trades[i][k] !== trades[i][k - 1] + 1)
          throw new Error(`client ${i}: trade ${trades[i][k]} after ${trades[i][k - 1]}`);
      }
      for (let k = 1; k < quotes[i].length; k++) {
        if (!(quotes[i][k] > quotes[i][k - 1]))
          throw new Error(`client ${i}: quote ${quotes[i][k]} after ${quotes[i][k - 1]}`);
      }
      expect(quotes[i].at(-1)).toBe(lastQuote);
    }
    expect(stats.disconnected_slow).toBe(0);
    // after the burst every client is caught up and back in its process's one group
    expect(stats.behind).toBe(0);
    expect(stats.groups).toBe(stats.workers);
    expect(stats.conflated).toBeGreaterThan(0); // the queue path was taken
    for (const c of clients) c.close();
  });
});

async function lastQuoteSequence(r: RunningPipeline): Promise<number[]> {
  for (let i = 0; i < 50; i++) {
    const rows = await r.store.query(
      "SELECT count(*)::INTEGER AS n, max(source_sequence)::BIGINT AS last FROM quotes_v2",
    );
    if (Number(rows[0].n) === 28040) return [Number(rows[0].last)];
    await sleep(200);
  }
  throw new Error("quotes not all stored");
}
