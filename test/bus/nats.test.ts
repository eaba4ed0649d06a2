/**
 * The bus contract against a real NATS JetStream server on loopback (`NATS_URL`, default
 * nats://127.0.0.1:4222). Each test uses its own stream/subject prefix and deletes its streams after.
 */
import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import type { Bus } from "../../src/bus/bus.js";
import {
  decodeKeyToken,
  encodeKeyToken,
  intersectSubjects,
  NatsBus,
  prefixToFilter,
} from "../../src/bus/nats.js";
import { busContract, tradeMessage } from "./contract.js";

const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** Deletes the streams a test created (by their prefix), whatever state the test left them in. */
async function deleteStreamsOf(prefix: string): Promise<void> {
  const nc = await connect({ servers: NATS_URL });
  try {
    const jsm = await jetstreamManager(nc);
    const names: string[] = [];
    for await (const n of jsm.streams.names()) if (n.startsWith(`${prefix.toUpperCase()}_`)) names.push(n);
    for (const n of names) await jsm.streams.delete(n);
  } finally {
    await nc.close();
  }
}
const ACK_WAIT_MS = 1500;

busContract("nats", async () => {
  const prefix = `t${randomBytes(4).toString("hex")}`;
  const opened: NatsBus[] = [];
  return {
    open: async () => {
      const bus = await NatsBus.connect({
        servers: NATS_URL,
        prefix,
        ackWaitMs: ACK_WAIT_MS,
        maxAgeMs: 600_000,
        lagRefreshMs: 200,
      });
      opened.push(bus);
      return bus;
    },
    crash: async (bus: Bus) => {
      await (bus as NatsBus).connection.close(); // no acks, no drain: the process is gone
    },
    cleanup: async () => {
      await Promise.all(
        opened.map((b) =>
          Promise.race([b.close(), new Promise((r) => setTimeout(r, 3000))]).then(() =>
            b.connection.isClosed() ? undefined : b.connection.close(),
          ),
        ),
      );
      await deleteStreamsOf(prefix);
    },
    redeliverAfterMs: ACK_WAIT_MS,
    minWaitMs: 1000,
    retains: true,
    dedupeAcrossClients: true,
    countsRedeliveryAfterCrash: true,
  };
});

describe("nats bus specifics", () => {
  it("maps keys to subject tokens and back", () => {
    for (const k of ["BTCUSDT", "BTC-USD", "BRK.B", "A B*>%", "XBT/USD", ""]) {
      const t = encodeKeyToken(k);
      expect(t).not.toMatch(/[.*>\s]/);
      expect(decodeKeyToken(t)).toBe(k);
    }
    expect(encodeKeyToken("BRK.B")).toBe("BRK%2EB");
  });

  it("maps topic prefixes to stream filters", () => {
    expect(intersectSubjects(prefixToFilter("market."), "market.crypto.trades.>")).toBe(
      "market.crypto.trades.>",
    );
    expect(intersectSubjects(prefixToFilter("market.*.trades."), "market.crypto.trades.>")).toBe(
      "market.crypto.trades.>",
    );
    expect(intersectSubjects(prefixToFilter("market.crypto.trades."), "market.crypto.quotes.>")).toBeNull();
    expect(intersectSubjects(prefixToFilter("market.dlq.binance"), "market.dlq.>")).toBe(
      "market.dlq.binance.>",
    );
    expect(intersectSubjects(prefixToFilter("market.dlq."), "market.crypto.trades.>")).toBeNull();
    expect(intersectSubjects("market.*.trades.>", "market.dlq.>")).toBe("market.dlq.trades.>"); // why per asset class
    expect(() => prefixToFilter("market.cry")).toThrow(/token boundary|whole topic/);
  });

  it("creates the streams idempotently and updates a changed retention in place", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const a = await NatsBus.connect({ servers: NATS_URL, prefix, maxAgeMs: 600_000 });
    try {
      const b = await NatsBus.connect({ servers: NATS_URL, prefix, maxAgeMs: 600_000 });
      await b.close();
      const c = await NatsBus.connect({ servers: NATS_URL, prefix, maxAgeMs: 300_000 });
      await c.publish([tradeMessage("BTCUSDT", 1)]);
      await c.close();
      const jsm = await jetstreamManager(a.connection);
      const info = await jsm.streams.info(`${prefix.toUpperCase()}_MARKET_TRADES`);
      expect(info.config.subjects).toEqual(
        ["equities", "crypto", "futures", "options"].map((ac) => `${prefix}.market.${ac}.trades.>`),
      );
      expect(info.config.max_age).toBe(300_000 * 1e6);
      expect(info.state.messages).toBe(1);
      const names: string[] = [];
      for await (const s of jsm.streams.names(`${prefix}.market.>`)) names.push(s);
      expect(names.sort()).toEqual(
        ["AGGTRADES", "BOOK", "BOOKSNAPSHOTS", "CANDLES", "DLQ", "GAPS", "QUOTES", "TRADES"].map(
          (n) => `${prefix.toUpperCase()}_MARKET_${n}`,
        ),
      );
    } finally {
      await a.close();
      await deleteStreamsOf(prefix);
    }
  });

  it("refuses a topic that is not a bus topic, and an unreachable server names the address", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const bus = await NatsBus.connect({ servers: NATS_URL, prefix, maxAgeMs: 600_000 });
    try {
      await expect(bus.publish([{ ...tradeMessage("BTCUSDT", 1), topic: "trades" }])).rejects.toThrow(
        /not a bus topic/,
      );
    } finally {
      await bus.close();
      await deleteStreamsOf(prefix);
    }
    await expect(NatsBus.connect({ servers: "nats://127.0.0.1:1" })).rejects.toThrow(/127\.0\.0\.1:1/);
  });

  it("counts server-side duplicates, and fails a publish when no stream takes the subject", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const bus = await NatsBus.connect({
      servers: NATS_URL,
      prefix,
      maxAgeMs: 600_000,
      publishTimeoutMs: 3000,
    });
    try {
      const ms = Array.from({ length: 50 }, (_, i) => tradeMessage("BTCUSDT", i));
      await bus.publish(ms);
      await bus.publish(ms.slice(10, 30));
      expect(bus.deduplicated).toBe(20);
      await deleteStreamsOf(prefix); // the streams vanish under the publisher
      await expect(bus.publish([tradeMessage("BTCUSDT", 99)])).rejects.toThrow(/no stream listens|503/);
    } finally {
      await bus.close();
      await deleteStreamsOf(prefix);
    }
  });
});
