/**
 * Subscription groups and the subscription index. Clients with identical subscriptions (no `batch_ms`,
 * not behind) share one {@link Group}: a record is appended once to the group's log, however many
 * members it has. The index maps each channel's symbols (and `"*"`) to the groups and to the clients
 * served on their own (batching, or behind), so a record reaches its subscribers without a scan.
 */
import { type Client, type ClientSubscription, Group } from "./members.js";
import type { Channel } from "./protocol.js";

/** What the index holds: a group, or a client served on its own. */
export type Member = Group | Client;

/** The members subscribed to one channel: to all its symbols, and by symbol. */
export interface ChannelIndex {
  all: Set<Member>;
  bySymbol: Map<string, Set<Member>>;
}

/**
 * The groups and the index. `follow` is how frames reach a client that leaves its group: the group's
 * frames it has not had yet are handed to it one by one, in order (the gateway queues or writes them).
 */
export class SubscriptionIndex {
  /** Groups by signature (see {@link signature}). */
  readonly groups = new Map<string, Group>();
  private readonly index = new Map<Channel, ChannelIndex>();

  constructor(private readonly follow: (c: Client, frame: Buffer, key: string | null) => void) {}

  /** The members subscribed to `channel`, or undefined when nobody ever was. */
  channel(channel: Channel): ChannelIndex | undefined {
    return this.index.get(channel);
  }

  /** Channels someone is subscribed to now. */
  *activeChannels(): Iterable<Channel> {
    for (const [channel, idx] of this.index) if (idx.all.size > 0 || idx.bySymbol.size > 0) yield channel;
  }

  /**
   * Puts a client where its subscriptions are served from: its group (same subscriptions, no
   * batching, not behind) or, otherwise, the index itself.
   */
  place(c: Client): void {
    this.displace(c);
    if (c.closed || c.subs.size === 0) return;
    let solo = c.queued > 0 || c.bookFloors.size > 0;
    for (const sub of c.subs.values()) if (sub.batchMs > 0) solo = true;
    if (solo) {
      this.indexMember(c, c.subs);
      c.indexed = true;
      return;
    }
    const sig = signature(c.subs);
    let g = this.groups.get(sig);
    if (!g) {
      g = new Group(sig, cloneSubs(c.subs));
      this.groups.set(sig, g);
      this.indexMember(g, g.subs);
    }
    c.group = g;
    c.slot = g.members.length;
    c.seq = g.head;
    g.members.push(c);
  }

  /** Takes a client out of its group or the index (frames its group holds for this pass follow it). */
  displace(c: Client): void {
    const g = c.group;
    if (g) {
      c.group = null;
      const last = g.members.pop() as Client;
      if (last !== c) {
        g.members[c.slot] = last;
        last.slot = c.slot;
      }
      c.slot = -1;
      // the group frames it has not had yet follow it
      if (!c.closed) for (let i = c.seq - g.base; i < g.log.length; i++) this.follow(c, g.log[i], g.keys[i]);
      if (g.members.length === 0) {
        this.unindexMember(g, g.subs);
        this.groups.delete(g.sig);
      }
    }
    if (c.indexed) {
      c.indexed = false;
      this.unindexMember(c, c.subs);
    }
  }

  private indexMember(m: Member, subs: Map<Channel, ClientSubscription>): void {
    for (const [channel, sub] of subs) {
      const idx = this.channelIndex(channel);
      if (sub.all) idx.all.add(m);
      for (const s of sub.symbols) {
        let set = idx.bySymbol.get(s);
        if (!set) {
          set = new Set();
          idx.bySymbol.set(s, set);
        }
        set.add(m);
      }
    }
  }

  private unindexMember(m: Member, subs: Map<Channel, ClientSubscription>): void {
    for (const [channel, sub] of subs) {
      const idx = this.index.get(channel);
      if (!idx) continue;
      idx.all.delete(m);
      for (const s of sub.symbols) {
        const set = idx.bySymbol.get(s);
        set?.delete(m);
        if (set?.size === 0) idx.bySymbol.delete(s);
      }
    }
  }

  private channelIndex(channel: Channel): ChannelIndex {
    let idx = this.index.get(channel);
    if (!idx) {
      idx = { all: new Set(), bySymbol: new Map() };
      this.index.set(channel, idx);
    }
    return idx;
  }
}

/** Canonical text of a client's subscriptions: equal for clients that get exactly the same frames. */
export function signature(subs: Map<Channel, ClientSubscription>): string {
  return [...subs]
    .map(
      ([channel, sub]) =>
        `${channel}|${sub.all ? "*" : ""}|${[...sub.symbols].sort().join(",")}|${sub.batchMs}`,
    )
    .sort()
    .join(";");
}

function cloneSubs(subs: Map<Channel, ClientSubscription>): Map<Channel, ClientSubscription> {
  const copy = new Map<Channel, ClientSubscription>();
  for (const [channel, sub] of subs) copy.set(channel, { ...sub, symbols: new Set(sub.symbols) });
  return copy;
}
