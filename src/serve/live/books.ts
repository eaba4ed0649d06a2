/**
 * The kept order books as the serving layer reads them (issue #13), through {@link LiveBookSource}
 * (`schema/live-book.ts`), never the feed itself:
 *   - {@link LiveBookRegistry}: the books of every feed of this process in one source; `k2 run` adds each
 *     feed's book keeper once the feeds exist (the serving layer starts before them);
 *   - {@link LiveBookCopy}: a copy of books kept elsewhere, fed with their top-N (a gateway worker
 *     process, fed by its parent over stdin, `ws/pool.ts`).
 */
import type { BookLevel } from "../../schema/books.js";
import type { LiveBookSource, LiveBookTop, LiveBookView } from "../../schema/live-book.js";

type Listener = (view: LiveBookView) => void;

/** Listeners of book updates, each called in isolation (one that throws does not stop the others). */
class Listeners {
  readonly list: Listener[] = [];
  /** Listener calls that threw. */
  errors = 0;

  add(listener: Listener): () => void {
    this.list.push(listener);
    return () => {
      const i = this.list.indexOf(listener);
      if (i >= 0) this.list.splice(i, 1);
    };
  }

  call(view: LiveBookView): void {
    for (const l of this.list.length === 1 ? this.list : this.list.slice()) {
      try {
        l(view);
      } catch {
        this.errors++;
      }
    }
  }
}

/** The books of several sources (one per feed) as one {@link LiveBookSource}. */
export class LiveBookRegistry implements LiveBookSource {
  private readonly sources: LiveBookSource[] = [];
  private readonly listeners = new Listeners();

  /** Adds a source (e.g. a feed's book keeper); its updates reach this registry's listeners. */
  add(source: LiveBookSource): void {
    this.sources.push(source);
    source.onUpdate((v) => this.listeners.call(v));
  }

  book(exchange: string, symbol: string): LiveBookView | undefined {
    for (const s of this.sources) {
      const v = s.book(exchange, symbol);
      if (v) return v;
    }
    return undefined;
  }

  books(): LiveBookView[] {
    return this.sources.flatMap((s) => s.books());
  }

  onUpdate(listener: Listener): () => void {
    return this.listeners.add(listener);
  }
}

/** A view over a top-N received from elsewhere. */
class CopiedView implements LiveBookView {
  constructor(private readonly top: LiveBookTop) {}

  get exchange(): string {
    return this.top.exchange;
  }
  get symbol(): string {
    return this.top.symbol;
  }
  get state() {
    return this.top.state;
  }
  get timestamp(): number | null {
    return this.top.timestamp;
  }
  get last_source_sequence(): number | null {
    return this.top.last_source_sequence;
  }
  get last_resync_timestamp(): number | null {
    return this.top.last_resync_timestamp;
  }
  /** Exact up to the depth it was sent with; beyond it only where both sides held fewer levels. */
  get exactDepth(): number {
    const t = this.top;
    return t.bids.length < t.depth && t.asks.length < t.depth ? Number.MAX_SAFE_INTEGER : t.depth;
  }
  levels(side: "bid" | "ask", n: number): BookLevel[] {
    const l = side === "bid" ? this.top.bids : this.top.asks;
    return n >= l.length ? l : l.slice(0, n);
  }
}

/**
 * A copy of books kept in another process, from the top-N it sends after each change
 * ({@link LiveBookCopy.apply}); each one replaces the symbol's copy whole, so a reader never sees a
 * mix of two versions.
 */
export class LiveBookCopy implements LiveBookSource {
  private readonly views = new Map<string, CopiedView>();
  private readonly listeners = new Listeners();

  /** Replaces the copy of one book and tells the listeners. */
  apply(top: LiveBookTop): void {
    const v = new CopiedView(top);
    this.views.set(`${top.exchange}|${top.symbol}`, v);
    this.listeners.call(v);
  }

  /** Forgets every copy (the sender stops sending: copies kept would go stale). */
  clear(): void {
    this.views.clear();
  }

  /** Keeps only the copies of the symbols `keep` accepts (the sender stops sending the others). */
  retain(keep: (symbol: string) => boolean): void {
    for (const [k, v] of this.views) if (!keep(v.symbol)) this.views.delete(k);
  }

  book(exchange: string, symbol: string): LiveBookView | undefined {
    return this.views.get(`${exchange}|${symbol}`);
  }

  books(): LiveBookView[] {
    return [...this.views.values()];
  }

  onUpdate(listener: Listener): () => void {
    return this.listeners.add(listener);
  }
}
