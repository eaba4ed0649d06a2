/**
 * The live view of the order books a process maintains (issue #13), as the serving layer reads it:
 * the ingest side (`src/feed/books.ts`) implements {@link LiveBookSource}; the REST API
 * (`GET /api/v1/book`) and the WebSocket gateway (`book.{N}` channels) read it without importing the
 * feed. Units as in `books.ts`: µs since the epoch, canonical DECIMAL(18,8) strings.
 */
import type { BookLevel } from "./books.js";

/** Most levels per side a live top-N may ask for (`depth`, `book.{N}`). */
export const MAX_LIVE_BOOK_DEPTH = 1000;
/** Levels per side of `GET /api/v1/book` without `depth`. */
export const LIVE_BOOK_DEFAULT_DEPTH = 10;

/**
 * Where a kept book stands: `live` (a snapshot was applied and every diff since), `syncing` (waiting for
 * its first snapshot, or for a new one after a sequence break or checksum failure: no levels then).
 */
export type LiveBookState = "live" | "syncing";

/**
 * One kept book as it stands at one instant. A view handed to an update listener is only valid during
 * that synchronous call (the book changes after it): read what you need then.
 */
export interface LiveBookView {
  /** Upper case (`BINANCE`). */
  readonly exchange: string;
  /** Venue symbol, upper case (`BTCUSDT`). */
  readonly symbol: string;
  readonly state: LiveBookState;
  /** Venue time of the last change applied (Binance `E`), µs since epoch UTC, or null before one. */
  readonly timestamp: number | null;
  /** Last venue sequence applied (Binance final update id `u`), or null while syncing. */
  readonly last_source_sequence: number | null;
  /** Time of the book's last resync (discarded after a break and rebuilt), µs since epoch, or null. */
  readonly last_resync_timestamp: number | null;
  /**
   * Levels per side the view holds exactly: {@link levels} is the whole best-`n` for `n` up to this
   * (a maintained book: every level it has; a forwarded copy: the depth it was sent with, unless the
   * side held fewer).
   */
  readonly exactDepth: number;
  /** The best `n` levels of a side, best first (bids descending, asks ascending), fewer when held fewer. */
  levels(side: "bid" | "ask", n: number): BookLevel[];
}

/** The top-N of a kept book, as served (`GET /api/v1/book`, `book.{N}` frames). */
export interface LiveBookTop {
  exchange: string;
  symbol: string;
  state: LiveBookState;
  /** Venue time of the last change applied, µs since epoch UTC, or null before one. */
  timestamp: number | null;
  /** N asked for; `bids`/`asks` hold fewer levels when the book holds fewer. */
  depth: number;
  /** Best N bids, highest price first, `[price, quantity]` DECIMAL(18,8) strings. */
  bids: BookLevel[];
  /** Best N asks, lowest price first. */
  asks: BookLevel[];
  /** Last venue sequence applied (Binance `u`), or null while syncing. */
  last_source_sequence: number | null;
  /** Time of the last resync, µs since epoch, or null when the book never resynced. */
  last_resync_timestamp: number | null;
}

/** What a process knows of its kept books, and their changes. */
export interface LiveBookSource {
  /** The book of one (exchange, symbol), upper case, or undefined when none is kept. */
  book(exchange: string, symbol: string): LiveBookView | undefined;
  /** Every kept book. */
  books(): LiveBookView[];
  /**
   * Calls `listener` synchronously after each change of a book (each diff applied, a snapshot loaded,
   * a resync that emptied it). Returns a function that removes the listener.
   */
  onUpdate(listener: (view: LiveBookView) => void): () => void;
}

/** The top-`depth` of a view (levels are copied; the result stays valid after the call). */
export function liveBookTop(view: LiveBookView, depth: number): LiveBookTop {
  return {
    exchange: view.exchange,
    symbol: view.symbol,
    state: view.state,
    timestamp: view.timestamp,
    depth,
    bids: view.levels("bid", depth),
    asks: view.levels("ask", depth),
    last_source_sequence: view.last_source_sequence,
    last_resync_timestamp: view.last_resync_timestamp,
  };
}
