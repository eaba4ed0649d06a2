/**
 * Bus throughput: publish (acked) and consume (acked after the handler) of ~100k trades_v2 records
 * through NATS JetStream and Redis Streams on loopback, then the same records through Apache Kafka
 * (idempotent producer, acks=all; consume = fetch, handler, offset commit) when a broker is reachable
 * (see bench/kafka.ts), with the in-process memory bus alongside for scale. A server that cannot be
 * reached is skipped with a line saying so ("skipped: no broker" for Kafka).
 *
 *   npm run build && node dist/bench/bus.js [--n 100000] [--nats nats://127.0.0.1:4222] [--redis redis://127.0.0.1:6379] [--kafka 127.0.0.1:9092]
 *
 * Records are real: the Binance trades of `../shared/data/binance-spot/*.gz` normalized by the
 * Binance normalizer (~26k), repeated with fresh message ids up to `--n`. Streams get a random
 * prefix (Kafka topics too) and are deleted at the end. Prints one JSON line per measurement on stdout.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import type { Bus, BusMessage } from "../src/bus/bus.js";
import { KafkaBus } from "../src/bus/kafka.js";
import { MemoryBus } from "../src/bus/memory.js";
import { NatsBus } from "../src/bus/nats.js";
import { RedisBus } from "../src/bus/redis.js";
import { packageRoot } from "../src/paths.js";
import { readCapture } from "../src/replay/capture.js";
import { deterministicMessageId } from "../src/schema/message-id.js";
import { type TradeV2, topicFor } from "../src/schema/records.js";
import { getVenue } from "../src/venues/registry.js";
import { benchKafkaBrokers } from "./kafka.js";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : dflt;
}

const N = Number(arg("n", "100000"));
const NATS_URL = arg("nats", process.env.NATS_URL ?? "nats://127.0.0.1:4222");
const REDIS_URL = arg("redis", process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const DATA = join(packageRoot(), "..", "shared", "data", "binance-spot");

async function loadTrades(): Promise<TradeV2[]> {
  const venue = getVenue("binance")!;
  const trades: TradeV2[] = [];
  for (const file of ["btcusdt_20240808.gz", "btcusdt_20240809.gz", "ethusdt_20240808.gz"]) {
    const path = join(DATA, file);
    if (!existsSync(path)) throw new Error(`bench needs ${path}`);
    const symbol = file.slice(0, 7).toUpperCase();
    const normalizer = venue.createNormalizer(
      {
        trade: (t, type) => {
          if (type === "trades") trades.push(t);
        },
        quote: () => {},
        deadLetter: () => {},
        gap: () => {},
        control: () => {},
      },
      { symbols: [symbol], streams: ["trade"] },
    );
    for await (const f of readCapture(path)) {
      normalizer.normalize(f.raw, f.ns ? Math.floor(Number(f.ns.slice(0, -3))) : Date.now() * 1000);
    }
  }
  return trades;
}

function messages(base: TradeV2[], n: number, tag: string): BusMessage<TradeV2>[] {
  const topic = topicFor("crypto", "trades", "binance");
  const out: BusMessage<TradeV2>[] = [];
  for (let i = 0; i < n; i++) {
    const t = base[i % base.length];
    const round = Math.floor(i / base.length);
    const id = deterministicMessageId(`${tag}/${round}/${t.trade_id}`);
    out.push({ topic, key: t.symbol, id, value: { ...t, message_id: id } });
  }
  return out;
}

function report(o: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

async function publishAll(bus: Bus, msgs: BusMessage[], batch: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < msgs.length; i += batch) await bus.publish(msgs.slice(i, i + batch));
  return performance.now() - t0;
}

async function consumeAll(bus: Bus, n: number, group: string): Promise<{ ms: number; batches: number }> {
  let got = 0;
  let batches = 0;
  const t0 = performance.now();
  let resolve!: () => void;
  const done = new Promise<void>((r) => {
    resolve = r;
  });
  const c = bus.consume(
    { group, topicPrefixes: ["market."], batchSize: 500, maxWaitMs: 1000, maxBatchSize: 50_000 },
    async (b) => {
      got += b.length;
      batches++;
      if (got >= n) resolve();
    },
  );
  await done;
  const ms = performance.now() - t0; // handler of the last batch returned; its ack follows
  await c.stop({ drain: false });
  return { ms, batches };
}

async function main(): Promise<void> {
  const base = await loadTrades();
  const sample = JSON.stringify(base[0]);
  report({ bench: "records", real_trades: base.length, n: N, json_bytes: Buffer.byteLength(sample) });

  // memory bus, for scale
  {
    const bus = new MemoryBus();
    const msgs = messages(base, N, "mem");
    const consumed = consumeAll(bus, N, "bench");
    const pubMs = await publishAll(bus, msgs, 1000);
    const { ms, batches } = await consumed;
    report({
      bench: "memory",
      publish_msgs_per_s: Math.round((N * 1000) / pubMs),
      publish_plus_consume_ms: Math.round(ms),
      batches,
    });
    await bus.close();
  }

  const prefix = `bench${Date.now().toString(36)}`;
  const bus = await NatsBus.connect({ servers: NATS_URL, prefix, maxAgeMs: 3_600_000 });
  try {
    // baseline: one publish at a time, each awaiting its ack
    {
      const serial = await NatsBus.connect({
        servers: NATS_URL,
        prefix,
        maxAgeMs: 3_600_000,
        maxPublishInFlight: 1,
      });
      const m = messages(base, 5000, "serial");
      const ms = await publishAll(serial, m, 1000);
      report({
        bench: "nats publish, 1 in flight (serial awaits)",
        n: m.length,
        msgs_per_s: Math.round((m.length * 1000) / ms),
      });
      await serial.close();
    }
    // for comparison: the client's own js.publish() per message (a request, promise and timer each),
    // 2048 in flight — what NatsBus.publish replaced with one shared ack subscription
    {
      const js = jetstream(bus.connection);
      const m = messages(base, 20_000, "jspub");
      let next = 0;
      const t0 = performance.now();
      const worker = async () => {
        while (next < m.length) {
          const x = m[next++];
          await js.publish(bus.subjectOf(x.topic, x.key), JSON.stringify(x.value), { msgID: x.id });
        }
      };
      await Promise.all(Array.from({ length: 2048 }, worker));
      const ms = performance.now() - t0;
      report({
        bench: "nats publish via js.publish(), 2048 in flight (client API, for comparison)",
        n: m.length,
        msgs_per_s: Math.round((m.length * 1000) / ms),
      });
    }
    // pipelined: the default window, batches as the Publisher hands them over
    for (const batch of [100, 1000, 10_000]) {
      const m = messages(base, N, `p${batch}`);
      const ms = await publishAll(bus, m, batch);
      report({
        bench: "nats publish, pipelined (acked)",
        n: N,
        publish_call_size: batch,
        max_in_flight: 2048,
        msgs_per_s: Math.round((N * 1000) / ms),
        ms: Math.round(ms),
      });
    }
    // republishing the same ids: acked as duplicates by the server
    {
      const m = messages(base, 20_000, "p1000");
      const before = bus.deduplicated;
      const ms = await publishAll(bus, m, 1000);
      report({
        bench: "nats publish, duplicates (server dedupe)",
        n: m.length,
        duplicates: bus.deduplicated - before,
        msgs_per_s: Math.round((m.length * 1000) / ms),
      });
    }
    // consume: the stream now holds 5000 + 20000 + 3 × N distinct records; one durable takes them all
    {
      const total = 5000 + 20_000 + 3 * N;
      const { ms, batches } = await consumeAll(bus, total, "bench-consume");
      report({
        bench: "nats consume (fetch, handler, ack)",
        n: total,
        batches,
        msgs_per_s: Math.round((total * 1000) / ms),
        ms: Math.round(ms),
      });
    }
  } finally {
    await bus.deleteStreams();
    await bus.close();
  }
  await redisBench(base);
  await kafkaBench(base);
}

/** Redis Streams: the same publish and consume measurements, plus the memory one entry takes. */
async function redisBench(base: TradeV2[]): Promise<void> {
  const prefix = `bench${Date.now().toString(36)}`;
  let bus: RedisBus;
  try {
    bus = await RedisBus.connect({ url: REDIS_URL, prefix });
  } catch (e) {
    report({ bench: "redis", skipped: (e as Error).message });
    return;
  }
  try {
    for (const batch of [100, 1000, 10_000]) {
      const m = messages(base, N, `r${batch}`);
      const ms = await publishAll(bus, m, batch);
      report({
        bench: "redis publish, pipelined (acked; dedupe script + XADD)",
        n: N,
        publish_call_size: batch,
        max_in_flight: 2048,
        msgs_per_s: Math.round((N * 1000) / ms),
        ms: Math.round(ms),
      });
    }
    // without the dedupe window: a plain XADD per message, for comparison
    {
      const plain = await RedisBus.connect({ url: REDIS_URL, prefix, duplicateWindowMs: 0 });
      const m = messages(base, N, "rplain");
      const ms = await publishAll(plain, m, 1000);
      report({
        bench: "redis publish, plain XADD (dupe_window=0, acked)",
        n: N,
        publish_call_size: 1000,
        msgs_per_s: Math.round((N * 1000) / ms),
      });
      await plain.close();
    }
    {
      const m = messages(base, 20_000, "r1000");
      const before = bus.deduplicated;
      const ms = await publishAll(bus, m, 1000);
      report({
        bench: "redis publish, duplicates (server dedupe)",
        n: m.length,
        duplicates: bus.deduplicated - before,
        msgs_per_s: Math.round((m.length * 1000) / ms),
      });
    }
    const stream = bus.streamOf(topicFor("crypto", "trades", "binance"));
    const len = Number(await bus.client.sendCommand(["XLEN", stream]));
    const bytes = Number(await bus.client.sendCommand(["MEMORY", "USAGE", stream, "SAMPLES", "0"]));
    report({ bench: "redis stream memory", entries: len, bytes, bytes_per_entry: Math.round(bytes / len) });
    {
      const { ms, batches } = await consumeAll(bus, len, "bench-consume");
      report({
        bench: "redis consume (XREADGROUP, handler, XACK)",
        n: len,
        batches,
        msgs_per_s: Math.round((len * 1000) / ms),
        ms: Math.round(ms),
      });
    }
  } finally {
    await bus.deleteStreams();
    await bus.close();
  }
}

/** The same records through Kafka: pipelined acked publish per call size, then one group consuming all. */
async function kafkaBench(base: TradeV2[]): Promise<void> {
  const brokers = await benchKafkaBrokers();
  if (!brokers) {
    report({ bench: "kafka", skipped: "no broker" });
    return;
  }
  const bus = await KafkaBus.connect({
    brokers: brokers.split(","),
    topicPrefix: `bench${Date.now().toString(36)}.`,
    partitions: 3,
  });
  try {
    let total = 0;
    for (const batch of [1000, 10_000]) {
      const m = messages(base, N, `k${batch}`);
      const ms = await publishAll(bus, m, batch);
      total += m.length;
      report({
        bench: "kafka publish, idempotent producer, acks=all",
        brokers,
        n: N,
        publish_call_size: batch,
        msgs_per_s: Math.round((N * 1000) / ms),
        ms: Math.round(ms),
      });
    }
    const { ms, batches } = await consumeAll(bus, total, "bench-consume");
    report({
      bench: "kafka consume (fetch, handler, commit)",
      n: total,
      batches,
      msgs_per_s: Math.round((total * 1000) / ms),
      ms: Math.round(ms),
    });
  } finally {
    await bus.deleteTopics();
    await bus.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
