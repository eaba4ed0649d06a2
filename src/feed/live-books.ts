/**
 * The live views of one feed's kept books ({@link LiveBookSource}, `schema/live-book.ts`), shared by the
 * venues' book keepers (`books.ts` for Binance, `kraken-books.ts`, `coinbase-books.ts`): a view per
 * symbol whose getters read the book when asked, and the listeners told after each change
 * (`GET /api/v1/book`, `book.{N}`).
 */
import type { L2Book } from "../books/l2-book.js";
import type { Logger } from "../ops/logger.js";
import type { BookLevel } from "../schema/books.js";
import type { LiveBookSource, LiveBookView } from "../schema/live-book.js";

/** One symbol's book as a keeper holds it: `live` once a snapshot and everything since was applied. */
export interface KeptBook {
  readonly state: string;
  readonly book: L2Book;
}

/** Views and update listeners over the books of one keeper (one exchange). */
export class LiveBookViews implements LiveBookSource {
  private readonly views = new Map<string, LiveBookView>();
  private readonly listeners: ((view: LiveBookView) => void)[] = [];
  /** Venue time of each symbol's last applied change, µs since epoch. */
  readonly appliedAt = new Map<string, number>();
  /** Time of each symbol's last resync (book discarded), µs since epoch. */
  readonly resyncAt = new Map<string, number>();

  /**
   * @param exchange upper-case exchange code of the keeper
   * @param kept the keeper's books by symbol (read on every call)
   */
  constructor(
    private readonly exchange: string,
    private readonly kept: ReadonlyMap<string, KeptBook>,
    private readonly logger: Logger,
  ) {}

  /** The live view of a symbol's book (exchange must be this keeper's), or undefined when none is kept. */
  book(exchange: string, symbol: string): LiveBookView | undefined {
    if (exchange !== this.exchange || !this.kept.has(symbol)) return undefined;
    return this.view(symbol);
  }

  /** The live views of every symbol kept. */
  books(): LiveBookView[] {
    return [...this.kept.keys()].map((s) => this.view(s));
  }

  /** Adds a listener called synchronously after each change of a book (see {@link LiveBookSource}). */
  onUpdate(listener: (view: LiveBookView) => void): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Tells the listeners that a symbol's book changed (a listener that throws is logged, not rethrown). */
  updated(symbol: string): void {
    if (this.listeners.length === 0) return;
    const v = this.view(symbol);
    for (const l of this.listeners) {
      try {
        l(v);
      } catch (err) {
        this.logger.error(
          { exchange: this.exchange, symbol, err: (err as Error).message },
          "book update listener failed",
        );
      }
    }
  }

  /** The view of a symbol's book: getters over the keeper's state, read when asked. */
  private view(symbol: string): LiveBookView {
    let v = this.views.get(symbol);
    if (v) return v;
    const kept = this.kept;
    const live = () => {
      const k = kept.get(symbol);
      return k && k.state === "live" ? k.book : undefined;
    };
    const at = this.appliedAt;
    const resyncAt = this.resyncAt;
    v = {
      exchange: this.exchange,
      symbol,
      get state() {
        return live() ? "live" : "syncing";
      },
      get timestamp() {
        return at.get(symbol) ?? null;
      },
      get last_source_sequence() {
        return live()?.sequence ?? null;
      },
      get last_resync_timestamp() {
        return resyncAt.get(symbol) ?? null;
      },
      exactDepth: Number.MAX_SAFE_INTEGER,
      levels: (side, n) => (live()?.top(side, n) as BookLevel[] | undefined) ?? [],
    };
    this.views.set(symbol, v);
    return v;
  }
}
