/**
 * Outputs: bus consumers that hand every market record on to systems users read directly, one small
 * file per backend behind the {@link Output} interface — `redis.ts` (`--redis-out`: latest-tick cache
 * and pub/sub) and `zmq.ts` (`--zmq-pub`: a ZeroMQ PUB socket).
 *
 * They run in the ingest process (`k2 run`, `k2 ingest`): one consumer group of that process alone
 * (`k2-output-{exchanges}-{pid}-{tag}-{host}`, transient) on the trade, aggregate trade and quote
 * topics of the process's feeds, so they see every record the bus acknowledged, in order per symbol,
 * once per ingest process — from when the group joined (`from: "now"`: not what a durable bus kept
 * from before; the feeds start once it has joined; a restarted process joins anew) —
 * whereas persist processes share their group and each sees only a part. Every record is handed to
 * each output's bounded queue and the bus batch is acknowledged at once: a slow or absent peer never
 * holds up the bus, the store or the feeds; when a queue is full the record is dropped for that output
 * and counted (`k2_output_dropped_total`).
 *
 * `start.ts` starts the configured outputs and their bus consumer; this file holds what every backend
 * shares (the record shape, the bounded queue, the metrics).
 */
import { Counter, Gauge } from "prom-client";
import { type Metrics, metricSet } from "../ops/metrics.js";

/** The bus data types outputs carry. */
export type OutputKind = "trades" | "aggtrades" | "quotes";

/** One record as outputs see it: serialized once, sent by every output that carries its kind. */
export interface OutputRecord {
  /** The bus topic and the symbol: `market.crypto.trades.binance.BTCUSDT`. */
  subject: string;
  kind: OutputKind;
  /** Lower case, as in the topic: `binance`. */
  exchange: string;
  /** Venue symbol, as in the record: `BTCUSDT`. */
  symbol: string;
  /** The V2 record (trades_v2 / quotes_v2) as JSON: DECIMAL(18,8) strings, µs numbers. */
  json: string;
}

/** A backend. */
export interface Output {
  /** `redis`, `zmq`: the `output` label of the `k2_output_*` metrics. */
  readonly name: string;
  /** The data types this output carries. */
  readonly kinds: ReadonlySet<OutputKind>;
  /** Its queue's figures: records sent, dropped (all reasons), waiting. */
  readonly queue: Pick<OutputQueue, "sent" | "dropped" | "size">;
  /** Queues a record for sending; never blocks or throws (a full queue drops it, counted). */
  push(record: OutputRecord): void;
  /**
   * Sends what is queued for at most `timeoutMs` (what is left is counted dropped), then closes the
   * connection or socket.
   */
  close(timeoutMs: number): Promise<void>;
}

/** Why an output dropped a record (`reason` label of `k2_output_dropped_total`). */
export type DropReason = "queue_full" | "send_failed" | "shutdown";

/** The outputs' metrics of one registry. */
export interface OutputMetrics {
  /** Records handed to the peer (Redis answered; the PUB socket took them), by output. */
  sent: Counter;
  /** Records not sent, by output and reason. */
  dropped: Counter;
  /** 1 while the output can send (Redis connected; PUB socket bound), by output. */
  connected: Gauge;
}

/** The outputs' metrics of `metrics`' registry (created once per registry). */
export const outputMetrics: (metrics: Metrics) => OutputMetrics = metricSet((registers) => ({
  sent: new Counter({
    name: "k2_output_sent_total",
    help: "Records sent by an output (--redis-out: Redis answered; --zmq-pub: the PUB socket took them)",
    labelNames: ["output"],
    registers,
  }),
  dropped: new Counter({
    name: "k2_output_dropped_total",
    help: "Records an output did not send: queue_full (peer slow or away), send_failed, shutdown",
    labelNames: ["output", "reason"],
    registers,
  }),
  connected: new Gauge({
    name: "k2_output_connected",
    help: "1 while an output can send (--redis-out: connected; --zmq-pub: bound)",
    labelNames: ["output"],
    registers,
  }),
}));

/** What an {@link OutputQueue} is given. */
export interface OutputQueueOptions {
  /** Output name (metrics label). */
  name: string;
  /** Most records waiting; past it new records are dropped. */
  capacity: number;
  /** Most records handed to `send` at once. */
  maxBatch: number;
  /** Sends a batch, in order; rejects when it (or a part of it) could not be sent. */
  send: (batch: OutputRecord[]) => Promise<void>;
  /** True while sending can succeed (connected); the queue waits otherwise until {@link OutputQueue.wake}. */
  ready: () => boolean;
  metrics: Metrics;
  /** Called with a failed send (the batch is counted dropped). */
  onError: (err: Error, records: number) => void;
}

/**
 * A bounded FIFO of records with one sender: `push` never waits; batches go to `send` one at a time,
 * in order, while `ready()`; a full queue drops new records, a failed send drops its batch (both
 * counted).
 */
export class OutputQueue {
  /** Records sent, dropped (all reasons) so far. */
  sent = 0;
  dropped = 0;
  private items: OutputRecord[] = [];
  private running = false;
  private idle: (() => void)[] = [];
  private readonly metrics: OutputMetrics;

  constructor(private readonly opts: OutputQueueOptions) {
    this.metrics = outputMetrics(opts.metrics);
  }

  /** Records waiting. */
  get size(): number {
    return this.items.length;
  }

  push(record: OutputRecord): void {
    if (this.size >= this.opts.capacity) {
      this.drop("queue_full", 1);
      return;
    }
    this.items.push(record);
    this.wake();
  }

  /** Starts sending when there is something to send and the peer is ready (call when it becomes ready). */
  wake(): void {
    if (this.running || this.size === 0 || !this.opts.ready()) return;
    this.running = true;
    void this.run();
  }

  /** Resolves true once the queue is empty and nothing is being sent, false after `timeoutMs`. */
  async drained(timeoutMs: number): Promise<boolean> {
    if (this.size === 0 && !this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<true>((r) => this.idle.push(() => r(true))),
      new Promise<false>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Drops everything still queued (counted as `reason`). */
  clear(reason: DropReason): void {
    this.drop(reason, this.size);
    this.items = [];
  }

  private drop(reason: DropReason, n: number): void {
    if (n <= 0) return;
    this.dropped += n;
    this.metrics.dropped.labels(this.opts.name, reason).inc(n);
  }

  private async run(): Promise<void> {
    while (this.size > 0 && this.opts.ready()) {
      // at most `capacity` records wait: taking a batch off the front is cheap enough
      const batch = this.items.splice(0, this.opts.maxBatch);
      try {
        await this.opts.send(batch);
        this.sent += batch.length;
        this.metrics.sent.labels(this.opts.name).inc(batch.length);
      } catch (e) {
        this.drop("send_failed", batch.length);
        this.opts.onError(e as Error, batch.length);
      }
    }
    this.running = false;
    if (this.size === 0) for (const r of this.idle.splice(0)) r();
  }
}

/** Thrown when an output cannot start (a PUB port in use); the message starts with its flag. */
export class OutputStartError extends Error {
  override name = "OutputStartError";
}
