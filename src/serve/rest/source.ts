/**
 * `MarketDataSource`: what the serving layer (REST API, WebSocket gateway, dashboard) reads from,
 * independent of where records come from — an interface over the store (history, paginated) and the
 * live feed (latest ticks and events, from memory).
 *
 * `k2 run` builds one over its own Store and bus (`StoreMarketDataSource`, `store-source.ts`: the
 * store's typed reads plus the live feed); a
 * separate `k2 serve` over a shared store would build the same thing from a networked bus and a
 * PostgreSQL store.
 *
 * Units everywhere: times are µs since the epoch (UTC) as JSON numbers; prices and quantities are
 * exact decimal strings (DECIMAL(18,8); candle volume 8 places, quote volume 16 places).
 */
import type { BookSnapshotV2 } from "../../schema/books.js";
import type { CandleV2 } from "../../schema/candles.js";
import type { LiveBookSource } from "../../schema/live-book.js";
import type { QuoteV2, SequenceGap, TradeV2 } from "../../schema/records.js";
import type {
  DeadLetterFull,
  DeadLetterItem,
  DeadLetterQuery,
  MarketQuery,
  Page,
  CandleQuery as StoreCandleQuery,
  SymbolStats,
} from "../../store/page.js";
import type { LiveFeed } from "../live/feed.js";
import type { Tick } from "../live/ticks.js";

/** Where candles come from. */
export type CandleSource =
  /** Computed by SQL from the stored trades (`trades_v2`): complete and exact for any range. */
  | "trades"
  /** Candles closed by the live aggregator (`candles_v2`), plus the open ones from memory. */
  | "live";

/** Query of candles. `from`/`to` are widened to whole intervals. */
export interface CandleQuery extends StoreCandleQuery {
  source: CandleSource;
}

/** A page of candles; with `source: "live"`, `open` holds the candles still open in memory. */
export interface CandlePage extends Page<CandleV2> {
  open?: CandleV2[];
}

/** One instrument known to the store or the live feed (store counts are 0 for a live-only one). */
export interface SymbolInfo extends SymbolStats {
  /** Latest trade price from memory (null before the first live trade). */
  last_price: string | null;
}

/**
 * A request named an instrument the source has never seen (no stored trade or quote, no live tick):
 * the API answers 404 `{"error":"not_found","parameter":...,"reason":...}`.
 */
export class NotFoundError extends Error {
  override name = "NotFoundError";
  constructor(
    readonly parameter: string,
    readonly reason: string,
  ) {
    super(`${parameter}: ${reason}`);
  }
}

/** The serving layer's view of market data. */
export interface MarketDataSource {
  /** Live events (trades, quotes, candles, ticks, gaps, dead letters) and the tick book. */
  readonly live: LiveFeed;
  /** The order books this process maintains (`GET /api/v1/book`), or undefined when it keeps none. */
  readonly books?: LiveBookSource;
  /** Latest trade and best bid/ask per (exchange, symbol), from memory (no store access). */
  ticks(): Tick[];
  /** Stored trades (`trades_v2`) in (timestamp, exchange, symbol, trade id) order. */
  trades(q: MarketQuery): Promise<Page<TradeV2>>;
  /** Stored quotes (`quotes_v2`) in (timestamp, exchange, symbol, platform_sequence, message_id) order. */
  quotes(q: MarketQuery): Promise<Page<QuoteV2>>;
  /** Stored top-N book snapshots (`book_snapshots_v2`) in (timestamp, exchange, symbol, depth) order. */
  bookSnapshots(q: MarketQuery): Promise<Page<BookSnapshotV2>>;
  /** OHLCV candles in (interval_start, exchange) order. */
  candles(q: CandleQuery): Promise<CandlePage>;
  /** Instruments with stored data or live ticks (at most 10,000). */
  symbols(): Promise<SymbolInfo[]>;
  /** Detected sequence gaps in (detected_at, exchange, symbol, data_type, from_sequence) order. */
  gaps(q: MarketQuery): Promise<Page<SequenceGap>>;
  /**
   * Dead letters in (received_at, message_id) order (newest first by default), `raw` cut to
   * {@link DEAD_LETTER_PREVIEW_CHARS} characters.
   */
  deadLetters(q: DeadLetterQuery): Promise<Page<DeadLetterItem>>;
  /**
   * Whether any trade or quote of `exchange` (and `symbol`, when given) is stored or live; both
   * undefined is true. Cheap (a one-row read per table), for explaining an empty page.
   */
  has(exchange: string | undefined, symbol: string | undefined): Promise<boolean>;
  /** Exchange codes this source can answer for: the registered venues, then those stored or live. */
  exchanges(): Promise<string[]>;
  /** One dead letter in full by its message id (a lower-case UUID), or null when there is none. */
  deadLetter(messageId: string): Promise<DeadLetterFull | null>;
}
