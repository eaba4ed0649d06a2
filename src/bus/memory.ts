/**
 * In-process bus: the embedded default. Messages live in memory in per-group queues; a batch is
 * removed from its queue only when the consumer's handler resolves (ack), and delivered again when it
 * rejects. Duplicate ids published within the dedupe window are acknowledged and dropped, as
 * JetStream does with `Nats-Msg-Id`.
 */
import type { Bus, BusMessage, ConsumeOptions, Consumer } from "./bus.js";

interface Group {
  prefixes: string[];
  batchSize: number;
  queue: BusMessage[];
  head: number;
  wake: (() => void) | null;
  oldestAt: number;
}

/** Options of the memory bus. */
export interface MemoryBusOptions {
  /** Dedupe window, ms (default 120000): an id seen within it is not enqueued again. */
  dedupeWindowMs?: number;
}

export class MemoryBus implements Bus {
  readonly name = "memory";
  private readonly groups = new Map<string, Group>();
  private seen = new Set<string>();
  private seenOld = new Set<string>();
  private rotateAt: number;
  private readonly windowMs: number;
  /** Messages dropped by the dedupe window. */
  deduplicated = 0;

  constructor(opts: MemoryBusOptions = {}) {
    this.windowMs = opts.dedupeWindowMs ?? 120_000;
    this.rotateAt = Date.now() + this.windowMs;
  }

  async publish(messages: BusMessage[]): Promise<void> {
    this.publishSync(messages);
  }

  /** Synchronous publish (the in-process ack is immediate). */
  publishSync(messages: BusMessage[]): void {
    const now = Date.now();
    if (now >= this.rotateAt) {
      this.seenOld = this.seen;
      this.seen = new Set();
      this.rotateAt = now + this.windowMs;
    }
    for (const m of messages) {
      if (this.windowMs > 0 && (this.seen.has(m.id) || this.seenOld.has(m.id))) {
        this.deduplicated++;
        continue;
      }
      if (this.windowMs > 0) this.seen.add(m.id);
      for (const g of this.groups.values()) {
        if (!matches(g.prefixes, m.topic)) continue;
        if (g.queue.length === g.head) g.oldestAt = now;
        g.queue.push(m);
        if (g.wake && g.queue.length - g.head >= g.batchSize) {
          const w = g.wake;
          g.wake = null;
          w();
        }
      }
    }
  }

  consume(opts: ConsumeOptions, handler: (batch: BusMessage[]) => Promise<void>): Consumer {
    let g = this.groups.get(opts.group);
    if (!g) {
      g = {
        prefixes: opts.topicPrefixes,
        batchSize: opts.batchSize,
        queue: [],
        head: 0,
        wake: null,
        oldestAt: 0,
      };
      this.groups.set(opts.group, g);
    }
    const group = g;
    let stopping = false;
    let drain = true;
    let redeliveries = 0;
    let failures = 0;
    const pending = () => group.queue.length - group.head;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          group.wake = null;
          resolve();
        }, ms);
        group.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    const loop = async () => {
      for (;;) {
        if (stopping && (!drain || pending() === 0)) return;
        const n = pending();
        if (n === 0) {
          await sleep(stopping ? 0 : opts.maxWaitMs);
          continue;
        }
        const age = Date.now() - group.oldestAt;
        if (!stopping && n < opts.batchSize && age < opts.maxWaitMs) {
          await sleep(opts.maxWaitMs - age);
          continue;
        }
        const take = Math.min(n, opts.maxBatchSize);
        const batch = group.queue.slice(group.head, group.head + take);
        try {
          await handler(batch);
          failures = 0;
        } catch {
          redeliveries++;
          failures++;
          await new Promise((r) => setTimeout(r, Math.min(5000, 50 * 2 ** Math.min(failures, 7))));
          continue; // not acked: the same batch is delivered again
        }
        group.head += take;
        group.oldestAt = Date.now();
        if (group.head > 65536 && group.head * 2 > group.queue.length) {
          group.queue = group.queue.slice(group.head);
          group.head = 0;
        }
      }
    };
    const done = loop();
    return {
      lag: pending,
      redeliveries: () => redeliveries,
      stop: async (o) => {
        stopping = true;
        drain = o?.drain ?? true;
        if (group.wake) {
          const w = group.wake;
          group.wake = null;
          w();
        }
        await done;
      },
    };
  }

  async close(): Promise<void> {
    this.groups.clear();
  }
}

function matches(prefixes: string[], topic: string): boolean {
  for (const p of prefixes) if (topic.startsWith(p)) return true;
  return false;
}
