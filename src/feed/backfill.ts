/**
 * Gap backfill: every sequence gap the ingest half detects is filled, when the venue allows it, from
 * the venue's REST API, and reported with its outcome.
 *
 * - The venue file describes its REST backfill declaratively ({@link RestBackfill}: URL builder and
 *   response mapper). Gaps of a data type it does not list (quotes, Coinbase's per-connection `frames`
 *   sequence) are reported `unfillable` at once, without a request.
 * - One gap at a time per venue, page after page from `from_sequence` until `to_sequence` is covered:
 *   records inside the gap are published like streamed ones (same topics, same deterministic message
 *   ids, so the store's idempotency holds), with `vendor_data.source = "rest_backfill"`; records past
 *   the gap (already streamed) are dropped.
 * - Request weights: the weight used in the current minute is read from the venue's header
 *   (`X-MBX-USED-WEIGHT-1M`); a request that would exceed the venue's budget waits for the next minute.
 *   HTTP 429 and 418 wait `Retry-After` seconds (capped), then retry the same page. Network errors and
 *   other HTTP errors are retried with backoff, `maxAttempts` times per page.
 * - Outcome: `filled` (every id of the range recovered), `partial` (some), `unfillable` (none). The gap
 *   is reported again with its status and `backfilled` count; the store upserts the row.
 */
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { GapStatus, SequenceGap, TradeV2 } from "../schema/records.js";
import { nowMicros } from "../schema/time.js";
import { Reject } from "../venues/mapping.js";
import type { RestBackfill, Venue } from "../venues/venue.js";

/** Counters of one venue's backfill, for the run summary and tests. */
export interface BackfillCounts {
  /** Gaps handed to the worker. */
  gaps: number;
  /** Of those, gaps an earlier run left `open` (stopped mid-backfill), handed over again at start. */
  resumed: number;
  filled: number;
  partial: number;
  unfillable: number;
  /** Records recovered and published. */
  records: number;
  /** REST requests made (every attempt). */
  requests: number;
  /** Answers 429 (request weight exceeded). */
  rateLimited: number;
  /** Answers 418 (IP banned after repeated violations). */
  banned: number;
  /** Venue sequence numbers neither received nor backfilled (settled gaps, plus pending ones whole). */
  missing: number;
  /** Time spent filling gaps (first request to outcome), ms. */
  fillMs: number;
}

export interface BackfillOptions {
  venue: Venue;
  /** REST base URL (`https://api.binance.com`, or a replay server's `http://127.0.0.1:PORT`). */
  baseUrl: string;
  /** Publishes one recovered record on the bus (topic of `dataType`, as a streamed record). */
  publish(record: TradeV2, dataType: "trades" | "aggtrades"): void;
  /** Publishes a gap again with its outcome (`status`, `backfilled`). */
  report(gap: SequenceGap): void;
  /** Next platform_sequence of a symbol (the feed's own counter). */
  platformSequence(symbol: string): number;
  metrics: Metrics;
  logger: Logger;
  /** Attempts per page on network errors and HTTP errors other than 429/418 (default 5). */
  maxAttempts?: number;
  /** First retry delay after an error, ms, doubling (default 500). */
  retryDelayMs?: number;
  /** Longest wait honoured for one `Retry-After` or weight-budget pause, ms (default 300000). */
  maxWaitMs?: number;
  /** Timeout of one request, ms (default 10000). */
  requestTimeoutMs?: number;
}

/** Waits `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * `Retry-After` as ms: delta-seconds or an HTTP date (RFC 9110 §10.2.3); `fallbackMs` when absent or
 * unreadable.
 */
export function retryAfterMs(value: string | null, fallbackMs: number, nowMs = Date.now()): number {
  if (value === null) return fallbackMs;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? fallbackMs : Math.max(0, at - nowMs);
}

/** Size of a gap's range (inclusive). */
const sizeOf = (g: SequenceGap) => g.to_sequence - g.from_sequence + 1;

/** Fills one venue's gaps from its REST API, one gap at a time (see the file header). */
export class BackfillWorker {
  readonly counts: BackfillCounts = {
    gaps: 0,
    resumed: 0,
    filled: 0,
    partial: 0,
    unfillable: 0,
    records: 0,
    requests: 0,
    rateLimited: 0,
    banned: 0,
    missing: 0,
    fillMs: 0,
  };
  private readonly queue: SequenceGap[] = [];
  private running: Promise<void> | null = null;
  private readonly abort = new AbortController();
  private readonly rest: RestBackfill | undefined;
  /** Upper-case exchange code. */
  readonly exchange: string;
  /** Weight used in the current minute as the venue last reported it, and when. */
  private usedWeight = 0;
  private usedWeightAt = 0;
  /** Set while the venue has banned us (418), until this time (ms since epoch). */
  bannedUntil = 0;
  /** Gaps queued or in progress. */
  private pendingGaps = 0;
  private pendingMissing = 0;

  constructor(private readonly opts: BackfillOptions) {
    this.rest = opts.venue.backfill;
    this.exchange = opts.venue.exchange;
    this.updateGauge();
  }

  /** Whether gaps of this data type can be backfilled from the venue's REST API. */
  canFill(dataType: SequenceGap["data_type"]): boolean {
    return (
      this.rest !== undefined &&
      (dataType === "trades" || dataType === "aggtrades") &&
      this.rest.dataTypes.includes(dataType)
    );
  }

  /** Gaps waiting or being filled. */
  get pending(): number {
    return this.pendingGaps;
  }

  /** Queues a gap an earlier run left `open` (read from the store at start). */
  resume(gap: SequenceGap): void {
    this.counts.resumed++;
    this.enqueue(gap);
  }

  /** Counts a gap that is not to be filled (`--no-backfill`): its ids stay missing, its row `open`. */
  skip(gap: SequenceGap): void {
    this.counts.gaps++;
    this.counts.missing += sizeOf(gap);
  }

  /** Queues a detected gap; one that cannot be backfilled is reported `unfillable` at once. */
  enqueue(gap: SequenceGap): void {
    this.counts.gaps++;
    if (!this.canFill(gap.data_type) || this.abort.signal.aborted) {
      if (!this.abort.signal.aborted) {
        this.opts.logger.warn(
          { exchange: this.exchange, symbol: gap.symbol, data_type: gap.data_type },
          `sequence gap not backfillable: ${this.exchange} has no REST history for ${gap.data_type}`,
        );
        this.settle(gap, "unfillable", 0);
      }
      return;
    }
    this.pendingGaps++;
    this.pendingMissing += sizeOf(gap);
    this.queue.push(gap);
    this.updateGauge();
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  /**
   * Resolves true when no gap is waiting or being filled, false when `timeoutMs` passed first
   * (shutdown waits for backfills in progress, bounded).
   */
  async waitIdle(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (this.running) {
      const left = end - Date.now();
      if (left <= 0) return false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.running, new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
    return true;
  }

  /** Stops: the request in flight is aborted; gaps not finished stay `open` (as stored at detection). */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async drain(): Promise<void> {
    for (let gap = this.queue.shift(); gap; gap = this.queue.shift()) {
      const t0 = performance.now();
      const progress = { recovered: 0 };
      try {
        await this.fill(gap, progress);
      } catch (err) {
        this.opts.logger.warn(
          { exchange: this.exchange, symbol: gap.symbol, err: (err as Error).message },
          "backfill failed",
        );
      }
      const recovered = progress.recovered;
      this.counts.fillMs += Math.round(performance.now() - t0);
      this.counts.records += recovered;
      if (recovered > 0) this.opts.metrics.backfillRecords.labels(this.exchange).inc(recovered);
      this.pendingGaps--;
      this.pendingMissing -= sizeOf(gap);
      if (this.abort.signal.aborted) {
        // stopped mid-gap: what was recovered is published; the gap row stays open
        this.counts.missing += sizeOf(gap) - recovered;
        this.updateGauge();
        continue;
      }
      const status: GapStatus =
        recovered >= sizeOf(gap) ? "filled" : recovered > 0 ? "partial" : "unfillable";
      this.opts.logger.info(
        {
          exchange: this.exchange,
          symbol: gap.symbol,
          data_type: gap.data_type,
          from: gap.from_sequence,
          to: gap.to_sequence,
          status,
          backfilled: recovered,
          ms: Math.round(performance.now() - t0),
        },
        `sequence gap backfill ${status}`,
      );
      this.settle(gap, status, recovered);
    }
  }

  private settle(gap: SequenceGap, status: GapStatus, backfilled: number): void {
    this.counts[status === "filled" ? "filled" : status === "partial" ? "partial" : "unfillable"]++;
    this.counts.missing += sizeOf(gap) - backfilled;
    this.opts.report({ ...gap, status, backfilled });
    this.updateGauge();
  }

  private updateGauge(): void {
    this.opts.metrics.gapsUnfilled
      .labels(this.exchange)
      .set(this.pendingGaps + this.counts.partial + this.counts.unfillable);
  }

  /** Missing ids of settled gaps plus every id of pending ones. */
  get missing(): number {
    return this.counts.missing + this.pendingMissing;
  }

  /** Pages through the gap, counting the records recovered inside it in `progress`. */
  private async fill(gap: SequenceGap, progress: { recovered: number }): Promise<void> {
    const rest = this.rest!;
    const dataType = gap.data_type as "trades" | "aggtrades";
    let from = gap.from_sequence;
    while (from <= gap.to_sequence && !this.abort.signal.aborted) {
      const limit = Math.min(rest.pageLimit, gap.to_sequence - from + 1);
      const req = rest.request(this.opts.baseUrl, gap.symbol, dataType, from, limit);
      const body = await this.get(req.url, req.weight, rest);
      if (body === undefined) break; // gave up on this page
      let records: TradeV2[];
      try {
        records = rest.records(body, {
          symbol: gap.symbol,
          dataType,
          receivedAtUs: nowMicros(),
          platformSequence: this.opts.platformSequence,
        });
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        this.opts.logger.warn(
          { exchange: this.exchange, url: req.url, reason: err.message },
          "backfill response rejected",
        );
        break;
      }
      let last = from - 1;
      for (const r of records) {
        const id = r.source_sequence;
        if (id === null || id < from) continue;
        if (id > last) last = id;
        if (id > gap.to_sequence) continue; // streamed already
        this.opts.publish(r, dataType);
        progress.recovered++;
      }
      if (last < from) break; // no progress: the venue has nothing from `from` on
      from = last + 1;
    }
  }

  /**
   * GETs `url` (request weight `weight`) within the venue's weight budget shared with the backfill,
   * honouring 429/418 `Retry-After` and retrying errors as a backfill page (the local books' REST
   * depth snapshots use it). Resolves with the parsed JSON body, or undefined when it cannot be had.
   * @throws {Error} when the venue has no REST backfill description (no weight budget)
   */
  getWeighted(url: string, weight: number): Promise<unknown> {
    if (!this.rest) throw new Error(`${this.exchange} has no REST weight budget`);
    return this.get(url, weight, this.rest);
  }

  /**
   * GETs a page within the weight budget, honouring 429/418 `Retry-After` and retrying errors.
   * Resolves with the parsed JSON body, or undefined when the page cannot be had (attempts exhausted,
   * a client error such as an unknown symbol, or stopped).
   */
  private async get(url: string, weight: number, rest: RestBackfill): Promise<unknown> {
    const signal = this.abort.signal;
    const maxAttempts = this.opts.maxAttempts ?? 5;
    const maxWait = this.opts.maxWaitMs ?? 300_000;
    let errors = 0;
    for (;;) {
      if (signal.aborted) return undefined;
      await this.paceWeight(weight, rest, maxWait);
      const wait = this.bannedUntil - Date.now();
      if (wait > 0) await sleep(Math.min(wait, maxWait), signal);
      if (signal.aborted) return undefined;
      this.counts.requests++;
      let res: Response;
      let body: unknown;
      try {
        res = await fetch(url, {
          signal: AbortSignal.any([signal, AbortSignal.timeout(this.opts.requestTimeoutMs ?? 10_000)]),
          headers: { accept: "application/json" },
        });
        this.readWeight(res, rest);
        if (res.status === 429 || res.status === 418) {
          await res.body?.cancel();
          const banned = res.status === 418;
          this.opts.metrics.backfillRequests.labels(this.exchange, banned ? "banned" : "rate_limited").inc();
          if (banned) this.counts.banned++;
          else this.counts.rateLimited++;
          const ms = Math.min(maxWait, retryAfterMs(res.headers.get("retry-after"), banned ? 60_000 : 1000));
          if (banned) this.bannedUntil = Date.now() + ms;
          this.opts.logger.warn(
            { exchange: this.exchange, status: res.status, retryAfterMs: ms },
            banned
              ? "backfill: the venue banned this IP for exceeding request weight; waiting"
              : "backfill: request weight exceeded; waiting Retry-After",
          );
          await sleep(ms, signal);
          continue;
        }
        if (!res.ok) {
          const text = (await res.text()).slice(0, 200);
          throw Object.assign(new Error(`HTTP ${res.status}: ${text}`), { status: res.status });
        }
        body = await res.json();
      } catch (err) {
        if (signal.aborted) return undefined;
        this.opts.metrics.backfillRequests.labels(this.exchange, "error").inc();
        const status = (err as { status?: number }).status;
        errors++;
        const clientError = status !== undefined && status >= 400 && status < 500;
        this.opts.logger.warn(
          { exchange: this.exchange, url, err: (err as Error).message, attempt: errors },
          clientError || errors >= maxAttempts
            ? "backfill request failed; giving up"
            : "backfill request failed; retrying",
        );
        if (clientError || errors >= maxAttempts) return undefined;
        await sleep((this.opts.retryDelayMs ?? 500) * 2 ** (errors - 1), signal);
        continue;
      }
      this.opts.metrics.backfillRequests.labels(this.exchange, "ok").inc();
      return body;
    }
  }

  /** Records the weight the venue reports as used in the current minute. */
  private readWeight(res: Response, rest: RestBackfill): void {
    if (!rest.usedWeightHeader) return;
    const v = res.headers.get(rest.usedWeightHeader);
    if (v !== null && /^\d+$/.test(v)) {
      this.usedWeight = Number(v);
      this.usedWeightAt = Date.now();
    }
  }

  /** Waits for the next minute when `weight` more would exceed the venue's budget. */
  private async paceWeight(weight: number, rest: RestBackfill, maxWait: number): Promise<void> {
    const now = Date.now();
    const minute = Math.floor(now / 60_000);
    if (Math.floor(this.usedWeightAt / 60_000) !== minute) this.usedWeight = 0; // a new minute
    if (this.usedWeight + weight <= rest.weightPerMinute) return;
    const wait = Math.min(maxWait, (minute + 1) * 60_000 - now);
    this.opts.logger.info(
      { exchange: this.exchange, usedWeight: this.usedWeight, waitMs: wait },
      "backfill: request weight budget of this minute used; waiting",
    );
    await sleep(wait, this.abort.signal);
    this.usedWeight = 0;
  }
}

/**
 * /health problems of the backfill, one sentence each: a venue that has banned this IP (HTTP 418), so
 * gaps cannot be filled until the ban ends.
 */
export function backfillProblems(workers: readonly BackfillWorker[], nowMs = Date.now()): string[] {
  const out: string[] = [];
  for (const w of workers) {
    const left = w.bannedUntil - nowMs;
    if (left > 0) {
      out.push(
        `backfill of ${w.exchange} banned by the venue (HTTP 418) for ${Math.ceil(left / 1000)} s more; ${w.pending} gaps waiting`,
      );
    }
  }
  return out;
}
