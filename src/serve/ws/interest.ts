/**
 * The interest filter between the parent `k2` process and its gateway worker processes (`pool.ts`,
 * `worker.ts`): a worker is sent only the records its clients need.
 *
 * A worker's interest is a set of keys `(channel, symbol)` (symbol `"*"`: every symbol), each held by
 * the live subscriptions and the `from` replays of its clients (reference-counted here, in the worker,
 * by {@link InterestTracker}); the parent is told only when a key is first held or last released, in
 * an {@link InterestUpdate} over IPC, and routes with {@link WorkerRoutes}:
 *   - a trade to a worker with `trades` or `ticks` on its symbol (the worker derives ticks itself),
 *     a quote likewise with `quotes` or `ticks`; a candle with `candles.{interval}`, and every closed
 *     candle to every worker (a candle replay's switch takes the candles closed lately from the
 *     worker's own memory, and those closed before the worker started from the parent's, named on
 *     the replay's last history page, `candle-replay.ts`); a book's top-N with any `book.{N}`, at the largest N
 *     held by any worker.
 *
 * No gap at subscribe: when the parent applies an update that adds keys, it writes on the worker's
 * stdin, after every record it routed before the update and before any it routes after, the current
 * ticks of the added `ticks` keys, the current top-N of the added `book.{N}` keys, then the marker line
 * `I{id}`. The worker serves a live subscription (puts its client on the stream and replies
 * `subscribed`) when it reads the marker of the update that added its last key, in the same
 * synchronous pass as the lines around it: from then on every record of those keys reaches it, since
 * each was routed after the update. A `from` replay needs no marker: its update goes over IPC before
 * its first history request, so every history page is read after the parent applied it; a record is
 * then either in the page (received before the read) or routed to the worker (after the update), and
 * the replay holds what the worker receives from its start to its switch (`replay.ts`).
 */
import { bookDepthOf, type Channel } from "./protocol.js";

/** Keys added and removed by one update of a worker's interest (`[channel, symbol]`). */
export interface InterestUpdate {
  /** Increasing per worker; the parent's marker line `I{id}` confirms the update's added keys. */
  id: number;
  add: [channel: Channel, symbol: string][];
  remove: [channel: Channel, symbol: string][];
}

/** Text form of a key (`channel symbol`; symbols have no space). */
export function interestKey(channel: Channel, symbol: string): string {
  return `${channel} ${symbol}`;
}

function splitKey(key: string): [Channel, string] {
  const i = key.indexOf(" ");
  return [key.slice(0, i) as Channel, key.slice(i + 1)];
}

/**
 * A worker's side: how many holders each key has, which update added it, which update the parent has
 * confirmed (its marker read), and the subscriptions waiting for a confirmation.
 */
export class InterestTracker {
  private readonly counts = new Map<string, number>();
  /** Id of the update that added each held key. */
  private readonly addedBy = new Map<string, number>();
  /** Holders of a `book.{N}` key, by symbol (`"*"` included), whatever N. */
  private readonly bookSymbols = new Map<string, number>();
  private nextId = 0;
  private confirmed = 0;
  private waiters: { id: number; run: () => void }[] = [];

  /**
   * @param send tells the parent (IPC); called synchronously, in the order of the changes
   * @param onBooksDropped called when the last holder of some symbol's books let go (the worker
   *   drops its copies of them: they are no longer kept current)
   */
  constructor(
    private readonly send: (u: InterestUpdate) => void,
    private readonly onBooksDropped: () => void = () => undefined,
  ) {}

  /** One more holder of each key in `add`, one fewer of each in `remove`; tells the parent of the changes. */
  change(add: Iterable<string>, remove: Iterable<string>): void {
    const added: string[] = [];
    const removed: string[] = [];
    let booksDropped = false;
    for (const k of add) {
      const n = this.counts.get(k) ?? 0;
      this.counts.set(k, n + 1);
      if (n === 0) added.push(k);
      this.countBook(k, 1);
    }
    for (const k of remove) {
      const n = this.counts.get(k);
      if (n === undefined) continue;
      if (n > 1) this.counts.set(k, n - 1);
      else {
        this.counts.delete(k);
        this.addedBy.delete(k);
        removed.push(k);
      }
      if (this.countBook(k, -1)) booksDropped = true;
    }
    if (added.length === 0 && removed.length === 0) return;
    const id = ++this.nextId;
    for (const k of added) this.addedBy.set(k, id);
    this.send({ id, add: added.map(splitKey), remove: removed.map(splitKey) });
    if (booksDropped) this.onBooksDropped();
  }

  /**
   * Runs `run` once every key of `keys` (held) is confirmed: now, or when {@link confirm} reads the
   * marker of the update that added the last of them.
   */
  whenReady(keys: Iterable<string>, run: () => void): void {
    let id = 0;
    for (const k of keys) {
      const by = this.addedBy.get(k) ?? 0;
      if (by > this.confirmed && by > id) id = by;
    }
    if (id === 0) run();
    else this.waiters.push({ id, run });
  }

  /** The parent's marker of update `id` was read: runs the subscriptions that waited for it, in order. */
  confirm(id: number): void {
    if (id > this.confirmed) this.confirmed = id;
    if (this.waiters.length === 0) return;
    const due = this.waiters.filter((w) => w.id <= this.confirmed);
    if (due.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.id > this.confirmed);
    for (const w of due) w.run();
  }

  /** Whether someone here holds a `book.{N}` key of `symbol` (or of `"*"`). */
  wantsBook(symbol: string): boolean {
    return this.bookSymbols.has(symbol) || this.bookSymbols.has("*");
  }

  /** Keys held now (for tests and diagnostics). */
  keys(): string[] {
    return [...this.counts.keys()];
  }

  /** Counts a book key's holder; true when the symbol's last book holder let go. */
  private countBook(key: string, delta: 1 | -1): boolean {
    if (!key.startsWith("book.")) return false;
    const symbol = splitKey(key)[1];
    const n = (this.bookSymbols.get(symbol) ?? 0) + delta;
    if (n > 0) this.bookSymbols.set(symbol, n);
    else this.bookSymbols.delete(symbol);
    return n <= 0;
  }
}

/** Symbols of one kind of record a worker needs. */
class SymbolSet {
  all = false;
  readonly symbols = new Set<string>();

  add(symbol: string): void {
    if (symbol === "*") this.all = true;
    else this.symbols.add(symbol);
  }

  has(symbol: string): boolean {
    return this.all || this.symbols.has(symbol);
  }
}

/** The parent's side, one per worker: its keys and what to route to it. */
export class WorkerRoutes {
  private readonly keys = new Set<string>();
  private trades = new SymbolSet();
  private quotes = new SymbolSet();
  private books = new SymbolSet();
  private candles = new Map<string, SymbolSet>();
  /** Largest N of its `book.{N}` keys (0: none). */
  bookDepth = 0;

  /**
   * Applies an update; returns the symbols of the `ticks` keys and of the `book.{N}` keys it added (the
   * caller sends their current ticks and books before the marker).
   */
  apply(u: InterestUpdate): { ticks: string[]; books: string[] } {
    for (const [channel, symbol] of u.remove) this.keys.delete(interestKey(channel, symbol));
    const ticks: string[] = [];
    const books: string[] = [];
    for (const [channel, symbol] of u.add) {
      this.keys.add(interestKey(channel, symbol));
      if (channel === "ticks") ticks.push(symbol);
      else if (bookDepthOf(channel) !== null) books.push(symbol);
    }
    this.rebuild();
    return { ticks, books };
  }

  /** Forgets every key (the worker exited). */
  clear(): void {
    this.keys.clear();
    this.rebuild();
  }

  wantsTrade(symbol: string): boolean {
    return this.trades.has(symbol);
  }

  wantsQuote(symbol: string): boolean {
    return this.quotes.has(symbol);
  }

  /** A candle of `interval` (closed ones are sent to every worker by the caller). */
  wantsCandle(interval: string, symbol: string): boolean {
    return this.candles.get(interval)?.has(symbol) ?? false;
  }

  wantsBook(symbol: string): boolean {
    return this.books.has(symbol);
  }

  private rebuild(): void {
    this.trades = new SymbolSet();
    this.quotes = new SymbolSet();
    this.books = new SymbolSet();
    this.candles = new Map();
    this.bookDepth = 0;
    for (const key of this.keys) {
      const [channel, symbol] = splitKey(key);
      if (channel === "trades") this.trades.add(symbol);
      else if (channel === "quotes") this.quotes.add(symbol);
      else if (channel === "ticks") {
        this.trades.add(symbol);
        this.quotes.add(symbol);
      } else if (channel.startsWith("candles.")) {
        const interval = channel.slice("candles.".length);
        let set = this.candles.get(interval);
        if (!set) {
          set = new SymbolSet();
          this.candles.set(interval, set);
        }
        set.add(symbol);
      } else {
        const depth = bookDepthOf(channel);
        if (depth === null) continue;
        this.books.add(symbol);
        if (depth > this.bookDepth) this.bookDepth = depth;
      }
    }
  }
}
