/**
 * Local order books kept by the feed from a venue's depth diffs and REST snapshots (issue #13):
 * Binance's documented procedure (`src/books/binance.ts`) per symbol, the snapshots fetched from the
 * venue's REST API (`Venue.bookSnapshot`, e.g. `GET /api/v3/depth`) within the venue's request-weight
 * budget through the backfill worker's client (429/418 `Retry-After` honoured), and a live
 * cross-check of each book's top level against the venue's best bid/ask frames (`@bookTicker`) whose
 * update id equals the final `u` of an applied diff.
 *
 * A sequence break discards that symbol's book only and fetches a new snapshot for it; the other
 * symbols go on. Counts feed the run summary, metrics (`k2_book_resyncs_total{symbol}`,
 * `k2_book_crosscheck_total{result}`, `k2_book_crossed_total`, `k2_book_depth`) and `/health`.
 */
import {
  type BinanceBookSync,
  BinanceBooks,
  type BinanceDepthDiff,
  type BinanceSyncStep,
  BookTickerCrossCheck,
  type CrossCheckResult,
} from "../books/binance.js";
import type { L2Book } from "../books/l2-book.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { BookChangeV2 } from "../schema/books.js";
import type { LiveBookSource, LiveBookView } from "../schema/live-book.js";
import type { QuoteV2 } from "../schema/records.js";
import { nowMicros } from "../schema/time.js";
import { Reject } from "../venues/mapping.js";
import type { BookSnapshotRest } from "../venues/venue.js";
import type { BookSnapshotter } from "./book-snapshots.js";
import { LiveBookViews } from "./live-books.js";

/** Counters of one venue's local books, for the run summary and tests. */
export interface BookCounts {
  /** Best bid/ask frames compared with the book at the same update id, and of those, mismatches. */
  checks: number;
  mismatches: number;
  /** Sequence breaks that discarded a book (each followed by a new snapshot). */
  resyncs: number;
  /** REST snapshots fetched and handed to the procedure. */
  snapshots: number;
  /** Depth diffs applied. */
  applied: number;
  /** Applied diffs after which the book was crossed (best bid ≥ best ask). */
  crossed: number;
}

export interface BookKeeperOptions {
  /** Upper-case exchange code (metric label). */
  exchange: string;
  /** How the venue's REST API gives a symbol's book. */
  rest: BookSnapshotRest;
  /** REST base URL (`https://api.binance.com`, or a replay server's `http://127.0.0.1:PORT`). */
  baseUrl: string;
  /**
   * GETs a URL of request weight `weight` within the venue's budget; resolves with the parsed JSON
   * body, or undefined when it cannot be had (the backfill worker's `getWeighted`).
   */
  get(url: string, weight: number): Promise<unknown>;
  /** Called with every REST snapshot the procedure used (a book_changes_v2 snapshot, for publishing). */
  onSnapshot?(snapshot: BookChangeV2): void;
  /** Takes the periodic top-N snapshots of the books in sync (`--book-depth`, `--book-interval`). */
  snapshots?: BookSnapshotter;
  metrics: Metrics;
  logger: Logger;
  /** Diffs buffered per symbol while waiting for a snapshot (default 10000). */
  maxBuffered?: number;
  /** Wait before asking again after a failed or too old snapshot, ms, doubling up to 30 s (default 500). */
  retryDelayMs?: number;
}

/**
 * One venue's local books, kept by Binance's procedure (see the file header), and their live view for
 * the serving layer ({@link LiveBookSource}: `GET /api/v1/book`, the gateway's `book.{N}` channels).
 */
export class BinanceBookKeeper implements LiveBookSource {
  readonly counts: BookCounts = {
    checks: 0,
    mismatches: 0,
    resyncs: 0,
    snapshots: 0,
    applied: 0,
    crossed: 0,
  };
  private readonly procedures: BinanceBooks;
  private readonly checks = new Map<string, BookTickerCrossCheck>();
  /** The books' live views and update listeners (times: venue `E` of the last diff, last resync). */
  private readonly live: LiveBookViews;
  private readonly fetching = new Set<string>();
  /** Snapshot requests in flight (past their retry delay), until handed to the procedure. */
  private readonly requests = new Set<Promise<void>>();
  /** Consecutive unusable snapshots per symbol (for the retry delay). */
  private readonly attempts = new Map<string, number>();
  private stopped = false;

  constructor(private readonly opts: BookKeeperOptions) {
    const snapshots = opts.snapshots;
    this.procedures = new BinanceBooks(
      opts.maxBuffered ?? 10_000,
      (d, book) => this.applied(d, book),
      // the book at each interval boundary: before the first diff stamped at or after it (`E`, ms)
      snapshots
        ? (d, book) => snapshots.beforeChange(d.symbol, d.eventTime * 1000, book, this.lastResyncAt(d.symbol))
        : undefined,
    );
    this.live = new LiveBookViews(opts.exchange, this.procedures.bySymbol, opts.logger);
    opts.metrics.collectHooks.push(() => {
      for (const [symbol, sync] of this.procedures.bySymbol) {
        opts.metrics.bookDepth.labels(opts.exchange, symbol, "bid").set(sync.book.depth("bid"));
        opts.metrics.bookDepth.labels(opts.exchange, symbol, "ask").set(sync.book.depth("ask"));
      }
    });
  }

  /** The procedure of a symbol, or undefined when no depth diff of it came yet. */
  sync(symbol: string): BinanceBookSync | undefined {
    return this.procedures.bySymbol.get(symbol);
  }

  /** Time of the symbol's last resync, µs since epoch, or null. */
  lastResyncAt(symbol: string): number | null {
    return this.live.resyncAt.get(symbol) ?? null;
  }

  /** Symbols kept. */
  symbols(): string[] {
    return [...this.procedures.bySymbol.keys()];
  }

  /** The live view of a symbol's book (exchange must be this keeper's), or undefined when none is kept. */
  book(exchange: string, symbol: string): LiveBookView | undefined {
    return this.live.book(exchange, symbol);
  }

  /** The live views of every symbol kept. */
  books(): LiveBookView[] {
    return this.live.books();
  }

  /** Adds a listener called synchronously after each change of a book (see {@link LiveBookSource}). */
  onUpdate(listener: (view: LiveBookView) => void): () => void {
    return this.live.onUpdate(listener);
  }

  /** Handles one depth diff (a book_changes_v2 record with `U`/`u` as first/last sequence). */
  onChange(change: BookChangeV2): void {
    const step = this.procedures.onDiff({
      symbol: change.symbol,
      eventTime: Math.floor(change.timestamp / 1000),
      firstUpdateId: change.first_source_sequence ?? 0,
      finalUpdateId: change.last_source_sequence ?? 0,
      bids: change.bids,
      asks: change.asks,
    });
    this.after(change.symbol, step);
  }

  /** Cross-checks a best bid/ask record (Binance `@bookTicker`, `source_sequence` = `u`). */
  onQuote(q: QuoteV2): void {
    if (q.source_sequence === null || !this.procedures.bySymbol.has(q.symbol)) return;
    const result = this.check(q.symbol).onBookTicker({
      updateId: q.source_sequence,
      bidPrice: q.bid_price,
      bidQuantity: q.bid_quantity,
      askPrice: q.ask_price,
      askQuantity: q.ask_quantity,
    });
    if (result) this.count(q.symbol, result);
  }

  /** `/health` problems: symbols whose book was discarded and waits for a new snapshot. */
  problems(): string[] {
    const out: string[] = [];
    for (const [symbol, sync] of this.procedures.bySymbol) {
      if (sync.state === "awaiting-snapshot" && this.live.resyncAt.has(symbol)) {
        out.push(`book ${this.opts.exchange} ${symbol} resyncing (sequence break; waiting for a snapshot)`);
      }
    }
    return out;
  }

  /** Stops asking for snapshots (shutdown). */
  stop(): void {
    this.stopped = true;
  }

  private check(symbol: string): BookTickerCrossCheck {
    let c = this.checks.get(symbol);
    if (!c) {
      // tickers are held while the book waits for its snapshot: as many as diffs are buffered for
      c = new BookTickerCrossCheck(64, 10 * (this.opts.maxBuffered ?? 10_000));
      this.checks.set(symbol, c);
    }
    return c;
  }

  private count(symbol: string, result: CrossCheckResult): void {
    this.counts.checks++;
    if (result === "mismatch") {
      this.counts.mismatches++;
      const sync = this.procedures.bySymbol.get(symbol);
      this.opts.logger.warn(
        { exchange: this.opts.exchange, symbol, sequence: sync?.book.sequence },
        "book cross-check mismatch: the top level differs from the best bid/ask of the same update id",
      );
    }
    this.opts.metrics.bookCrossChecks.labels(this.opts.exchange, result).inc();
  }

  /** Right after a diff is applied: cross-check against held best bid/ask frames, crossed book. */
  private applied(d: BinanceDepthDiff, book: L2Book): void {
    this.counts.applied++;
    this.live.appliedAt.set(d.symbol, d.eventTime * 1000);
    const r = this.check(d.symbol).onApplied(d.finalUpdateId, book);
    if (r) this.count(d.symbol, r);
    if (book.isCrossed()) {
      this.counts.crossed++;
      this.opts.metrics.bookCrossed.labels(this.opts.exchange, d.symbol).inc();
    }
    this.live.updated(d.symbol);
  }

  /** Handles a resync found by a step of the procedure, and fetches a snapshot when asked. */
  private after(symbol: string, step: BinanceSyncStep): void {
    const check = this.check(symbol);
    const { metrics, exchange } = this.opts;
    if (step.resync) {
      const r = step.resync;
      this.counts.resyncs++;
      this.live.resyncAt.set(symbol, nowMicros());
      check.reset();
      this.opts.snapshots?.reset(symbol);
      metrics.bookResyncs.labels(exchange, symbol).inc();
      this.opts.logger.warn(
        { exchange, symbol, reason: r.reason, book: r.bookUpdateId, U: r.firstUpdateId, u: r.finalUpdateId },
        "book sequence break: the symbol's book is discarded and rebuilt from a new snapshot",
      );
      this.live.updated(symbol);
    }
    if (step.fetchSnapshot) this.fetch(symbol, step.snapshotIgnored);
  }

  /** Fetches a snapshot for a symbol (one at a time per symbol) and hands it to the procedure. */
  private fetch(symbol: string, retry: boolean): void {
    if (this.fetching.has(symbol) || this.stopped) return;
    this.fetching.add(symbol);
    const n = retry ? (this.attempts.get(symbol) ?? 0) + 1 : 0;
    this.attempts.set(symbol, n);
    const delay = n > 0 ? Math.min(30_000, (this.opts.retryDelayMs ?? 500) * 2 ** (n - 1)) : 0;
    void (async () => {
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const request = this.request(symbol);
      this.requests.add(request);
      try {
        await request;
      } finally {
        this.requests.delete(request);
      }
    })().catch((err) => {
      this.fetching.delete(symbol);
      this.opts.logger.error(
        { exchange: this.opts.exchange, symbol, err: (err as Error).message },
        "book snapshot failed",
      );
    });
  }

  /**
   * Settles once the snapshot requests in flight at the call are answered and handed to the procedure
   * (shutdown waits for it, bounded, before {@link stop}: a replay at full speed can end before a book's
   * first snapshot is answered, and the diffs and best bid/ask frames held for it would be dropped
   * unchecked). Retries waiting for their delay are not waited for. Never rejects.
   */
  snapshotsInFlight(): Promise<void> {
    return Promise.allSettled([...this.requests]).then(() => undefined);
  }

  /** One snapshot request for `symbol`, then the procedure's step with it (or a retry). */
  private async request(symbol: string): Promise<void> {
    const { rest, baseUrl } = this.opts;
    const req = rest.request(baseUrl, symbol, rest.limit);
    let snapshot: BookChangeV2 | null = null;
    try {
      const body = this.stopped ? undefined : await this.opts.get(req.url, req.weight);
      if (body !== undefined) snapshot = rest.snapshot(body, symbol, nowMicros());
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      this.opts.logger.warn(
        { exchange: this.opts.exchange, symbol, reason: err.message },
        "book snapshot rejected",
      );
    }
    this.fetching.delete(symbol);
    if (this.stopped) return;
    if (!snapshot) {
      this.fetch(symbol, true);
      return;
    }
    this.counts.snapshots++;
    const step = this.procedures.onSnapshot({
      symbol,
      lastUpdateId: snapshot.last_source_sequence ?? 0,
      bids: snapshot.bids,
      asks: snapshot.asks,
    });
    if (!step.snapshotIgnored) {
      this.attempts.set(symbol, 0);
      this.opts.onSnapshot?.(snapshot);
      // the snapshot alone (no buffered diff applied after it) is a change too
      if (step.applied.length === 0 && !step.resync) this.live.updated(symbol);
    } else {
      this.opts.logger.info(
        { exchange: this.opts.exchange, symbol, lastUpdateId: snapshot.last_source_sequence },
        "book snapshot older than the buffered diffs; asking again",
      );
    }
    this.after(symbol, step);
  }
}
