/**
 * Binance Spot local order book, by Binance's documented procedure ("How to manage a local order book
 * correctly", Spot WebSocket streams, diff depth stream):
 *
 * 1. Open the `<symbol>@depth@100ms` stream and buffer the diffs; note the `U` of the first one.
 * 2. Fetch a snapshot: `GET /api/v3/depth?symbol=&limit=` → `{lastUpdateId, bids, asks}`.
 * 3. If the snapshot's `lastUpdateId` is older than the first buffered diff (`lastUpdateId + 1 < U`),
 *    fetch another snapshot.
 * 4. Drop buffered diffs with `u` ≤ `lastUpdateId`; the first diff applied must straddle the snapshot:
 *    `U` ≤ `lastUpdateId + 1` ≤ `u`.
 * 5. Set the book to the snapshot, then apply each diff: a diff with `u` ≤ the book's update id is
 *    ignored (already contained); otherwise its `U` must be the previous `u` + 1. Quantities are
 *    absolute; quantity 0 removes the level (removing a level the book does not hold is normal).
 * 6. Any break: discard the book and start again from step 1 — for that symbol only.
 *
 * {@link BinanceBookSync} is that procedure as a pure, synchronous state machine for one symbol: it
 * performs no I/O and keeps no timers. It tells its caller what happened (diffs applied, a sequence
 * break) and what to do next (`fetchSnapshot`). {@link BinanceBooks} keeps one per symbol, so a break
 * on one symbol never touches the others. {@link BookTickerCrossCheck} compares the maintained top
 * level with `@bookTicker` frames whose update id `u` equals the final `u` of an applied diff.
 *
 * The frame parsers turn the venue's JSON (after `JSON.parse`) into typed objects with exact
 * DECIMAL(18,8) strings.
 */
import { parseNonNegativeDecimal } from "../schema/decimal.js";
import { BookFrameError, intOf, levelPairsOf, objectOf, stringOf } from "./frame.js";
import { type BookLevelPair, L2Book } from "./l2-book.js";

/** One `depthUpdate` event of the diff depth stream `<symbol>@depth@100ms` (Binance field in brackets). */
export interface BinanceDepthDiff {
  /** Symbol, upper case (`s`), e.g. `BTCUSDT`. */
  symbol: string;
  /** Event time (`E`), ms since epoch. */
  eventTime: number;
  /** First update id in the event (`U`). */
  firstUpdateId: number;
  /** Final update id in the event (`u`). */
  finalUpdateId: number;
  /** Bids to update (`b`): absolute quantity per price; quantity 0 = remove the level. */
  bids: BookLevelPair[];
  /** Asks to update (`a`), as `bids`. */
  asks: BookLevelPair[];
}

/** A REST depth snapshot, `GET /api/v3/depth?symbol=&limit=` → `{lastUpdateId, bids, asks}`. */
export interface BinanceDepthSnapshot {
  /** Symbol the snapshot was requested for (the response does not name it), upper case. */
  symbol: string;
  /** Update id the snapshot is consistent with (`lastUpdateId`). */
  lastUpdateId: number;
  /** Bids, best first (`bids`): `[price, quantity]`. */
  bids: BookLevelPair[];
  /** Asks, best first (`asks`). */
  asks: BookLevelPair[];
}

/**
 * Parses the payload (`data` of a combined-stream envelope) of a `depthUpdate` event.
 * @throws {BookFrameError} when a field is missing or mistyped; `DecimalError` on an inexact value
 */
export function parseBinanceDepthDiff(data: unknown): BinanceDepthDiff {
  const d = objectOf(data, "depth diff");
  if (d["e"] !== "depthUpdate") throw new BookFrameError("event type (e) is not depthUpdate");
  const firstUpdateId = intOf(d["U"], "first update id (U)");
  const finalUpdateId = intOf(d["u"], "final update id (u)");
  if (finalUpdateId < firstUpdateId) throw new BookFrameError("final update id (u) is before first (U)");
  return {
    symbol: stringOf(d["s"], "symbol (s)").toUpperCase(),
    eventTime: intOf(d["E"], "event time (E)"),
    firstUpdateId,
    finalUpdateId,
    bids: levelPairsOf(d["b"], "bids (b)"),
    asks: levelPairsOf(d["a"], "asks (a)"),
  };
}

/**
 * Parses a `GET /api/v3/depth` response body.
 * @param symbol the symbol it was requested for
 * @throws {BookFrameError} when a field is missing or mistyped; `DecimalError` on an inexact value
 */
export function parseBinanceDepthSnapshot(body: unknown, symbol: string): BinanceDepthSnapshot {
  const d = objectOf(body, "depth snapshot");
  return {
    symbol: symbol.toUpperCase(),
    lastUpdateId: intOf(d["lastUpdateId"], "lastUpdateId"),
    bids: levelPairsOf(d["bids"], "bids"),
    asks: levelPairsOf(d["asks"], "asks"),
  };
}

/** A sequence break found by the procedure: the book was discarded and a new snapshot is needed. */
export interface BinanceResync {
  symbol: string;
  /** Why: `gap` (`U` > previous `u` + 1), `overlap` (`U` ≤ previous `u` < `u`), `no-straddle`. */
  reason: "gap" | "overlap" | "no-straddle";
  /** Update id the book was at (previous `u`, or the snapshot's `lastUpdateId`). */
  bookUpdateId: number;
  /** `U` of the diff that broke the sequence. */
  firstUpdateId: number;
  /** `u` of that diff. */
  finalUpdateId: number;
}

/** What one call to {@link BinanceBookSync} did, and what the caller must do next. */
export interface BinanceSyncStep {
  /** Diffs applied to the book by this call, in order (none while buffering). */
  applied: BinanceDepthDiff[];
  /** Diffs dropped as already contained in the book or the snapshot (`u` ≤ its update id). */
  dropped: number;
  /** True when the caller must now fetch a REST snapshot for this symbol (said once per need). */
  fetchSnapshot: boolean;
  /** Set when this call found a sequence break and discarded the book. */
  resync: BinanceResync | null;
  /** True when a snapshot was handed over that the procedure did not use (live book, or too old). */
  snapshotIgnored: boolean;
}

/** State of one symbol's book: waiting for a usable snapshot, or maintained diff by diff. */
export type BinanceBookState = "awaiting-snapshot" | "live";

/**
 * Binance's local-book procedure for one symbol (see the module comment). Feed it every depth diff of
 * the symbol in arrival order ({@link onDiff}) and every snapshot fetched for it ({@link onSnapshot}).
 */
export class BinanceBookSync {
  readonly book = new L2Book();
  state: BinanceBookState = "awaiting-snapshot";
  /** Sequence breaks found since construction (each one discarded the book). */
  resyncs = 0;
  private buffer: BinanceDepthDiff[] = [];
  private snapshotRequested = false;
  /** True until the first diff after a snapshot is applied (it must straddle `lastUpdateId`). */
  private firstAfterSnapshot = false;

  /**
   * @param symbol upper case, e.g. `BTCUSDT`
   * @param maxBuffered diffs kept while waiting for a snapshot; older ones are dropped (a snapshot
   *   fetched after them would not need them)
   * @param onApplied called right after each diff is applied, with the book as it stands then (a
   *   snapshot applies the buffered diffs in one call: this sees each intermediate book)
   * @param onBeforeApply called right before a diff that passed the sequence checks is applied, with
   *   the book as it stands then (e.g. to take the book at an interval boundary the diff crosses)
   */
  constructor(
    readonly symbol: string,
    private readonly maxBuffered = 1000,
    private readonly onApplied?: (diff: BinanceDepthDiff, book: L2Book) => void,
    private readonly onBeforeApply?: (diff: BinanceDepthDiff, book: L2Book) => void,
  ) {}

  /** Handles one depth diff of this symbol. */
  onDiff(diff: BinanceDepthDiff): BinanceSyncStep {
    const step = newStep();
    if (this.state === "awaiting-snapshot") {
      this.buffer.push(diff);
      if (this.buffer.length > this.maxBuffered) this.buffer.shift();
      if (!this.snapshotRequested) {
        this.snapshotRequested = true;
        step.fetchSnapshot = true;
      }
      return step;
    }
    this.applyLive(diff, step);
    return step;
  }

  /**
   * Handles a REST snapshot fetched for this symbol: seeds the book and applies the buffered diffs.
   * A snapshot older than the first buffered diff is not used (another is asked for); a snapshot
   * handed over while the book is live is ignored.
   */
  onSnapshot(snapshot: BinanceDepthSnapshot): BinanceSyncStep {
    const step = newStep();
    if (this.state === "live") {
      step.snapshotIgnored = true;
      return step;
    }
    const last = snapshot.lastUpdateId;
    const kept = this.buffer.filter((d) => d.finalUpdateId > last);
    step.dropped = this.buffer.length - kept.length;
    if (kept.length > 0 && kept[0].firstUpdateId > last + 1) {
      // the snapshot is older than the diffs held: fetch a newer one, keep the diffs
      this.buffer = kept;
      step.snapshotIgnored = true;
      step.fetchSnapshot = true;
      this.snapshotRequested = true;
      return step;
    }
    this.buffer = [];
    this.snapshotRequested = false;
    const book = this.book;
    book.clear();
    book.load("bid", snapshot.bids);
    book.load("ask", snapshot.asks);
    book.sequence = last;
    this.state = "live";
    this.firstAfterSnapshot = true;
    for (const d of kept) {
      if (this.state !== "live") {
        // a break inside the buffer: keep the rest for the next snapshot
        this.buffer.push(d);
        continue;
      }
      this.applyLive(d, step);
    }
    return step;
  }

  private applyLive(diff: BinanceDepthDiff, step: BinanceSyncStep): void {
    const book = this.book;
    const at = book.sequence as number;
    if (diff.finalUpdateId <= at) {
      step.dropped++;
      return;
    }
    const U = diff.firstUpdateId;
    const ok = this.firstAfterSnapshot ? U <= at + 1 : U === at + 1;
    if (!ok) {
      const reason = this.firstAfterSnapshot ? "no-straddle" : U > at + 1 ? "gap" : "overlap";
      step.resync = {
        symbol: this.symbol,
        reason,
        bookUpdateId: at,
        firstUpdateId: U,
        finalUpdateId: diff.finalUpdateId,
      };
      this.resyncs++;
      book.clear();
      this.state = "awaiting-snapshot";
      this.buffer = [diff];
      this.snapshotRequested = true;
      step.fetchSnapshot = true;
      return;
    }
    this.onBeforeApply?.(diff, book);
    for (const [p, q] of diff.bids) book.apply("bid", p, q);
    for (const [p, q] of diff.asks) book.apply("ask", p, q);
    book.sequence = diff.finalUpdateId;
    this.firstAfterSnapshot = false;
    step.applied.push(diff);
    this.onApplied?.(diff, book);
  }
}

function newStep(): BinanceSyncStep {
  return { applied: [], dropped: 0, fetchSnapshot: false, resync: null, snapshotIgnored: false };
}

/** One {@link BinanceBookSync} per symbol: a break on one symbol resyncs that symbol only. */
export class BinanceBooks {
  readonly bySymbol = new Map<string, BinanceBookSync>();

  /** @param onApplied, onBeforeApply as {@link BinanceBookSync}'s, for every symbol */
  constructor(
    private readonly maxBuffered = 1000,
    private readonly onApplied?: (diff: BinanceDepthDiff, book: L2Book) => void,
    private readonly onBeforeApply?: (diff: BinanceDepthDiff, book: L2Book) => void,
  ) {}

  /** The symbol's procedure (created on first use). */
  get(symbol: string): BinanceBookSync {
    let s = this.bySymbol.get(symbol);
    if (!s) {
      s = new BinanceBookSync(symbol, this.maxBuffered, this.onApplied, this.onBeforeApply);
      this.bySymbol.set(symbol, s);
    }
    return s;
  }

  /** Routes a diff to its symbol's procedure. */
  onDiff(diff: BinanceDepthDiff): BinanceSyncStep {
    return this.get(diff.symbol).onDiff(diff);
  }

  /** Routes a snapshot to its symbol's procedure. */
  onSnapshot(snapshot: BinanceDepthSnapshot): BinanceSyncStep {
    return this.get(snapshot.symbol).onSnapshot(snapshot);
  }
}

/** Best bid/ask of a `@bookTicker` frame (`{u, s, b, B, a, A}`), as exact DECIMAL(18,8) strings. */
export interface BookTickerTop {
  /** Order book update id (`u`). */
  updateId: number;
  /** Best bid price (`b`) and quantity (`B`). */
  bidPrice: string;
  bidQuantity: string;
  /** Best ask price (`a`) and quantity (`A`). */
  askPrice: string;
  askQuantity: string;
}

/** Outcome of one cross-check: the book's top level at update id `u` equals the ticker's, or not. */
export type CrossCheckResult = "match" | "mismatch";

/**
 * Cross-check of a maintained book's top level against `@bookTicker` frames, for one symbol: a ticker
 * whose `u` equals the final `u` of an applied diff describes the same book state, so its best
 * bid/ask (prices and quantities) must equal the book's after that diff. The ticker may arrive before
 * or after that diff: tickers are held until their diff is applied, and the top level of the last
 * `keepApplied` applied diffs is remembered. Tickers whose `u` is no applied diff's final `u` are not
 * checks (bookTicker updates at every book change, the diff stream every 100 ms).
 */
export class BookTickerCrossCheck {
  matches = 0;
  mismatches = 0;
  private readonly pending = new Map<number, BookTickerTop>();
  private readonly applied = new Map<number, BookTickerTop>();
  private lastApplied = -1;

  /**
   * @param keepApplied top levels of the last applied diffs remembered (for tickers arriving after)
   * @param maxPending tickers held until their diff is applied; the oldest is dropped beyond it (a
   *   book waiting long for its snapshot holds as many tickers as arrive meanwhile)
   */
  constructor(
    private readonly keepApplied = 64,
    private readonly maxPending = 10_000,
  ) {}

  /**
   * Call after each applied diff, with the book as it stands then.
   * @returns the outcome when a held ticker had this `u`, else null
   */
  onApplied(finalUpdateId: number, book: L2Book): CrossCheckResult | null {
    const b = book.bestBid();
    const a = book.bestAsk();
    const top: BookTickerTop = {
      updateId: finalUpdateId,
      bidPrice: b ? b[0] : "",
      bidQuantity: b ? b[1] : "",
      askPrice: a ? a[0] : "",
      askQuantity: a ? a[1] : "",
    };
    this.lastApplied = finalUpdateId;
    this.applied.set(finalUpdateId, top);
    if (this.applied.size > this.keepApplied) {
      const oldest = this.applied.keys().next().value as number;
      this.applied.delete(oldest);
    }
    let result: CrossCheckResult | null = null;
    for (const [u, t] of this.pending) {
      if (u === finalUpdateId) result = this.count(t, top);
      if (u <= finalUpdateId) this.pending.delete(u);
    }
    return result;
  }

  /** Forgets held tickers and remembered tops (after a resync of the book). */
  reset(): void {
    this.pending.clear();
    this.applied.clear();
    this.lastApplied = -1;
  }

  /**
   * Call for each `@bookTicker` frame of the symbol.
   * @returns the outcome when its diff was already applied, else null (held, or not a check)
   */
  onBookTicker(ticker: BookTickerTop): CrossCheckResult | null {
    const u = ticker.updateId;
    if (u > this.lastApplied) {
      this.pending.set(u, ticker);
      if (this.pending.size > this.maxPending)
        this.pending.delete(this.pending.keys().next().value as number);
      return null;
    }
    const top = this.applied.get(u);
    return top ? this.count(ticker, top) : null;
  }

  private count(t: BookTickerTop, top: BookTickerTop): CrossCheckResult {
    const same =
      t.bidPrice === top.bidPrice &&
      t.bidQuantity === top.bidQuantity &&
      t.askPrice === top.askPrice &&
      t.askQuantity === top.askQuantity;
    if (same) this.matches++;
    else this.mismatches++;
    return same ? "match" : "mismatch";
  }
}

/**
 * Parses the payload of a `@bookTicker` frame (`{u, s, b, B, a, A}`) into its top level.
 * @throws {BookFrameError} when a field is missing or mistyped; `DecimalError` on an inexact value
 */
export function parseBinanceBookTicker(data: unknown): BookTickerTop {
  const d = objectOf(data, "book ticker");
  return {
    updateId: intOf(d["u"], "update id (u)"),
    bidPrice: parseNonNegativeDecimal(d["b"]),
    bidQuantity: parseNonNegativeDecimal(d["B"]),
    askPrice: parseNonNegativeDecimal(d["a"]),
    askQuantity: parseNonNegativeDecimal(d["A"]),
  };
}
