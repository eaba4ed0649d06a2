/**
 * `--redis-out`: the latest-tick cache and pub/sub on a real Redis.
 *
 * - On the machine's Redis (`REDIS_URL`, default redis://127.0.0.1:6379, under a key prefix of its own):
 *   a SUBSCRIBE client receives every trade of a replay of btcusdt_20240808.gz in order, and GET returns
 *   the last one.
 * - The same on a fresh networked bus (a private nats-server; the suite's Kafka under a new topic
 *   prefix): the output's group starts at the bus's end (`from: "now"`), and the feeds start once it
 *   has joined, so the first trade is relayed too (on Kafka the topics appear after the join and are
 *   read from their beginning).
 * - Two `k2 ingest` of the same capture on one private nats-server (a standby pair): the bus keeps each
 *   record once and each process's output, a group of its own, relays every one of them.
 * - On a private redis-server (free port) SIGKILLed mid-replay and restarted: ingest keeps its pace and
 *   stores everything, the output says so in a log line and `k2_output_connected`, counts its drops,
 *   reconnects, and the cache holds the last trade at the end.
 */
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createClient } from "redis";
import { afterAll, describe, expect, it } from "vitest";
import { lastJsonLine, runCli, skipping, startCli, tempDir } from "../helpers/cli.js";
import { canRunKafka, kafkaBootstrap } from "../helpers/kafka.js";
import {
  contiguous,
  outputExpected as expected,
  metric,
  outputRunArgs,
  recordedSpanMs,
  tradeIds,
} from "../helpers/outputs.js";
import { waitFor } from "../helpers/run.js";
import {
  freePort,
  hasNatsServer,
  hasRedisServer,
  redisReachable,
  startNatsServer,
  startRedisServer,
} from "../helpers/servers.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/** A SUBSCRIBE client collecting every message of `channel`. */
async function subscriber(url: string, channel: string) {
  const c = createClient({ url });
  c.on("error", () => undefined);
  await c.connect();
  const messages: string[] = [];
  await c.subscribe(channel, (m) => {
    messages.push(m);
  });
  return { messages, close: () => c.close() };
}

/**
 * Waits (15 s) until `sub` has received every record of the replay, closes it, and checks it got each
 * once: every trade id of the capture in order, and the quotes.
 */
async function expectEveryRecord(sub: Awaited<ReturnType<typeof subscriber>>, what: string): Promise<void> {
  const all = expected.trades + expected.quotes;
  await waitFor(
    () => sub.messages.length >= all,
    15_000,
    `every record at ${what} (received ${sub.messages.length})`,
  );
  await sub.close();
  expect(tradeIds(sub.messages)).toEqual(contiguous(expected.firstTradeId, expected.lastTradeId));
  expect(sub.messages.length).toBe(all);
}

const hasRedis = await redisReachable(REDIS_URL);

describe("--redis-out", () => {
  const prefix = `out${randomBytes(4).toString("hex")}`;
  const servers: ChildProcess[] = [];

  afterAll(async () => {
    for (const s of servers) s.kill("SIGKILL");
    if (!hasRedis) return;
    const c = createClient({ url: REDIS_URL });
    await c.connect();
    const keys = await c.keys(`${prefix}:*`);
    if (keys.length) await c.del(keys);
    await c.close();
  });

  it("rejects a URL that is not redis://, naming the flag", async () => {
    const r = await runCli(outputRunArgs("max", "--redis-out", "http://127.0.0.1:6379"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--redis-out: expected redis://");
    const ttl = await runCli(outputRunArgs("max", "--redis-out", REDIS_URL, "--redis-ttl", "-1"));
    expect(ttl.code).toBe(2);
    expect(ttl.stderr).toContain("--redis-ttl: expected an integer");
  });

  it.skipIf(skipping(!hasRedis, `no Redis at ${REDIS_URL}`))(
    "a SUBSCRIBE client receives every trade of the replay in order; GET returns the last one",
    async () => {
      const channel = `${prefix}:market:binance:BTCUSDT`;
      const sub = await subscriber(REDIS_URL, channel);
      // a queue longer than the replay: at --speed max a Redis slowed by other clients makes the output
      // wait, never drop (dropping past a full queue is the SIGKILL test's subject)
      const out = `${REDIS_URL}?prefix=${prefix}&queue=50000`;
      const r = await runCli(outputRunArgs("max", "--redis-out", out, "--log-format", "json"), {
        timeoutMs: 110_000,
      });
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(lastJsonLine(r.stdout)).toMatchObject({ trades: expected.trades, quotes: expected.quotes });
      const closed = r.stderr.split("\n").find((l) => l.includes('"outputs closed"'));
      await waitFor(
        () => sub.messages.length >= expected.trades + expected.quotes,
        10_000,
        `every record (received ${sub.messages.length}; ${closed})`,
      );
      await sub.close();
      const trades = tradeIds(sub.messages);
      expect(trades).toEqual(contiguous(expected.firstTradeId, expected.lastTradeId));
      expect(sub.messages.length - trades.length).toBe(expected.quotes);

      const c = createClient({ url: REDIS_URL });
      await c.connect();
      const last = await c.get(`${channel}:trade`);
      const ttl = await c.ttl(`${channel}:trade`);
      const quote = await c.get(`${channel}:quote`);
      await c.close();
      const lastTrade = sub.messages.filter((m) => m.includes('"trade_id"')).at(-1);
      expect(last).toBe(lastTrade);
      expect(JSON.parse(last!).trade_id).toBe(`BINANCE-${expected.lastTradeId}`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60);
      expect(quote).toBe(sub.messages.filter((m) => m.includes('"bid_price"')).at(-1));
      expect(r.stderr).toContain("redis output: connected");
    },
    120_000,
  );

  const networked: [name: string, missing: string | null, url: () => Promise<string>][] = [
    [
      "nats",
      hasNatsServer ? null : "nats-server is not installed",
      async () => {
        const port = await freePort();
        servers.push(await startNatsServer(port, tempDir()));
        return `nats://127.0.0.1:${port}?prefix=out`;
      },
    ],
    [
      "kafka",
      process.env.K2_KAFKA_URL || canRunKafka ? null : "no Kafka (K2_KAFKA_URL, or java and mvn)",
      async () => `kafka://${await kafkaBootstrap()}?prefix=${prefix}.`,
    ],
  ];
  for (const [name, missing, busUrl] of networked) {
    it.skipIf(skipping(!hasRedis || missing !== null, missing ?? `no Redis at ${REDIS_URL}`))(
      `on a fresh ${name} bus: the output joins before the feeds start and relays every trade from the first`,
      async () => {
        const keys = `${prefix}-${name}`;
        const sub = await subscriber(REDIS_URL, `${keys}:market:binance:BTCUSDT`);
        const out = `${REDIS_URL}?prefix=${keys}&queue=50000`;
        const bus = await busUrl();
        const r = await runCli(
          outputRunArgs("max", "--bus", bus, "--redis-out", out, "--log-format", "json"),
          {
            timeoutMs: 150_000,
          },
        );
        expect(r.code, r.stderr.slice(-2000)).toBe(0);
        expect(lastJsonLine(r.stdout)).toMatchObject({ trades: expected.trades, quotes: expected.quotes });
        expect(r.stderr).not.toContain("have not joined the bus yet");
        await expectEveryRecord(sub, "the output");
      },
      160_000,
    );
  }

  it.skipIf(skipping(!hasRedis || !hasNatsServer, `no Redis at ${REDIS_URL} or no nats-server`))(
    "two k2 ingest of the same venue on one NATS bus (a standby pair): each one's output relays every trade",
    async () => {
      const port = await freePort();
      servers.push(await startNatsServer(port, tempDir()));
      const bus = `nats://127.0.0.1:${port}?prefix=pair`;
      const pair = ["a", "b"].map((name) => `${prefix}-pair-${name}`);
      const subs = await Promise.all(
        pair.map((keys) => subscriber(REDIS_URL, `${keys}:market:binance:BTCUSDT`)),
      );
      // both publish the same records; the bus keeps each once (its message id), and each process's
      // output group, its own, relays all of them (one shared group would hand each a part)
      const runs = await Promise.all(
        pair.map((keys) =>
          runCli(
            // `k2 ingest` with the run's replay flags (no store; a spill journal of its own)
            [
              "ingest",
              ...outputRunArgs("max").slice(1, -2),
              ...["--bus", bus, "--journal-dir", tempDir()],
              ...["--redis-out", `${REDIS_URL}?prefix=${keys}&queue=50000`],
            ],
            { timeoutMs: 150_000 },
          ),
        ),
      );
      for (const r of runs) expect(r.code, r.stderr.slice(-2000)).toBe(0);
      for (const [i, sub] of subs.entries()) await expectEveryRecord(sub, `output ${pair[i]}`);
    },
    160_000,
  );

  it.skipIf(skipping(!hasRedisServer, "redis-server is not installed"))(
    "a Redis SIGKILLed mid-replay and restarted: ingest keeps its pace, drops are counted, it reconnects",
    async () => {
      const port = await freePort();
      const url = `redis://127.0.0.1:${port}`;
      let server = await startRedisServer(port);
      servers.push(server);
      const speed = 20;
      const run = startCli(
        outputRunArgs(String(speed), "--redis-out", `${url}?queue=1000`, "--log-format", "json"),
      );
      const http = await run.httpPort;
      const connected = () => metric(http, 'k2_output_connected{output="redis"}');
      const sent = () => metric(http, 'k2_output_sent_total{output="redis"}');
      await waitFor(async () => (await sent()) > 2000, 60_000, "records sent to Redis");
      server.kill("SIGKILL");
      await new Promise((r) => server.once("exit", r));
      const killedAt = performance.now();
      await waitFor(async () => (await connected()) === 0, 10_000, "k2_output_connected 0");
      await new Promise((r) => setTimeout(r, 3000)); // away for 3 s of replay (1 minute of the recording)
      const droppedWhileAway = await metric(
        http,
        'k2_output_dropped_total{output="redis",reason="queue_full"}',
      );
      server = await startRedisServer(port);
      servers.push(server);
      await waitFor(async () => (await connected()) === 1, 15_000, "reconnected");
      const awayMs = performance.now() - killedAt;
      const sentBefore = await sent();
      const exit = await run.exited;
      expect(exit.code, exit.stderr.slice(-2000)).toBe(0);
      const summary = lastJsonLine(exit.stdout);
      expect(summary).toMatchObject({
        trades: expected.trades,
        quotes: expected.quotes,
        stored: expected.trades + expected.quotes,
      });
      // the feed kept the recorded pace: receiving took the recording's span / speed, plus little
      const paceMs = (await recordedSpanMs()) / speed;
      expect(Number(summary.receive_ms)).toBeLessThan(paceMs * 1.05 + 1000);
      expect(exit.stderr).toContain("redis output: disconnected");
      expect(exit.stderr).toContain("redis output: reconnected");
      const closed = exit.stderr
        .split("\n")
        .filter((l) => l.includes('"outputs closed"'))
        .map((l) => JSON.parse(l) as { redis: { sent: number; dropped: number } })[0];
      expect(closed.redis.sent).toBeGreaterThan(sentBefore);
      expect(closed.redis.sent + closed.redis.dropped).toBe(expected.trades + expected.quotes);
      const c = createClient({ url });
      await c.connect();
      const last = await c.get("market:binance:BTCUSDT:trade");
      await c.close();
      expect(JSON.parse(last!).trade_id).toBe(`BINANCE-${expected.lastTradeId}`);
      console.log(
        `redis output, Redis SIGKILLed at --speed ${speed}: away ${Math.round(awayMs)} ms; records sent ${closed.redis.sent}, dropped ${closed.redis.dropped} (${droppedWhileAway} counted while away); ingest receive_ms ${summary.receive_ms} for a recorded span / speed of ${Math.round(paceMs)} ms`,
      );
    },
    120_000,
  );
});
