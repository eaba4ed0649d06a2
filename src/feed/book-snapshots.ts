/**
 * Periodic top-N snapshots of maintained order books (book_snapshots_v2; `--book-depth 10
 * --book-interval 1s` by default), on the venue's clock: for each symbol, the book as it stood at
 * each interval boundary (a multiple of the interval since the epoch), taken when the first change
 * stamped at or after that boundary is applied — just before it (also for diffs buffered while the
 * book waited for its REST snapshot), so the snapshot holds exactly the changes
 * stamped before the boundary. A replay gives the same snapshots at any `--speed`.
 *
 * When a book changes less often than the interval, only the latest boundary passed is taken (the
 * boundaries skipped would hold the same levels). A book that is not in sync (waiting for a snapshot
 * after a resync) is not taken; its next boundary is counted again from its first change after.
 */
import type { L2Book } from "../books/l2-book.js";
import type { BookLevel, BookSnapshotV2 } from "../schema/books.js";

/** What to take and where it goes. */
export interface BookSnapshotterOptions {
  /** Upper-case exchange code. */
  exchange: string;
  /** Levels per side (N of top-N), ≥ 1. */
  depth: number;
  /** Interval between snapshots, µs, ≥ 1. */
  intervalUs: number;
  /** Receives every snapshot taken (e.g. to publish it on the bus). */
  emit(snapshot: BookSnapshotV2): void;
}

/** Takes the top-N snapshots of one venue's books (see the file header). */
export class BookSnapshotter {
  /** Snapshots taken. */
  taken = 0;
  /** Per symbol, the next boundary to take, µs. */
  private readonly next = new Map<string, number>();

  constructor(private readonly opts: BookSnapshotterOptions) {}

  /**
   * Call before applying a change stamped `timestampUs` (venue time, µs) to the symbol's book, which
   * is in sync: takes the book at the latest boundary ≤ `timestampUs` when the symbol's next boundary
   * has been reached.
   * @param lastResyncUs time of the book's last resync, µs, or null
   */
  beforeChange(symbol: string, timestampUs: number, book: L2Book, lastResyncUs: number | null): void {
    const { intervalUs } = this.opts;
    const boundary = Math.floor(timestampUs / intervalUs) * intervalUs;
    const next = this.next.get(symbol);
    if (next !== undefined && timestampUs >= next) {
      this.taken++;
      this.opts.emit({
        exchange: this.opts.exchange,
        symbol,
        timestamp: boundary,
        depth: this.opts.depth,
        bids: book.top("bid", this.opts.depth) as BookLevel[],
        asks: book.top("ask", this.opts.depth) as BookLevel[],
        last_source_sequence: book.sequence,
        last_resync_timestamp: lastResyncUs,
      });
    }
    if (next === undefined || timestampUs >= next) this.next.set(symbol, boundary + intervalUs);
  }

  /** The symbol's book left sync: its boundaries start again from its next change in sync. */
  reset(symbol: string): void {
    this.next.delete(symbol);
  }
}
