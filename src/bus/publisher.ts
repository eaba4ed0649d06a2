/**
 * The publishing side of the bus: every producer (the ingest feeds, the live candle feed, the journal's
 * read-back) hands its messages to a {@link Publisher}, which batches them per event-loop turn and
 * waits for the bus's ack.
 */
import type { Logger } from "../ops/logger.js";
import type { Bus, BusMessage } from "./bus.js";

/** Largest batch handed to the bus in one publish call. */
const MAX_PUBLISH_BATCH = 20_000;

/**
 * Buffers bus messages within one event-loop turn and publishes them as one call, waiting for the ack.
 * A failed publish is retried with backoff, keeping order; `flush()` resolves when all are acked.
 */
export class Publisher {
  private buffer: BusMessage[] = [];
  private scheduled = false;
  private inFlight = false;
  private chain: Promise<void> = Promise.resolve();
  /** Messages published and acknowledged. */
  acked = 0;

  constructor(
    private readonly bus: Bus,
    private readonly logger: Logger,
  ) {}

  /** Messages pushed into the buffer (not counting those the gate took). */
  pushed = 0;
  /** Messages the gate took instead of the buffer (journaled by the backlog policy `spill`). */
  gated = 0;
  /**
   * Admission hook (the backlog gate, `bus/backlog.ts`): returns true when it took the message itself
   * (spilled it to the journal); false lets it into the buffer.
   */
  gate: ((m: BusMessage) => boolean) | null = null;
  /** Called with each batch the bus acknowledged. */
  onAcked: ((batch: BusMessage[]) => void) | null = null;
  private inFlightBatch: BusMessage[] | null = null;
  private abandoned = false;

  /** Publishes a message (after the gate, when one is set). */
  push(m: BusMessage): void {
    if (this.gate?.(m)) {
      this.gated++;
      return;
    }
    this.pushDirect(m);
  }

  /** Messages pushed and not yet acknowledged by the bus (buffered or in flight). */
  pending(): number {
    return this.pushed - this.acked;
  }

  /**
   * Stops publishing and returns every message not acknowledged by the bus (the batch in flight,
   * then the buffer), for the shutdown journal.
   */
  takeUnacked(): BusMessage[] {
    this.abandoned = true;
    const out = (this.inFlightBatch ?? []).concat(this.buffer);
    this.inFlightBatch = null;
    this.buffer = [];
    return out;
  }

  /** Publishes a message, bypassing the gate (the journal's read-back). */
  pushDirect(m: BusMessage): void {
    this.pushed++;
    this.buffer.push(m);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.drain());
    }
  }

  /**
   * One publish in flight at a time, in order; what arrives meanwhile waits in the buffer and goes out
   * as the next, larger batch (so batches grow with the bus's ack latency instead of throughput
   * falling to one small batch per round trip).
   */
  private drain(): void {
    this.scheduled = false;
    if (this.inFlight || this.buffer.length === 0 || this.abandoned) return;
    const batch =
      this.buffer.length > MAX_PUBLISH_BATCH ? this.buffer.splice(0, MAX_PUBLISH_BATCH) : this.buffer;
    if (batch === this.buffer) this.buffer = [];
    this.inFlight = true;
    this.inFlightBatch = batch;
    this.chain = this.publishWithRetry(batch).then(() => {
      this.inFlight = false;
      this.inFlightBatch = null;
      this.drain();
    });
  }

  private async publishWithRetry(batch: BusMessage[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (this.abandoned) return;
      try {
        await this.bus.publish(batch);
        this.acked += batch.length;
        this.onAcked?.(batch);
        return;
      } catch (err) {
        const delay = Math.min(30_000, 100 * 2 ** Math.min(attempt, 9));
        this.logger.warn(
          { err: (err as Error).message, attempt, delay, messages: batch.length },
          "bus publish failed; retrying",
        );
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Resolves when every pushed message has been acknowledged by the bus. */
  async flush(): Promise<void> {
    this.drain();
    while (!this.abandoned && (this.inFlight || this.buffer.length > 0)) {
      await this.chain;
      this.drain();
    }
  }

  /**
   * As {@link flush}, bounded: resolves true when everything was acknowledged, false when `timeoutMs`
   * passed first (shutdown must end even when the bus stays unreachable; what was not acknowledged is
   * logged with its count).
   */
  async flushWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const ok = await Promise.race([this.flush().then(() => true as const), timedOut]);
    clearTimeout(timer);
    if (!ok) {
      this.logger.error(
        { pushed: this.pushed, acknowledged: this.acked, timeoutMs },
        "shutdown: the bus did not acknowledge every message in time",
      );
    }
    return ok;
  }
}
