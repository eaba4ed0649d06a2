import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { BusSpecError, createBus, parseBusUrl } from "../../src/bus/index.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { NatsBus } from "../../src/bus/nats.js";
import { RedisBus } from "../../src/bus/redis.js";
import { ConfigError, resolveRunConfig } from "../../src/config.js";

describe("--bus URLs", () => {
  it("maps memory, nats://, kafka:// and redis:// to transports with their options", () => {
    expect(parseBusUrl("memory")).toEqual({ kind: "memory", options: {} });
    expect(parseBusUrl("memory?dedupe_window=30s")).toEqual({
      kind: "memory",
      options: { dedupeWindowMs: 30_000 },
    });
    expect(parseBusUrl("nats://127.0.0.1:4222")).toEqual({
      kind: "nats",
      options: { servers: ["nats://127.0.0.1:4222"] },
    });
    expect(
      parseBusUrl(
        "nats://127.0.0.1:4222,127.0.0.1:4223,localhost?replicas=3&max_age=36h&dupe_window=5m&ack_wait=10s",
      ),
    ).toEqual({
      kind: "nats",
      options: {
        servers: ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://localhost:4222"],
        replicas: 3,
        maxAgeMs: 36 * 3_600_000,
        duplicateWindowMs: 300_000,
        ackWaitMs: 10_000,
      },
    });
    expect(
      parseBusUrl("kafka://k1:9092,k2?partitions=6&replication=3&format=avro&registry=http://sr:8081"),
    ).toEqual({
      kind: "kafka",
      options: {
        brokers: ["k1:9092", "k2:9092"],
        partitions: 6,
        replication: 3,
        format: "avro",
        schemaRegistryUrl: "http://sr:8081",
      },
    });
    expect(parseBusUrl("redis://127.0.0.1")).toEqual({
      kind: "redis",
      options: { url: "redis://127.0.0.1:6379" },
    });
    expect(
      parseBusUrl("redis://10.0.0.5:6380?maxlen=50000&dupe_window=30s&claim_idle=10s&db=2&prefix=Tenant_1"),
    ).toEqual({
      kind: "redis",
      options: {
        url: "redis://10.0.0.5:6380",
        maxLen: 50_000,
        duplicateWindowMs: 30_000,
        claimIdleMs: 10_000,
        database: 2,
        prefix: "Tenant_1",
      },
    });
  });

  it("rejects bad values with a BusSpecError naming --bus, which the configuration reports as a ConfigError", () => {
    const bad: [string, RegExp][] = [
      ["", /empty/],
      [
        "zmq://127.0.0.1:5556",
        /expected "memory", "nats:\/\/host:4222", "kafka:\/\/host:9092" or "redis:\/\/host:6379"/,
      ],
      ["nats://", /expected/],
      ["nats://host:99999", /bad port/],
      ["nats://h?replicas=x", /replicas: expected an integer/],
      ["nats://h?max_age=7", /max_age: expected a duration/],
      ["nats://h?colour=blue", /unknown option "colour"/],
      ["kafka://h?format=avro", /format=avro needs registry/],
      ["kafka://h?format=xml", /format: expected json or avro/],
      ["redis://a:6379,b:6379", /takes one host:port/],
      ["redis://h?maxlen=0", /maxlen: expected an integer from 1/],
      ["redis://h?claim_idle=5", /claim_idle: expected a duration/],
      ["redis://h?prefix=a:b", /prefix: letters, digits/],
      ["memory://x", /expected/],
    ];
    for (const [url, re] of bad) {
      let err: unknown;
      try {
        parseBusUrl(url);
      } catch (e) {
        err = e;
      }
      expect(err, url).toBeInstanceOf(BusSpecError);
      expect((err as Error).message, url).toMatch(/^--bus: /);
      expect((err as Error).message, url).toMatch(re);
      // the flag check of `k2 run` / `k2 record`: the same message, as a ConfigError (exit 2)
      let configErr: unknown;
      try {
        resolveRunConfig({ bus: url }, {});
      } catch (e) {
        configErr = e;
      }
      expect(configErr, url).toBeInstanceOf(ConfigError);
      expect((configErr as Error).message, url).toBe((err as Error).message);
    }
  });

  it("createBus connects the transport the URL names", async () => {
    const mem = await createBus("memory");
    expect(mem).toBeInstanceOf(MemoryBus);
    await mem.close();
    const prefix = `t${randomBytes(4).toString("hex")}`;
    const nats = await createBus(
      `${process.env.NATS_URL ?? "nats://127.0.0.1:4222"}?prefix=${prefix}&max_age=10m`,
    );
    try {
      expect(nats).toBeInstanceOf(NatsBus);
      expect(nats.name).toBe("nats");
    } finally {
      await (nats as NatsBus).deleteStreams();
      await nats.close();
    }
    await expect(createBus("nats://127.0.0.1:1")).rejects.toThrow(/127\.0\.0\.1:1/);
    const redis = await createBus(`${process.env.REDIS_URL ?? "redis://127.0.0.1:6379"}?prefix=${prefix}`);
    try {
      expect(redis).toBeInstanceOf(RedisBus);
      expect(redis.name).toBe("redis");
    } finally {
      await redis.close();
    }
    await expect(createBus("redis://127.0.0.1:1")).rejects.toThrow(/redis:\/\/127\.0\.0\.1:1/);
  });
});
