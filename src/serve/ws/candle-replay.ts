/**
 * History then live for one `candles.{interval}` subscription `from` a point in time. Candles are
 * updates keyed by (exchange, symbol, interval, interval_start): an open candle is sent again as it
 * changes, a closed one is final. So:
 *
 *  1. From the request on, the live candle events of the subscription are held (at most `maxHold`;
 *     beyond, the client is cut as a slow consumer).
 *  2. The closed candles stored in `candles_v2` from the interval holding `from` on are read page by
 *     page (one page stream per symbol, merged in (interval_start, exchange, symbol) order) and sent
 *     at the client's pace; the last page of each symbol also names the candles still open in memory.
 *  3. The switch, in one synchronous pass: the candles closed lately that the store did not hold yet
 *     ({@link RecentCandles}: the gateway's own memory of its feed, and in a worker process its
 *     parent's too, named on the last pages by {@link withRecentClosed}: a worker's own memory starts
 *     when the worker does), in interval order, then the open candles, then the
 *     held events, each closed candle once (by its key) and no open update of a candle already sent
 *     closed; then the caller puts the client on the live stream and says `replay_done`.
 */

import type { CandleV2 } from "../../schema/candles.js";
import { type CandleInterval, intervalStart } from "../../schema/candles.js";
import type { Page } from "../../store/page.js";
import type { CandlePage, CandleQuery } from "../rest/source.js";
import type { LiveCandle } from "./feed.js";
import { historyFailure, mergeSorted, ReplayError } from "./replay.js";

/** What a candle replay reads history from: the serving layer's candles (`source: "live"`). */
export interface CandleHistory {
  /** Candles closed by the live aggregator (`candles_v2`) and, in `open`, those still open in memory. */
  candles(q: CandleQuery): Promise<CandlePage>;
}

/** A candle as the gateway relays it: the aggregator's {@link CandleV2}. */
type Candle = LiveCandle & Pick<CandleV2, "interval_start"> & { closed?: boolean };

/** Identity of a candle: (exchange, symbol, interval, interval_start). */
function candleId(c: Candle): string {
  return `${c.exchange}\u0000${c.symbol}\u0000${c.interval}\u0000${c.interval_start}`;
}

/** (interval_start, exchange, symbol) order. */
function compareCandles(a: Candle, b: Candle): number {
  if (a.interval_start !== b.interval_start) return a.interval_start < b.interval_start ? -1 : 1;
  if (a.exchange !== b.exchange) return a.exchange < b.exchange ? -1 : 1;
  return a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0;
}

/**
 * The last closed candles the gateway's feed relayed (a ring, default 4,096): a candle closed within
 * the store's last batch window may not be stored yet, and a replay's switch takes it from here.
 */
export class RecentCandles {
  private readonly items: (Candle | undefined)[];
  private next = 0;

  constructor(readonly capacity = 4096) {
    this.items = new Array(capacity);
  }

  /** Keeps `c` when it is closed. */
  push(c: LiveCandle): void {
    const candle = c as Candle;
    if (candle.closed !== true) return;
    this.items[this.next % this.capacity] = candle;
    this.next++;
  }

  /** The held closed candles, oldest first. */
  *all(): Generator<Candle> {
    for (let s = Math.max(0, this.next - this.capacity); s < this.next; s++)
      yield this.items[s % this.capacity] as Candle;
  }
}

/**
 * A candle history's last page with the closed candles of `recent` it does not hold put first in its
 * `open` list (which a {@link CandleReplay} sends at its switch, each closed candle once): a candle
 * closed before a gateway worker existed, and not stored yet when the worker's replay read its last
 * page, is in neither the page nor the worker's own {@link RecentCandles}; the parent's ring has it.
 * Other pages, and candles outside the query (symbol, interval, exchange, from/to by interval start),
 * are left as they are.
 */
export function withRecentClosed(page: CandlePage, q: CandleQuery, recent: RecentCandles): CandlePage {
  if (page.next_cursor !== null) return page;
  const start = q.from === undefined ? Number.NEGATIVE_INFINITY : intervalStart(q.from, q.interval);
  const held = new Set(page.data.map(candleId));
  const closed: CandleV2[] = [];
  for (const c of recent.all()) {
    if (c.symbol !== q.symbol || c.interval !== q.interval) continue;
    if (q.exchange !== undefined && c.exchange !== q.exchange) continue;
    if (c.interval_start < start || (q.to !== undefined && c.interval_start >= q.to)) continue;
    if (!held.has(candleId(c))) closed.push(c as unknown as CandleV2);
  }
  if (closed.length === 0) return page;
  closed.sort((a, b) => compareCandles(a as unknown as Candle, b as unknown as Candle));
  return { ...page, open: [...closed, ...(page.open ?? [])] };
}

/** Options of {@link CandleReplay}. */
export interface CandleReplayOptions {
  interval: CandleInterval;
  /** Named symbols (candle history is read per symbol). */
  symbols: string[];
  /** Start, µs since epoch: candles from the interval holding it on. */
  fromUs: number;
  history: CandleHistory;
  recent?: RecentCandles;
  /** Adds the live listener that feeds the hold; returns its removal. */
  listen: (hold: (c: LiveCandle) => void) => () => void;
  /** Sends one candle to the client. */
  send: (c: LiveCandle) => void;
  /** Puts the client on the live stream (in the same synchronous pass as the switch). */
  goLive: () => void;
  /** Resolves when the client has nothing queued (its pace). */
  ready: () => Promise<void>;
  /** Candles per store page (default 1,000). */
  pageSize?: number;
  /** Most live candle events held during the replay (default 100,000). */
  maxHold?: number;
  /**
   * Called with each record about to be sent from history; returning a message ends the replay with
   * that error (code 413: the per-token record limit). Optional.
   */
  admit?: () => string | null;
}

/** One `from` subscription of a candle channel (see the module comment). */
export class CandleReplay {
  private hold: Candle[] = [];
  private open: Candle[] = [];
  private readonly sentClosed = new Set<string>();
  private unlisten: (() => void) | null = null;
  private cancelled = false;
  private overflow = false;
  private readonly startUs: number;
  /** Candles sent so far (history and switch). */
  sent = 0;

  constructor(private readonly o: CandleReplayOptions) {
    this.startUs = intervalStart(o.fromUs, o.interval);
  }

  /**
   * Runs the replay up to the switch (where it calls `goLive`); resolves with the candles sent, or
   * null when cancelled.
   * @throws {ReplayError} when the hold overflows (code 0), history cannot be read (503) or `admit`
   *   refuses a record (413)
   */
  async run(): Promise<number | null> {
    const o = this.o;
    const maxHold = o.maxHold ?? 100_000;
    this.unlisten = o.listen((c) => {
      const candle = c as Candle;
      if (!this.match(candle)) return;
      if (this.hold.length >= maxHold) this.overflow = true;
      else this.hold.push(candle);
    });
    try {
      const streams = o.symbols.map((s) => this.pages(s));
      for await (const c of mergeSorted(streams, compareCandles)) {
        if (this.cancelled) return null;
        if (this.overflow) break;
        const refused = o.admit?.() ?? null;
        if (refused !== null) {
          this.stop();
          throw new ReplayError(refused, 413);
        }
        await o.ready();
        if (this.cancelled) return null;
        this.sendClosed(c);
      }
    } catch (err) {
      this.stop();
      if (this.cancelled) return null;
      throw historyFailure(err);
    }
    if (this.cancelled) return null;
    if (this.overflow) {
      this.stop();
      throw new ReplayError(`replay: more than ${maxHold} live candles arrived during the replay`, 0);
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
    this.open = [];
  }

  private match(c: Candle): boolean {
    return (
      c.interval === this.o.interval && this.o.symbols.includes(c.symbol) && c.interval_start >= this.startUs
    );
  }

  private sendClosed(c: Candle): void {
    this.sentClosed.add(candleId(c));
    this.o.send(c);
    this.sent++;
  }

  /** The recent closed candles not stored yet, the open ones, then the held events (see the module comment). */
  private switchOver(): void {
    // closed lately and not stored: from this gateway's memory and from the last pages (a worker's
    // parent names those closed before the worker started), in one interval order
    const late = [...(this.o.recent?.all() ?? []), ...this.open.filter((c) => c.closed === true)].filter(
      (c) => this.match(c) && !this.sentClosed.has(candleId(c)),
    );
    late.sort(compareCandles);
    for (const c of late) if (!this.sentClosed.has(candleId(c))) this.sendClosed(c);
    for (const c of [...this.open, ...this.hold]) {
      if (this.sentClosed.has(candleId(c))) continue;
      if (c.closed) this.sendClosed(c);
      else {
        this.o.send(c);
        this.sent++;
      }
    }
    this.stop();
    this.o.goLive();
  }

  private async *pages(symbol: string): AsyncGenerator<Candle> {
    const o = this.o;
    let cursor: string | undefined;
    for (;;) {
      const page: Page<CandleV2> & { open?: CandleV2[] } = await o.history.candles({
        symbol,
        interval: o.interval,
        from: o.fromUs,
        order: "asc",
        limit: o.pageSize ?? 1000,
        cursor,
        source: "live",
      });
      yield* page.data;
      if (this.cancelled) return;
      if (page.next_cursor === null) {
        for (const c of page.open ?? []) if (this.match(c)) this.open.push(c);
        return;
      }
      cursor = page.next_cursor;
    }
  }
}
