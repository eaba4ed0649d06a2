/**
 * Live first, history when there is time: the two schedulers of `from` subscriptions' history
 * (issue #16: a slow replay client must not delay live clients).
 *
 *  - {@link HistoryQueue}, where the pages are read (the process holding the store: the ingest
 *    process). Reading a page costs its event loop the conversion of the rows and, for a gateway
 *    worker, the serialization of the page onto the IPC channel: milliseconds per page, during which
 *    ingest and the live fan-out wait. So page reads run one at a time, in arrival order (each replay
 *    stream has at most one page asked for, so the order is fair across replays and clients), and
 *    after each one the queue waits long enough that history takes at most {@link HISTORY_LOOP_SHARE}
 *    of the event loop (measured with `performance.eventLoopUtilization()` over the read). Replays then
 *    slow down when there are many of them, never the live path.
 *  - {@link HistoryPacer}, where the records are sent (the gateway): replays send their records in
 *    slices of at most {@link HISTORY_SLICE_MS}, round-robin across replays, and each slice starts from
 *    `setImmediate`, after the event loop has polled for I/O: live records that arrived meanwhile (a
 *    worker's stdin) are fanned out before the next slice of history.
 */
import { performance } from "node:perf_hooks";
import type { BookSnapshotV2 } from "../../schema/books.js";
import type { QuoteV2, TradeV2 } from "../../schema/records.js";
import type { MarketQuery, Page, TextPage } from "../../store/page.js";
import type { CandlePage, CandleQuery } from "../rest/source.js";
import type { ReplayHistory } from "./replay.js";

/**
 * Largest share of the event loop (0..1) history page reads may take while live clients are served.
 * On a 2-core host every core a replay keeps busy (DuckDB, the gateways, the replaying clients) is
 * one the live path competes for: `bench/replay-load.ts` (20 replayers) put the live client's p99 at
 * 1.48× and 1.8× its baseline with 5 %, 2.8–4× with the 20 % of before (same runs, loaded host).
 * Without live clients history is not held to it.
 */
export const HISTORY_LOOP_SHARE = 0.05;

/** Longest a slice of history sends runs before the event loop gets a turn, ms. */
export const HISTORY_SLICE_MS = 2;

/**
 * Longest slice of history sends while live work is pending, ms: a live record that arrives during a
 * slice waits at most this long for it to end.
 */
export const HISTORY_BUSY_SLICE_MS = 0.5;

/**
 * Most records per trades or quotes page read while live work is pending: the reading process's loop
 * is held for one page's conversion and hand-over at a time, so a smaller page is a shorter wait for a
 * live record that arrives meanwhile (the replay follows `next_cursor` as with a full page).
 */
export const HISTORY_BUSY_PAGE_ROWS = 100;

/**
 * Largest share of a gateway's event loop (0..1) history sends may take while live clients are
 * served (see {@link HISTORY_LOOP_SHARE}).
 */
export const HISTORY_SEND_SHARE = 0.05;

/**
 * How long after the last live record handled live work counts as pending, ms: within it history is
 * held to its share of the event loop; after it (no live client served lately) history pages and
 * slices follow each other at once, still one event-loop turn apart.
 */
export const LIVE_QUIET_MS = 250;

/**
 * Tells whether live work is pending: {@link LiveActivity.mark} on each live record handed to clients
 * (or to the gateway workers), {@link LiveActivity.busy} true within {@link LIVE_QUIET_MS} after.
 */
export class LiveActivity {
  private last = Number.NEGATIVE_INFINITY;
  private reported = Number.NEGATIVE_INFINITY;

  /**
   * @param quietMs how long after the last live record live work counts as pending, ms
   * @param report called on a mark at most once per `quietMs / 2` (a gateway worker tells the process
   *   that reads its history pages, so that the reads there keep to their share while it serves live
   *   clients)
   */
  constructor(
    private readonly quietMs = LIVE_QUIET_MS,
    private readonly report?: () => void,
  ) {}

  /** A live record was handed on now. */
  mark(): void {
    const now = performance.now();
    this.last = now;
    if (this.report && now - this.reported >= this.quietMs / 2) {
      this.reported = now;
      this.report();
    }
  }

  /** True while live records were handed on within the last `quietMs`. */
  busy(): boolean {
    return performance.now() - this.last < this.quietMs;
  }
}

/**
 * Records per history page, by channel: about 100–250 KB of JSON, so that reading, converting and
 * (in worker mode) passing one page over IPC each hold an event loop for a few milliseconds only.
 */
export const HISTORY_PAGE_SIZE = { trades: 500, quotes: 500, candles: 500 } as const;

/**
 * Book snapshots per history page for `book.{N}` (a snapshot holds `depth` levels per side, about
 * 60 bytes each): at most 500, at least 10.
 */
export function bookPageSize(depth: number): number {
  return Math.max(10, Math.min(500, Math.floor(150_000 / (120 * Math.max(1, depth) + 200))));
}

/** Runs history page reads one at a time, within a share of the event loop (see the module comment). */
export class HistoryQueue {
  private readonly tasks: (() => Promise<unknown>)[] = [];
  private running = false;
  private closed = false;

  /**
   * @param share largest share of the event loop (0 < share ≤ 1) the tasks may take together while
   *   live work is pending
   * @param busy whether live work is pending (default: always): when not, the next task runs at the
   *   next turn of the event loop, without waiting out the share
   */
  constructor(
    private readonly share = HISTORY_LOOP_SHARE,
    private readonly busy: () => boolean = () => true,
  ) {}

  /** Whether live work is pending (the `busy` given). */
  liveBusy(): boolean {
    return this.busy();
  }

  /** Pages waiting (not counting the one being read). */
  get waiting(): number {
    return this.tasks.length;
  }

  /**
   * Runs `task` after those queued before it; resolves or rejects as it does.
   * @throws {Error} (rejects) when the queue was closed before the task ran
   */
  run<T>(task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.tasks.push(() => {
        if (this.closed) {
          reject(new Error("history queue closed"));
          return Promise.resolve();
        }
        return task().then(resolve, reject);
      });
      if (!this.running) this.next();
    });
  }

  /** Refuses the tasks queued and any later one (they reject). */
  close(): void {
    this.closed = true;
    for (const t of this.tasks.splice(0)) t();
  }

  private next(): void {
    const task = this.tasks.shift();
    if (!task) {
      this.running = false;
      return;
    }
    this.running = true;
    const start = performance.eventLoopUtilization();
    const t0 = performance.now();
    task().finally(() => {
      // the loop's busy time over the read counts against history (ingest's share of it too: the
      // estimate errs on the side of live work); then the loop is left to others that long again
      const busy = performance.eventLoopUtilization(start).active;
      const spent = Math.min(busy, performance.now() - t0);
      const rest = this.busy() ? (spent * (1 - this.share)) / this.share : 0;
      if (rest < 1) setImmediate(() => this.next());
      else setTimeout(() => this.next(), rest);
    });
  }
}

/** `history` with every page read through `queue` (one at a time, within its share of the loop). */
export function pacedHistory(history: ReplayHistory, queue = new HistoryQueue()): ReplayHistory {
  const paced: ReplayHistory = {
    trades: (q: MarketQuery): Promise<Page<TradeV2>> => queue.run(() => history.trades(q)),
    quotes: (q: MarketQuery): Promise<Page<QuoteV2>> => queue.run(() => history.quotes(q)),
  };
  const { candles, bookSnapshots, tradesText, quotesText } = history;
  if (tradesText)
    paced.tradesText = (q: MarketQuery): Promise<TextPage> =>
      queue.run(() => tradesText.call(history, busyPage(q, queue.liveBusy())));
  if (quotesText)
    paced.quotesText = (q: MarketQuery): Promise<TextPage> =>
      queue.run(() => quotesText.call(history, busyPage(q, queue.liveBusy())));
  if (candles)
    paced.candles = (q: CandleQuery): Promise<CandlePage> => queue.run(() => candles.call(history, q));
  if (bookSnapshots)
    paced.bookSnapshots = (q: MarketQuery): Promise<Page<BookSnapshotV2>> =>
      queue.run(() => bookSnapshots.call(history, q));
  return paced;
}

/**
 * `q` with its page cut to {@link HISTORY_BUSY_PAGE_ROWS} records when live work is pending (`busy`),
 * else as it is.
 */
export function busyPage<Q extends { limit: number }>(q: Q, busy: boolean): Q {
  return busy && q.limit > HISTORY_BUSY_PAGE_ROWS ? { ...q, limit: HISTORY_BUSY_PAGE_ROWS } : q;
}

/** Grants history sends in slices between event-loop turns (see the module comment). */
export class HistoryPacer {
  private sliceEnd = 0;
  private scheduled = false;
  private waiting: (() => void)[] = [];

  private sliceStart = 0;

  /**
   * @param sliceMs longest slice of history sends, ms ({@link HISTORY_BUSY_SLICE_MS} at most while live
   *   work is pending)
   * @param share largest share of the event loop (0 < share ≤ 1) the slices take while live work is
   *   pending: after a slice of `t` ms the next starts `t·(1 − share)/share` ms later at the earliest
   * @param busy whether live work is pending (default: always): when not, the next slice starts at the
   *   next turn of the event loop
   */
  constructor(
    private readonly sliceMs = HISTORY_SLICE_MS,
    private readonly share = HISTORY_SEND_SHARE,
    private readonly busy: () => boolean = () => true,
  ) {}

  /**
   * Resolves when history may send its next record: at once within the current slice, else at the
   * start of the next one (after the event loop has polled for I/O), after those waiting before.
   */
  turn(): Promise<void> {
    if (this.waiting.length === 0 && performance.now() < this.sliceEnd) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        // the slice that ended (or is ending now) is followed by its rest
        const now = performance.now();
        const spent = Math.max(0, Math.min(now, this.sliceEnd) - this.sliceStart);
        const rest = this.busy()
          ? (spent * (1 - this.share)) / this.share - Math.max(0, now - this.sliceEnd)
          : 0;
        if (rest < 1) setImmediate(() => this.slice());
        else setTimeout(() => this.slice(), rest);
      }
    });
  }

  private slice(): void {
    this.scheduled = false;
    this.sliceStart = performance.now();
    this.sliceEnd =
      this.sliceStart + (this.busy() ? Math.min(this.sliceMs, HISTORY_BUSY_SLICE_MS) : this.sliceMs);
    // each resumes in turn (promise jobs run in order) and asks again: round-robin within the slice
    const due = this.waiting;
    this.waiting = [];
    for (const resolve of due) resolve();
  }
}
