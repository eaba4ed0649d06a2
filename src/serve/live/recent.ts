/**
 * The recent window: the last trades and quotes the live feed relayed, in arrival order, bounded by
 * count. The live consumer (`k2-live-…`) sees a record about as soon as the store's consumer
 * (`k2-persist`) does, but the store writes in batches: a record received within the last batch
 * window may not be stored yet. Reads that reach "now" (REST `trades`/`quotes`, a gateway subscription
 * `from` a point in time) take the records the store does not hold yet from here, merged in sort
 * order without duplicates (`mergeRecent`, `ws/replay.ts`).
 *
 * The window is a ring of {@link RecentWindow.capacity} records per kind (default 50,000: several
 * seconds of a busy venue, far more than a batch window); anything older is assumed stored (the
 * store's lag shows when it is not: `k2_consumer_lag`). Every record gets an arrival number (`seq`),
 * so a reader can ask for what arrived before a point ({@link RecentWindow.before}).
 *
 * Sort keys are the store's keyset keys (`src/store/reads.ts`): trades (timestamp, exchange, symbol,
 * length(trade_id), trade_id), quotes (timestamp, exchange, symbol, platform_sequence, message_id).
 */
import type { QuoteV2, TradeV2 } from "../../schema/records.js";
import { type CursorValueType, decodeCursor, encodeCursor } from "../../store/cursor.js";
import type { MarketQuery, Page } from "../../store/page.js";
import { withinBudget } from "../../store/reads.js";
import type { LiveFeed } from "./feed.js";

/** The two kinds the window keeps. */
export type RecentKind = "trades" | "quotes";
/** The record of a kind. */
export type RecentRecord<K extends RecentKind> = K extends "trades" ? TradeV2 : QuoteV2;
/** A keyset sort key (numbers: µs and lengths/sequences; strings compared by UTF-16 code unit). */
export type SortKey = (string | number)[];

/** Sort key of a trade, as the store orders `trades_v2`. */
export function tradeKey(t: TradeV2): SortKey {
  return [t.timestamp, t.exchange, t.symbol, t.trade_id.length, t.trade_id];
}

/** Sort key of a quote, as the store orders `quotes_v2`. */
export function quoteKey(q: QuoteV2): SortKey {
  return [q.timestamp, q.exchange, q.symbol, q.platform_sequence, q.message_id];
}

/** Sort key of a record of `kind`. */
export function sortKey(kind: RecentKind, r: TradeV2 | QuoteV2): SortKey {
  return kind === "trades" ? tradeKey(r as TradeV2) : quoteKey(r as QuoteV2);
}

/**
 * Identity of a record for de-duplication (the store's unique key): trades (exchange, symbol,
 * trade_id), quotes (exchange, symbol, message_id).
 */
export function recordId(kind: RecentKind, r: TradeV2 | QuoteV2): string {
  const id = kind === "trades" ? (r as TradeV2).trade_id : (r as QuoteV2).message_id;
  return `${r.exchange}\u0000${r.symbol}\u0000${id}`;
}

/** Compares two sort keys element by element: negative, 0 or positive. */
export function compareKeys(a: SortKey, b: SortKey): number {
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x === y) continue;
    return x < y ? -1 : 1;
  }
  return 0;
}

class Ring<T> {
  private readonly items: (T | undefined)[];
  /** Records ever appended (the arrival number of the next one). */
  seq = 0;
  constructor(readonly capacity: number) {
    this.items = new Array(capacity);
  }
  push(v: T): void {
    this.items[this.seq % this.capacity] = v;
    this.seq++;
  }
  /** The held records with arrival number < `end`, oldest first. */
  *before(end: number): Generator<T> {
    const start = Math.max(0, this.seq - this.capacity);
    for (let s = start; s < Math.min(end, this.seq); s++) yield this.items[s % this.capacity] as T;
  }
}

/** The last trades and quotes of the live feed (see the module comment). */
export class RecentWindow {
  private readonly rings: { trades: Ring<TradeV2>; quotes: Ring<QuoteV2> };

  /** @param capacity records kept per kind (default 50,000) */
  constructor(readonly capacity = 50_000) {
    this.rings = { trades: new Ring(capacity), quotes: new Ring(capacity) };
  }

  /** Starts keeping the trades and quotes of `live`; returns the function that stops it. */
  follow(live: LiveFeed): () => void {
    const offs = [
      live.on("trade", (t) => this.add("trades", t)),
      live.on("quote", (q) => this.add("quotes", q)),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /** Adds a record (arrival order). */
  add<K extends RecentKind>(kind: K, r: RecentRecord<K>): void {
    (this.rings[kind] as Ring<RecentRecord<K>>).push(r);
  }

  /** Arrival number of the next record of `kind` (records so far). */
  seq(kind: RecentKind): number {
    return this.rings[kind].seq;
  }

  /** The held records of `kind` that arrived before arrival number `end` (default: all), oldest first. */
  before<K extends RecentKind>(kind: K, end = Number.MAX_SAFE_INTEGER): Iterable<RecentRecord<K>> {
    return (this.rings[kind] as Ring<RecentRecord<K>>).before(end);
  }
}

/** Cursor value types of the trades and quotes keys (`store/reads.ts`). */
const KEY_TYPES: Record<RecentKind, CursorValueType[]> = {
  trades: ["int", "str", "str", "int", "str"],
  quotes: ["int", "str", "str", "int", "str"],
};

/**
 * The test of {@link mergeRecent}'s key range for a page of `kind` read with `q` whose `next_cursor`
 * is `nextCursor`: a record's sort key when it matches the query's exchange, symbol and [from, to) and
 * falls after the query's cursor and (when another page follows) not after the page's last row; else
 * null. Records outside by their timestamp alone are refused before their key is built.
 * @throws {QueryParamError} on a cursor of another query
 */
function pageRange<K extends RecentKind>(
  kind: K,
  q: MarketQuery,
  nextCursor: string | null,
): (r: RecentRecord<K>) => SortKey | null {
  const sign = q.order === "asc" ? 1 : -1;
  const after = q.cursor !== undefined ? decodeCursor(q.cursor, kind, q.order, KEY_TYPES[kind]) : null;
  const upTo = nextCursor !== null ? decodeCursor(nextCursor, kind, q.order, KEY_TYPES[kind]) : null;
  const afterTs = after ? (after[0] as number) : null;
  const upToTs = upTo ? (upTo[0] as number) : null;
  return (r) => {
    if (q.exchange !== undefined && r.exchange !== q.exchange) return null;
    if (q.symbol !== undefined && r.symbol !== q.symbol) return null;
    if (q.from !== undefined && r.timestamp < q.from) return null;
    if (q.to !== undefined && r.timestamp >= q.to) return null;
    // the timestamp leads the key: a record before the cursor's or past the page's last one is out
    if (afterTs !== null && sign * (r.timestamp - afterTs) < 0) return null;
    if (upToTs !== null && sign * (r.timestamp - upToTs) > 0) return null;
    const key = sortKey(kind, r);
    if (after && sign * compareKeys(key, after) <= 0) return null;
    if (upTo && sign * compareKeys(key, upTo) > 0) return null;
    return key;
  };
}

/**
 * True when some record of `recent` falls in the key range of a page of `kind` read with `q` whose
 * `next_cursor` is `nextCursor` ({@link mergeRecent} would look it up among the page's rows): false
 * means {@link mergeRecent} would return the page as it is.
 * @throws {QueryParamError} on a cursor of another query
 */
export function recentInRange<K extends RecentKind>(
  kind: K,
  q: MarketQuery,
  nextCursor: string | null,
  recent: Iterable<RecentRecord<K>>,
): boolean {
  const inPage = pageRange(kind, q, nextCursor);
  for (const r of recent) if (inPage(r) !== null) return true;
  return false;
}

/**
 * A store page of `kind` with the records of `recent` that belong in it and the store did not return:
 * in the page's key range (after the query's cursor; up to the page's last row when another page
 * follows, else to the end), matching the query's exchange, symbol and [from, to), not among the
 * page's rows (by the store's unique key). The merge keeps the query's order, limit and byte budget;
 * `next_cursor` then continues after the last row returned, whether it came from the store or memory
 * (the next page's store rows after it are merged the same way, so nothing is returned twice).
 * @throws {QueryParamError} on a cursor of another query (as the store does)
 */
export function mergeRecent<K extends RecentKind>(
  kind: K,
  page: Page<RecentRecord<K>>,
  q: MarketQuery,
  recent: Iterable<RecentRecord<K>>,
): Page<RecentRecord<K>> {
  const sign = q.order === "asc" ? 1 : -1;
  const inPage = pageRange(kind, q, page.next_cursor);
  let stored: Set<string> | null = null;
  const extra: { key: SortKey; r: RecentRecord<K> }[] = [];
  for (const r of recent) {
    const key = inPage(r);
    if (key === null) continue;
    stored ??= new Set(page.data.map((d) => recordId(kind, d)));
    const id = recordId(kind, r);
    if (stored.has(id)) continue;
    stored.add(id);
    extra.push({ key, r });
  }
  if (extra.length === 0) return page;
  const all = [...page.data.map((r) => ({ key: sortKey(kind, r), r })), ...extra];
  all.sort((a, b) => sign * compareKeys(a.key, b.key));
  let more = page.next_cursor !== null || all.length > q.limit;
  if (all.length > q.limit) all.length = q.limit;
  const data = all.map((e) => e.r);
  const kept = withinBudget(data, q.maxBytes);
  if (kept < data.length) {
    more = true;
    data.length = kept;
  }
  const last = all[data.length - 1];
  return { data, next_cursor: more && last ? encodeCursor(kind, q.order, last.key) : null };
}
