/**
 * `--redis-out redis://…`: a latest-tick cache and pub/sub on Redis for users who read Redis directly
 * (node-redis 6; commands from the Redis docs, redis.io: `SET … EX`, `PUBLISH`). For every trade and
 * quote (`{p}` = `prefix:` when `?prefix=` is given, else nothing; exchange lower case, symbol as in the
 * record):
 *
 * | key / channel                          | what                                                       |
 * |----------------------------------------|------------------------------------------------------------|
 * | `{p}market:{exchange}:{symbol}:trade`  | string: the last trades_v2 record as JSON, expires after `--redis-ttl` (60 s) |
 * | `{p}market:{exchange}:{symbol}:quote`  | string: the last quotes_v2 record as JSON, same expiry      |
 * | `{p}market:{exchange}:{symbol}`        | channel: every trade and quote, as JSON, in order          |
 *
 * A subscriber tells a trade (`trade_id`, `price`) from a quote (`bid_price`, `ask_price`) by its
 * fields. Aggregate trades are not written (the same executions as the trades).
 *
 * Records wait in a bounded queue (`?queue=`, default 10,000) and go out in batches of at most 1,000
 * records, one batch at a time, each batch one `EVAL` of a small script (atomic, so the channel carries
 * every symbol's records in order): first a `SET` of each key's newest record in the batch, then a
 * `PUBLISH` of every record. One command per batch instead of two per record: about 10 times the
 * rate of separate commands with node-redis here. The connection is made in the background: a Redis that is away at start or
 * goes away mid-run costs the records that do not fit in the queue (counted in
 * `k2_output_dropped_total{output="redis"}`, with a log line when it goes and one when it is back),
 * never the feed's pace; the client reconnects on its own (backoff 100 ms doubling to 2 s).
 */
import { createClient, type RedisClientType } from "redis";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { type Output, type OutputKind, OutputQueue, type OutputRecord, outputMetrics } from "./output.js";
import type { RedisOutSpec } from "./spec.js";

/** Records per batch (one `EVAL`). */
const MAX_BATCH = 1000;
/**
 * KEYS: the latest-tick keys; ARGV[1]: expiry in seconds (0: none), ARGV[2 .. #KEYS+1]: their values,
 * then channel and message pairs. SETs every key, then PUBLISHes every message, in order.
 */
const BATCH_SCRIPT = `local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  if ttl > 0 then redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ttl) else redis.call('SET', KEYS[i], ARGV[i + 1]) end
end
for i = #KEYS + 2, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return #KEYS`;
const KINDS: ReadonlySet<OutputKind> = new Set(["trades", "quotes"]);

/** The Redis output; connects in the background from the constructor. */
export class RedisOutput implements Output {
  readonly name = "redis";
  readonly kinds = KINDS;
  readonly queue: OutputQueue;
  private readonly client: RedisClientType;
  private readonly keyPrefix: string;
  private readonly ttl: string;
  private readonly connected;
  /** Dropped count when the connection went (0 while connected), for the log line when it is back. */
  private droppedAtLoss = -1;
  private lastError = "";
  private everReady = false;
  private closed = false;

  constructor(
    private readonly spec: RedisOutSpec,
    metrics: Metrics,
    private readonly logger: Logger,
  ) {
    this.keyPrefix = spec.prefix ? `${spec.prefix}:` : "";
    this.ttl = String(spec.ttlSeconds);
    this.connected = outputMetrics(metrics).connected.labels(this.name);
    this.connected.set(0);
    this.client = createClient({
      url: spec.url,
      name: "k2-output",
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 5000,
        reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000),
      },
    }) as unknown as RedisClientType;
    this.queue = new OutputQueue({
      name: this.name,
      capacity: spec.queue,
      maxBatch: MAX_BATCH,
      send: (batch) => this.send(batch),
      ready: () => this.client.isReady,
      metrics,
      onError: (err, records) =>
        logger.debug({ output: this.name, err: err.message, records }, "redis output: batch not sent"),
    });
    this.client.on("error", (err: Error) => {
      this.lastError = err.message;
    });
    this.client.on("ready", () => this.onReady());
    this.client.on("end", () => this.onLoss());
    this.client.on("reconnecting", () => this.onLoss());
    this.client.connect().catch((err: Error) => {
      if (!this.closed)
        logger.error({ output: this.name, err: err.message }, "redis output: gave up connecting");
    });
  }

  push(record: OutputRecord): void {
    this.queue.push(record);
  }

  async close(timeoutMs: number): Promise<void> {
    const sent = await this.queue.drained(timeoutMs);
    this.closed = true;
    if (!sent) this.queue.clear("shutdown");
    this.connected.set(0);
    try {
      if (this.client.isReady && sent) await this.client.close();
      else this.client.destroy();
    } catch {
      this.client.destroy();
    }
  }

  /** The key of the latest record of a kind: `{p}market:binance:BTCUSDT:trade`. */
  keyOf(exchange: string, symbol: string, kind: "trade" | "quote"): string {
    return `${this.keyPrefix}market:${exchange}:${symbol}:${kind}`;
  }

  /** The channel of a symbol: `{p}market:binance:BTCUSDT`. */
  channelOf(exchange: string, symbol: string): string {
    return `${this.keyPrefix}market:${exchange}:${symbol}`;
  }

  private async send(batch: OutputRecord[]): Promise<void> {
    // the newest record of each key in the batch (later ones overwrite earlier ones)
    const latest = new Map<string, string>();
    const messages: string[] = [];
    for (const r of batch) {
      latest.set(this.keyOf(r.exchange, r.symbol, r.kind === "quotes" ? "quote" : "trade"), r.json);
      messages.push(this.channelOf(r.exchange, r.symbol), r.json);
    }
    await this.client.sendCommand([
      ...["EVAL", BATCH_SCRIPT, String(latest.size), ...latest.keys()],
      ...[this.ttl, ...latest.values(), ...messages],
    ]);
  }

  private onReady(): void {
    this.connected.set(1);
    this.everReady = true;
    const lost = this.droppedAtLoss >= 0 ? this.queue.dropped - this.droppedAtLoss : -1;
    this.logger.info(
      { output: this.name, url: this.safeUrl(), ...(lost >= 0 ? { dropped_while_away: lost } : {}) },
      lost >= 0 ? "redis output: reconnected" : "redis output: connected",
    );
    this.droppedAtLoss = -1;
    this.queue.wake();
  }

  private onLoss(): void {
    this.connected.set(0);
    if (this.closed || this.droppedAtLoss >= 0) return;
    this.droppedAtLoss = this.queue.dropped;
    this.logger.warn(
      { output: this.name, url: this.safeUrl(), err: this.lastError || undefined },
      `redis output: ${this.everReady ? "disconnected" : "cannot connect yet"}; records wait (up to ${this.spec.queue.toLocaleString("en-US")}) and are dropped past that while it reconnects`,
    );
  }

  /** The URL without its password, for logs. */
  private safeUrl(): string {
    const u = new URL(this.spec.url);
    if (u.password) u.password = "***";
    return u.toString();
  }
}
