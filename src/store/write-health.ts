/**
 * Store write health as the persist consumer sees it: when the last batch committed, and since when
 * (and why) writes have been failing. `store.check()` only asks whether the store answers; this is
 * whether it actually takes our writes (a full disk answers `SELECT 1` and refuses every INSERT).
 *
 * Feeds `/health` (one problem sentence, see {@link StoreWriteHealth.problem}) and the metrics
 * `k2_store_last_write_success_timestamp_seconds` and `k2_store_write_failing`.
 */
import type { Metrics } from "../ops/metrics.js";

export class StoreWriteHealth {
  /** Last committed batch write, ms since epoch (0: none yet). */
  lastSuccessAt = 0;
  /** First failure of the current run of failures, ms since epoch (0: last write succeeded). */
  failingSince = 0;
  /** Error of the last failed write. */
  lastError = "";
  /** Start of the batch write in progress, ms since epoch (0: none). */
  writingSince = 0;

  /**
   * @param stallMs a write running longer than this (ms, default 30 s) is reported as stalled (a
   *   store that blocks instead of failing: locked tables, a hung disk)
   */
  constructor(
    private readonly metrics?: Metrics,
    private readonly stallMs = 30_000,
  ) {}

  /** A batch write starts. */
  started(nowMs = Date.now()): void {
    this.writingSince = nowMs;
  }

  /** A batch write committed. */
  succeeded(nowMs = Date.now()): void {
    this.writingSince = 0;
    this.lastSuccessAt = nowMs;
    this.failingSince = 0;
    this.lastError = "";
    this.metrics?.storeLastWriteSuccess.set(nowMs / 1000);
    this.metrics?.storeWriteFailing.set(0);
  }

  /** A batch write failed (it will be retried). */
  failed(err: unknown, nowMs = Date.now()): void {
    this.writingSince = 0;
    if (this.failingSince === 0) this.failingSince = nowMs;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.metrics?.storeWriteFailing.set(1);
  }

  /**
   * The `/health` sentence while writes fail, e.g.
   * `store: writes failing for 12 s: IO Error: No space left on device; 4,274 records waiting`, or
   * while one write runs past the stall time, `store: a batch write has not finished for 45 s; 4,274
   * records waiting`; null otherwise. `waiting`: records received and not yet stored.
   */
  problem(waiting: number, nowMs = Date.now()): string | null {
    if (this.writingSince > 0 && nowMs - this.writingSince > this.stallMs) {
      const s = Math.round((nowMs - this.writingSince) / 1000);
      return `store: a batch write has not finished for ${s} s; ${waiting.toLocaleString("en-US")} records waiting`;
    }
    if (this.failingSince === 0) return null;
    const s = Math.max(0, Math.round((nowMs - this.failingSince) / 1000));
    const err = this.lastError.replace(/\s+/g, " ").slice(0, 300);
    return `store: writes failing for ${s} s: ${err}; ${waiting.toLocaleString("en-US")} records waiting`;
  }
}
