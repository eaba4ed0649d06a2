/**
 * Coinbase Advanced Trade `level2` books kept by the feed (issue #13): each product's book by
 * `src/books/coinbase.ts` (a `snapshot` event replaces it, `update` events set absolute quantities).
 * `sequence_num` numbers every frame of the connection whatever its channel, so gaps are the venue
 * normalizer's frame gaps (it sees every frame): on one, every book of the connection is discarded and
 * each product's `level2` subscription renewed (Coinbase starts a subscription with a snapshot). A new
 * connection (reconnect) discards them too: they wait for the snapshots of its own subscription.
 *
 * Cross-check against `ticker` (when subscribed): Coinbase's `ticker` and `level2` channels are not
 * atomic with each other, so a ticker whose best bid/ask and quantities differ from the live book when
 * it arrives is compared again after each of the next three `l2_data` messages of its product. Each
 * ticker of a live book counts once: agreed at arrival, agreed within three messages (`late`), or
 * `never` (also a ticker still waiting when its book is discarded, or when the run ends).
 * Metrics: `k2_book_crosscheck_total{result="match"|"mismatch"}` (a late agreement is a match),
 * `k2_book_resyncs_total{symbol}`, `k2_book_crossed_total{symbol}`, `k2_book_depth`.
 */
import { CoinbaseBookSync, type CoinbaseL2Message } from "../books/coinbase.js";
import type { L2Book } from "../books/l2-book.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { BookChangeV2 } from "../schema/books.js";
import type { LiveBookSource, LiveBookView } from "../schema/live-book.js";
import type { QuoteV2, SequenceGap } from "../schema/records.js";
import { nowMicros } from "../schema/time.js";
import type { BookSnapshotter } from "./book-snapshots.js";
import { type KeptBook, LiveBookViews } from "./live-books.js";

/** `l2_data` messages of its product after which a disagreeing ticker counts as `never`. */
export const TICKER_CHECK_MESSAGES = 3;

/** Counters of the Coinbase books of one feed. */
export interface SequencedBookCounts {
  /** Book events applied (snapshots and updates). */
  applied: number;
  /** Update events not applied: their product waits for a snapshot after a gap. */
  skipped: number;
  /** Connection gaps that discarded the books (each resubscribed every product). */
  resyncs: number;
  /** Tickers compared with a live book. */
  tickers: number;
  /** Of those, agreeing when they arrived. */
  atArrival: number;
  /** Agreeing within the next {@link TICKER_CHECK_MESSAGES} `l2_data` messages of their product. */
  late: number;
  /** Never agreeing (decided so far; {@link CoinbaseBookKeeper.tickerChecks} adds those still waiting). */
  never: number;
  /** Updates after which a book was crossed (best bid ≥ best ask). */
  crossed: number;
}

export interface CoinbaseBookKeeperOptions {
  /** Upper-case exchange code (metric label, `exchange` of the served books). */
  exchange: string;
  /** Sends the messages that renew one product's `level2` subscription (on the feed's connection). */
  resubscribe(product: string): void;
  /** Takes the periodic top-N snapshots of the books in sync. */
  snapshots?: BookSnapshotter;
  metrics: Metrics;
  logger: Logger;
}

/** A ticker that disagreed on arrival, waiting for the next `l2_data` messages of its product. */
interface PendingTicker {
  quote: QuoteV2;
  left: number;
}

/**
 * The Coinbase books of one feed (see the file header), and their live view for the serving layer
 * ({@link LiveBookSource}: `GET /api/v1/book`, the gateway's `book.{N}` channels; `last_source_sequence`
 * is the `sequence_num` of the last message applied).
 */
export class CoinbaseBookKeeper implements LiveBookSource {
  readonly counts: SequencedBookCounts = {
    applied: 0,
    skipped: 0,
    resyncs: 0,
    tickers: 0,
    atArrival: 0,
    late: 0,
    never: 0,
    crossed: 0,
  };
  private readonly sync = new CoinbaseBookSync(false);
  /** Each product's book with its state, as the live views read it. */
  private readonly kept = new Map<string, KeptBook>();
  private readonly pending = new Map<string, PendingTicker[]>();
  private readonly live: LiveBookViews;

  constructor(private readonly opts: CoinbaseBookKeeperOptions) {
    this.live = new LiveBookViews(opts.exchange, this.kept, opts.logger);
    opts.metrics.collectHooks.push(() => {
      for (const [product, k] of this.kept) {
        opts.metrics.bookDepth.labels(opts.exchange, product, "bid").set(k.book.depth("bid"));
        opts.metrics.bookDepth.labels(opts.exchange, product, "ask").set(k.book.depth("ask"));
      }
    });
  }

  /** The live view of a product's book (exchange must be this keeper's), or undefined when none is kept. */
  book(exchange: string, product: string): LiveBookView | undefined {
    return this.live.book(exchange, product);
  }

  /** The live views of every product kept. */
  books(): LiveBookView[] {
    return this.live.books();
  }

  /** Adds a listener called synchronously after each change of a book (see {@link LiveBookSource}). */
  onUpdate(listener: (view: LiveBookView) => void): () => void {
    return this.live.onUpdate(listener);
  }

  /**
   * Handles one book change with its parsed `l2_data` message (one event). A change without one
   * (another venue's) is ignored.
   */
  onChange(change: BookChangeV2, venueMessage: unknown): void {
    const m = venueMessage as CoinbaseL2Message | undefined;
    if (!m || typeof m.sequence !== "number" || !Array.isArray(m.events)) return;
    const snapshots = this.opts.snapshots;
    if (snapshots) {
      for (const e of m.events) {
        const book = this.liveBook(e.productId);
        if (book && e.type === "update") {
          snapshots.beforeChange(
            e.productId,
            change.timestamp,
            book,
            this.live.resyncAt.get(e.productId) ?? null,
          );
        }
      }
    }
    const step = this.sync.onL2Data(m);
    this.counts.skipped += step.skipped;
    for (const a of step.applied) {
      const book = this.sync.books.get(a.productId) as L2Book;
      if (!this.kept.has(a.productId)) {
        const awaiting = this.sync.awaiting;
        const product = a.productId;
        this.kept.set(product, {
          get state() {
            return awaiting.has(product) ? "awaiting-snapshot" : "live";
          },
          book,
        });
      }
      this.counts.applied++;
      this.live.appliedAt.set(a.productId, change.timestamp);
      if (book.isCrossed()) {
        this.counts.crossed++;
        this.opts.metrics.bookCrossed.labels(this.opts.exchange, a.productId).inc();
      }
      this.recheck(a.productId, book);
      this.live.updated(a.productId);
    }
  }

  /** A ticker's best bid/ask: compared with the product's live book (see the file header). */
  onQuote(q: QuoteV2): void {
    if (q.exchange !== this.opts.exchange) return;
    const book = this.liveBook(q.symbol);
    if (!book) return;
    this.counts.tickers++;
    if (agrees(book, q)) {
      this.counts.atArrival++;
      this.opts.metrics.bookCrossChecks.labels(this.opts.exchange, "match").inc();
      return;
    }
    let waiting = this.pending.get(q.symbol);
    if (!waiting) {
      waiting = [];
      this.pending.set(q.symbol, waiting);
    }
    waiting.push({ quote: q, left: TICKER_CHECK_MESSAGES });
  }

  /**
   * A sequence gap reported by the venue normalizer: a Coinbase frame gap (`data_type` `frames`)
   * discards every book and renews each product's `level2` subscription; other gaps are ignored.
   */
  onGap(gap: SequenceGap): void {
    if (gap.exchange !== this.opts.exchange || gap.data_type !== "frames") return;
    const step = this.sync.onGap({ expected: gap.from_sequence, received: gap.to_sequence + 1 });
    if (step.resubscribe.length === 0) return;
    this.counts.resyncs++;
    this.discarded(step.resubscribe);
    this.opts.logger.warn(
      {
        exchange: this.opts.exchange,
        products: step.resubscribe,
        from: gap.from_sequence,
        to: gap.to_sequence,
      },
      "sequence_num gap: the connection's books are discarded and level2 resubscribed",
    );
    for (const product of step.resubscribe) this.opts.resubscribe(product);
  }

  /**
   * A new connection of the feed opened (a reconnect): the books kept from the previous one missed
   * what came in between, so each waits for the snapshot the new connection's `level2` subscription
   * brings (nothing is resubscribed; not counted in `resyncs`).
   */
  connectionOpened(): void {
    if (this.sync.books.size === 0) return;
    const step = this.sync.onGap({ expected: 0, received: 0 });
    this.discarded(step.resubscribe);
    this.opts.logger.info(
      { exchange: this.opts.exchange, products: step.resubscribe },
      "new connection: the books wait for its level2 snapshots",
    );
  }

  /** The ticker cross-check so far, with the tickers still waiting counted as `never` (run summary). */
  tickerChecks(): { tickers: number; atArrival: number; late: number; never: number } {
    let waiting = 0;
    for (const p of this.pending.values()) waiting += p.length;
    const { tickers, atArrival, late, never } = this.counts;
    return { tickers, atArrival, late, never: never + waiting };
  }

  /** `/health` problems: products whose book was discarded (gap, new connection) and waits for a snapshot. */
  problems(): string[] {
    const out: string[] = [];
    for (const product of this.sync.awaiting) {
      out.push(`book ${this.opts.exchange} ${product} resyncing (waiting for a level2 snapshot)`);
    }
    return out;
  }

  /** Books just discarded: resync time, snapshots restarted, waiting tickers decided, views told. */
  private discarded(products: string[]): void {
    const at = nowMicros();
    for (const product of products) {
      this.live.resyncAt.set(product, at);
      this.opts.snapshots?.reset(product);
      this.opts.metrics.bookResyncs.labels(this.opts.exchange, product).inc();
      for (const _ of this.pending.get(product) ?? []) this.never();
      this.pending.delete(product);
      this.live.updated(product);
    }
  }

  private liveBook(product: string): L2Book | undefined {
    return this.sync.awaiting.has(product) ? undefined : this.sync.books.get(product);
  }

  /** After an `l2_data` message of the product: its waiting tickers compared again. */
  private recheck(product: string, book: L2Book): void {
    const waiting = this.pending.get(product);
    if (!waiting) return;
    const still = waiting.filter((p) => {
      if (agrees(book, p.quote)) {
        this.counts.late++;
        this.opts.metrics.bookCrossChecks.labels(this.opts.exchange, "match").inc();
        return false;
      }
      if (--p.left === 0) {
        this.never();
        return false;
      }
      return true;
    });
    if (still.length) this.pending.set(product, still);
    else this.pending.delete(product);
  }

  private never(): void {
    this.counts.never++;
    this.opts.metrics.bookCrossChecks.labels(this.opts.exchange, "mismatch").inc();
  }
}

/** The book's best bid and ask, with their quantities, equal the quote's (exact decimal strings). */
function agrees(book: L2Book, q: QuoteV2): boolean {
  const bid = book.bestBid();
  const ask = book.bestAsk();
  return (
    bid !== null &&
    ask !== null &&
    bid[0] === q.bid_price &&
    bid[1] === q.bid_quantity &&
    ask[0] === q.ask_price &&
    ask[1] === q.ask_quantity
  );
}
