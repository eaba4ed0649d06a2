/**
 * Idle close (4001) and a client that reads but is behind (`gateway.ts` sweep): a real gateway on
 * loopback (heartbeat 300 ms, idle 1500 ms) and a client that sends nothing. A burst of 20,000 trades
 * of about 2.4 KB each (about 49 MB: more than this host's loopback buffers can hold, at most 4 MB
 * sent and 32 MB received, `net.ipv4.tcp_wmem`/`tcp_rmem`) keeps part of it waiting in the gateway
 * itself. The client reads its socket slowly, about 64 KiB every 20 ms, for twice the idle timeout:
 * heartbeat pings go only to clients with nothing queued, so it answers none, but its socket drains
 * all along; it is alive and stays open. Then it reads at full speed (what the kernel buffered reaches
 * it at once), gets every trade in order and answers a ping. A client that stops reading is still
 * closed as idle.
 *
 * (What the kernel has taken the gateway cannot see read: a client whose kernel buffers alone hold more
 * than it reads in an idle timeout would be closed, which is why the slow phase ends with part of the
 * burst still in the gateway; with the default 90 s timeout that is a reader slower than ~400 KB/s.)
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
import { syntheticTrade, tradeClient } from "./helpers.js";

const BURST = 20_000;
const SLOW_MS = 3000;
const IDLE_MS = 1500;

const trade = (id: number) => syntheticTrade(id, { padding: "x".repeat(2000) });

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
    const { c, ids } = await tradeClient(url);
    // reads one chunk of its socket (at most 64 KiB) every 20 ms
    const socket = (c.ws as unknown as { _socket: Socket })._socket;
    const oneChunk = () => socket.pause();
    socket.on("data", oneChunk);
    socket.pause();
    const reader = setInterval(() => socket.resume(), 20);
    try {
      for (let i = 0; i < BURST; i++) feed.publishTrade(trade(i));
      await Promise.race([c.closed, new Promise((r) => setTimeout(r, SLOW_MS))]);
      // slow for twice the idle timeout, and still behind: kept
      expect([c.closeCode, c.closeReason]).toEqual([null, ""]);
      expect(ids.length).toBeLessThan(BURST);
    } finally {
      clearInterval(reader);
      socket.off("data", oneChunk);
      socket.resume();
    }
    // full speed: the rest arrives, in order
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
    expect([c.closeCode, c.closeReason]).toEqual([null, ""]);
    expect(ids.length).toBe(BURST);
    for (let i = 0; i < BURST; i++) if (ids[i] !== i) expect.fail(`trade ${i}: got ${ids[i]}`);
    expect((await c.request({ op: "ping", id: "after" })).type).toBe("pong");
    c.close();
  }, 60_000);

  it("still closes a client that stopped reading with 4001", async () => {
    const feed = new LiveFeed();
    const url = await serve(feed);
    const { c } = await tradeClient(url, { autoPong: false });
    c.ws.pause();
    for (let i = 0; i < BURST; i++) feed.publishTrade(trade(i));
    c.ws.resume(); // only once the server gave up on it: it reads the trades, then the close
    await c.closed;
    expect(c.closeCode).toBe(4001);
  }, 60_000);
});
