/**
 * Kraken WebSocket API v1 `book` channel, maintained and verified by its CRC32 checksum (Kraken's
 * "Spot Websockets (v1) Book Checksum" guide):
 *
 * - Snapshot: `[channelID, {"as": [[price, volume, timestamp], …], "bs": […]}, "book-<depth>", pair]`.
 * - Update: `[channelID, {"a": […]}, "book-<depth>", pair]`, or `{"b": […]}`, or both as two objects
 *   (`[channelID, {"a": […]}, {"b": […]}, "book-<depth>", pair]`). A level is `[price, volume,
 *   timestamp]` with an optional fourth element `"r"`: a republish (a level re-sent because another
 *   one fell out of the subscribed depth). Volume `0` removes the level. Levels are applied in array
 *   order (the last entries are the most recent).
 * - After each update, the book is truncated to the subscribed depth (Kraken sends no removal for
 *   levels that fall out of scope).
 * - `c` (in the last object of an update; never in a snapshot): CRC32 of the top 10 asks (price
 *   ascending) then the top 10 bids (price descending), each level written as its price then its
 *   volume, each with the `.` removed and leading zeros stripped, all concatenated; as an unsigned
 *   32-bit decimal string. Kraken computes it over its own strings (as many decimals as it sends), so
 *   the book keeps the venue's strings beside the exact DECIMAL(18,8) values for this.
 *
 * {@link KrakenBookSync} is one pair's book as a pure, synchronous state machine (no I/O, no timers):
 * on a checksum mismatch it discards the book and tells the caller to resubscribe that pair only.
 * {@link KrakenBooks} keeps one per pair.
 */
import { crc32 } from "node:zlib";
import { parseNonNegativeDecimal } from "../schema/decimal.js";
import { BookFrameError, intOf, stringOf } from "./frame.js";
import { type BookLevelPair, type BookSide, L2Book } from "./l2-book.js";

/** One level of a Kraken v1 book message. */
export interface KrakenBookLevel {
  /** Exact price, canonical DECIMAL(18,8). */
  price: string;
  /** Exact volume, canonical DECIMAL(18,8); `"0.00000000"` removes the level. */
  quantity: string;
  /** The price as Kraken sent it (for the checksum), e.g. `"0.000022900"`. */
  venuePrice: string;
  /** The volume as Kraken sent it (for the checksum). */
  venueQuantity: string;
  /** Kraken's level time, `"seconds.micros"` as sent. */
  timestamp: string;
  /** The republish flag (`"r"`, fourth element): re-sent because of depth truncation. */
  republish: boolean;
}

/** A parsed `book` channel message of one pair. */
export interface KrakenBookMessage {
  /** Kraken's channel id of the subscription (first element). */
  channelId: number;
  /** Channel name, `book-<depth>` (e.g. `book-1000`). */
  channelName: string;
  /** Subscribed depth, from the channel name. */
  depth: number;
  /** Pair as Kraken names it, e.g. `XBT/CHF`. */
  pair: string;
  /** `snapshot` (`as`/`bs`) or `update` (`a`/`b`). */
  kind: "snapshot" | "update";
  /** Ask levels (`as` or `a`), in message order. */
  asks: KrakenBookLevel[];
  /** Bid levels (`bs` or `b`), in message order. */
  bids: KrakenBookLevel[];
  /** The checksum `c` (unsigned CRC32, decimal string) of an update, or null. */
  checksum: string | null;
}

function krakenLevels(v: unknown, what: string): KrakenBookLevel[] {
  if (!Array.isArray(v)) throw new BookFrameError(`${what} is not an array of levels`);
  const out: KrakenBookLevel[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const l = v[i];
    if (!Array.isArray(l) || l.length < 3) throw new BookFrameError(`${what}[${i}] is not a level`);
    const venuePrice = stringOf(l[0], `${what}[${i}] price`);
    const venueQuantity = stringOf(l[1], `${what}[${i}] volume`);
    out[i] = {
      price: parseNonNegativeDecimal(venuePrice),
      quantity: parseNonNegativeDecimal(venueQuantity),
      venuePrice,
      venueQuantity,
      timestamp: stringOf(l[2], `${what}[${i}] timestamp`),
      republish: l[3] === "r",
    };
  }
  return out;
}

/**
 * Parses a Kraken v1 message (after `JSON.parse`) if it is a `book` channel message.
 * @returns the typed message, or null when it is another channel's message or an event object
 * @throws {BookFrameError} when a `book-*` message does not have the documented shape;
 *   `DecimalError` on an inexact value
 */
export function parseKrakenBookMessage(msg: unknown): KrakenBookMessage | null {
  if (!Array.isArray(msg) || msg.length < 4) return null;
  const channelName = msg[msg.length - 2];
  if (typeof channelName !== "string" || !channelName.startsWith("book-")) return null;
  const depth = Number(channelName.slice(5));
  if (!Number.isSafeInteger(depth) || depth <= 0) throw new BookFrameError(`bad book channel ${channelName}`);
  const out: KrakenBookMessage = {
    channelId: intOf(msg[0], "channel id"),
    channelName,
    depth,
    pair: stringOf(msg[msg.length - 1], "pair"),
    kind: "update",
    asks: [],
    bids: [],
    checksum: null,
  };
  for (let i = 1; i < msg.length - 2; i++) {
    const o = msg[i];
    if (o === null || typeof o !== "object" || Array.isArray(o))
      throw new BookFrameError("book payload is not an object");
    const p = o as Record<string, unknown>;
    if ("as" in p || "bs" in p) {
      out.kind = "snapshot";
      if ("as" in p) out.asks = krakenLevels(p["as"], "asks (as)");
      if ("bs" in p) out.bids = krakenLevels(p["bs"], "bids (bs)");
    }
    if ("a" in p) out.asks = out.asks.concat(krakenLevels(p["a"], "asks (a)"));
    if ("b" in p) out.bids = out.bids.concat(krakenLevels(p["b"], "bids (b)"));
    if ("c" in p) out.checksum = stringOf(p["c"], "checksum (c)");
  }
  return out;
}

/** `s` minus its `.` and its leading zeros, as Kraken's checksum reads a price or volume string. */
function checksumField(s: string): string {
  let i = 0;
  while (i < s.length && (s[i] === "0" || s[i] === ".")) i++; // leading zeros, and the `.` of "0.000123"
  return s.slice(i).replace(".", "");
}

/**
 * Kraken v1 book checksum of a book holding the venue's strings: CRC32 over the top 10 asks then the
 * top 10 bids (price then volume per level, `.` removed, leading zeros stripped).
 * @returns the unsigned CRC32 as a decimal string, comparable with `c`
 */
export function krakenChecksum(book: L2Book): string {
  let text = "";
  for (const side of ["ask", "bid"] as const) {
    const n = Math.min(10, book.depth(side));
    for (let i = 0; i < n; i++) {
      text += checksumField(book.venuePriceAt(side, i)!) + checksumField(book.venueQuantityAt(side, i)!);
    }
  }
  return String(crc32(text));
}

/** What one message did to a pair's book, and what the caller must do next. */
export interface KrakenSyncStep {
  /** `verified` / `failed`: the update carried `c` and it matched or not; `absent`: no `c`;
   *  `skipped`: the message was not applied (no snapshot yet since the last failure). */
  checksum: "verified" | "failed" | "absent" | "skipped";
  /** True when the caller must resubscribe this pair (the book was discarded). */
  resubscribe: boolean;
  /** The level changes applied, as exact `[price, quantity]` pairs (quantity 0 = removed), including
   *  the levels truncated away beyond the subscribed depth; empty when nothing was applied. */
  bids: BookLevelPair[];
  asks: BookLevelPair[];
  /** The checksum computed from the book, when `c` was present. */
  computed: string | null;
}

/** One pair's book, kept by Kraken's v1 rules and verified on every update that carries `c`. */
export class KrakenBookSync {
  readonly book = new L2Book();
  state: "awaiting-snapshot" | "live" = "awaiting-snapshot";
  /** Updates whose checksum verified / failed. */
  checksumsVerified = 0;
  checksumFailures = 0;
  /** Resubscriptions asked for (one per failure). */
  resyncs = 0;

  /** @param depth subscribed depth (levels kept per side) */
  constructor(
    readonly pair: string,
    readonly depth: number,
  ) {}

  /** Handles one `book` message of this pair. */
  onMessage(m: KrakenBookMessage): KrakenSyncStep {
    const step: KrakenSyncStep = {
      checksum: "absent",
      resubscribe: false,
      bids: [],
      asks: [],
      computed: null,
    };
    const book = this.book;
    if (m.kind === "snapshot") {
      book.clear();
      for (const [side, levels, out] of [
        ["ask", m.asks, step.asks],
        ["bid", m.bids, step.bids],
      ] as const) {
        for (const l of levels) out.push([l.price, l.quantity]);
        book.load(
          side,
          out,
          levels.map((l) => [l.venuePrice, l.venueQuantity] as const),
        );
      }
      this.state = "live";
    } else if (this.state !== "live") {
      step.checksum = "skipped";
      return step;
    } else {
      applyLevels(book, "ask", m.asks, step.asks);
      applyLevels(book, "bid", m.bids, step.bids);
    }
    const cut = book.truncate(this.depth);
    if (cut.asks.length > 0) step.asks.push(...cut.asks);
    if (cut.bids.length > 0) step.bids.push(...cut.bids);
    if (m.checksum !== null) {
      step.computed = krakenChecksum(book);
      if (step.computed === m.checksum) {
        step.checksum = "verified";
        this.checksumsVerified++;
      } else {
        step.checksum = "failed";
        this.checksumFailures++;
        this.resyncs++;
        book.clear();
        this.state = "awaiting-snapshot";
        step.resubscribe = true;
      }
    }
    return step;
  }
}

function applyLevels(book: L2Book, side: BookSide, levels: KrakenBookLevel[], out: BookLevelPair[]): void {
  for (const l of levels) {
    book.apply(side, l.price, l.quantity, l.venuePrice, l.venueQuantity);
    out.push([l.price, l.quantity]);
  }
}

/** One {@link KrakenBookSync} per pair: a checksum failure resubscribes that pair only. */
export class KrakenBooks {
  readonly byPair = new Map<string, KrakenBookSync>();

  /** Routes a parsed `book` message to its pair's book (created at the message's depth). */
  onMessage(m: KrakenBookMessage): KrakenSyncStep {
    let s = this.byPair.get(m.pair);
    if (!s) {
      s = new KrakenBookSync(m.pair, m.depth);
      this.byPair.set(m.pair, s);
    }
    return s.onMessage(m);
  }
}
