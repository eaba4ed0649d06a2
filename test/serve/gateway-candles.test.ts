/**
 * Candle channels: the gateway on a real Fastify server on loopback, fed by an in-process event emitter
 * standing in for the live candle aggregator (which lives outside the gateway): a `candles.1m`
 * subscriber gets 1-minute candles of its symbols and nothing else. Also checks a feed whose `on`
 * returns the listener's removal (no `off`).
 */
import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/ops/logger.js";
import { Metrics } from "../../src/ops/metrics.js";
import { TokenAuth } from "../../src/serve/auth.js";
import { createHttpServer, listen } from "../../src/serve/http.js";
import type { GatewayFeed, GatewayFeedEvents, LiveCandle } from "../../src/serve/ws/feed.js";
import { Gateway } from "../../src/serve/ws/gateway.js";
import { sleep, TestClient } from "./helpers.js";

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

async function serve(feed: GatewayFeed): Promise<string> {
  const app = await createHttpServer({
    metrics: new Metrics({ defaultMetrics: false }),
    health: async () => [],
    register: (a) => {
      new Gateway({
        feed,
        metrics: new Metrics({ defaultMetrics: false }),
        logger: createLogger("silent"),
        auth: new TokenAuth([]),
      }).attach(a);
    },
  });
  const port = await listen(app, 0);
  closers.push(() => app.close());
  return `ws://127.0.0.1:${port}/ws`;
}

function candle(symbol: string, interval: string, close: string): LiveCandle & Record<string, unknown> {
  return {
    exchange: "BINANCE",
    symbol,
    interval,
    interval_start: 1723161240000000,
    open: "61837.63000000",
    high: "61840.00000000",
    low: "61800.01000000",
    close,
    volume: "1.50000000",
    closed: false,
  };
}

describe("candles.{interval} channels", () => {
  it("routes candles by interval and symbol", async () => {
    const feed = new EventEmitter<GatewayFeedEvents>();
    const c = await TestClient.open(await serve(feed));
    await c.request({ op: "subscribe", channel: "candles.1m", symbols: ["BTCUSDT"], id: 1 });
    feed.emit("candle", candle("BTCUSDT", "5m", "61801.00000000"));
    feed.emit("candle", candle("ETHUSDT", "1m", "2682.72000000"));
    feed.emit("candle", candle("BTCUSDT", "1m", "61820.50000000"));
    const m = await c.next((x) => x.type === "candle");
    expect(m).toEqual({
      type: "candle",
      channel: "candles.1m",
      data: candle("BTCUSDT", "1m", "61820.50000000"),
    });
    await sleep(100);
    expect(c.messages.filter((x) => x.type === "candle")).toHaveLength(1);
    c.close();
  });

  it("works with a feed whose on() returns the removal, and stops listening when the app closes", async () => {
    const listeners = new Map<string, Set<(v: unknown) => void>>();
    const feed = {
      on(event: string, l: (v: unknown) => void) {
        const set = listeners.get(event) ?? new Set();
        listeners.set(event, set);
        set.add(l);
        return () => set.delete(l);
      },
    } as unknown as GatewayFeed;
    const c = await TestClient.open(await serve(feed));
    await c.request({ op: "subscribe", channel: "candles.1m", symbols: ["*"], id: 1 });
    for (const l of listeners.get("candle") ?? []) l(candle("BTCUSDT", "1m", "61820.50000000"));
    expect((await c.next((x) => x.type === "candle")).channel).toBe("candles.1m");
    await closers.pop()?.();
    expect(listeners.get("candle")?.size).toBe(0);
    expect(listeners.get("trade")?.size).toBe(0);
  });
});
