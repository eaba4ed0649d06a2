/**
 * History then live for one `book.{N}` subscription `from` a point in time (issue #16 on issue #13's
 * books). A book frame is a whole top-N, each newer one superseding the last (the live channel already
 * conflates them), so there is nothing to hold during the replay and nothing to de-duplicate by id:
 *
 *  1. The stored top-N snapshots (`book_snapshots_v2`, taken every `--book-interval` at `--book-depth`)
 *     from `from` on are read page by page (one page stream per named symbol, merged in (timestamp,
 *     exchange, symbol) order; `"*"`: one stream) and sent at the client's pace, each cut to N levels
 *     per side, as the live channel's frames (`LiveBookTop`, `state` `"live"`, `timestamp` the
 *     snapshot's interval boundary). When the store holds one instant at several depths (runs with
 *     different `--book-depth`), the shallowest one holding N levels is sent. A snapshot stored with
 *     fewer than N levels per side (`--book-depth` < N) ends the replay with an error frame (code 400)
 *     naming the depth stored: a top-N is never made up from fewer levels.
 *  2. The switch, in one synchronous pass: for each book the process keeps that the subscription
 *     names, its current top-N when it is newer than the last snapshot sent of that book (see
 *     {@link newerBook}); then the caller puts the client on the live stream (without the usual
 *     snapshot on subscribe, already sent here) and says `replay_done`. The snapshots stored after the
 *     last page was read, and the live versions between, are skipped, as a client that falls behind
 *     skips them (conflation): the current book supersedes them.
 *  3. A book whose current top-N is not newer than the snapshot sent (a gateway worker's copy that
 *     lags the parent's store, or a store holding a later capture than the one playing) is
 *     {@link BookReplayResult.floors | returned}: the caller holds that book's live frames back until
 *     one is newer, so no book older than one already sent reaches the client after the switch.
 */
import type { BookSnapshotV2 } from "../../schema/books.js";
import { type LiveBookSource, type LiveBookTop, liveBookTop } from "../../schema/live-book.js";
import type { MarketQuery, Page } from "../../store/page.js";
import { historyFailure, mergeSorted, ReplayError } from "./replay.js";

/** What a book replay reads history from: the store's typed reads (in a gateway worker, over IPC). */
export interface BookHistory {
  /** Stored top-N snapshots in (timestamp, exchange, symbol, depth) order (`Store.bookSnapshots`). */
  bookSnapshots(q: MarketQuery): Promise<Page<BookSnapshotV2>>;
}

/** The last book sent to the client of one (exchange, symbol): what a later frame must be newer than. */
export interface BookFloor {
  timestamp: number | null;
  last_source_sequence: number | null;
}

/** Options of {@link BookReplay}. */
export interface BookReplayOptions {
  /** N of `book.{N}`: levels per side. */
  depth: number;
  /** Named symbols; with `all`, every symbol. */
  symbols: string[];
  all: boolean;
  /** Start, µs since epoch (inclusive). */
  fromUs: number;
  history: BookHistory;
  /** The books this process keeps (their current top-N is sent at the switch); absent: none. */
  books?: LiveBookSource;
  /** Sends one book to the client. */
  send: (top: LiveBookTop) => void;
  /**
   * Puts the client on the live stream, in the same synchronous pass as the switch; `floors`: the
   * books whose live frames must be newer than the one given before they are sent (see the module
   * comment, point 3), keyed `exchange|symbol`.
   */
  goLive: (floors: Map<string, BookFloor>) => void;
  /** Resolves when the client has nothing queued (its pace). */
  ready: () => Promise<void>;
  /** Snapshots per store page (default 1,000). */
  pageSize?: number;
  /**
   * Called with each snapshot about to be sent from the store; returning a sentence ends the replay
   * with that error (code 413: `K2_REPLAY_MAX_RECORDS`). Optional.
   */
  admit?: () => string | null;
}

/** What {@link BookReplay.run} leaves to the caller. */
export interface BookReplayResult {
  /** Books sent (stored snapshots and the current ones at the switch). */
  sent: number;
  /** Books whose live frames are held back until newer than these (keyed `exchange|symbol`). */
  floors: Map<string, BookFloor>;
}

/**
 * Whether book `b` is newer than `floor`: by the last venue sequence applied when both have one
 * (Binance `u`; a resync's new snapshot has a larger `lastUpdateId`), else by time. A stored snapshot's
 * time is its interval boundary and holds the changes stamped before it, so a live book with the same
 * levels is stamped before the boundary and is not newer. A book without a time (syncing, before any
 * change) says only that it waits: it is sent.
 */
export function newerBook(b: BookFloor, floor: BookFloor): boolean {
  if (b.last_source_sequence !== null && floor.last_source_sequence !== null)
    return b.last_source_sequence > floor.last_source_sequence;
  if (b.timestamp === null || floor.timestamp === null) return true;
  return b.timestamp >= floor.timestamp;
}

/** Identity of a book: `exchange|symbol`. */
export function bookKey(b: { exchange: string; symbol: string }): string {
  return `${b.exchange}|${b.symbol}`;
}

/** (timestamp, exchange, symbol, depth): the store's order. */
function compareSnapshots(a: BookSnapshotV2, b: BookSnapshotV2): number {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? -1 : 1;
  if (a.exchange !== b.exchange) return a.exchange < b.exchange ? -1 : 1;
  if (a.symbol !== b.symbol) return a.symbol < b.symbol ? -1 : 1;
  return a.depth - b.depth;
}

/** One `from` subscription of a `book.{N}` channel (see the module comment). */
export class BookReplay {
  private cancelled = false;
  /** Last book sent, per `exchange|symbol`. */
  private readonly sentBooks = new Map<string, BookFloor>();
  /** Books sent so far (history and switch). */
  sent = 0;

  constructor(private readonly o: BookReplayOptions) {}

  /**
   * Runs the replay up to the switch (where it calls `goLive`); resolves with the books sent, or null
   * when cancelled.
   * @throws {ReplayError} when history cannot be read (503), a stored snapshot holds fewer than N
   *   levels (400) or `admit` refuses a snapshot (413)
   */
  async run(): Promise<number | null> {
    const o = this.o;
    try {
      for await (const s of this.snapshots()) {
        if (this.cancelled) return null;
        const refused = o.admit?.() ?? null;
        if (refused !== null) throw new ReplayError(refused, 413);
        await o.ready();
        if (this.cancelled) return null;
        this.sendBook({
          exchange: s.exchange,
          symbol: s.symbol,
          state: "live",
          timestamp: s.timestamp,
          depth: o.depth,
          bids: s.bids.slice(0, o.depth),
          asks: s.asks.slice(0, o.depth),
          last_source_sequence: s.last_source_sequence,
          last_resync_timestamp: s.last_resync_timestamp,
        });
      }
    } catch (err) {
      if (this.cancelled) return null;
      throw historyFailure(err);
    }
    if (this.cancelled) return null;
    await o.ready();
    if (this.cancelled) return null;
    this.switchOver();
    return this.sent;
  }

  /** Stops the replay (the client left or unsubscribed); {@link run} resolves null. */
  cancel(): void {
    this.cancelled = true;
  }

  private sendBook(top: LiveBookTop): void {
    this.sentBooks.set(bookKey(top), {
      timestamp: top.timestamp,
      last_source_sequence: top.last_source_sequence,
    });
    this.o.send(top);
    this.sent++;
  }

  /** The current top-N of each kept book named, when newer than what was sent; then live. */
  private switchOver(): void {
    const o = this.o;
    const floors = new Map<string, BookFloor>();
    for (const v of o.books?.books() ?? []) {
      if (!o.all && !o.symbols.includes(v.symbol)) continue;
      const key = bookKey(v);
      const floor = this.sentBooks.get(key);
      // a copy too shallow for N (a worker's, before the parent sends deeper ones): the next update
      if (o.depth > v.exactDepth) {
        if (floor) floors.set(key, floor);
        continue;
      }
      if (floor && !newerBook(v, floor)) {
        floors.set(key, floor);
        continue;
      }
      this.sendBook(liveBookTop(v, o.depth));
    }
    // books sent from the store that the process does not keep (yet): their first live frame may be older
    for (const [key, floor] of this.sentBooks)
      if (!floors.has(key) && !o.books?.book(...splitKey(key))) floors.set(key, floor);
    o.goLive(floors);
  }

  /**
   * The stored snapshots from `fromUs` on in the store's order, one per (timestamp, exchange,
   * symbol): the shallowest holding N levels.
   * @throws {ReplayError} (400) at an instant stored only with fewer than N levels
   */
  private async *snapshots(): AsyncGenerator<BookSnapshotV2> {
    const o = this.o;
    const stream =
      o.all || o.symbols.length === 1
        ? this.pages(o.all ? undefined : o.symbols[0])
        : mergeSorted(
            o.symbols.map((s) => this.pages(s)),
            compareSnapshots,
          );
    let short: BookSnapshotV2 | null = null;
    let last: BookSnapshotV2 | null = null;
    const same = (a: BookSnapshotV2 | null, b: BookSnapshotV2) =>
      a !== null && a.timestamp === b.timestamp && a.exchange === b.exchange && a.symbol === b.symbol;
    for await (const s of stream) {
      if (short && !same(short, s)) throw this.tooShallow(short);
      if (same(last, s)) continue;
      if (s.depth < o.depth) {
        short = s;
        continue;
      }
      short = null;
      last = s;
      yield s;
    }
    if (short) throw this.tooShallow(short);
  }

  private tooShallow(s: BookSnapshotV2): ReplayError {
    return new ReplayError(
      `book.${this.o.depth}: the stored book snapshots of ${s.exchange} ${s.symbol} hold ${s.depth} levels per side (--book-depth ${s.depth}), fewer than ${this.o.depth}: subscribe to book.${s.depth} or less with from, or without from`,
      400,
    );
  }

  private async *pages(symbol: string | undefined): AsyncGenerator<BookSnapshotV2> {
    const o = this.o;
    let cursor: string | undefined;
    for (;;) {
      const page = await o.history.bookSnapshots({
        symbol,
        from: o.fromUs,
        order: "asc",
        limit: o.pageSize ?? 1000,
        cursor,
      });
      yield* page.data;
      // the last page: what is stored later is older than the book current at the switch
      if (this.cancelled || page.next_cursor === null) return;
      cursor = page.next_cursor;
    }
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf("|");
  return [key.slice(0, i), key.slice(i + 1)];
}
