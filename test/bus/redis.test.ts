/**
 * The bus contract against a real Redis 7 on loopback (`REDIS_URL`, default redis://127.0.0.1:6379),
 * plus what is particular to Redis Streams: server-side dedupe, approximate MAXLEN retention, lag from
 * `XINFO GROUPS`, and a private redis-server restarted under a publisher and a consumer. Each test uses
 * its own key prefix and deletes its keys after.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import type { Bus, BusMessage } from "../../src/bus/bus.js";
import { RedisBus, type RedisBusOptions } from "../../src/bus/redis.js";
import { freePort, hasRedisServer, startRedisServer } from "../helpers/servers.js";
import { busContract, tradeMessage, waitFor } from "./contract.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const CLAIM_IDLE_MS = 1500;

const fast = (prefix: string, more: Partial<RedisBusOptions> = {}): RedisBusOptions => ({
  url: REDIS_URL,
  prefix,
  claimIdleMs: CLAIM_IDLE_MS,
  lagRefreshMs: 200,
  topicRefreshMs: 200,
  ...more,
});

/** Deletes every key under `prefix:`. */
async function deleteKeysOf(prefix: string): Promise<void> {
  const bus = await RedisBus.connect({ url: REDIS_URL, prefix });
  try {
    await bus.deleteStreams();
  } finally {
    await bus.close();
  }
}

busContract("redis", async () => {
  const prefix = `t${randomBytes(4).toString("hex")}`;
  const opened: RedisBus[] = [];
  return {
    open: async () => {
      const bus = await RedisBus.connect(fast(prefix));
      opened.push(bus);
      return bus;
    },
    crash: async (bus: Bus) => (bus as RedisBus).abandon(), // no acks, connections dropped
    cleanup: async () => {
      await Promise.all(
        opened.map((b) => Promise.race([b.close(), new Promise((r) => setTimeout(r, 3000))])),
      );
      await deleteKeysOf(prefix);
    },
    redeliverAfterMs: CLAIM_IDLE_MS,
    minWaitMs: 200,
    retains: true,
    dedupeAcrossClients: true,
    countsRedeliveryAfterCrash: true,
  };
});

describe("redis bus specifics", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanups) await c();
  });

  it("keeps one stream per topic with key, id and JSON value fields, and counts server-side duplicates", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    cleanups.push(() => deleteKeysOf(prefix));
    const a = await RedisBus.connect(fast(prefix));
    const b = await RedisBus.connect(fast(prefix));
    try {
      const ms = Array.from({ length: 50 }, (_, i) => tradeMessage("BTCUSDT", i));
      await a.publish(ms);
      await a.publish(ms.slice(10, 30));
      await b.publish(ms.slice(0, 5)); // another client: the markers live on the server
      expect(a.deduplicated).toBe(20);
      expect(b.deduplicated).toBe(5);
      const stream = `${prefix}:market.crypto.trades.binance`;
      expect(await a.client.sendCommand(["XLEN", stream])).toBe(50);
      expect(await a.topics()).toEqual(["market.crypto.trades.binance"]);
      const [[, fields]] = (await a.client.sendCommand(["XRANGE", stream, "-", "+", "COUNT", "1"])) as [
        string,
        string[],
      ][];
      expect(fields).toEqual(["key", "BTCUSDT", "id", ms[0].id, "value", JSON.stringify(ms[0].value)]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("trims each stream to about maxlen entries (XADD MAXLEN ~)", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    cleanups.push(() => deleteKeysOf(prefix));
    const bus = await RedisBus.connect(fast(prefix, { maxLen: 1000, duplicateWindowMs: 0 }));
    try {
      for (let i = 0; i < 5000; i += 500) {
        await bus.publish(Array.from({ length: 500 }, (_, j) => tradeMessage("ETHUSDT", i + j)));
      }
      const len = Number(await bus.client.sendCommand(["XLEN", `${prefix}:market.crypto.trades.binance`]));
      expect(len).toBeGreaterThanOrEqual(1000);
      expect(len).toBeLessThan(5000);
      expect(bus.deduplicated).toBe(0);
    } finally {
      await bus.close();
    }
  });

  it("keeps a slow handler's batch from being claimed by another member (idle time reset while held)", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    cleanups.push(() => deleteKeysOf(prefix));
    const claimIdleMs = 600;
    const a = await RedisBus.connect(fast(prefix, { claimIdleMs }));
    const b = await RedisBus.connect(fast(prefix, { claimIdleMs }));
    const o = {
      group: "persist",
      topicPrefixes: ["market."],
      batchSize: 1000,
      maxWaitMs: 200,
      maxBatchSize: 1000,
    };
    const ofA: BusMessage[] = [];
    const ofB: BusMessage[] = [];
    let aDone = false;
    const ca = a.consume(o, async (batch) => {
      ofA.push(...batch);
      await new Promise((r) => setTimeout(r, 4 * claimIdleMs)); // a store write far longer than claimIdleMs
      aDone = true;
    });
    try {
      await new Promise((r) => setTimeout(r, 300));
      await a.publish(Array.from({ length: 30 }, (_, i) => tradeMessage("BTCUSDT", i)));
      await waitFor(() => ofA.length > 0, 10_000, "A to take the batch");
      const cb = b.consume(o, async (batch) => {
        ofB.push(...batch);
      });
      await waitFor(() => aDone, 10_000, "A's slow handler");
      await new Promise((r) => setTimeout(r, claimIdleMs));
      expect(ofA.length).toBe(30);
      expect(ofB.length).toBe(0);
      expect(ca.redeliveries() + cb.redeliveries()).toBe(0);
      await waitFor(() => ca.lag() === 0, 5000, "lag 0 after A's ack");
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("refuses a topic that is not a bus topic, and an unreachable server names the address", async () => {
    const prefix = `t${randomBytes(4).toString("hex")}`;
    cleanups.push(() => deleteKeysOf(prefix));
    const bus = await RedisBus.connect(fast(prefix));
    try {
      await expect(bus.publish([{ ...tradeMessage("BTCUSDT", 1), topic: "trades" }])).rejects.toThrow(
        /not a bus topic/,
      );
      expect(await bus.check()).toBeNull();
    } finally {
      await bus.close();
    }
    await expect(RedisBus.connect({ url: "redis://127.0.0.1:1" })).rejects.toThrow(/127\.0\.0\.1:1/);
  });

  it.skipIf(!hasRedisServer)(
    "a restarted redis-server: publish fails clearly while it is down, then publish and consume resume",
    async () => {
      const port = await freePort();
      let server: ChildProcess = await startRedisServer(port);
      cleanups.push(async () => {
        server.kill("SIGKILL");
      });
      const url = `redis://127.0.0.1:${port}`;
      const prefix = "r";
      const pub = await RedisBus.connect({ url, prefix, lagRefreshMs: 200, topicRefreshMs: 200 });
      const sub = await RedisBus.connect({ url, prefix, lagRefreshMs: 200, topicRefreshMs: 200 });
      const got: BusMessage[] = [];
      const c = sub.consume(
        { group: "persist", topicPrefixes: ["market."], batchSize: 10, maxWaitMs: 200, maxBatchSize: 100 },
        async (b) => {
          got.push(...b);
        },
      );
      try {
        await pub.publish(Array.from({ length: 20 }, (_, i) => tradeMessage("BTCUSDT", i)));
        await waitFor(() => got.length === 20, 10_000, "the first 20");
        server.kill("SIGKILL");
        await new Promise((r) => server.once("exit", r));
        await waitFor(() => !pub.client.isReady, 5000, "the client to notice");
        const t0 = Date.now();
        const err = await pub.publish([tradeMessage("BTCUSDT", 100)]).catch((e: Error) => e);
        expect(err).toBeInstanceOf(Error);
        expect((err as Error).message).toMatch(/^Redis bus: publish failed: .*127\.0\.0\.1/);
        expect(Date.now() - t0).toBeLessThan(1000); // at once, not queued until the server is back
        expect(await pub.check()).toMatch(/disconnected/);
        server = await startRedisServer(port); // no persistence: streams, groups and topics are gone
        await waitFor(() => pub.client.isReady, 10_000, "the client to reconnect");
        expect(await pub.check()).toBeNull();
        const after = Array.from({ length: 20 }, (_, i) => tradeMessage("BTCUSDT", 200 + i));
        await pub.publish(after);
        await waitFor(() => got.length === 40, 20_000, "the consumer to resume on the new server");
        expect(got.slice(20).map((m) => m.id)).toEqual(after.map((m) => m.id));
        await waitFor(() => c.lag() === 0, 5000, "lag 0");
      } finally {
        await c.stop({ drain: false });
        await pub.close();
        await sub.close();
      }
    },
    60_000,
  );
});
