/**
 * `startIngest` never lets a normalizer exception out of the WebSocket handler: a frame whose
 * normalizer throws (a bug) becomes a dead letter, is logged as an error and counted in
 * `k2_normalizer_errors_total`, and the feed goes on. Also: per-symbol frame counters exist only for
 * subscribed symbols, and the normalizer's anomalies reach their metrics.
 */
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import type { BusMessage } from "../../src/bus/bus.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { Publisher } from "../../src/bus/publisher.js";
import { Metrics } from "../../src/ops/metrics.js";
import { startIngest } from "../../src/pipeline.js";
import type { DeadLetter, TradeV2 } from "../../src/schema/records.js";
import { binance } from "../../src/venues/binance.js";
import type { Venue } from "../../src/venues/venue.js";
import { waitFor } from "../helpers/run.js";

const trade = (id: number, p = "100.5", s = "BTCUSDT") =>
  JSON.stringify({
    stream: `${s.toLowerCase()}@trade`,
    data: { e: "trade", E: 1, s, t: id, p, q: "1", T: 1_723_161_255_000, m: true, M: true },
  });

describe("startIngest guards the normalizer", () => {
  it("turns a throwing normalizer into a dead letter, an error log and a metric, and keeps going", async () => {
    // a venue whose normalizer has a bug on one frame
    const buggy: Venue = {
      ...binance,
      createNormalizer(sink, sub) {
        const real = binance.createNormalizer(sink, sub);
        return {
          normalize(raw, at) {
            if (raw.includes('"t":2,')) throw new TypeError("cannot read properties of undefined");
            real.normalize(raw, at);
          },
        };
      },
    };
    const frames = [trade(1), trade(2), trade(3), trade(3, "101"), trade(0), trade(4, "100.5", "ETHUSDT")];
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    wss.on("connection", (ws) => {
      for (const f of frames) ws.send(f);
    });
    const url = `ws://127.0.0.1:${(wss.address() as { port: number }).port}`;

    const logs: string[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => logs.push(s) });
    const bus = new MemoryBus();
    const got: BusMessage[] = [];
    const consumer = bus.consume(
      { group: "t", topicPrefixes: ["market."], batchSize: 1, maxWaitMs: 10, maxBatchSize: 100 },
      async (batch) => {
        got.push(...batch);
      },
    );
    const metrics = new Metrics({ defaultMetrics: false });
    const publisher = new Publisher(bus, logger);
    const feed = startIngest(
      {
        venue: buggy,
        subscription: { symbols: ["BTCUSDT"], streams: ["trade"] },
        wsUrl: url,
        bus,
        metrics,
        logger,
      },
      publisher,
    );
    try {
      // 2 trades (1, 3), 3 dead letters (the thrown frame, the conflicting 3, unsubscribed ETHUSDT),
      // 1 trade stored with a regression (0)
      await waitFor(() => got.length >= 6, 20_000, "six messages on the bus");
      const trades = got
        .filter((m) => m.topic.includes(".trades."))
        .map((m) => (m.value as TradeV2).trade_id);
      expect(trades).toEqual(["BINANCE-1", "BINANCE-3", "BINANCE-0"]);
      const dead = got.filter((m) => m.topic === "market.dlq.binance").map((m) => m.value as DeadLetter);
      expect(dead.map((d) => [d.source, d.reason.split(":")[0]])).toEqual([
        ["binance:normalizer", "normalizer error"],
        ["binance:btcusdt@trade", "conflicting duplicate of trade id 3"],
        ["binance:ethusdt@trade", "frame for unsubscribed stream ethusdt@trade"],
      ]);
      expect(dead[0].reason).toBe("normalizer error: cannot read properties of undefined");
      expect(dead[0].raw).toBe(frames[1]);
      expect(logs.some((l) => /"level":50.*normalizer threw; frame dead-lettered/.test(l))).toBe(true);
      expect(logs.some((l) => /sequence regression/.test(l))).toBe(true);

      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^k2_normalizer_errors_total\{exchange="BINANCE"\} 1$/m);
      expect(text).toMatch(/^k2_conflicting_duplicates_total\{exchange="BINANCE"\} 1$/m);
      expect(text).toMatch(/^k2_sequence_regressions_total\{exchange="BINANCE"\} 1$/m);
      expect(text).toMatch(/^k2_records_rejected_total\{exchange="BINANCE"\} 3$/m);
      expect(text).toMatch(/^k2_frames_received_total\{exchange="BINANCE",stream="BTCUSDT.trades"\} 3$/m);
      expect(text).not.toMatch(/ETHUSDT/);
      expect(feed.counts.trades).toBe(3);
    } finally {
      await feed.connection.stop();
      await publisher.flush();
      await consumer.stop?.();
      await bus.close();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});
