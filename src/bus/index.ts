/**
 * `--bus URL` → a transport. The URL forms (options as query parameters, durations with a unit:
 * `500ms`, `30s`, `15m`, `36h`, `7d`):
 *
 * - `memory` — the in-process bus (`?dedupe_window=2m`)
 * - `nats://host:4222[,host2:4222,...]` — NATS JetStream (`?replicas=3&max_age=7d&dupe_window=2m&ack_wait=30s&storage=file|memory&prefix=name`)
 * - `kafka://host:9092[,host2:9092,...]` — Kafka (`?partitions=3&replication=3&format=json|avro&registry=http://host:8081&prefix=name.`)
 * - `redis://host:6379` — Redis Streams, one server (`?maxlen=1000000&dupe_window=2m&claim_idle=30s&db=0&prefix=name`)
 *
 * `parseBusUrl` validates without connecting (for flag checking at start); `createBus` connects and
 * creates the streams / checks the cluster.
 */
import type { Bus } from "./bus.js";
import { KafkaBus, type KafkaBusOptions } from "./kafka.js";
import { MemoryBus, type MemoryBusOptions } from "./memory.js";
import { NatsBus, type NatsBusOptions } from "./nats.js";
import { RedisBus, type RedisBusOptions } from "./redis.js";

/**
 * Thrown for an unusable `--bus` value; the message starts with `--bus:` (`config.ts` turns it into a
 * `ConfigError`, so the CLI exits 2).
 */
export class BusSpecError extends Error {
  override name = "BusSpecError";
}

/** A validated `--bus` value. */
export type BusSpec =
  | { kind: "memory"; options: MemoryBusOptions }
  | { kind: "nats"; options: NatsBusOptions }
  | { kind: "kafka"; options: KafkaBusOptions }
  | { kind: "redis"; options: RedisBusOptions };

const EXPECTED = 'expected "memory", "nats://host:4222", "kafka://host:9092" or "redis://host:6379"';

/** `7d` / `36h` / `15m` / `30s` / `500ms` → ms. */
function duration(param: string, v: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(v.trim());
  if (!m)
    throw new BusSpecError(
      `--bus: ${param}: expected a duration like 500ms, 30s, 15m, 36h or 7d, got "${v}"`,
    );
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
  return Number(m[1]) * unit;
}

function int(param: string, v: string, min: number, max: number): number {
  const n = /^\d+$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new BusSpecError(`--bus: ${param}: expected an integer from ${min} to ${max}, got "${v}"`);
  }
  return n;
}

function hosts(url: string, scheme: string, list: string, defaultPort: number): string[] {
  const out: string[] = [];
  for (const h of list.split(",")) {
    const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])(?::(\d{1,5}))?$/.exec(h.trim());
    if (!m) throw new BusSpecError(`--bus: bad host "${h}" in "${url}" (${scheme}://host:port[,host:port])`);
    const port = m[2] ? Number(m[2]) : defaultPort;
    if (port < 1 || port > 65535) throw new BusSpecError(`--bus: bad port in "${h}"`);
    out.push(`${m[1]}:${port}`);
  }
  return out;
}

function query(url: string, raw: string | undefined, allowed: string[]): Map<string, string> {
  const params = new Map<string, string>();
  if (!raw) return params;
  for (const [k, v] of new URLSearchParams(raw)) {
    if (!allowed.includes(k)) {
      throw new BusSpecError(`--bus: unknown option "${k}" in "${url}" (known: ${allowed.join(", ")})`);
    }
    params.set(k, v);
  }
  return params;
}

/**
 * Validates a `--bus` value.
 * @throws {BusSpecError} naming `--bus` and what is wrong
 */
export function parseBusUrl(url: string): BusSpec {
  const value = url.trim();
  if (value === "") throw new BusSpecError(`--bus: empty value (${EXPECTED})`);
  const m = /^([a-z]+)(?::\/\/([^?/]*)\/?)?(?:\?(.*))?$/.exec(value);
  if (!m) throw new BusSpecError(`--bus: ${EXPECTED}, got "${url}"`);
  const [, scheme, hostList, rawQuery] = m;
  if (scheme === "memory" && hostList === undefined) {
    const q = query(url, rawQuery, ["dedupe_window"]);
    const w = q.get("dedupe_window");
    return {
      kind: "memory",
      options: w === undefined ? {} : { dedupeWindowMs: duration("dedupe_window", w) },
    };
  }
  if (scheme === "nats" && hostList) {
    const q = query(url, rawQuery, ["replicas", "max_age", "dupe_window", "ack_wait", "storage", "prefix"]);
    const options: NatsBusOptions = { servers: hosts(url, "nats", hostList, 4222).map((h) => `nats://${h}`) };
    if (q.has("replicas")) options.replicas = int("replicas", q.get("replicas")!, 1, 5);
    if (q.has("max_age")) options.maxAgeMs = duration("max_age", q.get("max_age")!);
    if (q.has("dupe_window")) options.duplicateWindowMs = duration("dupe_window", q.get("dupe_window")!);
    if (q.has("ack_wait")) options.ackWaitMs = duration("ack_wait", q.get("ack_wait")!);
    if (q.has("storage")) {
      const s = q.get("storage")!;
      if (s !== "file" && s !== "memory")
        throw new BusSpecError(`--bus: storage: expected file or memory, got "${s}"`);
      options.storage = s;
    }
    if (q.has("prefix")) {
      const p = q.get("prefix")!;
      if (!/^[a-z0-9_-]+$/.test(p))
        throw new BusSpecError(`--bus: prefix: lower-case letters, digits, _ or -, got "${p}"`);
      options.prefix = p;
    }
    return { kind: "nats", options };
  }
  if (scheme === "kafka" && hostList) {
    const q = query(url, rawQuery, ["partitions", "replication", "format", "registry", "prefix"]);
    const options: KafkaBusOptions = { brokers: hosts(url, "kafka", hostList, 9092) };
    if (q.has("partitions")) options.partitions = int("partitions", q.get("partitions")!, 1, 10_000);
    if (q.has("replication")) options.replication = int("replication", q.get("replication")!, 1, 32);
    if (q.has("format")) {
      const f = q.get("format")!;
      if (f !== "json" && f !== "avro")
        throw new BusSpecError(`--bus: format: expected json or avro, got "${f}"`);
      options.format = f;
    }
    if (q.has("registry")) {
      const r = q.get("registry")!;
      if (!/^https?:\/\/[^\s/]+/.test(r))
        throw new BusSpecError(`--bus: registry: expected an http(s):// URL, got "${r}"`);
      options.schemaRegistryUrl = r;
    }
    if (options.format === "avro" && !options.schemaRegistryUrl) {
      throw new BusSpecError(
        "--bus: format=avro needs registry=http://host:8081 (Confluent Schema Registry)",
      );
    }
    if (q.has("prefix")) options.topicPrefix = q.get("prefix")!;
    return { kind: "kafka", options };
  }
  if (scheme === "redis" && hostList) {
    const q = query(url, rawQuery, ["maxlen", "dupe_window", "claim_idle", "db", "prefix"]);
    const list = hosts(url, "redis", hostList, 6379);
    if (list.length !== 1) {
      throw new BusSpecError(
        `--bus: redis:// takes one host:port (Redis Cluster is not supported), got "${url}"`,
      );
    }
    const options: RedisBusOptions = { url: `redis://${list[0]}` };
    if (q.has("maxlen")) options.maxLen = int("maxlen", q.get("maxlen")!, 1, 1_000_000_000);
    if (q.has("dupe_window")) options.duplicateWindowMs = duration("dupe_window", q.get("dupe_window")!);
    if (q.has("claim_idle")) options.claimIdleMs = duration("claim_idle", q.get("claim_idle")!);
    if (q.has("db")) options.database = int("db", q.get("db")!, 0, 10_000);
    if (q.has("prefix")) {
      const p = q.get("prefix")!;
      if (!/^[A-Za-z0-9_-]+$/.test(p))
        throw new BusSpecError(`--bus: prefix: letters, digits, _ or -, got "${p}"`);
      options.prefix = p;
    }
    return { kind: "redis", options };
  }
  throw new BusSpecError(`--bus: ${EXPECTED}, got "${url}"`);
}

/** Hooks for the transports. */
export interface CreateBusOptions {
  /** Errors a consumer recovers from, for logging. */
  onError?: (err: Error, context: string) => void;
  /** Client / connection name (e.g. `k2-persist`). */
  name?: string;
}

/**
 * Connects the transport a `--bus` value names.
 * @throws {BusSpecError} for a malformed value; `Error` naming the address when the bus cannot be
 *   reached or refuses its streams / topics
 */
export async function createBus(url: string, hooks: CreateBusOptions = {}): Promise<Bus> {
  const spec = parseBusUrl(url);
  switch (spec.kind) {
    case "memory":
      return new MemoryBus(spec.options);
    case "nats":
      return NatsBus.connect({ ...spec.options, onError: hooks.onError, name: hooks.name });
    case "kafka":
      return KafkaBus.connect({ ...spec.options, onError: hooks.onError, clientId: hooks.name });
    case "redis":
      return RedisBus.connect({ ...spec.options, onError: hooks.onError, name: hooks.name });
  }
}
