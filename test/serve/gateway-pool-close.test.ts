/**
 * Shutdown of the gateway in a worker process (`serve/ws/pool.ts`, `worker.ts`): records reach the
 * worker on its stdin, and the close must not overtake them. A burst of 20,000 trades is published and
 * the HTTP server closed in the same pass: the client still gets every trade, in order, then close
 * 1001. (Before, the close went over IPC, ahead of the records still in the pipe; a loaded machine's
 * CI run saw 190 readers miss the last 1,331 trades of a replay.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../src/ops/logger.js";
import { Metrics } from "../../src/ops/metrics.js";
import { createHttpServer, listen } from "../../src/serve/http.js";
import { LiveFeed } from "../../src/serve/live/feed.js";
import { resolveGatewayConfig } from "../../src/serve/ws/config.js";
import { GatewayPool } from "../../src/serve/ws/pool.js";
import { ensureBuilt, sleep, syntheticTrade, TestClient } from "./helpers.js";

const BURST = 20_000;

beforeAll(() => ensureBuilt());

let closeApp: (() => Promise<void>) | null = null;
afterAll(async () => {
  await closeApp?.();
});

describe("gateway worker shutdown", () => {
  it("sends every record published before the close, in order, then 1001", async () => {
    const feed = new LiveFeed();
    const metrics = new Metrics({ defaultMetrics: false });
    const app = await createHttpServer({
      metrics,
      health: async () => [],
      register: (a) => {
        new GatewayPool({
          feed,
          config: resolveGatewayConfig({ K2_WS_WORKERS: "1", K2_WS_MAX_QUEUE: String(BURST * 2) }),
          metrics,
          logger: createLogger("silent"),
          workers: 1,
        }).attach(a);
      },
    });
    closeApp = () => app.close();
    const port = await listen(app, 0);
    const ids: number[] = [];
    const c = await TestClient.open(`ws://127.0.0.1:${port}/ws`, {}, () => false);
    c.ws.on("message", (d) => {
      const m = JSON.parse(String(d));
      if (m.type === "trade") ids.push(m.data.source_sequence);
    });
    await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
    feed.publishTrade(syntheticTrade(0));
    const until = performance.now() + 30_000;
    while (ids.length === 0) {
      if (performance.now() > until) throw new Error("the first trade did not arrive within 30 s");
      await sleep(20);
    }

    for (let i = 1; i <= BURST; i++) feed.publishTrade(syntheticTrade(i));
    closeApp = null;
    await app.close();
    await c.closed;
    expect(c.closeCode).toBe(1001);
    expect(ids.length).toBe(BURST + 1);
    for (let i = 0; i < ids.length; i++) if (ids[i] !== i) expect.fail(`trade ${i}: got ${ids[i]}`);
  }, 60_000);
});
