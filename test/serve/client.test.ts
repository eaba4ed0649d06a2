/**
 * The typed client (`k2/client`) against real `k2 run --replay` pipelines in process: typed records,
 * ping, validation before sending, and reconnect with backoff + resubscribe when the server goes away
 * and a new one comes up on the same port.
 */
import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { K2Client, K2GatewayError, type QuoteV2, type TradeV2 } from "../../src/client.js";
import type { RunningPipeline } from "../../src/run.js";
import { QuoteV2Schema, TradeV2Schema } from "../../src/schema/validators.js";
import { ensureBuilt, ROOT, sleep, startReplayRun, tempDir } from "./helpers.js";

const tmp = tempDir();
const runs: RunningPipeline[] = [];

afterAll(async () => {
  for (const r of runs) await r.stop("test done");
  tmp.cleanup();
});

describe("K2Client", () => {
  it("streams typed trades and quotes, validates requests, reconnects with backoff and resubscribes", async () => {
    const first = await startReplayRun({ db: `${tmp.dir}/a.duckdb`, speed: "10" });
    runs.push(first);
    const port = first.httpPort;
    const client = new K2Client({
      url: `ws://127.0.0.1:${port}/ws`,
      backoffInitialMs: 100,
      backoffMaxMs: 400,
    });
    const trades: TradeV2[] = [];
    const quotes: QuoteV2[] = [];
    const states: string[] = [];
    const delays: number[] = [];
    client.on("trade", (t) => trades.push(t));
    client.on("quote", (q) => quotes.push(q));
    client.on("state", (s) => states.push(s));
    client.on("reconnect", (_attempt, delay) => delays.push(delay));
    client.on("error", () => {});
    await client.connect();
    expect(client.state).toBe("open");

    const sub = await client.subscribe("trades", ["BTCUSDT"]);
    expect(sub).toMatchObject({ type: "subscribed", channel: "trades", symbols: ["BTCUSDT"] });
    // any case, upper-cased as the gateway and the REST API read it
    const quotesSub = await client.subscribe("quotes", ["btcusdt"], { batchMs: 50 });
    expect(quotesSub).toMatchObject({ symbols: ["BTCUSDT"] });
    await expect(client.subscribe("trades", ["btc usdt"])).rejects.toBeInstanceOf(K2GatewayError);
    await expect(client.subscribe("trades", ["btc usdt"])).rejects.toMatchObject({ field: "symbols.0" });
    expect(client.subscriptions()).toEqual([
      { channel: "trades", symbols: ["BTCUSDT"] },
      { channel: "quotes", symbols: ["BTCUSDT"], batchMs: 50 },
    ]);
    expect(await client.ping()).toBeGreaterThanOrEqual(0);
    while (trades.length < 10 || quotes.length < 10) await sleep(50);
    for (const t of trades.slice(0, 10)) TradeV2Schema.parse(t);
    for (const q of quotes.slice(0, 10)) QuoteV2Schema.parse(q);

    // the server goes away (clients get 1001), and a new run comes up on the same port after a while
    const closed = new Promise<number>((res) => client.once("close", (code) => res(code)));
    await first.stop("restart");
    expect(await closed).toBe(1001);
    await sleep(700); // a few failed attempts: the delays must grow
    const reopened = new Promise<void>((res) => client.once("open", () => res()));
    const restartedAtUs = Date.now() * 1000;
    const second = await startReplayRun({
      db: `${tmp.dir}/b.duckdb`,
      speed: "10",
      httpPort: port,
      replayClock: "wall", // its records are told from the first run's by their receipt time
    });
    runs.push(second);
    await reopened;
    expect(client.reconnects).toBeGreaterThanOrEqual(2);
    expect(delays[1]).toBeGreaterThan(delays[0] * 1.2); // 100 → 200 ms less ≤20 % jitter
    expect(Math.max(...delays)).toBeLessThanOrEqual(400);
    expect(states).toContain("reconnecting");

    // resubscribed without being asked: records of the second run arrive on both channels
    const before = { trades: trades.length, quotes: quotes.length };
    while (trades.length < before.trades + 10 || quotes.length < before.quotes + 10) await sleep(50);
    const fresh = trades.slice(before.trades);
    // ingested by the second run, after the restart
    expect(fresh[0].ingestion_timestamp).toBeGreaterThan(restartedAtUs);
    for (let i = 1; i < fresh.length; i++) {
      expect(fresh[i].source_sequence).toBe((fresh[i - 1].source_sequence as number) + 1);
    }
    await client.close();
    expect(client.state).toBe("closed");
  });

  it("is importable as k2/client (package exports, compiled)", () => {
    ensureBuilt();
    const out = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'const m = await import("k2/client"); console.log(typeof m.K2Client, typeof m.K2GatewayError)',
      ],
      { cwd: ROOT, encoding: "utf8" },
    );
    expect(out.trim()).toBe("function function");
  });
});
