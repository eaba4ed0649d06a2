/**
 * Backlog budget: bounds the records held in memory between receipt and the store (`--max-backlog`,
 * records received and not yet stored: the publisher's buffer plus, on the in-process memory bus, the
 * persist group's queue and batch in flight). When the store falls behind and the backlog reaches the
 * budget, the policy (`--backlog-policy`) applies:
 *
 * - `block`: stop reading the venue sockets (`VenueConnection.pause()`, so TCP flow control pushes
 *   back on the venue) until the backlog falls to the low-water mark (half the budget), then resume.
 *   Frames already read from a socket when it pauses still come in (at most a socket read, tens of
 *   KiB), so the backlog may pass the budget by that much.
 * - `spill` (default): records beyond the budget are appended to the local spill journal
 *   (`bus/journal.ts`) instead of memory. Once the journal holds records, every new record goes there
 *   too (order is kept); when the backlog falls below the low-water mark, the oldest journaled records
 *   are read back and published, up to the budget.
 *
 * In both policies a journal left by an earlier process (shutdown timeout, or a kill while spilling)
 * is read back first, at start, at the same pace.
 *
 * Metrics: `k2_backlog_records`, `k2_backlog_budget_records`, `k2_journal_records`.
 */
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { BusMessage } from "./bus.js";
import type { Journal } from "./journal.js";

/** What to do when the backlog reaches its budget. */
export type BacklogPolicy = "block" | "spill";

/** Options of a {@link BacklogGate}. */
export interface BacklogOptions {
  /** Most records held in memory (`--max-backlog`). */
  budget: number;
  policy: BacklogPolicy;
  /** Read back / resume below this many records (default half the budget). */
  lowWater?: number;
  /** Records received and not yet stored, in memory now. */
  backlog: () => number;
  /** The spill journal (also read back at start under `block`). */
  journal: Journal;
  /** Publishes read-back records, bypassing the gate. */
  publish: (m: BusMessage) => void;
  /** Stops / restarts reading the venue sockets (`block`). */
  pause: () => void;
  resume: () => void;
  metrics: Metrics;
  logger: Logger;
  /** How often the gate looks at the backlog, ms (default 20). */
  intervalMs?: number;
}

export class BacklogGate {
  /** True while the venue sockets are paused (`block`). */
  paused = false;
  /** Highest in-memory backlog seen, records. */
  peak = 0;
  /** Records spilled to the journal by this process. */
  spilled = 0;
  /** Records read back from the journal. */
  readBack = 0;
  private readonly lowWater: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly spillWarned = { at: 0 };

  constructor(private readonly opts: BacklogOptions) {
    this.lowWater = opts.lowWater ?? Math.floor(opts.budget / 2);
    opts.metrics.backlogBudget.set(opts.budget);
    opts.metrics.journalRecords.set(opts.journal.records);
  }

  /**
   * The publisher's admission hook: true when the record was spilled to the journal (policy `spill`
   * and the backlog at its budget, or older records still in the journal); false lets it into memory.
   * Under `block` it pauses the feeds as soon as the budget is reached.
   */
  admit(m: BusMessage): boolean {
    const o = this.opts;
    const backlog = o.backlog();
    if (backlog > this.peak) this.peak = backlog;
    if (o.policy === "spill") {
      if (o.journal.records > 0 || backlog >= o.budget) {
        try {
          o.journal.append([m]);
        } catch (err) {
          // the journal's disk refuses (full, read-only): keep the record in memory rather than lose it
          if (Date.now() - this.spillWarned.at > 10_000) {
            this.spillWarned.at = Date.now();
            o.logger.error(
              { err: (err as Error).message, dir: o.journal.dir },
              "spill journal not writable: keeping records in memory over the budget",
            );
          }
          return false;
        }
        this.spilled++;
        if (Date.now() - this.spillWarned.at > 10_000) {
          this.spillWarned.at = Date.now();
          o.logger.warn(
            { budget: o.budget, journal: o.journal.records, dir: o.journal.dir },
            "backlog over budget: spilling records to the journal",
          );
        }
        return true;
      }
      return false;
    }
    if (!this.paused && backlog >= o.budget) this.pauseFeeds();
    return false;
  }

  /** Starts watching the backlog (read-back, resume, metrics). */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs ?? 20);
    this.timer.unref();
    this.tick();
  }

  /** Stops watching (shutdown): the journal stays as it is; paused feeds stay paused. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      this.opts.journal.flush();
    } catch (err) {
      this.opts.logger.error({ err: (err as Error).message }, "spill journal flush failed");
    }
    this.opts.metrics.journalRecords.set(this.opts.journal.records);
  }

  /** One look at the backlog: read back journaled records, pause or resume feeds, update metrics. */
  tick(): void {
    const o = this.opts;
    let backlog = o.backlog();
    if (o.journal.records > 0 && backlog < this.lowWater) {
      const batch = o.journal.read(o.budget - backlog);
      for (const m of batch) o.publish(m);
      this.readBack += batch.length;
      backlog += batch.length;
    } else if (o.policy === "spill" && o.journal.records > 0) {
      try {
        o.journal.flush(); // journaled records reach the disk within a tick
      } catch (err) {
        o.logger.error({ err: (err as Error).message, dir: o.journal.dir }, "spill journal flush failed");
      }
    }
    if (o.policy === "block") {
      if (!this.paused && backlog >= o.budget) this.pauseFeeds();
      else if (this.paused && backlog <= this.lowWater) {
        this.paused = false;
        o.resume();
        o.logger.info({ backlog, lowWater: this.lowWater }, "backlog below low-water mark: feeds resumed");
      }
    }
    if (backlog > this.peak) this.peak = backlog;
    o.metrics.backlogRecords.set(backlog);
    o.metrics.journalRecords.set(o.journal.records);
  }

  private pauseFeeds(): void {
    this.paused = true;
    this.opts.pause();
    this.opts.logger.warn(
      { backlog: this.opts.backlog(), budget: this.opts.budget },
      "backlog at budget: venue sockets paused (TCP push-back) until the store catches up",
    );
  }
}
