/**
 * Prometheus metrics (prom-client), one registry per pipeline so tests can run several in a process.
 * Names follow Prometheus conventions with the `k2_` prefix; latency histograms are in seconds.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();
  /**
   * Called before every scrape of the per-frame counters. Hot paths count in plain numbers and a hook
   * moves the difference into the prom-client counters, so no label lookup happens per frame.
   */
  readonly collectHooks: (() => void)[] = [];
  private readonly runHooks = () => {
    for (const h of this.collectHooks) h();
  };
  readonly connectionState = new Gauge({
    name: "k2_connection_state",
    help: "Feed connection state: 0 DISCONNECTED, 1 CONNECTING, 2 CONNECTED, 3 ERROR",
    labelNames: ["exchange"],
    registers: [this.registry],
  });
  readonly framesReceived = new Counter({
    name: "k2_frames_received_total",
    help: "Market data frames received, by venue stream",
    labelNames: ["exchange", "stream"],
    registers: [this.registry],
    collect: () => this.runHooks(),
  });
  readonly controlFrames = new Counter({
    name: "k2_control_frames_total",
    help: "Frames without market data (subscription acks, heartbeats, status)",
    labelNames: ["exchange", "kind"],
    registers: [this.registry],
  });
  readonly normalized = new Counter({
    name: "k2_records_normalized_total",
    help: "Records normalized, by data type",
    labelNames: ["exchange", "data_type"],
    registers: [this.registry],
    collect: () => this.runHooks(),
  });
  readonly rejected = new Counter({
    name: "k2_records_rejected_total",
    help: "Frames rejected into the dead-letter store",
    labelNames: ["exchange"],
    registers: [this.registry],
    collect: () => this.runHooks(),
  });
  readonly stored = new Counter({
    name: "k2_records_stored_total",
    help: "Records newly written to the store, by table",
    labelNames: ["table"],
    registers: [this.registry],
  });
  readonly duplicates = new Counter({
    name: "k2_records_duplicate_total",
    help: "Records the store already held (skipped)",
    registers: [this.registry],
  });
  readonly batchWriteSeconds = new Histogram({
    name: "k2_batch_write_seconds",
    help: "Store batch write latency",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly batchRecords = new Histogram({
    name: "k2_batch_records",
    help: "Records per store batch",
    buckets: [1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000],
    registers: [this.registry],
  });
  readonly venueLatencySeconds = new Histogram({
    name: "k2_venue_to_receipt_seconds",
    help: "Venue event time to receipt (trades: T); a replay on the recorded clock shows the recording's own latency",
    labelNames: ["exchange"],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [this.registry],
  });
  readonly reconnects = new Counter({
    name: "k2_reconnects_total",
    help: "Feed reconnects scheduled after a drop or failed attempt",
    labelNames: ["exchange"],
    registers: [this.registry],
  });
  readonly gaps = new Counter({
    name: "k2_sequence_gaps_total",
    help: "Sequence gaps detected",
    labelNames: ["exchange", "data_type"],
    registers: [this.registry],
  });
  readonly gapMissing = new Counter({
    name: "k2_sequence_gap_missing_total",
    help: "Venue sequence numbers missing in detected gaps",
    labelNames: ["exchange", "data_type"],
    registers: [this.registry],
  });
  readonly consumerLag = new Gauge({
    name: "k2_consumer_lag",
    help: "Messages published to the bus and not yet acknowledged by the store consumer",
    registers: [this.registry],
  });
  readonly busRedeliveries = new Gauge({
    name: "k2_bus_redeliveries",
    help: "Messages delivered again after a failed store write or a consumer that died before acking",
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: "k2_store_errors_total",
    help: "Failed batch writes (retried)",
    registers: [this.registry],
  });
  // feed liveness (read-idle watchdog): set at scrape time by the ingest's collect hook
  readonly feedSilent = new Gauge({
    name: "k2_feed_silent",
    help: "1 while the feed connection is judged dead or silent past its liveness deadline, else 0",
    labelNames: ["exchange"],
    registers: [this.registry],
    collect: () => this.runHooks(),
  });
  readonly feedLastFrameAge = new Gauge({
    name: "k2_feed_last_frame_age_seconds",
    help: "Seconds since the feed's last frame (since its start when none arrived yet)",
    labelNames: ["exchange"],
    registers: [this.registry],
    collect: () => this.runHooks(),
  });

  // --- gap backfill (engineer C: src/feed/backfill.ts) ---
  readonly backfillRecords = new Counter({
    name: "k2_backfill_records_total",
    help: "Records recovered from the venue's REST API to fill sequence gaps",
    labelNames: ["exchange"],
    registers: [this.registry],
  });
  readonly backfillRequests = new Counter({
    name: "k2_backfill_requests_total",
    help: "Backfill REST requests, by result: ok, rate_limited (429), banned (418), error",
    labelNames: ["exchange", "result"],
    registers: [this.registry],
  });
  readonly bookResyncs = new Counter({
    name: "k2_book_resyncs_total",
    help: "Local order books discarded and rebuilt from a new snapshot after a sequence break, by symbol",
    labelNames: ["exchange", "symbol"],
    registers: [this.registry],
  });
  readonly bookChecksums = new Counter({
    name: "k2_book_checksum_total",
    help: "Venue book checksums verified against the local order book, by result: ok, failed",
    labelNames: ["exchange", "result"],
    registers: [this.registry],
  });
  readonly bookCrossed = new Counter({
    name: "k2_book_crossed_total",
    help: "Depth diffs after which the local order book was crossed (best bid >= best ask)",
    labelNames: ["exchange", "symbol"],
    registers: [this.registry],
  });
  readonly bookCrossChecks = new Counter({
    name: "k2_book_crosscheck_total",
    help: "Local order book top level compared with a best bid/ask frame of the same update id, by result: match, mismatch",
    labelNames: ["exchange", "result"],
    registers: [this.registry],
  });
  readonly bookDepth = new Gauge({
    name: "k2_book_depth",
    help: "Price levels held by the local order book, by symbol and side",
    labelNames: ["exchange", "symbol", "side"],
    registers: [this.registry],
  });
  readonly gapsUnfilled = new Gauge({
    name: "k2_gaps_unfilled",
    help: "Sequence gaps detected by this process whose records are not (or not yet) all recovered",
    labelNames: ["exchange"],
    registers: [this.registry],
  });

  // Hostile venue input (engineer D): normalizer anomalies and normalizer failures
  readonly conflictingDuplicates = new Counter({
    name: "k2_conflicting_duplicates_total",
    help: "Trades whose venue id was seen before with different content (dead-lettered with both versions)",
    labelNames: ["exchange"],
    registers: [this.registry],
  });
  readonly sequenceRegressions = new Counter({
    name: "k2_sequence_regressions_total",
    help: "Trades whose venue id is below the last seen and not a known duplicate (stored)",
    labelNames: ["exchange"],
    registers: [this.registry],
  });
  readonly normalizerErrors = new Counter({
    name: "k2_normalizer_errors_total",
    help: "Frames whose normalizer threw (a bug; the frame is dead-lettered and the feed goes on)",
    labelNames: ["exchange"],
    registers: [this.registry],
  });

  // --- nothing lost (engineer B): store write health, poison records, backlog budget, spill journal ---
  readonly storeLastWriteSuccess = new Gauge({
    name: "k2_store_last_write_success_timestamp_seconds",
    help: "Unix time of the last batch write the store committed, seconds",
    registers: [this.registry],
  });
  readonly storeWriteFailing = new Gauge({
    name: "k2_store_write_failing",
    help: "1 while the last store batch write failed (retrying), else 0",
    registers: [this.registry],
  });
  readonly poisonRecords = new Counter({
    name: "k2_poison_records_total",
    help: "Records the store rejected on their own (isolated by bisecting the batch), sent to dead letters",
    labelNames: ["table"],
    registers: [this.registry],
  });
  readonly journalRecords = new Gauge({
    name: "k2_journal_records",
    help: "Records waiting in the local spill journal (not yet read back into the pipeline)",
    registers: [this.registry],
  });
  readonly backlogRecords = new Gauge({
    name: "k2_backlog_records",
    help: "Records received and not yet stored, held in memory (publisher buffer and bus queue)",
    registers: [this.registry],
  });
  readonly backlogBudget = new Gauge({
    name: "k2_backlog_budget_records",
    help: "Most records held in memory before the backlog policy (block or spill) applies (--max-backlog)",
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: "k2_process_" });
  }
}

/**
 * Memoizes a set of metrics per {@link Metrics} instance: the returned function builds the set on
 * first use for a given instance (`build` gets the registers to pass to prom-client, i.e. that
 * instance's registry) and returns the same set afterwards, so a stage started twice in a process
 * does not register its metric names twice on one registry.
 * @example export const serveMetrics = metricSet((registers) => ({ errors: new Counter({ name, help, registers }) }));
 */
export function metricSet<T>(build: (registers: Registry[]) => T): (metrics: Metrics) => T {
  const cache = new WeakMap<Metrics, T>();
  return (metrics) => {
    let set = cache.get(metrics);
    if (set === undefined) {
      set = build([metrics.registry]);
      cache.set(metrics, set);
    }
    return set;
  };
}
