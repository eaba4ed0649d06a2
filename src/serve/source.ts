/**
 * `MarketDataSource`: what the serving layer (REST API, WebSocket gateway, dashboard) reads from,
 * independent of where records come from — an interface over the store (history, paginated) and the
 * live feed (latest ticks and events, from memory).
 *
 * `k2 run` builds one over its own Store and bus (`StoreMarketDataSource`, `store-source.ts`); a
 * separate `k2 serve` over a shared store would build the same thing from a networked bus and a
 * PostgreSQL store.
 *
 * Units everywhere: times are µs since the epoch (UTC) as JSON numbers; prices and quantities are
 * exact decimal strings (DECIMAL(18,8); candle volume 8 places, quote volume 16 places).
 */
import type { CandleInterval, CandleV2 } from "../schema/candles.js";
import type { AssetClass, DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../schema/records.js";
import type { LiveFeed, Tick } from "./live.js";

/** A request parameter that cannot be honoured; the API answers 400 naming `parameter`. */
export class QueryParamError extends Error {
  override name = "QueryParamError";
  constructor(
    readonly parameter: string,
    readonly reason: string,
  ) {
    super(`${parameter}: ${reason}`);
  }
}

/** Sort order of a page: `asc` oldest first, `desc` newest first. */
export type SortOrder = "asc" | "desc";

/** Time range and keyset page shared by the history queries. */
export interface PageQuery {
  /** Inclusive lower bound, µs since epoch. */
  from?: number;
  /** Exclusive upper bound, µs since epoch. */
  to?: number;
  /** Page size (the API bounds it). */
  limit: number;
  order: SortOrder;
  /** Opaque cursor from a previous page's `next_cursor` (same order). */
  cursor?: string;
  /**
   * Byte budget of the page's rows (UTF-8 bytes of their JSON, commas included): rows stop before the
   * one that would pass it and `next_cursor` continues from there, so a page may hold fewer than
   * `limit` rows. The first row is always included. Unbounded when omitted.
   */
  maxBytes?: number;
}

/** Filters of trades, quotes and gaps. Exchange and symbol as stored (upper case). */
export interface MarketQuery extends PageQuery {
  exchange?: string;
  symbol?: string;
}

/** A page of results. `next_cursor` is null on the last page. */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

/** Characters of `raw` a dead-letter list item carries (the rest via {@link DeadLetterItem.raw_url}). */
export const DEAD_LETTER_PREVIEW_CHARS = 4096;

/**
 * A dead letter as listed: `raw` holds at most {@link DEAD_LETTER_PREVIEW_CHARS} characters (cut in
 * SQL, so a large frame never enters the serving process whole); the full text is at `raw_url`.
 */
export interface DeadLetterItem extends DeadLetter {
  /** True when `raw` is only the first {@link DEAD_LETTER_PREVIEW_CHARS} characters of the frame. */
  raw_truncated: boolean;
  /** Size of the whole raw frame, UTF-8 bytes. */
  raw_bytes: number;
  /** Path of the whole dead letter: `/api/v1/dead-letters/{message_id}`. */
  raw_url: string;
}

/**
 * One dead letter in full, read in pieces: the fields except `raw`, its size, and its text as a
 * sequence of chunks of at most `chunkChars` characters each (each chunk is one store query), so
 * reading it holds one chunk at a time.
 */
export interface DeadLetterFull extends Omit<DeadLetter, "raw"> {
  /** Size of the raw frame, UTF-8 bytes. */
  raw_bytes: number;
  /** Length of the raw frame, characters (Unicode code points). */
  raw_chars: number;
  /**
   * The raw frame's text, chunk by chunk, in order.
   * @throws {Error} when the dead letter disappears from the store while it is being read
   */
  rawChunks(): AsyncIterable<string>;
}

/** Where candles come from. */
export type CandleSource =
  /** Computed by SQL from the stored trades (`trades_v2`): complete and exact for any range. */
  | "trades"
  /** Candles closed by the live aggregator (`candles_v2`), plus the open ones from memory. */
  | "live";

/** Query of candles. `from`/`to` are widened to whole intervals. */
export interface CandleQuery extends PageQuery {
  exchange?: string;
  symbol: string;
  interval: CandleInterval;
  source: CandleSource;
}

/** A page of candles; with `source: "live"`, `open` holds the candles still open in memory. */
export interface CandlePage extends Page<CandleV2> {
  open?: CandleV2[];
}

/** One instrument known to the store or the live feed. */
export interface SymbolInfo {
  exchange: string;
  symbol: string;
  asset_class: AssetClass;
  currency: string;
  /** Rows stored in trades_v2 / quotes_v2. */
  trades: number;
  quotes: number;
  /** Earliest / latest stored trade or quote time, µs (null when none stored). */
  first_timestamp: number | null;
  last_timestamp: number | null;
  /** Latest trade price from memory (null before the first live trade). */
  last_price: string | null;
}

/** The serving layer's view of market data. */
export interface MarketDataSource {
  /** Live events (trades, quotes, candles, ticks, gaps, dead letters) and the tick book. */
  readonly live: LiveFeed;
  /** Latest trade and best bid/ask per (exchange, symbol), from memory (no store access). */
  ticks(): Tick[];
  /** Stored trades (`trades_v2`) in (timestamp, exchange, symbol, trade id) order. */
  trades(q: MarketQuery): Promise<Page<TradeV2>>;
  /** Stored quotes (`quotes_v2`) in (timestamp, exchange, symbol, platform_sequence, message_id) order. */
  quotes(q: MarketQuery): Promise<Page<QuoteV2>>;
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
  deadLetters(q: PageQuery & { exchange?: string }): Promise<Page<DeadLetterItem>>;
  /** One dead letter in full by its message id (a lower-case UUID), or null when there is none. */
  deadLetter(messageId: string): Promise<DeadLetterFull | null>;
}
