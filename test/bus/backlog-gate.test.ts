/**
 * The backlog gate's accounting (`src/bus/backlog.ts`) against the real Publisher, memory bus and spill
 * journal, stepped by hand (no timers): exactly the budget stays in memory, the rest is spilled, and a
 * read-back below the low-water mark tops the backlog up to the budget, never past it.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BacklogGate } from "../../src/bus/backlog.js";
import type { BusMessage } from "../../src/bus/bus.js";
import { Journal } from "../../src/bus/journal.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { Publisher } from "../../src/bus/publisher.js";
import { Metrics } from "../../src/ops/metrics.js";
import { tempDir } from "../helpers/cli.js";
import { silentLogger } from "../helpers/run.js";

const TOPIC = "market.crypto.trades.binance";
const msg = (i: number): BusMessage => ({ topic: TOPIC, key: "BTCUSDT", id: `id-${i}`, value: { i } });

describe("BacklogGate with policy spill", () => {
  it("spills past the budget, reads back below the low-water mark, and never counts a record twice", async () => {
    const bus = new MemoryBus();
    // a consumer group whose member never claims a batch (it waits for a million records or a minute):
    // everything published waits in the group's queue, as when the store has fallen behind
    const consumer = bus.consume(
      {
        group: "persist",
        topicPrefixes: ["market."],
        batchSize: 1_000_000,
        maxWaitMs: 60_000,
        maxBatchSize: 1_000_000,
      },
      async () => undefined,
    );
    const logger = silentLogger();
    const publisher = new Publisher(bus, logger);
    const metrics = new Metrics({ defaultMetrics: false });
    const journal = new Journal(join(tempDir(), "journal"));
    const budget = 100;
    const gate = new BacklogGate({
      budget,
      policy: "spill",
      backlog: () => publisher.pending() + bus.backlog("persist"),
      journal,
      publish: (m) => publisher.pushDirect(m),
      pause: () => undefined,
      resume: () => undefined,
      metrics,
      logger,
    });
    publisher.gate = (m) => gate.admit(m);
    publisher.onAcked = (batch) => journal.ack(batch);

    for (let i = 0; i < 250; i++) publisher.push(msg(i));
    await publisher.flush();
    // admit() sees the publisher's pending count at once: exactly the budget stays in memory
    expect(bus.backlog("persist")).toBe(budget);
    expect(gate.spilled).toBe(150);
    expect(journal.records).toBe(150);

    // the store catches up with 70 of them: 30 in memory, below the low-water mark (50)
    const stored = drainFirst(bus, 70);
    expect(stored).toHaveLength(70);
    gate.tick();
    expect(gate.readBack).toBe(70); // up to the budget again
    expect(gate.peak).toBe(budget);
    expect(await metricValue(metrics, "k2_backlog_records")).toBe(budget);
    await publisher.flush();
    expect(bus.backlog("persist")).toBe(budget);
    gate.tick();
    expect(gate.peak).toBe(budget);
    expect(journal.records).toBe(80);

    await consumer.stop({ drain: false });
  });
});

/** Takes the first `n` waiting messages of the group's queue, as a store that has written them. */
function drainFirst(bus: MemoryBus, n: number): BusMessage[] {
  const all = bus.takeUnacked("persist");
  // the rest go back, in order, under fresh ids (the dedupe window has seen the old ones)
  bus.publishSync(all.slice(n).map((m) => ({ ...m, id: `${m.id}-again` })));
  return all.slice(0, n);
}

async function metricValue(metrics: Metrics, name: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : Number.NaN;
}
