/**
 * `StoreMarketDataSource`: the {@link MarketDataSource} over a {@link Store} (history: the store's typed
 * reads, each backend in its own SQL dialect, see `src/store/reads.ts`) and a {@link LiveFeed} (ticks and
 * open candles from memory). It adds to the store only what memory knows: the open candles of
 * `source: "live"` and the instruments and last prices of the live ticks.
 */
import type { CandleAggregator } from "../../candles/candles.js";
import { type CandleV2, isCandleInterval } from "../../schema/candles.js";
import type { QuoteV2, SequenceGap, TradeV2 } from "../../schema/records.js";
import { type CursorValueType, decodeCursor, encodeCursor } from "../../store/cursor.js";
import type { DeadLetterFull, DeadLetterItem, DeadLetterQuery, MarketQuery, Page } from "../../store/page.js";
import { widen, withinBudget } from "../../store/reads.js";
import type { Store } from "../../store/store.js";
import type { LiveFeed } from "../live/feed.js";
import {
  compareKeys,
  type RecentKind,
  type RecentRecord,
  type RecentWindow,
  recordId,
  type SortKey,
  sortKey,
} from "../live/recent.js";
import type { Tick } from "../live/ticks.js";
import type { CandlePage, CandleQuery, MarketDataSource, SymbolInfo } from "./source.js";

/** Largest number of instruments `symbols()` returns. */
const MAX_SYMBOLS = 10_000;

/** Options of {@link StoreMarketDataSource}. */
export interface StoreSourceOptions {
  store: Store;
  live: LiveFeed;
  /** The live aggregator, for the open candles of `source: "live"` (optional). */
  candles?: CandleAggregator;
  /**
   * The records received but perhaps not stored yet (`live/recent.ts`): trades and quotes pages add
   * those of the window the store did not return, in order and without duplicates.
   */
  recent?: RecentWindow;
}

export class StoreMarketDataSource implements MarketDataSource {
  readonly live: LiveFeed;
  private readonly store: Store;
  private readonly aggregator: CandleAggregator | undefined;
  private readonly recent: RecentWindow | undefined;

  constructor(opts: StoreSourceOptions) {
    this.store = opts.store;
    this.live = opts.live;
    this.aggregator = opts.candles;
    this.recent = opts.recent;
  }

  ticks(): Tick[] {
    return this.live.ticks();
  }

  /** Stored trades, plus the received ones not stored yet (with a recent window). */
  async trades(q: MarketQuery): Promise<Page<TradeV2>> {
    const page = await this.store.trades(q);
    return this.recent ? mergeRecent("trades", page, q, this.recent.before("trades")) : page;
  }

  /** Stored quotes, plus the received ones not stored yet (with a recent window). */
  async quotes(q: MarketQuery): Promise<Page<QuoteV2>> {
    const page = await this.store.quotes(q);
    return this.recent ? mergeRecent("quotes", page, q, this.recent.before("quotes")) : page;
  }

  gaps(q: MarketQuery): Promise<Page<SequenceGap>> {
    return this.store.gaps(q);
  }

  deadLetters(q: DeadLetterQuery): Promise<Page<DeadLetterItem>> {
    return this.store.deadLetters(q);
  }

  deadLetter(messageId: string): Promise<DeadLetterFull | null> {
    return this.store.deadLetter(messageId);
  }

  /**
   * Candles from the stored trades (`source: "trades"`), or the stored closed candles plus, from the
   * live aggregator, the candles still open in the range (`source: "live"`).
   * @throws {RangeError} on an unknown interval
   */
  async candles(q: CandleQuery): Promise<CandlePage> {
    if (!isCandleInterval(q.interval)) throw new RangeError(`unknown interval ${q.interval}`);
    if (q.source !== "live") return this.store.tradeCandles(q);
    const page = await this.store.storedCandles(q);
    const open: CandleV2[] = [];
    if (this.aggregator) {
      const exchanges = q.exchange ? [q.exchange] : this.exchangesOf(q.symbol);
      for (const ex of exchanges) {
        const c = this.aggregator.openCandle(ex, q.symbol, q.interval);
        if (c && inRange(c, q)) open.push(c);
      }
    }
    return { ...page, open };
  }

  private exchangesOf(symbol: string): string[] {
    return this.live
      .ticks()
      .filter((t) => t.symbol === symbol)
      .map((t) => t.exchange);
  }

  /**
   * The stored instruments (at most 10,000) with their last live price, then the instruments only
   * the live feed knows, in (exchange, symbol) order.
   */
  async symbols(): Promise<SymbolInfo[]> {
    const out = new Map<string, SymbolInfo>();
    for (const s of await this.store.symbols(MAX_SYMBOLS)) {
      out.set(`${s.exchange}\u0000${s.symbol}`, {
        ...s,
        last_price: this.live.tick(s.exchange, s.symbol)?.last_price ?? null,
      });
    }
    for (const t of this.live.ticks()) {
      const key = `${t.exchange}\u0000${t.symbol}`;
      if (out.has(key) || out.size >= MAX_SYMBOLS) continue;
      out.set(key, {
        exchange: t.exchange,
        symbol: t.symbol,
        asset_class: t.asset_class,
        currency: t.currency,
        trades: 0,
        quotes: 0,
        first_timestamp: null,
        last_timestamp: null,
        last_price: t.last_price,
      });
    }
    return [...out.values()].sort((a, b) =>
      a.exchange === b.exchange ? cmp(a.symbol, b.symbol) : cmp(a.exchange, b.exchange),
    );
  }
}

/** Cursor value types of the trades and quotes keys (`store/reads.ts`). */
const KEY_TYPES: Record<RecentKind, CursorValueType[]> = {
  trades: ["int", "str", "str", "int", "str"],
  quotes: ["int", "str", "str", "int", "str"],
};

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
  const after = q.cursor !== undefined ? decodeCursor(q.cursor, kind, q.order, KEY_TYPES[kind]) : null;
  const upTo =
    page.next_cursor !== null ? decodeCursor(page.next_cursor, kind, q.order, KEY_TYPES[kind]) : null;
  let stored: Set<string> | null = null;
  const extra: { key: SortKey; r: RecentRecord<K> }[] = [];
  for (const r of recent) {
    if (q.exchange !== undefined && r.exchange !== q.exchange) continue;
    if (q.symbol !== undefined && r.symbol !== q.symbol) continue;
    if (q.from !== undefined && r.timestamp < q.from) continue;
    if (q.to !== undefined && r.timestamp >= q.to) continue;
    const key = sortKey(kind, r);
    if (after && sign * compareKeys(key, after) <= 0) continue;
    if (upTo && sign * compareKeys(key, upTo) > 0) continue;
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

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Whether an open candle starts within [from, to) widened to whole intervals. */
function inRange(c: CandleV2, q: CandleQuery): boolean {
  const [fromUs, toUs] = widen(q.from, q.to, q.interval);
  return (
    (fromUs === undefined || c.interval_start >= fromUs) && (toUs === undefined || c.interval_start < toUs)
  );
}
