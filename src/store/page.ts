/**
 * What the store's typed reads take and give: keyset page queries (time range, order, cursor, byte
 * budget), pages, dead-letter items, candle queries and per-symbol statistics.
 *
 * Units everywhere: times are µs since the epoch (UTC) as numbers; prices and quantities are exact
 * decimal strings (DECIMAL(18,8); candle volume 8 places, quote volume 16 places).
 */
import type { CandleInterval } from "../schema/candles.js";
import type { AssetClass, DeadLetter } from "../schema/records.js";

/**
 * A read parameter that cannot be honoured (a malformed or foreign cursor, an unknown interval); the
 * REST API answers 400 naming `parameter`.
 */
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

/** Filter of dead letters. */
export interface DeadLetterQuery extends PageQuery {
  exchange?: string;
}

/** A page of results. `next_cursor` is null on the last page. */
export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

/**
 * A page of records as JSON text (`Store.tradesText`/`quotesText`): `json` is a JSON array whose
 * `JSON.parse` equals the typed read's `data` (same properties in the same order, decimals as the same
 * exact strings), built by the store where it can (DuckDB: in SQL, so the serving process handles one
 * string per record instead of converting each column). `next_cursor` as in {@link Page}.
 */
export interface TextPage {
  json: string;
  next_cursor: string | null;
}

/** `p` as a {@link TextPage}: its data stringified, its cursor. */
export function pageText<T>(p: Page<T>): TextPage {
  return { json: JSON.stringify(p.data), next_cursor: p.next_cursor };
}

/** The {@link Page} a {@link TextPage} holds: its JSON parsed, its cursor. */
export function parsePage<T>(t: TextPage): Page<T> {
  return { data: JSON.parse(t.json) as T[], next_cursor: t.next_cursor };
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

/** Query of candles. `from`/`to` are widened to whole intervals. */
export interface CandleQuery extends PageQuery {
  exchange?: string;
  symbol: string;
  interval: CandleInterval;
}

/** Stored trades and quotes of one instrument. */
export interface SymbolStats {
  exchange: string;
  symbol: string;
  asset_class: AssetClass;
  currency: string;
  /** Rows stored in trades_v2 / quotes_v2. */
  trades: number;
  quotes: number;
  /**
   * Earliest / latest venue time of a stored trade or venue-stamped quote, µs (null when none stored;
   * a quote stamped with its receipt time does not count, see `symbols()` in `reads.ts`).
   */
  first_timestamp: number | null;
  last_timestamp: number | null;
}
