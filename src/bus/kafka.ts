/**
 * Kafka transport (`@platformatic/kafka` 1.x, the line that runs on Node 20), following the Kafka
 * docs (kafka.apache.org: "Producer configs: acks, enable.idempotence", "Consumer: committed offsets")
 * and the Confluent Schema Registry docs (docs.confluent.io: "Wire format", "Schema Registry API").
 *
 * Topics: `market.{asset_class}.{type}.{exchange}`, `market.dlq.{exchange}`, `market.gaps.{exchange}`
 * (the bus topics as they are, behind an optional `topicPrefix`), created on first publish if missing
 * with `partitions` (default 3) and `replication` (default 1). Key = the bus key (the symbol), so one
 * symbol's records stay in one partition, in order. Header `k2-id` carries the message id.
 *
 * Producer: idempotent (`acks=all`, one request in flight per broker, broker-side sequence numbers:
 * a retried send is not written twice), 5 retries per send (see `newProducer`). One `publish(batch)` is one or a few `send()` calls (chunks
 * of at most `maxSendBytes`), i.e. the batching happens where the pipeline's Publisher already
 * gathers one event-loop turn of records. Kafka has no server-side dedupe by message id: ids the
 * producer had acknowledged within `dedupeWindowMs` are dropped (same process only).
 *
 * Consumer: one Kafka consumer group per bus consume group, auto-commit off, offsets committed only
 * after the handler resolves (the last offset + 1 of each partition in the batch). When the handler
 * rejects, the same batch is handed to it again after a backoff (100 ms doubling to 5 s); uncommitted
 * messages of a consumer that dies are fetched again by the group member that takes its partitions.
 * Batches: `batchSize` / `maxWaitMs` / `maxBatchSize` as in the memory bus (the client prefetches
 * into a buffer of at most `maxBatchSize` messages, pulled with `read()`). Topics are found by listing the cluster's topics
 * that start with the consumed prefixes, re-checked every `topicRefreshMs` (a new exchange's topic is
 * picked up without restart). Lag = Σ over the consumed partitions of (latest offset − the group's
 * committed offset + 1, or the earliest offset before any commit), refreshed every `lagRefreshMs`.
 * (The client, `@platformatic/kafka` 1.22, commits the offset of the last message handled and resumes
 * at committed + 1; Kafka's own tools, which expect the next offset to read, show one more per partition.)
 * A broker that dies (a cluster with replicas): the clients' lookups of a node the metadata no longer
 * lists fail as network errors (fix below, the client would throw out of a socket callback), the
 * producer refetches the metadata and sends to the new leader, and a consumer whose group coordinator
 * is gone (the client caches it for its lifetime) is replaced by a new client, which finds the new
 * coordinator, joins the group and fetches from the committed offsets; `redeliveries()` counts what
 * it hands to the handler again (offsets at or below the highest already handed, per partition).
 *
 * Values: JSON by default. With `format: "avro"`, trades and aggtrades are encoded with
 * `schema/trades_v2.avsc` and quotes with `schema/quotes_v2.avsc` in the Confluent wire format
 * (magic byte 0, 4-byte big-endian schema id, Avro binary body); the schema is registered under
 * subject `{topic}-value` (TopicNameStrategy) through the registry's REST API. Dead letters and gaps,
 * which have no `.avsc`, stay JSON. The consumer reads either format (first byte 0 = Confluent
 * framing; it fetches writer schemas by id and caches them).
 */
import {
  Admin,
  type Broker,
  type CallbackWithPromise,
  type Connection,
  ConnectionPool,
  Consumer as KafkaClientConsumer,
  kOptions,
  type Message,
  type MessagesStream,
  MultipleErrors,
  NetworkError,
  ProduceAcks,
  Producer,
  stringDeserializer,
  stringSerializer,
} from "@platformatic/kafka";
import type avro from "avsc";
import {
  type AvroTableName,
  avroSchemaText,
  avroTypeForSchema,
  bookChangeAvroType,
  bookSnapshotAvroType,
  quoteAvroType,
  tradeAvroType,
} from "../schema/avro.js";
import type { Bus, BusMessage, ConsumeOptions, Consumer } from "./bus.js";
import { latch, topicKind } from "./bus.js";

/**
 * Fix of `@platformatic/kafka` 1.22: `MultipleErrors.findBy` reads a property of every entry of
 * `errors`, which the client fills with `undefined` for the requests of a batch that succeeded. When a
 * broker dies, a failed `listOffsets` (consumer lag) then throws a TypeError out of a socket callback
 * and the process exits. Same search, skipping the empty entries.
 */
MultipleErrors.prototype.findBy = function findBy(this: MultipleErrors, property: string, value: unknown) {
  if ((this as unknown as Record<string, unknown>)[property] === value) return this;
  for (const e of this.errors as (Record<string, unknown> | null | undefined)[]) {
    if (e === null || e === undefined) continue;
    if (e[property] === value) return e;
    const nested =
      typeof e.findBy === "function" ? (e as unknown as MultipleErrors).findBy(property, value) : null;
    if (nested) return nested;
  }
  return null;
} as typeof MultipleErrors.prototype.findBy;

/**
 * Fix of `@platformatic/kafka` 1.22: the clients look a node up in their cached cluster metadata
 * (`metadata.brokers.get(leaderOrCoordinatorId)`) and hand the result to `ConnectionPool.get`, which
 * reads `broker.host` first. Once a broker is dead, a refreshed metadata no longer lists it while
 * cached partition leaders (refreshed per topic, every `metadataMaxAge`), a leader of -1 during an
 * election, or the consumer's group coordinator id (cached for the client's lifetime) still name it:
 * `broker` is undefined and the TypeError, thrown inside a socket callback, ends the process. Here
 * that lookup fails like an unreachable broker instead (a retriable network error marked
 * `hasStaleMetadata`, so the producer refetches the metadata and sends again to the new leader).
 */
const poolGet = ConnectionPool.prototype.get as (
  this: ConnectionPool,
  broker: Broker,
  callback?: CallbackWithPromise<Connection>,
) => Promise<Connection> | undefined;
ConnectionPool.prototype.get = function get(
  this: ConnectionPool,
  broker: Broker | undefined,
  callback?: CallbackWithPromise<Connection>,
) {
  if (broker !== undefined && broker !== null) return poolGet.call(this, broker, callback);
  const error = new NetworkError("Kafka node not in the cluster metadata (a dead broker, or no leader yet)", {
    hasStaleMetadata: true,
  });
  if (callback) {
    callback(error, undefined as unknown as Connection);
    return undefined;
  }
  return Promise.reject(error);
} as typeof ConnectionPool.prototype.get;

/**
 * True when `e` says the consumer's group coordinator cannot be used: unreachable (network error,
 * timeout, a node gone from the metadata) or no longer the coordinator (`NOT_COORDINATOR`,
 * `COORDINATOR_NOT_AVAILABLE`). `@platformatic/kafka` 1.22 looks the coordinator up once per client
 * and never again, so such a client has to be replaced.
 */
export function isCoordinatorError(e: unknown): boolean {
  const err = e as { findBy?: (p: string, v: unknown) => unknown } | null;
  if (!err || typeof err.findBy !== "function") return false;
  return Boolean(
    err.findBy("code", NetworkError.code) ||
      err.findBy("apiId", "NOT_COORDINATOR") ||
      err.findBy("apiId", "COORDINATOR_NOT_AVAILABLE"),
  );
}

/** Options of {@link KafkaBus.connect}. */
export interface KafkaBusOptions {
  /** Bootstrap brokers, `host:port`. */
  brokers: string[];
  /** Client id prefix (default `k2`). */
  clientId?: string;
  /** Partitions of a topic created by the bus (default 3). */
  partitions?: number;
  /** Replication factor of a topic created by the bus (default 1). */
  replication?: number;
  /** Value encoding (default `json`). */
  format?: "json" | "avro";
  /** Confluent Schema Registry base URL (required with `format: "avro"`), e.g. `http://127.0.0.1:8081`. */
  schemaRegistryUrl?: string;
  /** Prefix of every Kafka topic name (tests, tenants), e.g. `t1a2b.` → `t1a2b.market.crypto.trades.binance`. */
  topicPrefix?: string;
  /** Producer-side dedupe window for message ids, ms (default 120000; 0 disables). */
  dedupeWindowMs?: number;
  /** Largest serialized size of one `send()` call, bytes (default 512 KiB, under the broker's 1 MB). */
  maxSendBytes?: number;
  /** Group session timeout, ms (default 10000: a dead member's partitions move after this long). */
  sessionTimeoutMs?: number;
  /** Group heartbeat interval, ms (default 1000). */
  heartbeatIntervalMs?: number;
  /** Lag refresh period, ms (default 1000). */
  lagRefreshMs?: number;
  /** How often a consumer looks for new topics matching its prefixes, ms (default 10000). */
  topicRefreshMs?: number;
  /** Request timeout, ms (default 10000). */
  timeoutMs?: number;
  /**
   * Longest one `send()` may take, ms (default 6 × `timeoutMs`), beyond which the producer is replaced
   * and the publish rejects (the caller retries it), as after a failed send.
   */
  sendDeadlineMs?: number;
  /** Called with errors a consumer recovers from (commit failures, undecodable messages, restarts). */
  onError?: (err: Error, context: string) => void;
}

/** Confluent wire format: magic byte 0 + 4-byte big-endian schema id + Avro body. */
export function frameConfluent(schemaId: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = 0;
  out.writeUInt32BE(schemaId, 1);
  body.copy(out, 5);
  return out;
}

/**
 * Splits a Confluent-framed value, or returns null when `buf` is not one (JSON starts with `{`).
 * @throws on a value starting with byte 0 that is shorter than the 5-byte header
 */
export function unframeConfluent(buf: Buffer): { schemaId: number; body: Buffer } | null {
  if (buf.length === 0 || buf[0] !== 0) return null;
  if (buf.length < 5) throw new Error("Confluent-framed value shorter than its 5-byte header");
  return { schemaId: buf.readUInt32BE(1), body: buf.subarray(5) };
}

/**
 * Minimal Confluent Schema Registry client (REST, `fetch`): registers a subject's schema
 * (`POST /subjects/{subject}/versions`, idempotent: an identical schema returns its existing id) and
 * looks a schema up by id (`GET /schemas/ids/{id}`), caching both.
 */
export class SchemaRegistryClient {
  private readonly ids = new Map<string, Promise<number>>();
  private readonly types = new Map<number, Promise<avro.Type>>();

  constructor(
    readonly url: string,
    private readonly timeoutMs = 10_000,
  ) {}

  private async call(path: string, init?: RequestInit): Promise<unknown> {
    const res = await fetch(`${this.url.replace(/\/$/, "")}${path}`, {
      ...init,
      headers: { "Content-Type": "application/vnd.schemaregistry.v1+json", Accept: "application/json" },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`schema registry ${init?.method ?? "GET"} ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  }

  /** Schema id of `schema` (Avro JSON text) under `subject`, registering it if needed. */
  register(subject: string, schema: string): Promise<number> {
    let p = this.ids.get(subject);
    if (!p) {
      p = this.call(`/subjects/${encodeURIComponent(subject)}/versions`, {
        method: "POST",
        body: JSON.stringify({ schema: JSON.stringify(JSON.parse(schema)) }),
      }).then((r) => {
        const id = (r as { id?: number }).id;
        if (typeof id !== "number") throw new Error(`schema registry: no id registering ${subject}`);
        return id;
      });
      p.catch(() => this.ids.delete(subject));
      this.ids.set(subject, p);
    }
    return p;
  }

  /** The Avro type of schema `id` (with K2's decimal logical type). */
  typeOf(id: number): Promise<avro.Type> {
    let p = this.types.get(id);
    if (!p) {
      p = this.call(`/schemas/ids/${id}`).then((r) => avroTypeForSchema((r as { schema: string }).schema));
      p.catch(() => this.types.delete(id));
      this.types.set(id, p);
    }
    return p;
  }
}

/** The Avro schema (table) of each topic kind with one. */
const AVRO_TABLE: Readonly<Record<string, AvroTableName>> = {
  trades: "trades_v2",
  aggtrades: "trades_v2",
  quotes: "quotes_v2",
  book: "book_changes_v2",
  booksnapshots: "book_snapshots_v2",
};

/** The Avro type a bus topic's values use in `avro` format, or null for JSON-only topics (dlq, gaps). */
export function avroTypeOfTopic(topic: string): avro.Type | null {
  const kind = topicKind(topic);
  if (kind === "trades" || kind === "aggtrades") return tradeAvroType();
  if (kind === "quotes") return quoteAvroType();
  if (kind === "book") return bookChangeAvroType();
  if (kind === "booksnapshots") return bookSnapshotAvroType();
  return null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

type KMessage = Message<string, Buffer, string, string>;

/** Kafka transport; create with {@link KafkaBus.connect}. */
export class KafkaBus implements Bus {
  readonly name = "kafka";
  /** Messages dropped by the producer-side dedupe window. */
  deduplicated = 0;
  /** Producers replaced after a send that failed or did not complete within `sendDeadlineMs`. */
  producersReplaced = 0;
  private readonly topicsReady = new Map<string, Promise<void>>();
  private adminQueue: Promise<unknown> = Promise.resolve();
  private seen = new Set<string>();
  private seenOld = new Set<string>();
  private rotateAt: number;
  private readonly registry: SchemaRegistryClient | null;
  private readonly consumers = new Set<{
    stop(o?: { drain?: boolean }): Promise<void>;
    abandon(): Promise<void>;
  }>();
  private readonly o: Required<Omit<KafkaBusOptions, "schemaRegistryUrl" | "onError">> & {
    onError: NonNullable<KafkaBusOptions["onError"]>;
  };

  private constructor(
    private readonly admin: Admin,
    private producer: Producer<string, Buffer, string, string>,
    opts: KafkaBusOptions,
  ) {
    this.o = {
      brokers: opts.brokers,
      clientId: opts.clientId ?? "k2",
      partitions: opts.partitions ?? 3,
      replication: opts.replication ?? 1,
      format: opts.format ?? "json",
      topicPrefix: opts.topicPrefix ?? "",
      dedupeWindowMs: opts.dedupeWindowMs ?? 120_000,
      maxSendBytes: opts.maxSendBytes ?? 512 * 1024,
      sessionTimeoutMs: opts.sessionTimeoutMs ?? 10_000,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 1000,
      lagRefreshMs: opts.lagRefreshMs ?? 1000,
      topicRefreshMs: opts.topicRefreshMs ?? 10_000,
      timeoutMs: opts.timeoutMs ?? 10_000,
      sendDeadlineMs: opts.sendDeadlineMs ?? 6 * (opts.timeoutMs ?? 10_000),
      onError: opts.onError ?? (() => {}),
    };
    this.registry =
      this.o.format === "avro" ? new SchemaRegistryClient(opts.schemaRegistryUrl!, this.o.timeoutMs) : null;
    this.rotateAt = Date.now() + this.o.dedupeWindowMs;
  }

  /**
   * Creates the admin and producer clients and checks the cluster answers.
   * @throws when no broker answers, or `format: "avro"` comes without `schemaRegistryUrl`
   */
  static async connect(opts: KafkaBusOptions): Promise<KafkaBus> {
    if (opts.brokers.length === 0) throw new Error("Kafka bus: no brokers given");
    if (opts.format === "avro" && !opts.schemaRegistryUrl) {
      throw new Error("Kafka bus: Avro format needs a Schema Registry URL");
    }
    const clientId = opts.clientId ?? "k2";
    const base = {
      bootstrapBrokers: opts.brokers,
      timeout: opts.timeoutMs ?? 10_000,
      retries: 5,
      retryDelay: 500,
    };
    const admin = new Admin({ ...base, clientId: `${clientId}-admin` });
    const producer = KafkaBus.newProducer(opts);
    try {
      await admin.metadata({ topics: [] });
    } catch (e) {
      await Promise.allSettled([admin.close(), producer.close()]);
      throw new Error(`Kafka bus: cannot reach ${opts.brokers.join(",")}: ${(e as Error).message}`);
    }
    return new KafkaBus(admin, producer, opts);
  }

  /**
   * An idempotent producer (`acks=all`) on `opts.brokers`, with a bounded number of retries.
   *
   * Fix of `@platformatic/kafka` 1.22: an idempotent producer is forced to `retries =
   * Number.MAX_SAFE_INTEGER`, and a send retries against the partition leader of the metadata it
   * started with (the metadata is refreshed only once the retries are over). With that leader dead,
   * the send retried every `retryDelay` for ever (seen: ingest never finished). With 5 retries the
   * send fails after a few seconds, and {@link sendBounded} replaces the producer.
   */
  private static newProducer(opts: KafkaBusOptions): Producer<string, Buffer, string, string> {
    const producer = new Producer<string, Buffer, string, string>({
      bootstrapBrokers: opts.brokers,
      timeout: opts.timeoutMs ?? 10_000,
      retries: 5,
      retryDelay: 500,
      clientId: `${opts.clientId ?? "k2"}-producer`,
      idempotent: true,
      acks: ProduceAcks.ALL,
      serializers: {
        key: stringSerializer,
        value: (v?: Buffer) => v,
        headerKey: stringSerializer,
        headerValue: stringSerializer,
      },
    });
    (producer as unknown as Record<symbol, { retries: number }>)[kOptions].retries = 5;
    return producer;
  }

  /**
   * One `send()`, bounded by `sendDeadlineMs`. A send that fails or does not settle in time replaces
   * the producer before the call rejects (the publisher then sends the batch again): after a partly
   * failed send the client's sequence numbers no longer match the brokers' (every later send of that
   * producer was refused, `OUT_OF_ORDER_SEQUENCE_NUMBER`), while a new producer gets a new producer id,
   * fresh metadata and sequences from 0. The batch sent again may then be in the topic twice; the
   * store's unique keys absorb it.
   */
  private async sendBounded(
    messages: { topic: string; key: string; value: Buffer; headers: Record<string, string> }[],
  ): Promise<void> {
    const producer = this.producer;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"deadline">((resolve) => {
      timer = setTimeout(() => resolve("deadline"), this.o.sendDeadlineMs);
    });
    let failure: Error;
    try {
      const r = await Promise.race([producer.send({ messages }), deadline]);
      if (r !== "deadline") return;
      failure = new Error(`Kafka bus: a send did not complete within ${this.o.sendDeadlineMs} ms`);
    } catch (e) {
      failure = e as Error;
    } finally {
      clearTimeout(timer);
    }
    if (this.producer === producer) {
      this.producer = KafkaBus.newProducer(this.o);
      this.producersReplaced++;
      void producer.close().catch(() => undefined);
    }
    throw failure;
  }

  /** Kafka topic name of a bus topic. */
  kafkaTopic(topic: string): string {
    return this.o.topicPrefix + topic;
  }

  /**
   * Runs admin calls that change the cluster one at a time: the client merges concurrent calls of one
   * kind (`createTopics`, `deleteTopics`) into the first one's request, so a second topic created
   * meanwhile would silently not be.
   */
  private serialAdmin<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.adminQueue.then(fn, fn);
    this.adminQueue = run.catch(() => undefined);
    return run;
  }

  private ensureTopic(topic: string): Promise<void> {
    let p = this.topicsReady.get(topic);
    if (!p) {
      p = this.serialAdmin(async () => {
        const name = this.kafkaTopic(topic);
        const existing = await this.admin.listTopics();
        if (existing.includes(name)) return;
        try {
          await this.admin.createTopics({
            topics: [name],
            partitions: this.o.partitions,
            replicas: this.o.replication,
          });
        } catch (e) {
          // created meanwhile by another process?
          const again = await this.admin.listTopics();
          if (!again.includes(name)) {
            throw new Error(`Kafka bus: cannot create topic ${name}: ${(e as Error).message}`);
          }
        }
      });
      p.catch(() => this.topicsReady.delete(topic));
      this.topicsReady.set(topic, p);
    }
    return p;
  }

  /** Encodes a value for `topic`: JSON, or Confluent-framed Avro in `avro` format. */
  private async encode(topic: string, value: unknown): Promise<Buffer> {
    if (this.registry) {
      const type = avroTypeOfTopic(topic);
      if (type) {
        const id = await this.registry.register(
          `${this.kafkaTopic(topic)}-value`,
          avroSchemaText(AVRO_TABLE[topicKind(topic)] ?? "trades_v2"),
        );
        return frameConfluent(id, type.toBuffer(value));
      }
    }
    return Buffer.from(JSON.stringify(value));
  }

  /**
   * Sends the messages (idempotent producer, acks=all) and resolves when the brokers have acked all.
   * @throws when a topic cannot be created or a send fails after the client's retries
   */
  async publish(messages: BusMessage[]): Promise<void> {
    if (messages.length === 0) return;
    const now = Date.now();
    const windowOn = this.o.dedupeWindowMs > 0;
    if (windowOn && now >= this.rotateAt) {
      this.seenOld = this.seen;
      this.seen = new Set();
      this.rotateAt = now + this.o.dedupeWindowMs;
    }
    const fresh: BusMessage[] = [];
    const inCall = new Set<string>();
    for (const m of messages) {
      if (windowOn && (this.seen.has(m.id) || this.seenOld.has(m.id) || inCall.has(m.id))) {
        this.deduplicated++;
        continue;
      }
      inCall.add(m.id);
      fresh.push(m);
    }
    await Promise.all([...new Set(fresh.map((m) => m.topic))].map((t) => this.ensureTopic(t)));
    let chunk: { topic: string; key: string; value: Buffer; headers: Record<string, string> }[] = [];
    let bytes = 0;
    const flush = async () => {
      if (chunk.length === 0) return;
      const c = chunk;
      chunk = [];
      bytes = 0;
      await this.sendBounded(c);
    };
    for (const m of fresh) {
      const value = await this.encode(m.topic, m.value);
      if (bytes + value.length > this.o.maxSendBytes) await flush();
      chunk.push({ topic: this.kafkaTopic(m.topic), key: m.key, value, headers: { "k2-id": m.id } });
      bytes += value.length + m.key.length + m.id.length + 64;
    }
    await flush();
    if (windowOn) for (const m of fresh) this.seen.add(m.id);
  }

  /** Fetches the writer schemas a batch's Avro values refer to (cached after the first time). */
  private async prefetchSchemas(batch: KMessage[]): Promise<void> {
    if (!this.registry) return;
    const ids = new Set<number>();
    for (const m of batch) {
      const v = m.value;
      if (v && v.length >= 5 && v[0] === 0) ids.add(v.readUInt32BE(1));
    }
    await Promise.all([...ids].map((id) => this.registry!.typeOf(id)));
  }

  /**
   * Decodes one Kafka message into a bus message (Avro writer schemas fetched from the registry).
   * @throws on a value that is neither JSON nor Avro of a known schema (the caller skips it)
   */
  private async decode(m: KMessage): Promise<BusMessage> {
    const topic = m.topic.slice(this.o.topicPrefix.length);
    const raw = m.value ?? Buffer.alloc(0);
    const framed = unframeConfluent(raw);
    let value: unknown;
    if (framed) {
      if (!this.registry) {
        throw new Error(`Avro value (schema id ${framed.schemaId}) on ${m.topic} but no schema registry`);
      }
      value = (await this.registry.typeOf(framed.schemaId)).fromBuffer(framed.body);
    } else {
      value = JSON.parse(raw.toString("utf8"));
    }
    return {
      topic,
      key: m.key ?? "",
      id: m.headers.get("k2-id") ?? `${m.topic}/${m.partition}/${m.offset}`,
      value,
    };
  }

  consume(opts: ConsumeOptions, handler: (batch: BusMessage[]) => Promise<void>): Consumer {
    const prefixes = opts.topicPrefixes.map((p) => this.o.topicPrefix + p);
    const newClient = () =>
      new KafkaClientConsumer<string, Buffer, string, string>({
        clientId: `${this.o.clientId}-consumer`,
        bootstrapBrokers: this.o.brokers,
        groupId: opts.group,
        timeout: this.o.timeoutMs,
        retries: 5,
        retryDelay: 500,
        autocommit: false,
        highWaterMark: opts.maxBatchSize,
        sessionTimeout: this.o.sessionTimeoutMs,
        heartbeatInterval: this.o.heartbeatIntervalMs,
        rebalanceTimeout: Math.max(this.o.sessionTimeoutMs * 2, 20_000),
        maxWaitTime: Math.min(1000, Math.max(100, opts.maxWaitMs)),
        deserializers: {
          key: stringDeserializer,
          value: (v?: Buffer) => v,
          headerKey: stringDeserializer,
          headerValue: stringDeserializer,
        },
      });
    let client = newClient();
    // a client whose group coordinator is gone is replaced (see isCoordinatorError): the new one looks
    // the coordinator up again, joins the group and fetches from the committed offsets
    let replaceClient = false;
    const closing = new Set<Promise<void>>();
    const watch = (c: typeof client) => {
      let heartbeatErrors = 0;
      const lost = (e: unknown, context: string) => {
        if (c !== client) return;
        this.o.onError(e as Error, `${context} of group ${opts.group}`);
        if (isCoordinatorError(e)) {
          replaceClient = true;
          signal();
        }
      };
      c.on("consumer:heartbeat:end", () => {
        heartbeatErrors = 0;
      });
      c.on("consumer:heartbeat:error", (p: { error?: unknown }) => {
        // one missed heartbeat can be a slow broker; two in a row (each after the client's retries) are not
        if (isCoordinatorError(p?.error) && ++heartbeatErrors >= 2) lost(p.error, "heartbeat");
      });
      // the client emits "error" when rejoining the group fails; unhandled, that would end the process
      c.on("error", (e: unknown) => lost(e, "group membership"));
    };
    watch(client);
    /** Closes a replaced client without a LeaveGroup (its coordinator is gone; the member expires). */
    const discard = (c: typeof client) => {
      const p = (async () => {
        c.memberId = null; // no LeaveGroup request: it would go to the dead coordinator
        await new Promise<void>((resolve) => c.leaveGroup(true, () => resolve())); // stops its heartbeats
        await new Promise<void>((resolve) => c.close(true, () => resolve()));
      })();
      closing.add(p);
      void p.finally(() => closing.delete(p));
    };
    let stopping = false;
    let drain = true;
    let abandoned = false;
    let redeliveries = 0;
    /** Highest offset handed to the handler, per `topic:partition`. */
    const handed = new Map<string, bigint>();
    let lagValue = 0;
    /** `from: "now"`: each partition's end offset when this consumer first listed its topic. */
    const startOffsets = new Map<string, bigint[]>();
    /**
     * Whether every partition without a committed offset is to be read from its beginning. `from:
     * "now"` anchors the group at its first stream instead: the topics there then start at their end,
     * and that position is committed, so a topic that appears later is read from its beginning (all
     * of it was published after the join) without the others going back to theirs.
     */
    let anchored = opts.from !== "now";
    const joined = latch();
    if (anchored) joined.open();
    let topics: string[] = [];
    let topicsChanged = false;
    let stream: MessagesStream<string, Buffer, string, string> | null = null;
    let buffer: KMessage[] = [];
    let oldestAt = 0;
    let lastProgressAt = Date.now();
    let wake: (() => void) | null = null;
    const signal = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const waitFor = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          wake = null;
          resolve();
        }, ms);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });

    const listMatching = async () => {
      const all = await this.admin.listTopics();
      return all.filter((t) => prefixes.some((p) => t.startsWith(p))).sort();
    };

    const refreshLag = async () => {
      if (topics.length === 0) return;
      try {
        const latest = await client.listOffsets({ topics });
        const earliest = await client.listOffsets({ topics, timestamp: -2n });
        const committed = await client.listCommittedOffsets({
          topics: [...latest].map(([topic, parts]) => ({ topic, partitions: parts.map((_, i) => i) })),
        });
        let sum = 0n;
        for (const [topic, parts] of latest) {
          const c = committed.get(topic) ?? [];
          const e = earliest.get(topic) ?? [];
          parts.forEach((end, i) => {
            // the client commits the offset of the last message handled (not the next one to read)
            // and resumes at committed + 1
            // (`from: "now"`: before any commit, the partition's end when the consumer first saw it)
            const from =
              c[i] !== undefined && c[i] >= 0n ? c[i] + 1n : (startOffsets.get(topic)?.[i] ?? e[i] ?? 0n);
            if (end > from) sum += end - from;
          });
        }
        lagValue = Number(sum);
      } catch (e) {
        this.o.onError(e as Error, `lag of group ${opts.group}`);
      }
    };

    const pull = (s: MessagesStream<string, Buffer, string, string>) => {
      while (buffer.length < opts.maxBatchSize) {
        const m = s.read() as KMessage | null;
        if (m === null) break;
        lastProgressAt = Date.now();
        if (buffer.length === 0) oldestAt = lastProgressAt;
        buffer.push(m);
      }
      if (buffer.length >= opts.batchSize) signal();
    };

    const openStream = async () => {
      // `from: "now"`, first stream: a partition without a committed offset starts at its end
      const anchoring = !anchored;
      if (anchoring) {
        for (const [topic, parts] of await client.listOffsets({ topics })) startOffsets.set(topic, parts);
      }
      const s = await client.consume({
        topics,
        mode: "committed",
        fallbackMode: anchoring ? "latest" : "earliest",
        autocommit: false,
      });
      // pulled, not flowing: pause()/resume() of the client's stream can stop its fetching for good
      // (a read requested while paused is never answered), while read() keeps the stream's own
      // back-pressure (it fetches again once its buffer, `highWaterMark` messages, drains)
      // a stream being replaced (topics changed, error) may still have messages: never mix them with
      // the new one's (its buffer is dropped and fetched again from the committed offsets)
      stream = s;
      s.on("readable", () => {
        if (stream === s) pull(s);
      });
      s.on("error", (e: Error) => {
        this.o.onError(e, `stream of group ${opts.group}; reopening`);
        topicsChanged = true; // reopen from the committed offsets
        signal();
      });
      // (a failure here leaves the stream as the current one: the loop closes it and opens anew)
      if (anchoring) await anchor(s);
      return s;
    };

    /**
     * Commits where the group's first `from: "now"` stream starts each of its partitions that has no
     * committed offset (the client commits the offset of the last message handled: start − 1), once
     * the stream has set those positions; later streams read uncommitted partitions from the
     * beginning. Runs before the loop hands over any batch, so no commit of a handled message races it.
     */
    const anchor = async (s: MessagesStream<string, Buffer, string, string>) => {
      if (s.offsetsCommitted.size === 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, Math.max(this.o.sessionTimeoutMs, 10_000));
          function done() {
            clearTimeout(t);
            s.off("offsets", done);
            s.off("error", done);
            s.off("close", done);
            resolve();
          }
          s.once("offsets", done);
          s.once("error", done);
          s.once("close", done);
        });
      }
      if (s.offsetsCommitted.size === 0)
        throw new Error(`the first stream of group ${opts.group} set no offsets`);
      const mine = new Map<string, number[]>();
      for (const key of s.offsetsCommitted.keys()) {
        const at = key.lastIndexOf(":");
        const topic = key.slice(0, at);
        mine.set(topic, [...(mine.get(topic) ?? []), Number(key.slice(at + 1))]);
      }
      const held = await client.listCommittedOffsets({
        topics: [...mine].map(([topic, partitions]) => ({ topic, partitions })),
      });
      const offsets: { topic: string; partition: number; offset: bigint; leaderEpoch: number }[] = [];
      for (const [topic, partitions] of mine) {
        for (const partition of partitions) {
          const last = s.offsetsCommitted.get(`${topic}:${partition}`) ?? -1n;
          const c = held.get(topic)?.[partition];
          // nothing to anchor at an empty partition (start 0): its beginning is where it starts
          if ((c === undefined || c < 0n) && last >= 0n)
            offsets.push({ topic, partition, offset: last, leaderEpoch: -1 });
        }
      }
      if (offsets.length > 0) await client.commit({ offsets });
      anchored = true;
      joined.open();
    };

    const closeStream = async () => {
      const s = stream;
      stream = null;
      buffer = []; // never handed over: fetched again from the committed offsets
      if (s) await s.close().catch(() => undefined);
    };

    const commit = async (batch: KMessage[]) => {
      const last = new Map<string, KMessage>();
      for (const m of batch) {
        const k = `${m.topic}:${m.partition}`;
        const prev = last.get(k);
        if (!prev || prev.offset < m.offset) last.set(k, m);
      }
      await Promise.all([...last.values()].map((m) => m.commit()));
    };

    const loop = async () => {
      let failures = 0;
      while (!abandoned) {
        if (stopping && !drain) break;
        try {
          if (replaceClient) {
            replaceClient = false;
            await closeStream();
            const old = client;
            client = newClient();
            watch(client);
            discard(old);
            topicsChanged = true;
          }
          if (!stream || topicsChanged) {
            topicsChanged = false;
            await closeStream();
            topics = await listMatching();
            if (topics.length === 0 && !anchored) {
              // no topic yet: each one that appears is new, read from its beginning
              anchored = true;
              joined.open();
            }
            if (topics.length === 0) {
              if (stopping) break;
              await waitFor(Math.min(this.o.topicRefreshMs, 1000));
              continue;
            }
            await openStream();
            void refreshLag();
          }
          const n = buffer.length;
          if (stopping && drain && n === 0) {
            // drained when the group has nothing left, or when nothing arrives for this member
            // (the rest sits in partitions other members hold) within a session timeout
            await refreshLag();
            if (lagValue === 0) break;
            if (Date.now() - lastProgressAt > Math.max(2 * opts.maxWaitMs, this.o.sessionTimeoutMs)) break;
            await waitFor(Math.max(100, opts.maxWaitMs));
            continue;
          }
          if (n === 0) {
            await waitFor(opts.maxWaitMs);
            continue;
          }
          if (!stopping && n < opts.batchSize && Date.now() - oldestAt < opts.maxWaitMs) {
            await waitFor(opts.maxWaitMs - (Date.now() - oldestAt));
            continue;
          }
          const taken = buffer.splice(0, Math.min(n, opts.maxBatchSize));
          oldestAt = buffer.length > 0 ? oldestAt : 0;
          for (const m of taken) {
            // fetched again from the committed offsets (stream reopened, client replaced) after an
            // uncommitted delivery to this consumer
            const k = `${m.topic}:${m.partition}`;
            const top = handed.get(k);
            if (top !== undefined && m.offset <= top) redeliveries++;
            else handed.set(k, m.offset);
          }
          if (stream) pull(stream);
          // writer schemas first: a registry that cannot be reached is an error of the whole batch
          // (caught below: the stream reopens from the committed offsets), not of its messages
          await this.prefetchSchemas(taken);
          const batch: BusMessage[] = [];
          for (const m of taken) {
            try {
              batch.push(await this.decode(m));
            } catch (e) {
              this.o.onError(
                e as Error,
                `undecodable message ${m.topic}/${m.partition}@${m.offset}; skipped`,
              );
            }
          }
          for (;;) {
            try {
              if (batch.length > 0) await handler(batch);
              break;
            } catch {
              if (abandoned) return;
              redeliveries += batch.length;
              failures++;
              await sleep(Math.min(5000, 50 * 2 ** Math.min(failures, 7)));
              if (abandoned) return;
            }
          }
          failures = 0;
          if (abandoned) return;
          try {
            await commit(taken);
          } catch (e) {
            // e.g. a rebalance moved the partitions: their new owner gets these again (at least once)
            this.o.onError(e as Error, `commit of group ${opts.group}`);
            if (isCoordinatorError(e)) replaceClient = true;
          }
        } catch (e) {
          if (abandoned) return;
          failures++;
          this.o.onError(e as Error, `consumer of group ${opts.group}`);
          if (isCoordinatorError(e)) replaceClient = true; // e.g. joining the group failed
          topicsChanged = true;
          await sleep(Math.min(5000, 50 * 2 ** Math.min(failures, 7)));
        }
      }
    };

    const lagTimer = setInterval(() => void refreshLag(), this.o.lagRefreshMs);
    lagTimer.unref();
    const topicTimer = setInterval(async () => {
      try {
        const now = await listMatching();
        if (now.join(",") !== topics.join(",")) {
          topicsChanged = true;
          signal();
        }
      } catch {
        // the loop reports connection problems
      }
    }, this.o.topicRefreshMs);
    topicTimer.unref();
    const done = loop().finally(async () => {
      clearInterval(lagTimer);
      clearInterval(topicTimer);
      if (!abandoned) {
        await closeStream();
        await client.close().catch(() => undefined);
      }
      await Promise.all(closing);
    });
    const handle = {
      ready: () => joined.promise,
      lag: () => lagValue,
      redeliveries: () => redeliveries,
      stop: async (o?: { drain?: boolean }) => {
        stopping = true;
        joined.open();
        lastProgressAt = Date.now();
        drain = o?.drain ?? true;
        signal();
        await done;
        this.consumers.delete(handle);
        if (opts.transient) {
          // its member has left (the client is closed): the group is empty and can go
          await this.admin.deleteGroups({ groups: [opts.group] }).catch((e: unknown) => {
            this.o.onError(e as Error, `removing transient group ${opts.group}`);
          });
        }
      },
      abandon: async () => {
        abandoned = true;
        joined.open();
        clearInterval(lagTimer);
        clearInterval(topicTimer);
        signal();
        this.consumers.delete(handle);
        await new Promise<void>((resolve) => client.close(true, () => resolve()));
      },
    };
    this.consumers.add(handle);
    return handle;
  }

  /**
   * Closes every consumer client at once without committing or finishing its batch, as a dying
   * process would leave them (the group moves their partitions to other members, which fetch from
   * the last committed offsets). Used by the bus contract tests.
   */
  async abandonConsumers(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.abandon()));
  }

  /** Deletes the Kafka topics under this bus's topic prefix (tests). */
  async deleteTopics(): Promise<void> {
    if (!this.o.topicPrefix) throw new Error("Kafka bus: deleteTopics needs a topicPrefix");
    const all = await this.admin.listTopics();
    const mine = all.filter((t) => t.startsWith(this.o.topicPrefix));
    if (mine.length > 0) await this.serialAdmin(() => this.admin.deleteTopics({ topics: mine }));
  }

  /** Null when a broker answers a metadata request, else the error. */
  async check(): Promise<string | null> {
    try {
      await this.admin.metadata({ topics: [] });
      return null;
    } catch (e) {
      return `kafka unreachable: ${(e as Error).message}`;
    }
  }

  /** Stops every consumer (finishing its batch in flight), then closes the producer and admin clients. */
  async close(): Promise<void> {
    await Promise.all([...this.consumers].map((c) => c.stop({ drain: false })));
    await Promise.allSettled([this.producer.close(), this.admin.close()]);
  }
}
