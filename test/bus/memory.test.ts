import { describe, expect, it } from "vitest";
import { MemoryBus } from "../../src/bus/memory.js";
import { busContract, tradeMessage, waitFor } from "./contract.js";

// One in-process bus plays the backend; "another client" is the same instance, and a crash abandons
// its consumers' batches in flight.
busContract("memory", async () => {
  const bus = new MemoryBus();
  return {
    open: async () => bus,
    crash: async (b) => (b as MemoryBus).abandonConsumers(),
    cleanup: () => bus.close(),
    redeliverAfterMs: 0,
    minWaitMs: 200,
    retains: false,
    dedupeAcrossClients: true,
    countsRedeliveryAfterCrash: true,
  };
});

describe("memory bus", () => {
  it("does not keep messages for a group that does not exist yet (no retention)", async () => {
    const bus = new MemoryBus();
    bus.publishSync([tradeMessage("BTCUSDT", 1)]);
    const got: string[] = [];
    const c = bus.consume(
      { group: "g", topicPrefixes: ["market."], batchSize: 1, maxWaitMs: 50, maxBatchSize: 10 },
      async (b) => {
        got.push(...b.map((m) => m.id));
      },
    );
    bus.publishSync([tradeMessage("BTCUSDT", 2)]);
    await waitFor(() => got.length === 1, 2000, "the second message");
    await c.stop();
    expect(got).toEqual([tradeMessage("BTCUSDT", 2).id]);
  });

  it("counts deduplicated ids and forgets them after two windows", async () => {
    const bus = new MemoryBus({ dedupeWindowMs: 50 });
    const m = tradeMessage("BTCUSDT", 1);
    bus.publishSync([m, m]);
    expect(bus.deduplicated).toBe(1);
    await new Promise((r) => setTimeout(r, 120));
    bus.publishSync([m]);
    bus.publishSync([m]);
    bus.publishSync([{ ...m, id: "x" }]);
    await new Promise((r) => setTimeout(r, 60));
    bus.publishSync([m]);
    expect(bus.deduplicated).toBe(3);
  });
});
