/**
 * Per-client backpressure and slow clients:
 *   - while the socket's unflushed bytes (`bufferedAmount`) stay under `highWaterBytes`, messages are
 *     written straight away;
 *   - above it the client is *behind*: messages wait in its own send queue, drained as the socket
 *     drains. While waiting, quotes, ticks and books are conflated: a newer quote/tick of the same
 *     symbol, or a newer whole top-N on the same `book.{N}` channel, replaces the queued one (counted in `k2_ws_messages_conflated_total`), whereas trades, candles
 *     and replies keep their order and are never dropped. A client behind is served on its own, out of
 *     its group, until its queue is empty;
 *   - once more than `maxQueue` messages wait, the client is disconnected with close code 4000 and a
 *     reason (`slow consumer: ...`), its queue is freed, and `k2_ws_disconnects_total{reason=
 *     "slow_consumer"}` counts it.
 * Nothing awaits a client: a slow client never delays the others.
 */
import type { Logger } from "../../ops/logger.js";
import type { Flusher } from "./flush.js";
import type { SubscriptionIndex } from "./groups.js";
import type { Client, QueueItem } from "./members.js";
import type { GatewayCounts } from "./metrics.js";
import { CLOSE_CODES } from "./protocol.js";

/** Options of {@link SendQueues}. */
export interface SendQueuesOptions {
  index: SubscriptionIndex;
  flusher: Flusher;
  counts: GatewayCounts;
  logger: Logger;
  /** `bufferedAmount` (bytes) above which a client counts as behind. */
  highWaterBytes: number;
  /** Most messages waiting for a client that fell behind before it is cut. */
  maxQueue: number;
  /** Closes a client with a code and a reason (the gateway's close: frees it and sends the close frame). */
  close: (c: Client, code: number, reason: string) => void;
}

/** The send queues of the clients that are behind, and their draining. */
export class SendQueues {
  private readonly behind = new Set<Client>();
  private drainTimer: NodeJS.Timeout | null = null;
  private readonly index: SubscriptionIndex;
  private readonly flusher: Flusher;
  private readonly counts: GatewayCounts;
  private readonly highWater: number;
  private readonly maxQueue: number;

  constructor(private readonly opts: SendQueuesOptions) {
    this.index = opts.index;
    this.flusher = opts.flusher;
    this.counts = opts.counts;
    this.highWater = opts.highWaterBytes;
    this.maxQueue = opts.maxQueue;
  }

  /** Clients currently behind (with a non-empty send queue). */
  get size(): number {
    return this.behind.size;
  }

  /** Writes a frame now, or queues it (conflating by `key`) when the client is behind. */
  send(c: Client, frame: Buffer, key: string | null): void {
    if (c.closed) return;
    if (c.queued === 0 && c.ws.bufferedAmount + c.pendingBytes < this.highWater) {
      this.flusher.write(c, frame);
      return;
    }
    this.enqueue(c, frame, key);
    if (c.group && !c.closed) this.index.place(c); // behind: served on its own until it catches up
  }

  /** The client's socket drained: sends what it can of the client's queue. */
  drained(c: Client): void {
    if (this.behind.has(c)) this.drainClient(c);
  }

  /** Takes the frames waiting in a client's queue, in order (conflated ones left out), and frees it. */
  take(c: Client): Buffer[] {
    const frames: Buffer[] = [];
    for (let i = c.head; i < c.queue.length; i++) {
      const item = c.queue[i];
      if (item?.frame) frames.push(item.frame);
    }
    this.drop(c);
    return frames;
  }

  /** Frees a client's queue (it is closed or gone). */
  drop(c: Client): void {
    c.queue = [];
    c.head = 0;
    c.queued = 0;
    c.latest.clear();
    this.behind.delete(c);
  }

  /** Stops the drain timer (the gateway is closing). */
  stop(): void {
    if (this.drainTimer) clearInterval(this.drainTimer);
    this.drainTimer = null;
  }

  private enqueue(c: Client, frame: Buffer, key: string | null): void {
    if (key !== null) {
      const old = c.latest.get(key);
      if (old?.frame) {
        old.frame = null;
        c.queued--;
        c.conflated++;
        this.counts.conflated++;
      }
    }
    const item: QueueItem = { frame, key };
    c.queue.push(item);
    c.queued++;
    if (key !== null) c.latest.set(key, item);
    if (c.queued > this.maxQueue) {
      this.cutSlow(c);
      return;
    }
    if (!this.behind.has(c)) {
      this.behind.add(c);
      if (!this.drainTimer) this.drainTimer = setInterval(() => this.drainAll(), 20);
    }
  }

  private drainAll(): void {
    for (const c of this.behind) this.drainClient(c);
    if (this.behind.size === 0 && this.drainTimer) {
      clearInterval(this.drainTimer);
      this.drainTimer = null;
    }
  }

  private drainClient(c: Client): void {
    if (c.closed) {
      this.behind.delete(c);
      return;
    }
    const q = c.queue;
    while (c.head < q.length && c.ws.bufferedAmount + c.pendingBytes < this.highWater) {
      const item = q[c.head];
      q[c.head++] = undefined;
      if (!item?.frame) continue;
      if (item.key !== null && c.latest.get(item.key) === item) c.latest.delete(item.key);
      c.queued--;
      this.flusher.write(c, item.frame);
    }
    if (c.head >= q.length) {
      c.queue = [];
      c.head = 0;
      c.queued = 0;
      c.latest.clear();
      this.behind.delete(c);
      this.index.place(c); // caught up: back to its group
    } else if (c.head > 4096 && c.head * 2 > q.length) {
      c.queue = q.slice(c.head);
      c.head = 0;
    }
  }

  private cutSlow(c: Client): void {
    this.counts.slow++;
    const reason = `slow consumer: ${c.queued} messages queued (limit ${this.maxQueue}), ${c.conflated} quotes/ticks conflated`;
    this.opts.logger.warn(
      { client: c.id, remote: c.remote, queued: c.queued, conflated: c.conflated },
      "ws client disconnected: slow consumer",
    );
    this.opts.close(c, CLOSE_CODES.slowConsumer, reason);
  }
}
