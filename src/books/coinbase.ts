/**
 * Coinbase Advanced Trade WebSocket `level2` channel (messages on channel `l2_data`):
 *
 *     {"channel":"l2_data","timestamp":"…Z","sequence_num":14,"events":[{"type":"snapshot"|"update",
 *      "product_id":"BTC-USD","updates":[{"side":"bid"|"offer","event_time":"…Z",
 *      "price_level":"65062.5","new_quantity":"0.00583"}, …]}]}
 *
 * A `snapshot` event replaces the product's book; an `update` event sets absolute quantities per level
 * (`new_quantity` 0 removes it). `sequence_num` numbers every message of a connection, all channels
 * together (ticker, market_trades, heartbeats, …): a gap means a message of the connection was lost,
 * possibly a level2 one, so every book of that connection is discarded and the caller resubscribes
 * level2 for its products (a new subscription starts with a snapshot).
 *
 * {@link CoinbaseBookSync} is that as a pure, synchronous state machine for one connection (no I/O, no
 * timers). Coinbase's `ticker` and `level2` channels are not atomic with each other: a ticker's best
 * bid/ask can lead or lag the book by a few messages.
 */
import { parseNonNegativeDecimal } from "../schema/decimal.js";
import { BookFrameError, intOf, objectOf, stringOf } from "./frame.js";
import { type BookLevelPair, L2Book } from "./l2-book.js";

/** One level change of an `l2_data` event. */
export interface CoinbaseLevelUpdate {
  /** `bid`, or `ask` for Coinbase's `offer`. */
  side: "bid" | "ask";
  /** `price_level`, exact canonical DECIMAL(18,8). */
  price: string;
  /** `new_quantity`, absolute, exact canonical DECIMAL(18,8); `"0.00000000"` removes the level. */
  quantity: string;
  /** `event_time`, RFC 3339 UTC as sent (nanosecond precision). */
  eventTime: string;
}

/** One event of an `l2_data` message: a product's snapshot or update. */
export interface CoinbaseL2Event {
  /** `snapshot` (replaces the book) or `update`. */
  type: "snapshot" | "update";
  /** `product_id`, e.g. `BTC-USD`. */
  productId: string;
  /** `updates`, in message order. */
  updates: CoinbaseLevelUpdate[];
}

/** A parsed `l2_data` message. */
export interface CoinbaseL2Message {
  /** `sequence_num`: per connection, every channel together. */
  sequence: number;
  /** `timestamp` of the message, RFC 3339 UTC as sent. */
  timestamp: string;
  events: CoinbaseL2Event[];
}

/**
 * Parses a Coinbase Advanced Trade message (after `JSON.parse`) if it is an `l2_data` message.
 * @returns the typed message, or null for another channel
 * @throws {BookFrameError} when an `l2_data` message does not have the documented shape;
 *   `DecimalError` on an inexact value
 */
export function parseCoinbaseL2Message(msg: unknown): CoinbaseL2Message | null {
  const m = objectOf(msg, "message");
  if (m["channel"] !== "l2_data") return null;
  const rawEvents = m["events"];
  if (!Array.isArray(rawEvents)) throw new BookFrameError("events is not an array");
  const events: CoinbaseL2Event[] = new Array(rawEvents.length);
  for (let i = 0; i < rawEvents.length; i++) {
    const e = objectOf(rawEvents[i], `events[${i}]`);
    const type = e["type"];
    if (type !== "snapshot" && type !== "update")
      throw new BookFrameError(`events[${i}].type is not snapshot/update`);
    const rawUpdates = e["updates"];
    if (!Array.isArray(rawUpdates)) throw new BookFrameError(`events[${i}].updates is not an array`);
    const updates: CoinbaseLevelUpdate[] = new Array(rawUpdates.length);
    for (let k = 0; k < rawUpdates.length; k++) {
      const u = objectOf(rawUpdates[k], `updates[${k}]`);
      const side = u["side"];
      if (side !== "bid" && side !== "offer") throw new BookFrameError(`updates[${k}].side is not bid/offer`);
      updates[k] = {
        side: side === "bid" ? "bid" : "ask",
        price: parseNonNegativeDecimal(u["price_level"]),
        quantity: parseNonNegativeDecimal(u["new_quantity"]),
        eventTime: stringOf(u["event_time"], `updates[${k}].event_time`),
      };
    }
    events[i] = { type, productId: stringOf(e["product_id"], `events[${i}].product_id`), updates };
  }
  return {
    sequence: intOf(m["sequence_num"], "sequence_num"),
    timestamp: stringOf(m["timestamp"], "timestamp"),
    events,
  };
}

/** A sequence gap on the connection: `sequence_num` jumped from `expected` to `received`. */
export interface CoinbaseGap {
  expected: number;
  received: number;
}

/** What one message did, and what the caller must do next. */
export interface CoinbaseSyncStep {
  /** Set when this message's `sequence_num` showed a gap (every book was discarded). */
  gap: CoinbaseGap | null;
  /** Products whose level2 subscription the caller must renew (non-empty only with a gap). */
  resubscribe: string[];
  /** Events applied, with their level changes as exact `[price, quantity]` pairs. */
  applied: { productId: string; isSnapshot: boolean; bids: BookLevelPair[]; asks: BookLevelPair[] }[];
  /** Events not applied: their product has had no snapshot since the last gap. */
  skipped: number;
}

/**
 * The level2 books of one Coinbase connection, with `sequence_num` gap detection: its own (every
 * message of the connection passed to {@link onSequence} / {@link onL2Data}), or the caller's
 * (`trackSequence` false: the caller sees every frame's `sequence_num` elsewhere, e.g. the venue
 * normalizer's frame gaps, and reports each gap with {@link onGap}).
 */
export class CoinbaseBookSync {
  readonly books = new Map<string, L2Book>();
  /** Products waiting for a snapshot (after a gap). */
  readonly awaiting = new Set<string>();
  /** Gaps found since construction. */
  resyncs = 0;
  private lastSequence: number | null = null;

  /** @param trackSequence check `sequence_num` of the messages passed (default); false: {@link onGap} only */
  constructor(private readonly trackSequence = true) {}

  /**
   * A gap the caller found on the connection: every book is discarded and waits for a snapshot.
   * @returns the step, with `gap` set and the products to resubscribe
   */
  onGap(gap: CoinbaseGap): CoinbaseSyncStep {
    const step: CoinbaseSyncStep = { gap: null, resubscribe: [], applied: [], skipped: 0 };
    this.discard(gap, step);
    return step;
  }

  /**
   * Call for every message of the connection that is not `l2_data` (ticker, heartbeats, …), with its
   * `sequence_num`, so that a gap is seen whichever channel lost a message.
   */
  onSequence(sequence: number): CoinbaseSyncStep {
    const step: CoinbaseSyncStep = { gap: null, resubscribe: [], applied: [], skipped: 0 };
    this.checkSequence(sequence, step);
    return step;
  }

  /** Handles one `l2_data` message (its `sequence_num` is checked too). */
  onL2Data(m: CoinbaseL2Message): CoinbaseSyncStep {
    const step: CoinbaseSyncStep = { gap: null, resubscribe: [], applied: [], skipped: 0 };
    this.checkSequence(m.sequence, step);
    for (const e of m.events) {
      let book = this.books.get(e.productId);
      if (e.type === "snapshot") {
        if (!book) {
          book = new L2Book();
          this.books.set(e.productId, book);
        }
        this.awaiting.delete(e.productId);
      } else if (!book || this.awaiting.has(e.productId)) {
        step.skipped++;
        continue;
      }
      const bids: BookLevelPair[] = [];
      const asks: BookLevelPair[] = [];
      if (e.type === "snapshot") {
        for (const u of e.updates) (u.side === "bid" ? bids : asks).push([u.price, u.quantity]);
        book.clear();
        book.load("bid", bids);
        book.load("ask", asks);
      } else {
        for (const u of e.updates) {
          book.apply(u.side, u.price, u.quantity);
          (u.side === "bid" ? bids : asks).push([u.price, u.quantity]);
        }
      }
      book.sequence = m.sequence;
      step.applied.push({ productId: e.productId, isSnapshot: e.type === "snapshot", bids, asks });
    }
    return step;
  }

  private checkSequence(sequence: number, step: CoinbaseSyncStep): void {
    if (!this.trackSequence) return;
    const last = this.lastSequence;
    if (last !== null && sequence !== last + 1 && sequence > last) {
      this.discard({ expected: last + 1, received: sequence }, step);
    }
    if (last === null || sequence > last) this.lastSequence = sequence;
  }

  private discard(gap: CoinbaseGap, step: CoinbaseSyncStep): void {
    step.gap = gap;
    this.resyncs++;
    for (const [product, book] of this.books) {
      book.clear();
      this.awaiting.add(product);
      step.resubscribe.push(product);
    }
  }
}
