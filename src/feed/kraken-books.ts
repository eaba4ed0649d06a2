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
import { nowMicros } from "../schema/time.js";
import type { BookSnapshotter } from "./book-snapshots.js";

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

/** The Kraken books of one feed (see the file header). */
export class KrakenBookKeeper {
  readonly counts: ChecksumBookCounts = { checksumsVerified: 0, checksumFailures: 0, resyncs: 0, applied: 0 };
  private readonly books = new KrakenBooks();
  /** Time of each pair's last resync, µs since epoch. */
  private readonly resyncAt = new Map<string, number>();

  constructor(private readonly opts: KrakenBookKeeperOptions) {
    opts.metrics.collectHooks.push(() => {
      for (const [pair, sync] of this.books.byPair) {
        opts.metrics.bookDepth.labels(opts.exchange, pair, "bid").set(sync.book.depth("bid"));
        opts.metrics.bookDepth.labels(opts.exchange, pair, "ask").set(sync.book.depth("ask"));
      }
    });
  }

  /** Time of the pair's last resync, µs since epoch, or null. */
  lastResyncAt(pair: string): number | null {
    return this.resyncAt.get(pair) ?? null;
  }

  /**
   * Handles one book change with its parsed Kraken message (the venue strings the checksum is
   * computed over). A change without one (another venue's) is ignored.
   */
  onChange(change: BookChangeV2, venueMessage: unknown): void {
    const m = venueMessage as KrakenBookMessage | undefined;
    if (!m || !Array.isArray(m.asks) || !Array.isArray(m.bids)) return;
    const { metrics, exchange, logger } = this.opts;
    const sync = this.books.byPair.get(m.pair);
    if (this.opts.snapshots && sync?.state === "live" && m.kind === "update") {
      this.opts.snapshots.beforeChange(m.pair, change.timestamp, sync.book, this.lastResyncAt(m.pair));
    }
    const step = this.books.onMessage(m);
    if (step.checksum !== "skipped") this.counts.applied++;
    if (step.checksum === "verified") {
      this.counts.checksumsVerified++;
      metrics.bookChecksums.labels(exchange, "ok").inc();
    } else if (step.checksum === "failed") {
      this.counts.checksumFailures++;
      metrics.bookChecksums.labels(exchange, "failed").inc();
    }
    if (step.resubscribe) {
      this.counts.resyncs++;
      this.resyncAt.set(m.pair, nowMicros());
      this.opts.snapshots?.reset(m.pair);
      metrics.bookResyncs.labels(exchange, m.pair).inc();
      logger.warn(
        { exchange, symbol: m.pair, checksum: m.checksum, computed: step.computed },
        "book checksum mismatch: the pair's book is discarded and the pair resubscribed",
      );
      this.opts.resubscribe(m.pair);
    }
  }

  /** `/health` problems: pairs whose book was discarded and waits for a new snapshot. */
  problems(): string[] {
    const out: string[] = [];
    for (const [pair, sync] of this.books.byPair) {
      if (sync.state === "awaiting-snapshot" && this.resyncAt.has(pair)) {
        out.push(`book ${this.opts.exchange} ${pair} resyncing (checksum mismatch; resubscribed)`);
      }
    }
    return out;
  }
}
