/**
 * The pipeline, top to bottom: venue → normalize → bus → store → serve.
 *
 *   1. feed:      a VenueConnection per venue receives raw frames (live, or a local replay server)
 *   2. normalize: the venue's normalizer turns each frame into trades_v2 / quotes_v2 records, dead
 *                 letters and sequence gaps, stamped with their receipt time
 *   3. bus:       records are published on `market.{asset_class}.{type}.{exchange}` keyed by symbol
 *                 (book changes on `…book…`, periodic top-N book snapshots on `…booksnapshots…`);
 *                 the publisher (`bus/publisher.ts`) waits for the bus's ack
 *   4. store:     a consumer takes batches (500 records or 2 s, growing under backlog), writes them
 *                 idempotently and acks only after the store has them
 *   5. serve:     `/health` and `/metrics`, the API and the WebSocket gateway (`serve/`), with live
 *                 candles built from the bus's trades and published back on it (`candles/`)
 *
 * This file holds stages 1–4: `startIngest` (feed → normalize → bus) and `startPersist` (bus →
 * store). `startProcess` (`run.ts`) wires them with serving, all in one process (`k2 run`) or one
 * role per process (`k2 ingest`, `k2 persist`, `k2 serve`) when a networked bus sits between them.
 */
import type { Bus, BusMessage, Consumer } from "./bus/bus.js";
import { topicKind } from "./bus/bus.js";
import type { Publisher } from "./bus/publisher.js";
import { type BackfillOptions, BackfillWorker } from "./feed/backfill.js";
import { BookSnapshotter } from "./feed/book-snapshots.js";
import { BinanceBookKeeper } from "./feed/books.js";
import { CoinbaseBookKeeper } from "./feed/coinbase-books.js";
import {
  type ConnectionState,
  type LivenessOverrides,
  STATE_CODE,
  VenueConnection,
} from "./feed/connection.js";
import { KrakenBookKeeper } from "./feed/kraken-books.js";
import type { Logger } from "./ops/logger.js";
import type { Metrics } from "./ops/metrics.js";
import {
  type BookChangeV2,
  type BookSnapshotV2,
  bookChangeTopic,
  bookSnapshotTopic,
} from "./schema/books.js";
import type { CandleV2 } from "./schema/candles.js";
import {
  type DataType,
  type DeadLetter,
  deadLetterTopic,
  type QuoteV2,
  type SequenceGap,
  type TradeV2,
  topicFor,
} from "./schema/records.js";
import { nowMicros } from "./schema/time.js";
import { writeIsolatingPoison } from "./store/poison.js";
import { emptyBatch, type Store, type WriteBatch } from "./store/store.js";
import { StoreWriteHealth } from "./store/write-health.js";
import { deadLetterOf, reasonText } from "./venues/mapping.js";
import {
  type NormalizedSink,
  SequenceTracker,
  type StoredSequence,
  type Subscription,
  type Venue,
  type VenueAnomaly,
} from "./venues/venue.js";

/** Counters reported by `--exit-at-end` and at shutdown. */
export interface IngestCounts {
  /** Market data frames received (subscription acks and other control frames excluded). */
  frames: number;
  trades: number;
  aggTrades: number;
  quotes: number;
  /** Depth diffs (book changes) received. */
  bookChanges: number;
  /** Top-N book snapshots taken (`--book-depth`, `--book-interval`). */
  bookSnapshots: number;
  /** Frames rejected into the dead-letter store. */
  rejected: number;
  gaps: number;
}

/** Ingest counters at zero. */
export function emptyIngestCounts(): IngestCounts {
  return {
    frames: 0,
    trades: 0,
    aggTrades: 0,
    quotes: 0,
    bookChanges: 0,
    bookSnapshots: 0,
    rejected: 0,
    gaps: 0,
  };
}

/** Counters of the store side. */
export interface PersistCounts {
  stored: number;
  duplicates: number;
  batches: number;
  /** Records the store rejected on their own, stored as dead letters instead. */
  poison: number;
  /** When the last batch was committed, `performance.now()` ms (0: none yet). */
  lastWriteAt: number;
  /** Book changes stored (`--store-book-changes`) and top-N book snapshots stored. */
  bookChanges: number;
  bookSnapshots: number;
}

/** Store-side counters of a persist that has stored nothing yet (all zero). */
export function emptyPersistCounts(): PersistCounts {
  return {
    stored: 0,
    duplicates: 0,
    batches: 0,
    poison: 0,
    lastWriteAt: 0,
    bookChanges: 0,
    bookSnapshots: 0,
  };
}

/** Top-N snapshots of the books a feed keeps (`--book-depth`, `--book-interval`). */
export interface BookSnapshotConfig {
  /** Levels per side, ≥ 1 (default 10). */
  depth: number;
  /** Interval on the venue's clock, µs (default 1 s). */
  intervalUs: number;
}

/** Defaults of {@link BookSnapshotConfig}: `--book-depth 10 --book-interval 1s`. */
export const DEFAULT_BOOK_SNAPSHOTS: BookSnapshotConfig = { depth: 10, intervalUs: 1_000_000 };

/** One venue feed in the ingest half. */
export interface FeedHandle {
  venue: Venue;
  connection: VenueConnection;
  counts: IngestCounts;
  /** Control frames (acks, heartbeats). */
  control: number;
  /** Fills this feed's sequence gaps from the venue's REST API (reports every gap's outcome). */
  backfill: BackfillWorker;
  /** Local order books kept from the depth stream (subscribed with `--streams …,depth`), or null. */
  books: BinanceBookKeeper | null;
  /** Books verified by the venue's checksum (Kraken `--streams …,book`), or null. */
  checksumBooks: KrakenBookKeeper | null;
  /** Books numbered by the connection's `sequence_num` (Coinbase `--streams …,level2`), or null. */
  sequencedBooks: CoinbaseBookKeeper | null;
  /**
   * Seeds gap detection with the last stored venue sequences of this venue when they were read after
   * the feed started (the store answered late): the restart's gap is reported as soon as they come.
   */
  resumeSequences(last: readonly StoredSequence[]): void;
}

export interface IngestOptions {
  venue: Venue;
  subscription: Subscription;
  /** Venue endpoint base URL (live default or a replay server's `ws://127.0.0.1:port`). */
  wsUrl: string;
  bus: Bus;
  metrics: Metrics;
  logger: Logger;
  /** Called for every raw frame (record mode). */
  onRawFrame?: (raw: string, receivedAtUs: number) => void;
  /** Test hook: reconnect backoff start, ms (default 1000). */
  backoffInitialMs?: number;
  /** Liveness deadlines and backoff overrides (`--ping-interval-ms`, ..., tests). */
  liveness?: LivenessOverrides;
  /**
   * The last venue sequences already stored for this venue (a restarted `k2 run`): gap detection
   * resumes from them, so what was missed while down is a gap too.
   */
  resumeFrom?: readonly StoredSequence[];
  /** Fill trade gaps from the venue's REST API (default true). */
  backfill?: boolean;
  /** REST base URL of the backfill (default: the venue's own, `https://api.binance.com`). */
  restUrl?: string | null;
  /**
   * What to try when the venue cannot be reached, appended to the line that names the cause (a live
   * feed: `no network? try: npm start -- --replay …`).
   */
  connectHint?: string;
  /**
   * The feed replays a recording on its recorded clock (`k2 run --replay`, `--replay-clock recorded`):
   * records carry the recording's receive times as `ingestion_timestamp`, and platform_sequence
   * starts at the first of them, so the same recording always gives the same records.
   */
  recordedClock?: boolean;
  /** Top-N snapshots of the kept books (default {@link DEFAULT_BOOK_SNAPSHOTS}). */
  bookSnapshots?: BookSnapshotConfig;
  /** Backfill tuning (tests shrink the waits). */
  backfillOptions?: Pick<BackfillOptions, "maxAttempts" | "retryDelayMs" | "maxWaitMs" | "requestTimeoutMs">;
}

/**
 * Most per-symbol series of `k2_frames_received_total` per feed: only subscribed symbols get their own
 * series, at most this many; anything else is counted under `other.<data type>`.
 */
export const MAX_SYMBOL_SERIES = 1024;
/** Most distinct `kind` labels of `k2_control_frames_total` per feed; further kinds count as `other`. */
export const MAX_CONTROL_KINDS = 64;
/** Least interval between two sequence-regression log lines of one feed, ms. */
const REGRESSION_LOG_INTERVAL_MS = 10_000;

/** Starts one venue feed publishing normalized records to the bus. */
export function startIngest(opts: IngestOptions, publisher: Publisher): FeedHandle {
  const { venue, bus: _bus, metrics, logger } = opts;
  const exchange = venue.exchange;
  const counts = emptyIngestCounts();
  const tradeTopic = topicFor(venue.assetClass, "trades", exchange);
  const aggTopic = topicFor(venue.assetClass, "aggtrades", exchange);
  const quoteTopic = topicFor(venue.assetClass, "quotes", exchange);
  const dlqTopic = deadLetterTopic(exchange);
  const gapTopic = `market.gaps.${exchange.toLowerCase()}`;
  const bookTopic = bookChangeTopic(venue.assetClass, exchange);
  const snapshotTopic = bookSnapshotTopic(venue.assetClass, exchange);
  const publishBookChange = (change: BookChangeV2) =>
    publisher.push({ topic: bookTopic, key: change.symbol, id: change.message_id, value: change });
  const snapshotConfig = opts.bookSnapshots ?? DEFAULT_BOOK_SNAPSHOTS;
  const snapshots = new BookSnapshotter({
    exchange,
    depth: snapshotConfig.depth,
    intervalUs: snapshotConfig.intervalUs,
    emit(s: BookSnapshotV2) {
      counts.bookSnapshots++;
      publisher.push({
        topic: snapshotTopic,
        key: s.symbol,
        id: `${s.exchange}/${s.symbol}/book/${s.depth}/${s.timestamp}`,
        value: s,
      });
    },
  });
  // per-frame counts are plain numbers, moved into prom-client at scrape time; the stream label is
  // `SYMBOL.data_type` (or `rejected`)
  const streamCounts = new Map<string, { n: number; reported: number }>();
  const perSymbol = new Map<string, Record<DataType, { n: number; reported: number }>>();
  const counter = (stream: string) => {
    let c = streamCounts.get(stream);
    if (!c) {
      c = { n: 0, reported: 0 };
      streamCounts.set(stream, c);
    }
    return c;
  };
  // per-symbol series only for subscribed symbols (normalizers reject others; this bounds the label
  // set whatever a normalizer lets through)
  const subscribedSymbols = new Set(opts.subscription.symbols.map((s) => s.toUpperCase()));
  const frameCounter = (symbol: string, dataType: DataType) => {
    let c = perSymbol.get(symbol);
    if (!c) {
      if (!subscribedSymbols.has(symbol.toUpperCase()) || perSymbol.size >= MAX_SYMBOL_SERIES) {
        return counter(`other.${dataType}`);
      }
      c = {
        trades: counter(`${symbol}.trades`),
        aggtrades: counter(`${symbol}.aggtrades`),
        quotes: counter(`${symbol}.quotes`),
      };
      perSymbol.set(symbol, c);
    }
    return c[dataType];
  };
  const rejectedFrames = counter("rejected");
  const reported = { trades: 0, aggTrades: 0, quotes: 0, rejected: 0 };
  metrics.collectHooks.push(() => {
    for (const [stream, c] of streamCounts) {
      if (c.n > c.reported) metrics.framesReceived.labels(exchange, stream).inc(c.n - c.reported);
      c.reported = c.n;
    }
    const pairs = [
      ["trades", "trades"],
      ["aggTrades", "aggtrades"],
      ["quotes", "quotes"],
    ] as const;
    for (const [key, label] of pairs) {
      if (counts[key] > reported[key])
        metrics.normalized.labels(exchange, label).inc(counts[key] - reported[key]);
      reported[key] = counts[key];
    }
    if (counts.rejected > reported.rejected)
      metrics.rejected.labels(exchange).inc(counts.rejected - reported.rejected);
    reported.rejected = counts.rejected;
  });
  const venueLatency = metrics.venueLatencySeconds.labels(exchange);
  const handle: FeedHandle = {
    venue,
    connection: null as unknown as VenueConnection,
    counts,
    control: 0,
    backfill: null as unknown as BackfillWorker,
    books: null,
    checksumBooks: null,
    sequencedBooks: null,
    resumeSequences: () => undefined,
  };
  const gapMessage = (gap: SequenceGap): BusMessage => ({
    topic: gapTopic,
    key: gap.symbol,
    // the outcome is a message of its own (the bus deduplicates by id)
    id: `${gap.exchange}/${gap.symbol}/${gap.data_type}/${gap.from_sequence}${gap.status && gap.status !== "open" ? `/${gap.status}` : ""}`,
    value: gap,
  });
  const controlKinds = new Set<string>();
  const regressions = { n: 0, loggedAt: 0 };

  const sink: NormalizedSink = {
    trade(record: TradeV2, dataType: "trades" | "aggtrades") {
      if (dataType === "trades") counts.trades++;
      else counts.aggTrades++;
      frameCounter(record.symbol, dataType).n++;
      venueLatency.observe(Math.max(0, record.ingestion_timestamp - record.timestamp) / 1e6);
      publisher.push({
        topic: dataType === "trades" ? tradeTopic : aggTopic,
        key: record.symbol,
        id: record.message_id,
        value: record,
      });
    },
    quote(record: QuoteV2) {
      counts.quotes++;
      frameCounter(record.symbol, "quotes").n++;
      publisher.push({ topic: quoteTopic, key: record.symbol, id: record.message_id, value: record });
      handle.books?.onQuote(record);
      handle.sequencedBooks?.onQuote(record);
    },
    bookChange(change: BookChangeV2, venueMessage?: unknown) {
      counts.bookChanges++;
      publishBookChange(change);
      handle.books?.onChange(change);
      handle.checksumBooks?.onChange(change, venueMessage);
      handle.sequencedBooks?.onChange(change, venueMessage);
    },
    deadLetter(letter: DeadLetter) {
      counts.rejected++;
      rejectedFrames.n++;
      logger.warn(
        { exchange, source: letter.source, reason: letter.reason },
        "frame rejected to dead letters",
      );
      publisher.push({ topic: dlqTopic, key: exchange, id: letter.message_id, value: letter });
    },
    gap(gap: SequenceGap) {
      counts.gaps++;
      metrics.gaps.labels(exchange, gap.data_type).inc();
      metrics.gapMissing.labels(exchange, gap.data_type).inc(gap.to_sequence - gap.from_sequence + 1);
      logger.warn(
        {
          exchange,
          symbol: gap.symbol,
          data_type: gap.data_type,
          from: gap.from_sequence,
          to: gap.to_sequence,
        },
        `sequence gap: ${gap.to_sequence - gap.from_sequence + 1} missing`,
      );
      publisher.push(gapMessage(gap));
      handle.sequencedBooks?.onGap(gap);
      if (opts.backfill ?? true) handle.backfill.enqueue(gap);
      else handle.backfill.skip(gap);
    },
    control(kind: string) {
      handle.control++;
      counts.frames--; // counted on receipt; control frames carry no market data
      if (!controlKinds.has(kind)) {
        if (controlKinds.size >= MAX_CONTROL_KINDS) kind = "other";
        else controlKinds.add(kind);
      }
      metrics.controlFrames.labels(exchange, kind).inc();
    },
    anomaly(a: VenueAnomaly) {
      if (a.kind === "conflicting_duplicate") {
        metrics.conflictingDuplicates.labels(exchange).inc();
        return;
      }
      metrics.sequenceRegressions.labels(exchange).inc();
      regressions.n++;
      const now = Date.now();
      if (now - regressions.loggedAt >= REGRESSION_LOG_INTERVAL_MS) {
        logger.warn(
          {
            exchange,
            symbol: a.symbol,
            data_type: a.dataType,
            id: a.id,
            last: a.last,
            since_last_log: regressions.n,
          },
          "sequence regression: trade id below the last seen (stored)",
        );
        regressions.loggedAt = now;
        regressions.n = 0;
      }
    },
  };

  const normalizer = venue.createNormalizer(sink, opts.subscription);
  handle.resumeSequences = (last) => {
    if (!last.length || !normalizer.resumeSequences) return;
    normalizer.resumeSequences(last, nowMicros());
    logger.info(
      { exchange, sequences: last.map((l) => `${l.data_type}/${l.symbol}@${l.sequence}`) },
      "gap detection resumes from the last stored venue sequences",
    );
  };
  if (opts.resumeFrom) handle.resumeSequences(opts.resumeFrom);
  const ownSequences = new SequenceTracker();
  const sequences = normalizer.sequences ?? ownSequences;
  handle.backfill = new BackfillWorker({
    venue,
    baseUrl: opts.restUrl ?? venue.backfill?.defaultRestUrl ?? "",
    publish: (record, dataType) =>
      publisher.push({
        topic: dataType === "trades" ? tradeTopic : aggTopic,
        key: record.symbol,
        id: record.message_id,
        value: record,
      }),
    report: (gap) => publisher.push(gapMessage(gap)),
    platformSequence: (symbol) => sequences.nextPlatformSequence(symbol),
    metrics,
    logger,
    ...opts.backfillOptions,
  });
  const bookRest = venue.bookSnapshot;
  if (bookRest && opts.subscription.streams.includes("depth")) {
    const backfill = handle.backfill;
    handle.books = new BinanceBookKeeper({
      exchange,
      rest: bookRest,
      baseUrl: opts.restUrl ?? venue.backfill?.defaultRestUrl ?? "",
      get: (url, weight) => backfill.getWeighted(url, weight),
      // the REST snapshot a book was built from goes on the bus with the diffs
      onSnapshot: publishBookChange,
      snapshots,
      metrics,
      logger,
    });
  }
  const resubscribe = venue.bookResubscribe;
  if (resubscribe) {
    // Kraken's checksummed books and Coinbase's sequenced level2 books resubscribe one pair/product
    const keeper = {
      exchange,
      resubscribe: (symbol: string) => {
        for (const m of resubscribe(opts.wsUrl, symbol)) handle.connection.send(m);
      },
      snapshots,
      metrics,
      logger,
    };
    const streams = opts.subscription.streams;
    if (streams.includes("book")) handle.checksumBooks = new KrakenBookKeeper(keeper);
    if (streams.includes("level2")) handle.sequencedBooks = new CoinbaseBookKeeper(keeper);
  }
  const conn = new VenueConnection({
    ...venue.connection(opts.wsUrl, opts.subscription),
    ...(opts.backoffInitialMs !== undefined ? { backoffInitialMs: opts.backoffInitialMs } : {}),
    ...opts.liveness,
    recordedClock: opts.recordedClock ?? false,
  });
  handle.connection = conn;
  const onRaw = opts.onRawFrame;
  let seeded = false;
  conn.on("frame", (raw, receivedAtUs, recorded) => {
    counts.frames++;
    if (recorded && !seeded) {
      seeded = true;
      sequences.startAt(receivedAtUs);
    }
    if (onRaw) onRaw(raw, receivedAtUs);
    try {
      normalizer.normalize(raw, receivedAtUs);
    } catch (err) {
      // normalizers never throw by contract; if one does (a bug), the frame becomes a dead letter and
      // the feed goes on instead of the exception leaving the WebSocket handler and ending the process
      let message: string;
      try {
        message = reasonText(err instanceof Error ? err.message : String(err));
      } catch {
        message = "unprintable exception";
      }
      metrics.normalizerErrors.labels(exchange).inc();
      logger.error(
        { exchange, err: message, frameChars: raw.length },
        "normalizer threw; frame dead-lettered",
      );
      try {
        sink.deadLetter(
          deadLetterOf(
            exchange,
            `${exchange.toLowerCase()}:normalizer`,
            `normalizer error: ${message}`,
            raw,
            receivedAtUs,
            "normalizer",
          ),
        );
      } catch (e) {
        logger.error({ exchange, err: (e as Error).message }, "dead letter of a failed frame not published");
      }
    }
  });
  conn.on("invalidUtf8", (bytes, receivedAtUs, binary) => {
    counts.frames++;
    const kind = binary ? "binary" : "text";
    const reason = `invalid UTF-8 in ${kind} frame; raw is base64 of the exact bytes`;
    sink.deadLetter(
      deadLetterOf(exchange, exchange.toLowerCase(), reason, bytes.toString("base64"), receivedAtUs),
    );
  });
  /** The cause of the last failed attempt logged (null after a connection opened). */
  let lastCause: string | null = null;
  conn.on("state", (state: ConnectionState, reason?: string) => {
    if (state === "CONNECTED") {
      normalizer.connectionOpened?.();
      handle.sequencedBooks?.connectionOpened();
      lastCause = null;
    }
    metrics.connectionState.labels(exchange).set(STATE_CODE[state]);
    logger.info({ exchange, state, reason }, "feed connection state");
  });
  conn.on("reconnect", (attempt, delayMs) => {
    metrics.reconnects.labels(exchange).inc();
    // after a failed attempt the cause's line has said so already
    if (conn.lastFailure) logger.info({ exchange, attempt, delayMs }, "feed reconnecting with backoff");
    else logger.warn({ exchange, attempt, delayMs }, "feed reconnecting with backoff");
  });
  // a failed attempt is one line naming its cause; the same cause again (every backoff) only at debug
  conn.on("connectFailed", (failure) => {
    const repeated = failure.message === lastCause;
    lastCause = failure.message;
    const line = `feed ${exchange} cannot connect to ${opts.wsUrl}: ${failure.message}; retrying with backoff${opts.connectHint ? `. ${opts.connectHint}` : ""}`;
    if (repeated) logger.debug({ exchange, cause: failure.cause }, line);
    else logger.warn({ exchange, cause: failure.cause }, line);
  });
  conn.on("error", (err) => {
    // an attempt that fails before it opens is reported by connectFailed, classified
    if (conn.state === "CONNECTING") logger.debug({ exchange, err: err.message }, "feed connection error");
    else logger.warn({ exchange, err: err.message }, "feed connection error");
  });
  metrics.connectionState.labels(exchange).set(0);
  metrics.collectHooks.push(() => {
    metrics.feedSilent.labels(exchange).set(conn.liveness() === null ? 0 : 1);
    metrics.feedLastFrameAge.labels(exchange).set(Math.round(conn.silentForMs()) / 1000);
  });
  conn.start();
  return handle;
}

export interface PersistOptions {
  bus: Bus;
  store: Store;
  metrics: Metrics;
  logger: Logger;
  /** Consumer group / durable name (default `k2-persist`). */
  group?: string;
  /** Flush at this many records (default 500)... */
  batchSize?: number;
  /** ...or this many ms after the oldest waiting record (default 2000). */
  batchMaxWaitMs?: number;
  /** Largest batch when a backlog builds up (default 50000). */
  maxBatchSize?: number;
  /** Called with each batch once the store has committed it (before the bus ack). */
  onStored?: (messages: BusMessage[]) => void;
  /** A batch write running longer than this is reported stalled on `/health`, ms (default 30000). */
  storeStallMs?: number;
  /** Store book changes (`--store-book-changes`; default false: they stay on the bus only). */
  storeBookChanges?: boolean;
}

/** Store table of a bus message (for poison dead letters). */
function tableOf(m: BusMessage): string {
  switch (topicKind(m.topic)) {
    case "trades":
      return "trades_v2";
    case "aggtrades":
      return "agg_trades_v2";
    case "quotes":
      return "quotes_v2";
    case "dlq":
      return "dead_letters";
    case "gaps":
      return "sequence_gaps";
    case "candles":
      return "candles_v2";
    case "book":
      return "book_changes_v2";
    case "booksnapshots":
      return "book_snapshots_v2";
    default:
      return m.topic;
  }
}

/** How {@link writeIsolatingPoison} sees bus messages. */
const poisonOptions = (storeBookChanges: boolean) => ({
  toBatch: (items: BusMessage[]) => toWriteBatch(items, { storeBookChanges }),
  describe: (m: BusMessage) => ({
    table: tableOf(m),
    exchange: String(
      (m.value as { exchange?: unknown }).exchange ?? m.topic.split(".").pop() ?? "",
    ).toUpperCase(),
    record: m.value,
  }),
});

/**
 * The store half: consumes every market topic and writes batches; acks after the write commits.
 * A record the store rejects on its own (poison) is isolated by bisecting the batch and stored as a
 * dead letter (`store/poison.ts`), so it never blocks the batch or later ones; a transient failure
 * (store not writable) is retried with the bus's backoff and recorded in `health`.
 */
export function startPersist(opts: PersistOptions): {
  consumer: Consumer;
  counts: PersistCounts;
  health: StoreWriteHealth;
} {
  const { store, metrics, logger } = opts;
  const counts = emptyPersistCounts();
  const poisonOpts = poisonOptions(opts.storeBookChanges ?? false);
  const health = new StoreWriteHealth(metrics, opts.storeStallMs);
  const consumer = opts.bus.consume(
    {
      group: opts.group ?? "k2-persist",
      topicPrefixes: ["market."],
      batchSize: opts.batchSize ?? 500,
      maxWaitMs: opts.batchMaxWaitMs ?? 2000,
      maxBatchSize: opts.maxBatchSize ?? 50_000,
    },
    async (messages) => {
      const end = metrics.batchWriteSeconds.startTimer();
      health.started();
      try {
        const t0 = performance.now();
        const { result: r, poison, writes } = await writeIsolatingPoison(store, messages, poisonOpts);
        end();
        health.succeeded();
        logger.debug(
          { records: messages.length, ms: Math.round(performance.now() - t0), lag: consumer.lag() },
          "batch written",
        );
        for (const p of poison) {
          metrics.poisonRecords.labels(p.item.table).inc();
          logger.error(
            { table: p.item.table, exchange: p.item.exchange, err: p.error, writes },
            "poison record: the store rejects it on its own; stored as a dead letter",
          );
        }
        counts.poison += poison.length;
        counts.batches++;
        counts.lastWriteAt = performance.now();
        counts.stored += r.trades + r.aggTrades + r.quotes + r.deadLetters + r.gaps; // source records; candles are derived
        counts.duplicates += r.duplicates;
        counts.bookChanges += r.bookChanges ?? 0;
        counts.bookSnapshots += r.bookSnapshots ?? 0;
        metrics.batchRecords.observe(messages.length);
        if (r.trades) metrics.stored.labels("trades_v2").inc(r.trades);
        if (r.aggTrades) metrics.stored.labels("agg_trades_v2").inc(r.aggTrades);
        if (r.quotes) metrics.stored.labels("quotes_v2").inc(r.quotes);
        if (r.deadLetters) metrics.stored.labels("dead_letters").inc(r.deadLetters);
        if (r.gaps) metrics.stored.labels("sequence_gaps").inc(r.gaps);
        if (r.candles) metrics.stored.labels("candles_v2").inc(r.candles);
        if (r.bookChanges) metrics.stored.labels("book_changes_v2").inc(r.bookChanges);
        if (r.bookSnapshots) metrics.stored.labels("book_snapshots_v2").inc(r.bookSnapshots);
        if (r.duplicates) metrics.duplicates.inc(r.duplicates);
        opts.onStored?.(messages);
      } catch (err) {
        metrics.storeErrors.inc();
        health.failed(err);
        logger.error(
          { err: (err as Error).message, records: messages.length },
          "batch write failed; will retry",
        );
        throw err;
      } finally {
        metrics.consumerLag.set(consumer.lag());
        metrics.busRedeliveries.set(consumer.redeliveries());
      }
    },
  );
  return { consumer, counts, health };
}

/**
 * Groups bus messages into a store batch by topic kind. Book changes are left out unless
 * `storeBookChanges` (`--store-book-changes`); book snapshots are always stored.
 */
export function toWriteBatch(messages: BusMessage[], opts: { storeBookChanges?: boolean } = {}): WriteBatch {
  const b = emptyBatch();
  /** The batch list of each stored kind but candles. */
  const lists = new Map<string, unknown[]>([
    ["trades", b.trades],
    ["aggtrades", b.aggTrades],
    ["quotes", b.quotes],
    ["dlq", b.deadLetters],
    ["gaps", b.gaps],
  ]);
  for (const m of messages) {
    const kind = topicKind(m.topic);
    const list = lists.get(kind);
    if (list) list.push(m.value);
    else if (kind === "candles") {
      // open candles are live snapshots; only closed ones are stored
      const c = m.value as CandleV2;
      if (!c.closed) continue;
      if (b.candles) b.candles.push(c);
      else b.candles = [c];
    } else if (kind === "booksnapshots") {
      b.bookSnapshots ??= [];
      b.bookSnapshots.push(m.value as BookSnapshotV2);
    } else if (kind === "book" && opts.storeBookChanges) {
      b.bookChanges ??= [];
      b.bookChanges.push(m.value as BookChangeV2);
    }
  }
  return b;
}
