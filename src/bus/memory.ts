/**
 * In-process bus: the embedded default. Messages live in memory in per-group queues. A consumer
 * claims a batch from its group's queue (so members of one group share the messages without
 * duplicates); the batch is acknowledged when the handler resolves and delivered again (to the same
 * consumer, after a backoff of 100 ms doubling to 5 s) when it rejects. Duplicate ids published
 * within the dedupe window are acknowledged and dropped, as JetStream does with `Nats-Msg-Id`.
 *
 * A group exists from its first `consume()`: messages published before that are not kept for it
 * (there is no retention beyond the process, unlike the networked transports).
 */
import type { Bus, BusMessage, ConsumeOptions, Consumer } from "./bus.js";

interface Group {
  prefixes: string[];
  /** Smallest batch size of the members: when reached, waiting members are woken. */
  batchSize: number;
  queue: BusMessage[];
  head: number;
  /** Claimed by a member, not yet acknowledged. */
  inFlight: number;
  /** Wakers of members waiting for messages. */
  waiters: (() => void)[];
  /** Enqueue time of the oldest waiting message (a lower bound once part of the queue was claimed), ms. */
  oldestAt: number;
  /** Messages put back unacknowledged by a dead consumer: counted as redeliveries when taken again. */
  returned: WeakSet<BusMessage> | null;
}

/** Options of the memory bus. */
export interface MemoryBusOptions {
  /** Dedupe window, ms (default 120000): an id seen within it is not enqueued again. 0 disables. */
  dedupeWindowMs?: number;
  /**
   * Most ids remembered per window (default 500,000): a flood rotates the window early, so the dedupe
   * sets stay within about 2 × this many ids (~90 bytes each) instead of growing with the rate.
   */
  dedupeMaxIds?: number;
}

interface Member {
  group: Group;
  /** The batch claimed and not yet acknowledged. */
  inFlight: BusMessage[] | null;
  dead: boolean;
}

export class MemoryBus implements Bus {
  readonly name = "memory";
  private readonly groups = new Map<string, Group>();
  /** Groups each topic is delivered to (topics are few; computed once, reset when groups change). */
  private readonly routes = new Map<string, Group[]>();
  private readonly members = new Set<Member>();
  private seen = new Set<string>();
  private seenOld = new Set<string>();
  private rotateAt: number;
  private readonly maxIds: number;
  private readonly windowMs: number;
  /** Messages dropped by the dedupe window. */
  deduplicated = 0;
  /** Called with each message dropped by the dedupe window (it is never delivered). */
  onDuplicate: ((m: BusMessage) => void) | null = null;

  constructor(opts: MemoryBusOptions = {}) {
    this.windowMs = opts.dedupeWindowMs ?? 120_000;
    this.maxIds = opts.dedupeMaxIds ?? 500_000;
    this.rotateAt = Date.now() + this.windowMs;
  }

  async publish(messages: BusMessage[]): Promise<void> {
    this.publishSync(messages);
  }

  /** Synchronous publish (the in-process ack is immediate). */
  publishSync(messages: BusMessage[]): void {
    const now = Date.now();
    if (now >= this.rotateAt || this.seen.size >= this.maxIds) {
      this.seenOld = this.seen;
      this.seen = new Set();
      this.rotateAt = now + this.windowMs;
    }
    const dedupe = this.windowMs > 0;
    const seen = this.seen;
    const old = this.seenOld.size > 0 ? this.seenOld : null;
    for (const m of messages) {
      if (dedupe) {
        // one hash lookup for a new id: add, and a size that did not grow means it was there (one
        // held by the previous window only stays there, so it is still forgotten after two windows)
        const size = seen.size;
        seen.add(m.id);
        let dup = seen.size === size;
        if (!dup && old?.has(m.id)) {
          seen.delete(m.id);
          dup = true;
        }
        if (dup) {
          this.deduplicated++;
          this.onDuplicate?.(m);
          continue;
        }
      }
      let targets = this.routes.get(m.topic);
      if (targets === undefined) {
        targets = [...this.groups.values()].filter((g) => matches(g.prefixes, m.topic));
        this.routes.set(m.topic, targets);
      }
      for (const g of targets) {
        if (g.queue.length === g.head) g.oldestAt = now;
        g.queue.push(m);
        if (g.waiters.length > 0 && g.queue.length - g.head >= g.batchSize) wakeAll(g);
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
        inFlight: 0,
        waiters: [],
        oldestAt: 0,
        returned: null,
      };
      this.groups.set(opts.group, g);
      this.routes.clear();
    } else {
      g.batchSize = Math.min(g.batchSize, opts.batchSize);
    }
    const group = g;
    const member: Member = { group, inFlight: null, dead: false };
    this.members.add(member);
    let stopping = false;
    let drain = true;
    let redeliveries = 0;
    let failures = 0;
    const pending = () => group.queue.length - group.head;
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        let done = false;
        const wake = () => {
          if (done) return;
          done = true;
          clearTimeout(t);
          const i = group.waiters.indexOf(wake);
          if (i >= 0) group.waiters.splice(i, 1);
          resolve();
        };
        const t = setTimeout(wake, ms);
        group.waiters.push(wake);
      });
    const loop = async () => {
      for (;;) {
        if (member.dead) return;
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
        // claim: other members of the group will not see these
        const take = Math.min(n, opts.maxBatchSize);
        const batch = group.queue.slice(group.head, group.head + take);
        group.head += take;
        group.inFlight += take;
        member.inFlight = batch;
        if (group.head === group.queue.length) {
          group.queue = [];
          group.head = 0;
        } else if (group.head > 8192 && group.head * 2 > group.queue.length) {
          // consumed messages are released soon, so a queue that never empties (a store behind, its
          // backlog held at the budget) does not also hold tens of thousands of stored messages
          group.queue = group.queue.slice(group.head);
          group.head = 0;
        }
        if (group.returned) {
          for (const m of batch) if (group.returned.has(m)) redeliveries++;
        }
        for (;;) {
          try {
            await handler(batch);
          } catch {
            if (member.dead) return;
            redeliveries += batch.length;
            failures++;
            await new Promise((r) => setTimeout(r, Math.min(5000, 50 * 2 ** Math.min(failures, 7))));
            if (member.dead) return;
            continue; // not acked: the same batch is delivered again
          }
          break;
        }
        if (member.dead) return; // its batch was already put back
        failures = 0;
        group.inFlight -= take;
        member.inFlight = null;
      }
    };
    const done = loop().finally(() => {
      this.members.delete(member);
      // a transient group ends with its last consumer: publishing no longer queues for it
      if (opts.transient && ![...this.members].some((m) => m.group === group)) {
        if (this.groups.get(opts.group) === group) this.groups.delete(opts.group);
        this.routes.clear();
      }
    });
    return {
      // the group exists from consume(): it holds everything published from now on
      ready: () => Promise.resolve(),
      lag: () => pending() + group.inFlight,
      redeliveries: () => redeliveries,
      stop: async (o) => {
        stopping = true;
        drain = o?.drain ?? true;
        wakeAll(group);
        if (member.dead) return;
        await done;
      },
    };
  }

  /**
   * Simulates the death of every consumer of this bus, as if their process had died before acking:
   * each stops at once, its handler is not awaited nor called again, and the batch it held goes back
   * to the front of its group's queue unacknowledged, for the next consumer of the group (where it
   * counts as redelivered). Used by the bus contract tests; consumers started afterwards work normally.
   */
  abandonConsumers(): void {
    for (const m of this.members) {
      m.dead = true;
      const batch = m.inFlight;
      m.inFlight = null;
      if (!batch) continue;
      const g = m.group;
      g.inFlight -= batch.length;
      g.returned ??= new WeakSet();
      for (const msg of batch) g.returned.add(msg);
      g.queue = batch.concat(g.queue.slice(g.head));
      g.head = 0;
      g.oldestAt = 0;
    }
    this.members.clear();
    for (const g of this.groups.values()) wakeAll(g);
  }

  /**
   * Takes every unacknowledged message of `group` out of the bus, for the shutdown journal: the
   * batches its consumers hold (each such consumer stops at once, as in {@link abandonConsumers}: its
   * handler is not awaited nor called again), then the messages waiting, in order. The group's queue
   * is left empty. Returns [] for an unknown group.
   */
  takeUnacked(group: string): BusMessage[] {
    const g = this.groups.get(group);
    if (!g) return [];
    const out: BusMessage[] = [];
    for (const m of this.members) {
      if (m.group !== g) continue;
      m.dead = true;
      if (m.inFlight) {
        for (const msg of m.inFlight) out.push(msg);
        g.inFlight -= m.inFlight.length;
        m.inFlight = null;
      }
      this.members.delete(m);
    }
    for (let i = g.head; i < g.queue.length; i++) out.push(g.queue[i]);
    g.queue = [];
    g.head = 0;
    wakeAll(g);
    return out;
  }

  /** Messages waiting or in flight in `group` (0 for an unknown group). */
  backlog(group: string): number {
    const g = this.groups.get(group);
    return g ? g.queue.length - g.head + g.inFlight : 0;
  }

  async close(): Promise<void> {
    this.groups.clear();
    this.routes.clear();
  }
}

function wakeAll(g: Group): void {
  const ws = g.waiters;
  g.waiters = [];
  for (const w of ws) w();
}

function matches(prefixes: string[], topic: string): boolean {
  for (const p of prefixes) if (topic.startsWith(p)) return true;
  return false;
}
