/**
 * Kraken v1 order books kept by the feed (issue #13): each pair's book by Kraken's rules
 * (`src/books/kraken.ts`), its CRC32 checksum verified on every update that carries `c`. On a
 * mismatch that pair's book is discarded and that pair only is resubscribed (Kraken sends a new
 * snapshot on subscribe); the other pairs go on. Counts feed the run summary (`checksums_verified`,
 * `checksum_failures`, `resyncs`) and metrics (`k2_book_checksum_total{result="ok"|"failed"}`,
 * `k2_book_resyncs_total{symbol}`, `k2_book_depth`).
 */
import { type KrakenBookMessage, KrakenBooks } from "../books/kraken.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { BookChangeV2 } from "../schema/books.js";
import type { LiveBookSource, LiveBookView } from "../schema/live-book.js";
import { nowMicros } from "../schema/time.js";
import type { BookSnapshotter } from "./book-snapshots.js";
import { LiveBookViews } from "./live-books.js";

/** Counters of the Kraken books of one feed. */
export interface ChecksumBookCounts {
  /** Updates whose checksum `c` matched the maintained book. */
  checksumsVerified: number;
  /** Updates whose checksum did not match (each discarded the pair's book and resubscribed it). */
  checksumFailures: number;
  /** Books discarded and asked for again (one per failure). */
  resyncs: number;
  /** Book messages applied (snapshots and updates). */
  applied: number;
}

export interface KrakenBookKeeperOptions {
  /** Upper-case exchange code (metric label). */
  exchange: string;
  /** Sends the messages that resubscribe one pair's book (on the feed's connection). */
  resubscribe(pair: string): void;
  /** Takes the periodic top-N snapshots of the books in sync. */
  snapshots?: BookSnapshotter;
  metrics: Metrics;
  logger: Logger;
}

/**
 * The Kraken books of one feed (see the file header), and their live view for the serving layer
 * ({@link LiveBookSource}: `GET /api/v1/book`, the gateway's `book.{N}` channels; Kraken sends no
 * sequence numbers, so `last_source_sequence` stays null).
 */
export class KrakenBookKeeper implements LiveBookSource {
  readonly counts: ChecksumBookCounts = { checksumsVerified: 0, checksumFailures: 0, resyncs: 0, applied: 0 };
  private readonly kept = new KrakenBooks();
  /** The books' live views and update listeners (times: the last change's, the last resync). */
  private readonly live: LiveBookViews;

  constructor(private readonly opts: KrakenBookKeeperOptions) {
    this.live = new LiveBookViews(opts.exchange, this.kept.byPair, opts.logger);
    opts.metrics.collectHooks.push(() => {
      for (const [pair, sync] of this.kept.byPair) {
        opts.metrics.bookDepth.labels(opts.exchange, pair, "bid").set(sync.book.depth("bid"));
        opts.metrics.bookDepth.labels(opts.exchange, pair, "ask").set(sync.book.depth("ask"));
      }
    });
  }

  /** Time of the pair's last resync, µs since epoch, or null. */
  lastResyncAt(pair: string): number | null {
    return this.live.resyncAt.get(pair) ?? null;
  }

  /** The live view of a pair's book (exchange must be this keeper's), or undefined when none is kept. */
  book(exchange: string, pair: string): LiveBookView | undefined {
    return this.live.book(exchange, pair);
  }

  /** The live views of every pair kept. */
  books(): LiveBookView[] {
    return this.live.books();
  }

  /** Adds a listener called synchronously after each change of a book (see {@link LiveBookSource}). */
  onUpdate(listener: (view: LiveBookView) => void): () => void {
    return this.live.onUpdate(listener);
  }

  /**
   * Handles one book change with its parsed Kraken message (the venue strings the checksum is
   * computed over). A change without one (another venue's) is ignored.
   */
  onChange(change: BookChangeV2, venueMessage: unknown): void {
    const m = venueMessage as KrakenBookMessage | undefined;
    if (!m || !Array.isArray(m.asks) || !Array.isArray(m.bids)) return;
    const { metrics, exchange, logger } = this.opts;
    const sync = this.kept.byPair.get(m.pair);
    if (this.opts.snapshots && sync?.state === "live" && m.kind === "update") {
      this.opts.snapshots.beforeChange(m.pair, change.timestamp, sync.book, this.lastResyncAt(m.pair));
    }
    const step = this.kept.onMessage(m);
    if (step.checksum !== "skipped") {
      this.counts.applied++;
      this.live.appliedAt.set(m.pair, change.timestamp);
    }
    if (step.checksum === "verified") {
      this.counts.checksumsVerified++;
      metrics.bookChecksums.labels(exchange, "ok").inc();
    } else if (step.checksum === "failed") {
      this.counts.checksumFailures++;
      metrics.bookChecksums.labels(exchange, "failed").inc();
    }
    if (step.resubscribe) {
      this.counts.resyncs++;
      this.live.resyncAt.set(m.pair, nowMicros());
      this.opts.snapshots?.reset(m.pair);
      metrics.bookResyncs.labels(exchange, m.pair).inc();
      logger.warn(
        { exchange, symbol: m.pair, checksum: m.checksum, computed: step.computed },
        "book checksum mismatch: the pair's book is discarded and the pair resubscribed",
      );
      this.opts.resubscribe(m.pair);
    }
    if (step.checksum !== "skipped") this.live.updated(m.pair);
  }

  /** `/health` problems: pairs whose book was discarded and waits for a new snapshot. */
  problems(): string[] {
    const out: string[] = [];
    for (const [pair, sync] of this.kept.byPair) {
      if (sync.state === "awaiting-snapshot" && this.live.resyncAt.has(pair)) {
        out.push(`book ${this.opts.exchange} ${pair} resyncing (checksum mismatch; resubscribed)`);
      }
    }
    return out;
  }
}
