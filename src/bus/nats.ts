/**
 * NATS JetStream transport (`@nats-io/jetstream` + `@nats-io/transport-node`, v3), following the
 * JetStream docs (docs.nats.io: "JetStream", "Streams", "Consumers", "Model deep dive: message
 * deduplication"):
 *
 * Streams, one per data type, created idempotently by {@link NatsBus.connect} (updated in place when
 * their configuration differs):
 *
 * | stream             | subjects                                                      |
 * |--------------------|---------------------------------------------------------------|
 * | `MARKET_TRADES`    | `market.{crypto,equities,futures,options}.trades.>`           |
 * | `MARKET_AGGTRADES` | `market.{crypto,equities,futures,options}.aggtrades.>`        |
 * | `MARKET_QUOTES`    | `market.{crypto,equities,futures,options}.quotes.>`           |
 * | `MARKET_CANDLES`   | `market.{crypto,equities,futures,options}.candles.>`          |
 * | `MARKET_BOOK`      | `market.{crypto,equities,futures,options}.book.>`             |
 * | `MARKET_BOOKSNAPSHOTS` | `market.{crypto,equities,futures,options}.booksnapshots.>` |
 * | `MARKET_DLQ`       | `market.dlq.>`                                                |
 * | `MARKET_GAPS`      | `market.gaps.>`                                               |
 *
 * The data streams list one pattern per asset class instead of `market.*.trades.>`: JetStream refuses
 * streams whose subjects overlap, and `market.*.trades.>` overlaps `market.dlq.>` (both match
 * `market.dlq.trades.x`). Limits retention, file storage, `max_age` 7 days, `duplicate_window`
 * 2 minutes, replicas 1 (all configurable). With a `prefix` (tests, tenants), stream names become
 * `{PREFIX}_MARKET_TRADES` and subjects `{prefix}.market...`.
 *
 * Subject of a message = bus topic + "." + key: `market.crypto.trades.binance.BTCUSDT`,
 * `market.dlq.binance.binance` (dead letters are keyed by exchange), `market.gaps.binance.BTCUSDT`.
 * Back to the bus: the topic is the subject without its last token, the key is the last token. Key
 * characters a subject token cannot hold (`.`, `*`, `>`, whitespace) and `%` are percent-encoded
 * (`BRK.B` → `BRK%2EB`) and decoded on receipt.
 *
 * Publish: each message is a JetStream publish with header `Nats-Msg-Id` = the message id (the
 * server drops a repeat within the duplicate window and acks it as a duplicate); `publish(batch)`
 * keeps up to `maxPublishInFlight` publishes outstanding on the connection (sent in batch order, so
 * one key's records are stored in order), collects the PubAcks on one reply subscription and
 * resolves when every ack has arrived.
 *
 * Consume: one durable pull consumer per consume group and stream (durable name = the group),
 * explicit ack, `ack_wait` configurable, delivering from the start of the stream for a new group.
 * A batch is a fetch of up to `batchSize` messages waiting at most `maxWaitMs` (at least 1000 ms: the
 * client's minimum pull expiry); when the last message reports a backlog (`info.pending`), the next
 * fetch asks for up to `maxBatchSize`. Every message of the batch is acked after the handler resolves
 * (then the connection is flushed); when it rejects, every message is nak'ed with a delay (100 ms
 * doubling to 5 s) so JetStream delivers it again. Messages whose delivery count is above 1 are
 * counted as redeliveries. Handler calls of one consumer are serialized across streams.
 * Consumer lag = Σ `num_pending + num_ack_pending` over the consumer's streams, from consumer info
 * refreshed every `lagRefreshMs`.
 *
 * Values travel as JSON (the records are plain JSON: DECIMAL(18,8) strings, µs numbers).
 */
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { connect, createInbox, headers, type NatsConnection, nanos } from "@nats-io/transport-node";
import { ASSET_CLASSES } from "../schema/records.js";
import {
  BUS_TOPIC_RE,
  type Bus,
  type BusMessage,
  type ConsumeOptions,
  type Consumer,
  latch,
  TRANSIENT_GROUP_EXPIRY_MS,
} from "./bus.js";

/** One JetStream stream of the bus. */
export interface NatsStreamSpec {
  /** Data type (`topicKind` of its topics). */
  kind: "trades" | "aggtrades" | "quotes" | "candles" | "book" | "booksnapshots" | "dlq" | "gaps";
  /** Stream name without prefix. */
  name: string;
  /** Subject patterns without prefix. */
  subjects: string[];
}

const perAssetClass = (type: string) => ASSET_CLASSES.map((ac) => `market.${ac}.${type}.>`);

/** The streams K2 uses. */
export const NATS_STREAMS: readonly NatsStreamSpec[] = [
  { kind: "trades", name: "MARKET_TRADES", subjects: perAssetClass("trades") },
  { kind: "aggtrades", name: "MARKET_AGGTRADES", subjects: perAssetClass("aggtrades") },
  { kind: "quotes", name: "MARKET_QUOTES", subjects: perAssetClass("quotes") },
  { kind: "candles", name: "MARKET_CANDLES", subjects: perAssetClass("candles") },
  { kind: "book", name: "MARKET_BOOK", subjects: perAssetClass("book") },
  { kind: "booksnapshots", name: "MARKET_BOOKSNAPSHOTS", subjects: perAssetClass("booksnapshots") },
  { kind: "dlq", name: "MARKET_DLQ", subjects: ["market.dlq.>"] },
  { kind: "gaps", name: "MARKET_GAPS", subjects: ["market.gaps.>"] },
];

/** Options of {@link NatsBus.connect}. */
export interface NatsBusOptions {
  /** Server URLs: `nats://127.0.0.1:4222` or several for a cluster. */
  servers: string | string[];
  /** Namespace for streams and subjects (lower-case letters, digits, `_`, `-`), e.g. a test run id. */
  prefix?: string;
  /** Stream replicas (default 1; 3 on a 3-node cluster). */
  replicas?: number;
  /** Stream retention: messages older than this are discarded, ms (default 7 days). */
  maxAgeMs?: number;
  /** Server-side dedupe window for `Nats-Msg-Id`, ms (default 120000). */
  duplicateWindowMs?: number;
  /** Stream storage (default `file`). */
  storage?: "file" | "memory";
  /** Unacknowledged messages are delivered again after this long, ms (default 30000). */
  ackWaitMs?: number;
  /** How long a publish waits for its ack before failing, ms (default 10000). */
  publishTimeoutMs?: number;
  /** Publishes outstanding at once within one `publish()` call (default 2048). */
  maxPublishInFlight?: number;
  /** Consumer info refresh period for `lag()`, ms (default 1000). */
  lagRefreshMs?: number;
  /** Connection name shown by the server (default `k2`). */
  name?: string;
  /** Called with errors a consumer recovers from (fetch failures, undecodable messages), for logging. */
  onError?: (err: Error, context: string) => void;
}

/** Key characters a subject token cannot carry, plus `%` itself. */
const KEY_ESCAPE = /[.*>%\s]/;
const KEY_ESCAPE_ALL = /[.*>%\s]/g;

/** Bus key → subject token (`BRK.B` → `BRK%2EB`). */
export function encodeKeyToken(key: string): string {
  if (key === "") return "%";
  if (!KEY_ESCAPE.test(key)) return key;
  return key.replace(
    KEY_ESCAPE_ALL,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`,
  );
}

/** Subject token → bus key. */
export function decodeKeyToken(token: string): string {
  if (token === "%") return "";
  if (!token.includes("%")) return token;
  return token.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

/**
 * Intersection of two subject patterns (tokens, `*` and a final `>`), or null when no subject matches
 * both: `market.>` ∩ `market.*.trades.>` = `market.*.trades.>`.
 */
export function intersectSubjects(a: string, b: string): string | null {
  const x = a.split(".");
  const y = b.split(".");
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const s = x[i];
    const t = y[i];
    if (s === undefined && t === undefined) return out.join(".");
    if (s === ">") return t === undefined ? null : [...out, ...y.slice(i)].join(".");
    if (t === ">") return s === undefined ? null : [...out, ...x.slice(i)].join(".");
    if (s === undefined || t === undefined) return null;
    if (s === "*") out.push(t);
    else if (t === "*" || s === t) out.push(s);
    else return null;
  }
}

/**
 * Subject filter of a bus topic prefix: `market.` → `market.>`; a whole topic
 * `market.crypto.trades.binance` → `market.crypto.trades.binance.>`.
 * @throws when the prefix does not end at a token boundary (`market.cry`)
 */
export function prefixToFilter(prefix: string): string {
  if (prefix.endsWith(".")) return `${prefix}>`;
  if (BUS_TOPIC_RE.test(prefix)) return `${prefix}.>`;
  throw new Error(
    `NATS bus: topic prefix "${prefix}" must end with "." or be a whole topic (market.{asset_class}.{type}.{exchange})`,
  );
}

/** A `NatsBus` consumer's stream and filter subjects (none: the whole stream). */
interface Target {
  stream: string;
  filters: string[];
}

interface Lock {
  run<T>(fn: () => Promise<T>): Promise<T>;
}

function mutex(): Lock {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    run<T>(fn: () => Promise<T>): Promise<T> {
      const r = tail.then(fn);
      tail = r.catch(() => undefined);
      return r;
    },
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** JetStream transport; create with {@link NatsBus.connect}. */
export class NatsBus implements Bus {
  readonly name = "nats";
  /** Publishes the server acked as duplicates (same `Nats-Msg-Id` within the duplicate window). */
  deduplicated = 0;
  private readonly js: JetStreamClient;
  private readonly subjectPrefix: string;
  private readonly streamPrefix: string;
  private readonly knownTopics = new Set<string>();
  private readonly consumers = new Set<{ stop(o?: { drain?: boolean }): Promise<void> }>();
  private readonly opts: Required<Omit<NatsBusOptions, "onError" | "prefix">> & {
    onError: NonNullable<NatsBusOptions["onError"]>;
  };

  private constructor(
    /** The NATS connection (tests close it to simulate a dying process). */
    readonly connection: NatsConnection,
    private readonly jsm: JetStreamManager,
    opts: NatsBusOptions,
  ) {
    this.js = jetstream(connection, { timeout: opts.publishTimeoutMs ?? 10_000 });
    const prefix = opts.prefix ?? "";
    if (prefix && !/^[a-z0-9_-]+$/.test(prefix)) {
      throw new Error(`NATS bus: prefix "${prefix}" must be lower-case letters, digits, "_" or "-"`);
    }
    this.subjectPrefix = prefix ? `${prefix}.` : "";
    this.streamPrefix = prefix ? `${prefix.toUpperCase().replace(/-/g, "_")}_` : "";
    this.opts = {
      servers: opts.servers,
      replicas: opts.replicas ?? 1,
      maxAgeMs: opts.maxAgeMs ?? 7 * 86_400_000,
      duplicateWindowMs: opts.duplicateWindowMs ?? 120_000,
      storage: opts.storage ?? "file",
      ackWaitMs: opts.ackWaitMs ?? 30_000,
      publishTimeoutMs: opts.publishTimeoutMs ?? 10_000,
      maxPublishInFlight: opts.maxPublishInFlight ?? 2048,
      lagRefreshMs: opts.lagRefreshMs ?? 1000,
      name: opts.name ?? "k2",
      onError: opts.onError ?? (() => {}),
    };
  }

  /**
   * Connects and creates (or updates) the streams.
   * @throws when the server cannot be reached, has no JetStream, or refuses a stream configuration
   *   (e.g. subjects overlapping another stream, replicas above the cluster size)
   */
  static async connect(opts: NatsBusOptions): Promise<NatsBus> {
    const servers = Array.isArray(opts.servers) ? opts.servers : [opts.servers];
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers,
        name: opts.name ?? "k2",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
      });
    } catch (e) {
      throw new Error(`NATS bus: cannot connect to ${servers.join(",")}: ${(e as Error).message}`);
    }
    try {
      const jsm = await jetstreamManager(nc, { timeout: opts.publishTimeoutMs ?? 10_000 });
      const bus = new NatsBus(nc, jsm, opts);
      await bus.ensureStreams();
      bus.watchStatus();
      return bus;
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  /** Stream name with this bus's prefix (`MARKET_TRADES` or `{PREFIX}_MARKET_TRADES`). */
  streamName(spec: NatsStreamSpec): string {
    return this.streamPrefix + spec.name;
  }

  /** Subject of a message: `{prefix.}{topic}.{key token}`. */
  subjectOf(topic: string, key: string): string {
    return `${this.subjectPrefix}${topic}.${encodeKeyToken(key)}`;
  }

  private async ensureStreams(): Promise<void> {
    for (const spec of NATS_STREAMS) {
      const cfg: Partial<StreamConfig> & { name: string } = {
        name: this.streamName(spec),
        subjects: spec.subjects.map((x) => this.subjectPrefix + x),
        retention: RetentionPolicy.Limits,
        storage: this.opts.storage === "memory" ? StorageType.Memory : StorageType.File,
        discard: DiscardPolicy.Old,
        max_age: nanos(this.opts.maxAgeMs),
        duplicate_window: nanos(Math.min(this.opts.duplicateWindowMs, this.opts.maxAgeMs)),
        num_replicas: this.opts.replicas,
      };
      try {
        // a cluster that is still forming answers "no suitable peers": wait for it, up to 30 s
        for (let attempt = 1; ; attempt++) {
          try {
            await this.jsm.streams.add(cfg);
            break;
          } catch (e) {
            const retryable = /no suitable peers|temporarily unavailable|insufficient resources/i.test(
              String(e),
            );
            if (!retryable || attempt >= 30) throw e;
            await sleep(1000);
          }
        }
      } catch (e) {
        // 10058: exists with a different configuration → bring it to ours
        if ((e as { code?: number }).code !== 10058 && !/different configuration/.test(String(e))) {
          throw new Error(`NATS bus: cannot create stream ${cfg.name}: ${(e as Error).message}`);
        }
        try {
          const { name: _n, storage: _s, retention: _r, ...update } = cfg;
          await this.jsm.streams.update(cfg.name, update);
        } catch (e2) {
          throw new Error(`NATS bus: cannot update stream ${cfg.name}: ${(e2 as Error).message}`);
        }
      }
    }
  }

  /** Deletes this bus's streams (tests with a prefix clean up with it). */
  async deleteStreams(): Promise<void> {
    for (const spec of NATS_STREAMS) {
      try {
        await this.jsm.streams.delete(this.streamName(spec));
      } catch {
        // already gone
      }
    }
  }

  /**
   * Publishes every message and resolves when JetStream has acked all of them (duplicates included).
   *
   * Each message is a core publish with header `Nats-Msg-Id` and a reply subject under one inbox
   * subscription shared by all publishes; JetStream answers there with its PubAck (what
   * `js.publish()` does, without a request, promise and timer per message, which cost 4× the
   * throughput). Up to `maxPublishInFlight` are outstanding; more are sent as acks arrive.
   * @throws when a publish is refused (no stream for the subject, stream error) or no ack arrives
   *   for `publishTimeoutMs`; republishing the whole batch is safe within the duplicate window
   */
  async publish(messages: BusMessage[]): Promise<void> {
    const n = messages.length;
    if (n === 0) return;
    for (const m of messages) {
      if (!this.knownTopics.has(m.topic)) {
        if (!BUS_TOPIC_RE.test(m.topic)) throw new Error(`NATS bus: not a bus topic: "${m.topic}"`);
        this.knownTopics.add(m.topic);
      }
    }
    if (this.connection.isClosed()) throw new Error("NATS bus: publish on a closed connection");
    const acks = this.ensureAckInbox();
    const window = this.opts.maxPublishInFlight;
    const nc = this.connection;
    return new Promise<void>((resolve, reject) => {
      let sent = 0;
      let settled = 0;
      let failure: Error | null = null;
      let progressAt = Date.now();
      const mine: number[] = [];
      const finish = () => {
        clearInterval(watchdog);
        for (const seq of mine) acks.pending.delete(seq);
        if (failure) reject(new Error(`NATS bus: publish failed: ${failure.message}`));
        else resolve();
      };
      const onAck = (err: Error | null, duplicate: boolean) => {
        settled++;
        progressAt = Date.now();
        if (err) failure ??= err;
        else if (duplicate) this.deduplicated++;
        if (failure ? settled === sent : settled === n) finish();
        else if (!failure) sendMore();
      };
      const sendMore = () => {
        try {
          while (sent < n && sent - settled < window) {
            const m = messages[sent];
            const seq = acks.next++;
            acks.pending.set(seq, onAck);
            mine.push(seq);
            const h = headers();
            h.set("Nats-Msg-Id", m.id);
            nc.publish(this.subjectOf(m.topic, m.key), JSON.stringify(m.value), {
              reply: `${acks.inbox}.${seq}`,
              headers: h,
            });
            sent++;
          }
        } catch (e) {
          failure ??= e as Error;
          if (settled === sent) finish();
        }
      };
      const watchdog = setInterval(
        () => {
          if (Date.now() - progressAt < this.opts.publishTimeoutMs) return;
          failure ??= new Error(
            `no ack for ${this.opts.publishTimeoutMs} ms (${sent - settled} of ${n} outstanding)`,
          );
          finish();
        },
        Math.min(1000, this.opts.publishTimeoutMs),
      );
      sendMore();
    });
  }

  private ackInbox: {
    inbox: string;
    next: number;
    pending: Map<number, (err: Error | null, duplicate: boolean) => void>;
  } | null = null;

  /** The shared reply subscription for PubAcks (`{"stream":..,"seq":..,"duplicate":..}` or `{"error":..}`). */
  private ensureAckInbox() {
    if (this.ackInbox) return this.ackInbox;
    const state = {
      inbox: createInbox(),
      next: 1,
      pending: new Map<number, (err: Error | null, duplicate: boolean) => void>(),
    };
    const dec = new TextDecoder();
    this.connection.subscribe(`${state.inbox}.*`, {
      callback: (_err, msg) => {
        const seq = Number(msg.subject.slice(state.inbox.length + 1));
        const cb = state.pending.get(seq);
        if (!cb) return; // a late ack of a publish that already timed out
        state.pending.delete(seq);
        if (msg.headers?.hasError || msg.data.length === 0) {
          const code = msg.headers?.code ?? 0;
          cb(
            new Error(
              code === 503
                ? `no stream listens on ${this.subjectPrefix}market.* (503 no responders)`
                : `status ${code} ${msg.headers?.description ?? ""}`,
            ),
            false,
          );
          return;
        }
        try {
          const ack = JSON.parse(dec.decode(msg.data)) as {
            duplicate?: boolean;
            error?: { code: number; description: string };
          };
          if (ack.error) cb(new Error(`${ack.error.description} (${ack.error.code})`), false);
          else cb(null, ack.duplicate === true);
        } catch (e) {
          cb(e as Error, false);
        }
      },
    });
    this.ackInbox = state;
    return state;
  }

  /** The streams and filter subjects a set of topic prefixes maps to. */
  targetsFor(prefixes: string[]): Target[] {
    const targets: Target[] = [];
    for (const spec of NATS_STREAMS) {
      const filters: string[] = [];
      for (const p of prefixes) {
        for (const subject of spec.subjects) {
          const f = intersectSubjects(prefixToFilter(p), subject);
          if (f && !filters.includes(this.subjectPrefix + f)) filters.push(this.subjectPrefix + f);
        }
      }
      if (filters.length === 0) continue;
      // the whole stream: no filter (JetStream before 2.10 takes a single filter subject only)
      const all = spec.subjects.every((x) => filters.includes(this.subjectPrefix + x));
      targets.push({ stream: this.streamName(spec), filters: all ? [] : filters });
    }
    return targets;
  }

  consume(opts: ConsumeOptions, handler: (batch: BusMessage[]) => Promise<void>): Consumer {
    const targets = this.targetsFor(opts.topicPrefixes);
    const durable = opts.group.replace(/[^A-Za-z0-9_-]/g, "_");
    const expires = Math.max(1000, opts.maxWaitMs);
    const lock = mutex();
    const nc = this.connection;
    let stopping = false;
    let drain = true;
    let redeliveries = 0;
    let lagValue = 0;
    const lagByStream = new Map<string, number>();
    // ready: once every stream's durable exists (it holds what is published from then on)
    let joining = targets.length;
    const joined = latch();
    if (joining === 0) joined.open();

    const ensureConsumer = async (t: Target) => {
      if (opts.from === "now") {
        // a durable the server holds keeps its place: only a new one starts at the stream's end
        const held = await this.jsm.consumers.info(t.stream, durable).then(
          () => true,
          (e: unknown) => {
            if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound) return false;
            throw e;
          },
        );
        if (held) return this.js.consumers.get(t.stream, durable);
      }
      const cfg = {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: opts.from === "now" ? DeliverPolicy.New : DeliverPolicy.All,
        ack_wait: nanos(this.opts.ackWaitMs),
        max_deliver: -1,
        max_ack_pending: Math.max(10_000, opts.maxBatchSize * 4),
        // a transient group left by a process that died is removed by the server
        ...(opts.transient ? { inactive_threshold: nanos(TRANSIENT_GROUP_EXPIRY_MS) } : {}),
        ...(t.filters.length === 0
          ? {}
          : t.filters.length === 1
            ? { filter_subject: t.filters[0] }
            : { filter_subjects: t.filters }), // several filters: nats-server 2.10+
      };
      await this.jsm.consumers.add(t.stream, cfg);
      return this.js.consumers.get(t.stream, durable);
    };

    const refreshLag = async () => {
      for (const t of targets) {
        try {
          const info = await this.jsm.consumers.info(t.stream, durable);
          lagByStream.set(t.stream, info.num_pending + info.num_ack_pending);
        } catch {
          // keep the last value; the fetch loop reports connection problems
        }
      }
      let sum = 0;
      for (const v of lagByStream.values()) sum += v;
      lagValue = sum;
    };

    const decode = (m: JsMsg): BusMessage | null => {
      const subject = m.subject.slice(this.subjectPrefix.length);
      const dot = subject.lastIndexOf(".");
      try {
        return {
          topic: subject.slice(0, dot),
          key: decodeKeyToken(subject.slice(dot + 1)),
          id: m.headers?.get("Nats-Msg-Id") || `${m.info.stream}:${m.seq}`,
          value: m.json(),
        };
      } catch (e) {
        this.opts.onError(
          e as Error,
          `undecodable message ${m.info.stream}#${m.seq} on ${m.subject}; dropped`,
        );
        m.term();
        return null;
      }
    };

    const runStream = async (t: Target) => {
      let consumer: Awaited<ReturnType<typeof ensureConsumer>> | null = null;
      let want = opts.batchSize;
      let failures = 0;
      let missedHeartbeats = 0;
      while (!nc.isClosed()) {
        if (stopping && !drain) return;
        try {
          if (!consumer) {
            consumer = await ensureConsumer(t);
            if (--joining === 0) joined.open();
          }
          if (stopping && !drain) return;
          let max = want;
          if (stopping) {
            // drain: take what is already published, then stop
            const info = await consumer.info();
            if (info.num_pending === 0) return;
            max = Math.min(opts.maxBatchSize, info.num_pending);
          }
          const iter = await consumer.fetch({ max_messages: max, expires });
          const msgs: JsMsg[] = [];
          for await (const m of iter) msgs.push(m);
          missedHeartbeats = 0;
          if (msgs.length === 0) continue;
          const pending = msgs[msgs.length - 1].info.pending;
          want = Math.min(opts.maxBatchSize, Math.max(opts.batchSize, pending));
          const batch: BusMessage[] = [];
          for (const m of msgs) {
            if (m.info.deliveryCount > 1) redeliveries++;
            const b = decode(m);
            if (b) batch.push(b);
          }
          if (batch.length === 0) continue;
          let ok = true;
          try {
            await lock.run(() => handler(batch));
          } catch {
            ok = false;
          }
          if (nc.isClosed()) return;
          if (ok) {
            failures = 0;
            for (const m of msgs) m.ack();
            await nc.flush();
          } else {
            failures++;
            const delay = Math.min(5000, 50 * 2 ** Math.min(failures, 7));
            for (const m of msgs) m.nak(delay);
            await nc.flush();
            await sleep(delay);
          }
        } catch (e) {
          if (nc.isClosed()) return;
          // A fetch on an idle stream ends with "heartbeats missed" when this process was too busy
          // (e.g. another stream's large batch) to see the server's idle heartbeats: retry at once.
          if (/heartbeats missed/i.test((e as Error).message) && ++missedHeartbeats < 3) continue;
          missedHeartbeats = 0;
          failures++;
          this.opts.onError(e as Error, `consumer ${durable} on ${t.stream}`);
          await sleep(Math.min(5000, 50 * 2 ** Math.min(failures, 7)));
        }
      }
    };

    const timer = setInterval(() => void refreshLag(), this.opts.lagRefreshMs);
    timer.unref();
    void refreshLag();
    const done = Promise.all(targets.map(runStream)).finally(() => clearInterval(timer));
    const handle: Consumer = {
      ready: () => joined.promise,
      lag: () => lagValue,
      redeliveries: () => redeliveries,
      stop: async (o) => {
        stopping = true;
        drain = o?.drain ?? true;
        joined.open();
        await done;
        this.consumers.delete(handle);
        if (opts.transient && !nc.isClosed()) {
          for (const t of targets) {
            await this.jsm.consumers.delete(t.stream, durable).catch((e: unknown) => {
              if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.ConsumerNotFound))
                this.opts.onError(e as Error, `removing transient consumer ${durable} of ${t.stream}`);
            });
          }
        }
      },
    };
    this.consumers.add(handle);
    return handle;
  }

  private disconnectedSince = 0;

  private watchStatus(): void {
    void (async () => {
      for await (const st of this.connection.status()) {
        if (st.type === "disconnect") this.disconnectedSince ||= Date.now();
        else if (st.type === "reconnect") this.disconnectedSince = 0;
      }
    })().catch(() => undefined);
  }

  /** Null while connected; else since when the connection has been down (it keeps reconnecting). */
  async check(): Promise<string | null> {
    if (this.connection.isClosed()) return "nats connection closed";
    if (this.disconnectedSince) {
      return `nats disconnected for ${Math.round((Date.now() - this.disconnectedSince) / 1000)} s; reconnecting`;
    }
    return null;
  }

  /**
   * Stops every consumer (finishing their batch in flight), then flushes and closes the connection
   * (closing at once when the flush does not finish within 5 s, e.g. while the server is down).
   */
  async close(): Promise<void> {
    if (this.connection.isClosed()) return;
    await Promise.all([...this.consumers].map((c) => c.stop({ drain: false })));
    await Promise.race([this.connection.drain().catch(() => undefined), sleep(5000)]);
    if (!this.connection.isClosed()) await this.connection.close();
  }
}
