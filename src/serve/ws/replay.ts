/**
 * History then live for one `from` subscription of one client (`{"op":"subscribe", ..., "from": …}`).
 *
 *  1. From the moment of the request, the live records of the subscription are held (at most
 *     `maxHold`; beyond, the client is cut as a slow consumer: it reads history more slowly than the
 *     market moves). The recent window's arrival number at that moment splits "received before" from
 *     "held".
 *  2. The stored records from `from` on are read page by page from the store's typed reads
 *     ({@link ReplayHistory}: keyset pages, one per symbol and merged in the store's order when the
 *     subscription names several symbols) and sent at the client's pace: the next record goes only
 *     when the client has nothing queued (`backpressure.ts`), so one page and the held records are all
 *     a replaying client costs in memory, and a slow replay client delays nobody. Pages continue until
 *     the last one (no `next_cursor`): anything stored later arrived after the hold started, or is in
 *     the recent window.
 *  3. The switch, in one synchronous pass (no live record can come in between): the records received
 *     before the request that are still in the recent window (some perhaps not stored yet), then the
 *     held ones, without those already sent from the store (by the store's unique key: trade id /
 *     message id), in the store's order; then the caller puts the client on the live stream and says
 *     `replay_done`.
 * De-duplication across the switch remembers the ids of the records sent from the store that could also
 * be in the window or held: those not older than the window's oldest record (minus a minute of
 * out-of-order arrival), at most `maxSeen` (older ones are forgotten first; a window record at or
 * before the newest forgotten one counts as sent).
 */
import type { BookSnapshotV2 } from "../../schema/books.js";
import type { QuoteV2, TradeV2 } from "../../schema/records.js";
import { type MarketQuery, type Page, parsePage, type TextPage } from "../../store/page.js";
import {
  compareKeys,
  type RecentKind,
  type RecentRecord,
  type RecentWindow,
  recordId,
  type SortKey,
  sortKey,
} from "../live/recent.js";
import type { CandlePage, CandleQuery } from "../rest/source.js";

/** What a replay reads history from: the store's typed reads (in a gateway worker, over IPC). */
export interface ReplayHistory {
  /** Stored trades in (timestamp, exchange, symbol, trade id) order (`Store.trades`). */
  trades(q: MarketQuery): Promise<Page<TradeV2>>;
  /** Stored quotes in (timestamp, exchange, symbol, platform_sequence, message_id) order (`Store.quotes`). */
  quotes(q: MarketQuery): Promise<Page<QuoteV2>>;
  /**
   * {@link trades} as JSON text (`Store.tradesText`: the same records and cursor), read instead of
   * {@link trades} where present: a DuckDB store builds the text in SQL, which costs the reading
   * process's event loop a fraction of converting typed rows; a gateway worker is passed the text.
   */
  tradesText?(q: MarketQuery): Promise<TextPage>;
  /** {@link quotes} as JSON text, as {@link tradesText}. */
  quotesText?(q: MarketQuery): Promise<TextPage>;
  /**
   * Stored closed candles and the open ones in memory (`MarketDataSource.candles`, `source: "live"`),
   * for `candles.*` subscriptions `from` a point in time (`candle-replay.ts`); absent: refused (503).
   */
  candles?(q: CandleQuery): Promise<CandlePage>;
  /**
   * Stored top-N book snapshots in (timestamp, exchange, symbol, depth) order (`Store.bookSnapshots`),
   * for `book.{N}` subscriptions `from` a point in time (`book-replay.ts`); absent: refused (503).
   */
  bookSnapshots?(q: MarketQuery): Promise<Page<BookSnapshotV2>>;
}

/** Options of {@link Replay}. */
export interface ReplayOptions<K extends RecentKind> {
  kind: K;
  /** Symbols of the subscription; `all`: every symbol (one page stream without a symbol filter). */
  symbols: string[];
  all: boolean;
  /** Start, µs since epoch (inclusive). */
  fromUs: number;
  history: ReplayHistory;
  recent?: RecentWindow;
  /** Adds the live listener that feeds the hold; returns its removal. */
  listen: (hold: (r: RecentRecord<K>) => void) => () => void;
  /** Sends one record to the client (serialized by the caller). */
  send: (r: RecentRecord<K>) => void;
  /**
   * Puts the client on the live stream: called in the same synchronous pass as the switch's last
   * record, so no live record falls between.
   */
  goLive: () => void;
  /** Resolves when the client has nothing queued (its pace). */
  ready: () => Promise<void>;
  /** Records per store page (default 2,000). */
  pageSize?: number;
  /** Most live records held during the replay (default 100,000). */
  maxHold?: number;
  /** Most ids kept for de-duplication across the switch (default 200,000). */
  maxSeen?: number;
  /**
   * Called with each record about to be sent from the store; returning a sentence ends the replay
   * with that error (code 413: the per-token record limit, `K2_REPLAY_MAX_RECORDS`). Optional.
   */
  admit?: () => string | null;
}

/** Out-of-order arrival allowed when bounding what the de-duplication remembers, µs. */
const ARRIVAL_SLACK_US = 60_000_000;

/** Why a replay ended early. */
export class ReplayError extends Error {
  override name = "ReplayError";
  constructor(
    message: string,
    /** HTTP-like status of the error frame (503: history unavailable; 0: the client is cut instead). */
    readonly code: number,
  ) {
    super(message);
  }
}

/**
 * What a replay's history loop threw, as the error that ends the replay: a {@link ReplayError} as it
 * is, anything else (the store could not be read) as a 503 naming the cause.
 */
export function historyFailure(err: unknown): ReplayError {
  if (err instanceof ReplayError) return err;
  return new ReplayError(`from: history not available (${(err as Error).message})`, 503);
}

/** One `from` subscription's replay (see the module comment). */
export class Replay<K extends RecentKind> {
  private hold: RecentRecord<K>[] = [];
  private readonly seen = new Map<string, SortKey>();
  /** Sort key of the newest id forgotten from {@link seen}, or null. */
  private forgotten: SortKey | null = null;
  private unlisten: (() => void) | null = null;
  private cancelled = false;
  private overflow = false;
  private split = 0;
  private floorUs = Number.POSITIVE_INFINITY;
  /** Records sent so far (history and switch). */
  sent = 0;

  constructor(private readonly o: ReplayOptions<K>) {}

  /**
   * Runs the replay up to the switch (where it calls `goLive`); resolves with the records sent, or null
   * when cancelled.
   * @throws {ReplayError} when the hold overflows (code 0), history cannot be read (code 503) or
   *   `admit` refuses a record (code 413)
   */
  async run(): Promise<number | null> {
    const o = this.o;
    const maxHold = o.maxHold ?? 100_000;
    this.unlisten = o.listen((r) => {
      if (!this.match(r)) return;
      if (this.hold.length >= maxHold) this.overflow = true;
      else {
        this.hold.push(r);
        if (r.timestamp < this.floorUs) this.floorUs = r.timestamp;
      }
    });
    if (o.recent) {
      this.split = o.recent.seq(o.kind);
      for (const r of o.recent.before(o.kind, this.split))
        if (r.timestamp < this.floorUs) this.floorUs = r.timestamp;
    }
    try {
      for await (const r of this.history()) {
        if (this.cancelled) return null;
        if (this.overflow) break;
        const refused = o.admit?.() ?? null;
        if (refused !== null) throw new ReplayError(refused, 413);
        await o.ready();
        if (this.cancelled) return null;
        this.remember(r);
        o.send(r);
        this.sent++;
      }
    } catch (err) {
      this.stop();
      if (this.cancelled) return null;
      throw historyFailure(err);
    }
    if (this.cancelled) return null;
    if (this.overflow) {
      this.stop();
      throw new ReplayError(`replay: more than ${maxHold} live records arrived during the replay`, 0);
    }
    await o.ready();
    if (this.cancelled) return null;
    this.switchOver();
    return this.sent;
  }

  /** Stops the replay (the client left or unsubscribed); {@link run} resolves null. */
  cancel(): void {
    this.cancelled = true;
    this.stop();
  }

  private stop(): void {
    this.unlisten?.();
    this.unlisten = null;
    this.hold = [];
    this.seen.clear();
  }

  private match(r: RecentRecord<K>): boolean {
    return (this.o.all || this.o.symbols.includes(r.symbol)) && r.timestamp >= this.o.fromUs;
  }

  private remember(r: RecentRecord<K>): void {
    if (r.timestamp < this.floorUs - ARRIVAL_SLACK_US) return;
    const max = this.o.maxSeen ?? 200_000;
    const key = sortKey(this.o.kind, r);
    this.seen.set(recordId(this.o.kind, r), key);
    if (this.seen.size > max) {
      const [id, k] = this.seen.entries().next().value as [string, SortKey];
      this.seen.delete(id);
      if (!this.forgotten || compareKeys(k, this.forgotten) > 0) this.forgotten = k;
    }
  }

  /** Sends the window's records from before the request and the held ones not sent yet, in order. */
  private switchOver(): void {
    const o = this.o;
    const tail: { key: SortKey; r: RecentRecord<K> }[] = [];
    const take = (r: RecentRecord<K>) => {
      if (!this.match(r)) return;
      const id = recordId(o.kind, r);
      if (this.seen.has(id)) return;
      const key = sortKey(o.kind, r);
      if (this.forgotten && compareKeys(key, this.forgotten) <= 0) return;
      this.seen.set(id, key);
      tail.push({ key, r });
    };
    if (o.recent) for (const r of o.recent.before(o.kind, this.split)) take(r);
    for (const r of this.hold) take(r);
    tail.sort((a, b) => compareKeys(a.key, b.key));
    for (const e of tail) o.send(e.r);
    this.sent += tail.length;
    this.stop();
    o.goLive();
  }

  /** The stored records from `fromUs` on, in the store's order, merged across symbols. */
  private history(): AsyncGenerator<RecentRecord<K>> {
    const o = this.o;
    if (o.all || o.symbols.length === 1) return this.pages(o.all ? undefined : o.symbols[0]);
    return mergeSorted(
      o.symbols.map((s) => this.pages(s)),
      (a, b) => compareKeys(sortKey(o.kind, a), sortKey(o.kind, b)),
    );
  }

  private async *pages(symbol: string | undefined): AsyncGenerator<RecentRecord<K>> {
    const o = this.o;
    const read = historyReader(o.history, o.kind);
    let cursor: string | undefined;
    for (;;) {
      const page = await read({ symbol, from: o.fromUs, order: "asc", limit: o.pageSize ?? 2000, cursor });
      yield* page.data;
      // the last page: what the store writes from now on arrived after the hold started (or is in the
      // recent window), so the switch serves it; chasing the store's head would never end on a busy feed
      if (this.cancelled || page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }
}

/**
 * The page read of `kind` from `history`: its text read parsed where it has one, else its typed read.
 */
export function historyReader<K extends RecentKind>(
  history: ReplayHistory,
  kind: K,
): (q: MarketQuery) => Promise<Page<RecentRecord<K>>> {
  const text = kind === "trades" ? history.tradesText : history.quotesText;
  if (text) {
    return (q) => text.call(history, q).then((p) => parsePage<RecentRecord<K>>(p));
  }
  const typed = kind === "trades" ? history.trades : history.quotes;
  return typed.bind(history) as (q: MarketQuery) => Promise<Page<RecentRecord<K>>>;
}

/**
 * k-way merge of sorted async streams into one sorted stream (ties: the earlier stream first). Holds
 * one record per stream.
 */
export async function* mergeSorted<T>(
  streams: AsyncIterator<T>[],
  compare: (a: T, b: T) => number,
): AsyncGenerator<T> {
  const heads: { v: T; s: AsyncIterator<T>; i: number }[] = [];
  const pull = async (s: AsyncIterator<T>, i: number) => {
    const n = await s.next();
    if (!n.done) heads.push({ v: n.value, s, i });
  };
  await Promise.all(streams.map((s, i) => pull(s, i)));
  while (heads.length > 0) {
    let best = 0;
    for (let j = 1; j < heads.length; j++) {
      const c = compare(heads[j].v, heads[best].v);
      if (c < 0 || (c === 0 && heads[j].i < heads[best].i)) best = j;
    }
    const h = heads[best];
    heads.splice(best, 1);
    yield h.v;
    await pull(h.s, h.i);
  }
}
