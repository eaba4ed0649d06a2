/**
 * Fan-out of one record to its subscribers: serialized once (`JSON.stringify`, or in a gateway worker
 * process the text the record arrived as, `frames.ts` `recordText`) and framed once (server
 * frames are unmasked, so every client gets the same bytes), then appended to each subscribed group's
 * log (`flush.ts`), sent to each client served on its own (`backpressure.ts`), or added to the batch of
 * a client that asked for `batch_ms`. Synchronous: nothing awaits a client.
 */
import type { LiveBookTop } from "../../schema/live-book.js";
import type { SendQueues } from "./backpressure.js";
import { bookKey, newerBook } from "./book-replay.js";
import type { Flusher } from "./flush.js";
import { recordText, textFrame } from "./frames.js";
import type { Member, SubscriptionIndex } from "./groups.js";
import { LIVE_QUIET_MS, LiveActivity } from "./history-queue.js";
import { type Client, conflationKey, Group, isConflatable } from "./members.js";
import type { GatewayCounts } from "./metrics.js";
import type { Channel } from "./protocol.js";

/** Routes records to the members subscribed to them. */
export class Fanout {
  /** Marked with each live record that had subscribers (history slices yield to live work then). */
  readonly live: LiveActivity;

  /** @param onLive told of live records handed to subscribers, at most every `LIVE_QUIET_MS / 2` */
  constructor(
    private readonly index: SubscriptionIndex,
    private readonly flusher: Flusher,
    private readonly queues: SendQueues,
    private readonly counts: GatewayCounts,
    onLive?: () => void,
  ) {
    this.live = new LiveActivity(LIVE_QUIET_MS, onLive);
  }

  /** Fan-out of one record to the channel's subscribers; synchronous, serializes the record once. */
  publish(channel: Channel, type: string, exchange: string, symbol: string, record: object): void {
    const idx = this.index.channel(channel);
    if (!idx) return;
    const bySymbol = idx.bySymbol.get(symbol);
    if (idx.all.size === 0 && !bySymbol) return;
    this.live.mark();
    const json = recordText(record);
    let frame: Buffer | null = null;
    const key = conflationKey(channel, exchange, symbol);
    const one = (m: Member) => {
      if (m instanceof Group) {
        frame ??= textFrame(`{"type":"${type}","channel":"${channel}","data":${json}}`);
        this.flusher.groupPush(m, frame, key);
        return;
      }
      const sub = m.subs.get(channel);
      if (!sub || m.closed) return;
      if (m.bookFloors.size > 0 && heldBack(m, channel, record as LiveBookTop)) return;
      if (sub.batchMs > 0) {
        this.addToBatch(m, channel, symbol, json, sub.batchMs);
        return;
      }
      frame ??= textFrame(`{"type":"${type}","channel":"${channel}","data":${json}}`);
      this.queues.send(m, frame, key);
    };
    for (const m of idx.all) one(m);
    if (bySymbol) for (const m of bySymbol) if (!idx.all.has(m)) one(m);
  }

  /** Whether anyone is subscribed to `symbol` on `channel` (to skip building a record nobody gets). */
  wants(channel: Channel, symbol: string): boolean {
    const idx = this.index.channel(channel);
    return idx !== undefined && (idx.all.size > 0 || idx.bySymbol.has(symbol));
  }

  /** One record (its JSON) to one client (used for the tick snapshot on subscribe). */
  deliver(c: Client, channel: Channel, type: string, exchange: string, symbol: string, json: string): void {
    const sub = c.subs.get(channel);
    if (!sub) return;
    if (sub.batchMs > 0) this.addToBatch(c, channel, symbol, json, sub.batchMs);
    else
      this.queues.send(
        c,
        textFrame(`{"type":"${type}","channel":"${channel}","data":${json}}`),
        conflationKey(channel, exchange, symbol),
      );
  }

  /** Sends the client's batch of `channel` now (as one `batch` message), if it has one. */
  flushBatch(c: Client, channel: Channel): void {
    const b = c.batches.get(channel);
    if (!b) return;
    clearTimeout(b.timer);
    c.batches.delete(channel);
    if (c.closed || b.items.length === 0) return;
    this.queues.send(
      c,
      textFrame(`{"type":"batch","channel":"${channel}","data":[${b.items.join(",")}]}`),
      null,
    );
  }

  private addToBatch(c: Client, channel: Channel, symbol: string, json: string, batchMs: number): void {
    let b = c.batches.get(channel);
    if (!b) {
      b = {
        items: [],
        bySymbol: isConflatable(channel) ? new Map() : null,
        timer: setTimeout(() => this.flushBatch(c, channel), batchMs),
      };
      c.batches.set(channel, b);
    }
    if (b.bySymbol) {
      const at = b.bySymbol.get(symbol);
      if (at !== undefined && c.queued > 0) {
        // behind: the batch keeps only the latest quote/tick per symbol
        b.items[at] = json;
        c.conflated++;
        this.counts.conflated++;
        return;
      }
      b.bySymbol.set(symbol, b.items.length);
    }
    b.items.push(json);
  }
}

/**
 * Whether a `book` record is held back from a client after its `book.{N}` replay: not newer than the
 * last book it was sent of that symbol (`book-replay.ts`). The first newer one lifts the hold (the live
 * book only moves forward).
 */
function heldBack(c: Client, channel: Channel, book: LiveBookTop): boolean {
  const floors = c.bookFloors.get(channel);
  if (!floors) return false;
  const key = bookKey(book);
  const floor = floors.get(key);
  if (!floor) return false;
  if (!newerBook(book, floor)) return true;
  floors.delete(key);
  if (floors.size === 0) c.bookFloors.delete(channel);
  return false;
}
