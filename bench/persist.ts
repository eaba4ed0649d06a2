/**
 * Persist throughput through NATS JetStream, Redis Streams and Kafka: the 37,797 trade and bookTicker
 * records of btcusdt_20240808.gz are published to the bus by `k2 ingest`, then one `k2 persist` drains
 * them into a fresh store (PostgreSQL, then DuckDB for comparison). Reports records/s from the persist
 * process's start to the last record stored, and the ingest's publish rate, one line per transport; a
 * transport whose server cannot be reached is skipped with a line (Kafka: bench/kafka.ts finds a broker).
 *   node dist/bench/persist.js [--nats nats://127.0.0.1:4222] [--redis redis://127.0.0.1:6379]
 *     [--kafka 127.0.0.1:9092] [--pg postgres://postgres@127.0.0.1:5432/postgres]
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { KafkaBus } from "../src/bus/kafka.js";
import { NatsBus } from "../src/bus/nats.js";
import { RedisBus } from "../src/bus/redis.js";
import { benchKafkaBrokers } from "./kafka.js";

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const nats = opt("--nats", "nats://127.0.0.1:4222");
const redis = opt("--redis", "redis://127.0.0.1:6379");
const pgAdmin = opt("--pg", "postgres://postgres@127.0.0.1:5432/postgres");
const file = fileURLToPath(new URL("../../../shared/data/binance-spot/btcusdt_20240808.gz", import.meta.url));
const cli = fileURLToPath(new URL("../src/cli.js", import.meta.url));
const EXPECTED = 37_797;
const tag = `b${Date.now().toString(36)}`;
const env = { ...process.env, K2_LOG_LEVEL: "warn" };

function ingest(bus: string): { framesPerS: number; frames: number } {
  const r = spawnSync(
    process.execPath,
    [
      cli,
      "ingest",
      "--bus",
      bus,
      "--replay",
      file,
      "--speed",
      "max",
      "--exit-at-end",
      "--http-port",
      "0",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
    ],
    { encoding: "utf8", env },
  );
  if (r.status !== 0) throw new Error(`k2 ingest failed: ${r.stderr}`);
  const s = JSON.parse(r.stdout.trim().split("\n").pop()!);
  return { framesPerS: s.frames_per_s, frames: s.frames };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Records stored so far, from the persist process's own /metrics. */
async function storedByMetrics(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^k2_records_stored_total\{table="(trades_v2|quotes_v2)"\} (\d+)$/gm))
    n += Number(m[2]);
  return n;
}

/** Runs `k2 persist` into `db` until every record is stored; returns ms from start. */
async function persistInto(bus: string, db: string, group: string): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [
      cli,
      "persist",
      "--bus",
      bus,
      "--db",
      db,
      "--group",
      group,
      "--http-port",
      String(port),
      "--batch-max-wait-ms",
      "200",
    ],
    { env, stdio: ["ignore", "ignore", "inherit"] },
  );
  try {
    for (;;) {
      if ((await storedByMetrics(port).catch(() => 0)) >= EXPECTED) return performance.now() - t0;
      if (performance.now() - t0 > 300_000) throw new Error("persist did not finish in 300 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

/**
 * Ingest, then persist into PostgreSQL and DuckDB through one transport; one JSON line. `open` connects
 * (proving the server reachable) and returns what deletes the run's streams or topics afterwards.
 */
async function through(name: string, bus: string, open: () => Promise<() => Promise<void>>) {
  let cleanup: () => Promise<void>;
  try {
    cleanup = await open(); // reachable?
  } catch (e) {
    process.stdout.write(
      `${JSON.stringify({ bench: `persist_through_${name}`, skipped: (e as Error).message })}\n`,
    );
    return;
  }
  const published = ingest(bus);
  const results: Record<string, number> = {
    ingest_publish_frames_per_s: published.framesPerS,
  };

  // PostgreSQL
  const dbName = `k2_bench_${name}_${tag}`;
  const admin = postgres(pgAdmin, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const pgMs = await persistInto(bus, pgAdmin.replace(/\/[^/]*$/, `/${dbName}`), "bench-pg");
  await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  results[`persist_${name}_to_postgres_records_per_s`] = Math.round((EXPECTED * 1000) / pgMs);

  // DuckDB, for comparison (a second consumer group reads the same stream from the start)
  const dir = mkdtempSync(join(tmpdir(), "k2-bench-persist-"));
  const duckMs = await persistInto(bus, join(dir, "bench.duckdb"), "bench-duck");
  rmSync(dir, { recursive: true, force: true });
  results[`persist_${name}_to_duckdb_records_per_s`] = Math.round((EXPECTED * 1000) / duckMs);

  await cleanup();

  process.stdout.write(
    `${JSON.stringify({ bench: `persist_through_${name}`, records: EXPECTED, ...results })}\n`,
  );
}

/** A bus's stream deletion and close, as {@link through}'s cleanup. */
const deletingStreams = (b: { deleteStreams(): Promise<void>; close(): Promise<void> }) => async () => {
  await b.deleteStreams();
  await b.close();
};

await through("nats", `${nats}?prefix=${tag}`, async () =>
  deletingStreams(await NatsBus.connect({ servers: [nats], prefix: tag })),
);
await through("redis", `${redis}?prefix=${tag}`, async () =>
  deletingStreams(await RedisBus.connect({ url: redis, prefix: tag })),
);
const brokers = await benchKafkaBrokers();
if (!brokers) {
  process.stdout.write(`${JSON.stringify({ bench: "persist_through_kafka", skipped: "no broker" })}\n`);
} else {
  await through("kafka", `kafka://${brokers}?prefix=${tag}.`, async () => {
    const topics = await KafkaBus.connect({ brokers: brokers.split(","), topicPrefix: `${tag}.` });
    return async () => {
      await topics.deleteTopics();
      await topics.close();
    };
  });
}
