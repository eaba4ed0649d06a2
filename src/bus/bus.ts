/**
 * The bus contract every transport implements (memory, NATS JetStream, Kafka, Redis Streams): small on purpose.
 *
 * Topics follow schema-v2: `market.{asset_class}.{trades|aggtrades|quotes}.{exchange}` (order books:
 * `book` for book changes, `booksnapshots` for periodic top-N snapshots), dead letters on
 * `market.dlq.{exchange}` and sequence gaps on `market.gaps.{exchange}`. The key is the symbol, so one
 * symbol's records stay ordered. `id` is the record's message_id, the bus-level dedupe key.
 *
 * Delivery: `publish` resolves only when the bus has acknowledged every message (durably, for the
 * networked transports). A consumer's handler gets a batch; the batch is acknowledged only when the
 * handler resolves, and redelivered when it rejects or the consumer dies first.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { ASSET_CLASSES } from "../schema/records.js";

/**
 * A whole bus topic: `market.{asset_class}.{trades|aggtrades|quotes|candles|book|booksnapshots}.{exchange}`,
 * `market.dlq.{exchange}` or `market.gaps.{exchange}` (exchange: lower-case letters, digits, `_`, `-`).
 */
export const BUS_TOPIC_RE = new RegExp(
  `^market\\.(?:(?:dlq|gaps)\\.[a-z0-9_-]+|(?:${ASSET_CLASSES.join("|")})\\.(?:trades|aggtrades|quotes|candles|book|booksnapshots)\\.[a-z0-9_-]+)$`,
);

/** One message on the bus. */
export interface BusMessage<T = unknown> {
  /** `market.crypto.trades.binance`, ... */
  topic: string;
  /** Partition / ordering key: the symbol. */
  key: string;
  /** Dedupe key: the record's message_id. */
  id: string;
  value: T;
}

/** How a consumer takes batches. */
export interface ConsumeOptions {
  /** Consumer group / durable name: members of one group share the messages. */
  group: string;
  /** Topic prefixes to consume (`market.` for everything). */
  topicPrefixes: string[];
  /** Deliver a batch once this many messages are waiting (default 500). */
  batchSize: number;
  /** ...or once the oldest waiting message is this old, ms (default 2000). */
  maxWaitMs: number;
  /** Upper bound on one batch when a backlog has built up (the batch grows under load). */
  maxBatchSize: number;
  /**
   * Where a group the bus does not hold yet starts: `beginning` (default), every message the bus keeps
   * (the store's group: nothing published may be missed); `now`, the messages published once the
   * consumer has joined (outputs: a live relay, not a replay of the bus's retention). A group the bus
   * holds goes on from its last acknowledged message either way. A topic that appears after the join is
   * read from its beginning (all of it was published since). Await `Consumer.ready()` before
   * publishing what the group must see. The memory bus keeps nothing for a group that has not
   * joined: always `now`.
   */
  from?: "beginning" | "now";
  /**
   * The group is this consumer's alone and ends with it (default false: a durable group the bus keeps
   * for the next consumer of that name). For a per-process relay that must see every message, such as
   * the live feed of each `k2 serve`: give a name no other process uses and `from: "now"`. At `stop()`
   * the bus removes the group (NATS: the durable; Redis: `XGROUP DESTROY` on each stream; Kafka: the
   * group and its offsets; memory: its queue). One left by a process that died is removed by the bus
   * where it expires groups (NATS: after {@link TRANSIENT_GROUP_EXPIRY_MS} inactive; Kafka: the
   * broker's offsets retention); Redis keeps it (its entries go with the stream's `maxlen` trimming).
   */
  transient?: boolean;
}

/**
 * A group name no other process uses, for a {@link ConsumeOptions.transient} group:
 * `{prefix}-{pid}-{4 hex}-{host}`, cut at 64 characters (the unique part first).
 */
export function processGroupName(prefix: string): string {
  return `${prefix}-${process.pid}-${randomBytes(2).toString("hex")}-${hostname()}`.slice(0, 64);
}

/**
 * A promise opened once from outside (`open()`; later calls do nothing): what a networked consumer's
 * {@link Consumer.ready} returns, opened when the group has joined, or at `stop()`.
 */
export function latch(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** How long a NATS server keeps a transient group's durable after its last consumer went away, ms. */
export const TRANSIENT_GROUP_EXPIRY_MS = 10 * 60_000;

/** A running consumer. */
export interface Consumer {
  /**
   * Consumer lag: messages published on the consumed topics and not yet acknowledged by this
   * consumer's group (waiting plus in flight). Networked transports refresh it periodically (about
   * once a second), so it may be that old.
   */
  lag(): number;
  /**
   * Messages this consumer received again after an earlier delivery was not acknowledged (its
   * handler rejected, or a consumer died before acking). Counted per message, not per batch.
   */
  redeliveries(): number;
  /**
   * Stops taking new batches, delivers and acknowledges everything already published (drain), then
   * resolves. With `drain: false`, only the batch in flight is finished.
   */
  stop(opts?: { drain?: boolean }): Promise<void>;
  /**
   * Resolves once the consumer has joined its group at its start position: every message published
   * after it resolves reaches the group, whatever `from` says (a `from: "now"` consumer awaited before
   * the first publish misses nothing). Joining is asynchronous on networked transports (a NATS
   * durable, Redis groups, a Kafka group's offsets); the memory bus's group exists from `consume()`.
   * Resolves at `stop()` too, joined or not, so it never holds a caller up past shutdown; never
   * rejects (a transport that cannot be reached keeps retrying and reports through its error hook).
   */
  ready(): Promise<void>;
}

/** A transport. */
export interface Bus {
  /** Transport name for logs and metrics (`memory`, `nats`, `kafka`, `redis`). */
  readonly name: string;
  /**
   * Publishes messages; resolves when the bus has acknowledged all of them.
   * @throws when the bus refuses or cannot be reached (after the transport's own retries)
   */
  publish(messages: BusMessage[]): Promise<void>;
  /** Starts a consumer calling `handler` with batches; the batch is acked when the handler resolves. */
  consume(opts: ConsumeOptions, handler: (batch: BusMessage[]) => Promise<void>): Consumer;
  /** Null when the bus is reachable, else why not (for `/health`); absent: always reachable. */
  check?(): Promise<string | null>;
  close(): Promise<void>;
}

/** Kinds of the topics seen (topics are few: parsed once each, not once per message). */
const KINDS = new Map<string, string>();

/** Data type of a topic: `market.crypto.trades.binance` → `trades`; `market.dlq.binance` → `dlq`. */
export function topicKind(topic: string): string {
  let kind = KINDS.get(topic);
  if (kind !== undefined) return kind;
  const parts = topic.split(".");
  kind = parts[1] === "dlq" || parts[1] === "gaps" ? parts[1] : parts[2];
  if (KINDS.size >= 4096) KINDS.clear(); // a bound, should topics ever come from outside
  KINDS.set(topic, kind);
  return kind;
}
