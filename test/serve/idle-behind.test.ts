/**
 * Idle close (4001) and a client that reads but is behind (`gateway.ts` sweep): a real gateway on
 * loopback (heartbeat 300 ms, idle 1500 ms, queue limit 100,000) and a client that sends nothing and
 * reads its socket in short bursts, about 64 KiB every 20 ms at most. A burst of 25,000 trades
 * (about 10 MB) keeps it behind for several idle periods; heartbeat pings go only to clients with
 * nothing queued, so its pongs come late. Its socket drains all along: it is alive, gets every trade
 * in order and stays open. A client that stops reading is still closed as idle.
 */
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/ops/logger.js";
import { Metrics } from "../../src/ops/metrics.js";
import { TokenAuth } from "../../src/serve/auth.js";
import { createHttpServer, listen } from "../../src/serve/http.js";
import { LiveFeed } from "../../src/serve/live/feed.js";
import { Gateway } from "../../src/serve/ws/gateway.js";
import { syntheticTrade, TestClient } from "./helpers.js";

const BURST = 25_000;
const IDLE_MS = 1500;

const trade = (id: number) => syntheticTrade(id, { padding: "x".repeat(100) });

let app: FastifyInstance | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
});

/** A gateway on loopback fed by `feed`; resolves with its `/ws` URL. */
async function serve(feed: LiveFeed): Promise<string> {
  const metrics = new Metrics({ defaultMetrics: false });
  app = await createHttpServer({
    metrics,
    health: async () => [],
    register: (a) => {
      new Gateway({
        feed,
        metrics,
        logger: createLogger("silent"),
        auth: new TokenAuth([]),
        heartbeatMs: 300,
        idleTimeoutMs: IDLE_MS,
        maxQueue: BURST * 2,
      }).attach(a);
    },
  });
  return `ws://127.0.0.1:${await listen(app, 0)}/ws`;
}

describe("idle close of a client that reads but is behind", () => {
  it("keeps a client whose socket drains, however far behind, and sends it every trade", async () => {
    const feed = new LiveFeed();
    const url = await serve(feed);
    const ids: number[] = [];
    const c = await TestClient.open(url, {}, () => false);
    c.ws.on("message", (d) => {
      const m = JSON.parse(String(d));
      if (m.type === "trade") ids.push(m.data.source_sequence);
    });
    await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
    // reads one chunk of its socket (at most 64 KiB) every 20 ms
    const socket = (c.ws as unknown as { _socket: Socket })._socket;
    const oneChunk = () => socket.pause();
    socket.on("data", oneChunk);
    socket.pause();
    const reader = setInterval(() => socket.resume(), 20);
    try {
      for (let i = 0; i < BURST; i++) feed.publishTrade(trade(i));
      const started = performance.now();
      await Promise.race([
        c.closed,
        new Promise<void>((resolve) => {
          const t = setInterval(() => {
            if (ids.length < BURST) return;
            clearInterval(t);
            resolve();
          }, 20);
        }),
      ]);
      const behindMs = performance.now() - started;
      expect([c.closeCode, c.closeReason]).toEqual([null, ""]);
      expect(ids.length).toBe(BURST);
      for (let i = 0; i < BURST; i++) if (ids[i] !== i) expect.fail(`trade ${i}: got ${ids[i]}`);
      // the premise: it was behind for longer than the idle timeout (the reader's pace makes it so)
      expect(behindMs).toBeGreaterThan(IDLE_MS);
    } finally {
      clearInterval(reader);
    }
    socket.off("data", oneChunk);
    socket.resume();
    expect((await c.request({ op: "ping", id: "after" })).type).toBe("pong");
    c.close();
  }, 60_000);

  it("still closes a client that stopped reading with 4001", async () => {
    const feed = new LiveFeed();
    const url = await serve(feed);
    const c = await TestClient.open(url, { autoPong: false }, () => false);
    await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
    c.ws.pause();
    for (let i = 0; i < BURST; i++) feed.publishTrade(trade(i));
    c.ws.resume(); // only once the server gave up on it: it reads the trades, then the close
    await c.closed;
    expect(c.closeCode).toBe(4001);
  }, 60_000);
});
