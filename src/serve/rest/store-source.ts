/**
 * `StoreMarketDataSource`: the {@link MarketDataSource} over a {@link Store} (history: the store's typed
 * reads, each backend in its own SQL dialect, see `src/store/reads.ts`) and a {@link LiveFeed} (ticks and
 * open candles from memory). It adds to the store only what memory knows: the open candles of
 * `source: "live"` and the instruments and last prices of the live ticks.
 */
import type { CandleAggregator } from "../../candles/candles.js";
import type { BookSnapshotV2 } from "../../schema/books.js";
import { type CandleV2, isCandleInterval } from "../../schema/candles.js";
import type { LiveBookSource } from "../../schema/live-book.js";
import type { QuoteV2, SequenceGap, TradeV2 } from "../../schema/records.js";
import {
  type DeadLetterFull,
  type DeadLetterItem,
  type DeadLetterQuery,
  type MarketQuery,
  type Page,
  pageText,
  parsePage,
  type TextPage,
} from "../../store/page.js";
import { widen } from "../../store/reads.js";
import type { Store } from "../../store/store.js";
import { getVenue, venueNames } from "../../venues/registry.js";
import type { LiveFeed } from "../live/feed.js";
import {
  mergeRecent,
  type RecentKind,
  type RecentRecord,
  type RecentWindow,
  recentInRange,
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
  /** The order books this process maintains (`GET /api/v1/book`). */
  books?: LiveBookSource;
}

export class StoreMarketDataSource implements MarketDataSource {
  readonly live: LiveFeed;
  readonly books?: LiveBookSource;
  private readonly store: Store;
  private readonly aggregator: CandleAggregator | undefined;
  private readonly recent: RecentWindow | undefined;

  constructor(opts: StoreSourceOptions) {
    this.store = opts.store;
    this.live = opts.live;
    this.books = opts.books;
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

  /**
   * {@link trades} as JSON text (`TextPage`: the same records and cursor). The store's text page as it
   * is when no record of the recent window belongs in it (the usual case: a page of history); else
   * parsed, merged and written again.
   */
  tradesText(q: MarketQuery): Promise<TextPage> {
    return this.textPage("trades", q);
  }

  /** {@link quotes} as JSON text, as {@link tradesText}. */
  quotesText(q: MarketQuery): Promise<TextPage> {
    return this.textPage("quotes", q);
  }

  private async textPage<K extends RecentKind>(kind: K, q: MarketQuery): Promise<TextPage> {
    const read = kind === "trades" ? this.store.tradesText : this.store.quotesText;
    if (!read)
      return pageText<TradeV2 | QuoteV2>(kind === "trades" ? await this.trades(q) : await this.quotes(q));
    const text = await read.call(this.store, q);
    const recent = this.recent;
    if (!recent || !recentInRange(kind, q, text.next_cursor, recent.before(kind))) return text;
    return pageText(mergeRecent(kind, parsePage<RecentRecord<K>>(text), q, recent.before(kind)));
  }

  bookSnapshots(q: MarketQuery): Promise<Page<BookSnapshotV2>> {
    return this.store.bookSnapshots(q);
  }

  gaps(q: MarketQuery): Promise<Page<SequenceGap>> {
    return this.store.gaps(q);
  }

  deadLetters(q: DeadLetterQuery): Promise<Page<DeadLetterItem>> {
    return this.store.deadLetters(q);
  }

  async has(exchange: string | undefined, symbol: string | undefined): Promise<boolean> {
    if (exchange === undefined && symbol === undefined) return true;
    const live = this.live
      .ticks()
      .some(
        (t) =>
          (exchange === undefined || t.exchange === exchange) &&
          (symbol === undefined || t.symbol === symbol),
      );
    if (live) return true;
    const q: MarketQuery = { exchange, symbol, limit: 1, order: "desc" };
    if ((await this.store.trades(q)).data.length > 0) return true;
    return (await this.store.quotes(q)).data.length > 0;
  }

  async exchanges(): Promise<string[]> {
    const known = venueNames().flatMap((v) => getVenue(v)?.exchange ?? []);
    for (const s of await this.symbols()) if (!known.includes(s.exchange)) known.push(s.exchange);
    return known;
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

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Whether an open candle starts within [from, to) widened to whole intervals. */
function inRange(c: CandleV2, q: CandleQuery): boolean {
  const [fromUs, toUs] = widen(q.from, q.to, q.interval);
  return (
    (fromUs === undefined || c.interval_start >= fromUs) && (toUs === undefined || c.interval_start < toUs)
  );
}
