/**
 * `k2 run`: the all-in-one process on the embedded default — feed (live or an in-process replay
 * server), in-process bus, store (DuckDB file, or PostgreSQL with `--db postgres://…`), HTTP `/health`
 * and `/metrics` — with graceful shutdown that flushes every buffer.
 */
import { BacklogGate } from "./bus/backlog.js";
import type { Bus, BusMessage, Consumer } from "./bus/bus.js";
import { createBus } from "./bus/index.js";
import { Journal } from "./bus/journal.js";
import { MemoryBus } from "./bus/memory.js";
import { Publisher } from "./bus/publisher.js";
import type { RunConfig } from "./config.js";
import { backfillProblems } from "./feed/backfill.js";
import type { LivenessOverrides } from "./feed/connection.js";
import { feedLivenessProblems } from "./feed/liveness.js";
import { backlogProblem } from "./ops/health-checks.js";
import type { Logger } from "./ops/logger.js";
import { Metrics } from "./ops/metrics.js";
import { startOutputs } from "./outputs/start.js";
import {
  emptyIngestCounts,
  emptyPersistCounts,
  type FeedHandle,
  type IngestCounts,
  type IngestOptions,
  type PersistCounts,
  startIngest,
  startPersist,
} from "./pipeline.js";
import type { FaultCounts } from "./replay/faults.js";
import { FeedReplays, replayFinishedMessage } from "./replay/feeds.js";
import type { ReplayServer } from "./replay/replay-server.js";
import type { SequenceGap } from "./schema/records.js";
import { createHttpServer, listen } from "./serve/http.js";
import { LiveBookRegistry } from "./serve/live/books.js";
import { type GatewayService, registerLiveServing } from "./serve/live-serving.js";
import { type Serving, startServing } from "./serve/serving.js";
import { createStore } from "./store/index.js";
import type { LastSequence, Store } from "./store/store.js";
import { getVenue } from "./venues/registry.js";
import type { Venue } from "./venues/venue.js";

/** The line `--exit-at-end` prints last on stdout (also logged at every shutdown). */
export interface RunSummary {
  frames: number;
  trades: number;
  quotes: number;
  rejected: number;
  duplicates: number;
  aggTrades: number;
  stored: number;
  gaps: number;
  reconnects: number;
  /** What the replay servers injected (`--faults`), added up over feeds; null without faults. */
  faults: FaultCounts | null;
  /** Messages the bus delivered again to the persist consumer (after a failed or unacked batch). */
  redeliveries: number;
  /** From the first market data frame to the end of the final flush, ms. */
  elapsed_ms: number;
  /**
   * Frames per second over the run's active span: from the first frame to the last batch stored (to the
   * last frame without a store), so time spent idle after a replay ended does not dilute it.
   */
  frames_per_s: number;
  /** The active span of `frames_per_s`, ms. */
  active_ms: number;
  /** From the first to the last market data frame received, ms. */
  receive_ms: number;
  /** Peak resident set size, MiB. */
  max_rss_mb: number;
  /**
   * Sequence gaps detected (as `gaps`, plus open gaps of an earlier run taken over), those fully
   * backfilled, and venue ids neither received nor backfilled.
   */
  gaps_detected: number;
  gaps_filled: number;
  missing: number;
  /** Records poison to the store, stored as dead letters instead. */
  poison: number;
  /**
   * Local order books (`--streams …,depth`): best bid/ask frames compared with the book at the same
   * update id, of those mismatches, and books discarded after a sequence break and rebuilt; depth
   * diffs received. Coinbase `--streams …,ticker,level2` adds its tickers compared with the live book
   * to `book_checks`, those that never agreed (neither at arrival nor within the next three `l2_data`
   * messages of their product) to `book_mismatches`, and `sequence_num` gaps that discarded the
   * connection's books to `resyncs`.
   */
  book_changes: number;
  book_checks: number;
  book_mismatches: number;
  /**
   * Coinbase tickers that agreed with the book not at arrival but within the next three `l2_data`
   * messages of their product (counted in `book_checks`; those agreeing at arrival are `book_checks -
   * book_checks_late - book_mismatches`).
   */
  book_checks_late: number;
  resyncs: number;
  /** Top-N book snapshots taken (`--book-depth`, `--book-interval`). */
  book_snapshots: number;
  /**
   * Books verified by the venue's checksum (Kraken `book`): updates whose checksum matched, and
   * mismatches (each resubscribed that pair; counted in `resyncs` too).
   */
  checksums_verified: number;
  checksum_failures: number;
  /** Book changes stored (`--store-book-changes`) and book snapshots stored, by the persist role. */
  book_changes_stored: number;
  book_snapshots_stored: number;
  /** Records left in the spill journal unacknowledged at exit (the next start replays them). */
  journaled: number;
  /** Records written to the journal at shutdown because they were not stored in time. */
  journaled_at_shutdown: number;
  /** Highest in-memory backlog seen (records received and not yet stored). */
  max_backlog: number;
  /** Peak V8 heap used (sampled every 250 ms), MiB: the JS objects held, unlike RSS (DuckDB, GC slack). */
  max_heap_mb: number;
  /** Records read back from the journal (spilled ones, or a previous run's). */
  journal_read_back: number;
  /** Shutdown ran out of `--shutdown-timeout` before everything was stored. */
  shutdown_timed_out: boolean;
}

export interface RunningPipeline {
  /** HTTP port actually bound. */
  httpPort: number;
  /** ws:// URL of the (first feed's) in-process replay server, when replaying. */
  replayUrl: string | null;
  /** The first feed's replay server; `replayServers` has one entry per feed. */
  replayServer: ReplayServer | null;
  replayServers: (ReplayServer | null)[];
  /** The first feed; `feeds` has one per exchange of `--exchange a,b,c`, in order. */
  feed: FeedHandle;
  feeds: FeedHandle[];
  store: Store;
  metrics: Metrics;
  /** Serving layer: live feed, candle feed, market data source, REST API. */
  serving: Serving;
  /** The WebSocket gateway at `/ws` (for its counters); null without the serve role. */
  gateway: GatewayService | null;
  /** Stops the feed, drains the bus, flushes the store, closes everything; resolves with the summary. */
  stop(reason: string): Promise<RunSummary>;
  /** Resolves when every feed's replay has been fully received and open candles closed (only with replays). */
  replayDone: Promise<void> | null;
}

/** Which parts of the pipeline a process runs (`k2 run`: all; `k2 ingest`/`persist`/`serve`: one). */
export interface Roles {
  /** Feeds (live or replay) → normalize → publish on the bus. */
  ingest: boolean;
  /** Bus → store, acking after each committed batch. */
  persist: boolean;
  /** Live feed, candles and the REST API over the store and the bus. */
  serve: boolean;
}

export const ALL_ROLES: Roles = { ingest: true, persist: true, serve: true };

/** Test and tuning hooks of {@link startProcess}. */
export interface RunHooks {
  /** Reconnect backoff start, ms (tests). */
  backoffInitialMs?: number;
  /** Replay server resumes where a dropped connection broke (tests). */
  resumeReplay?: boolean;
  /** Keep the replay server on the main thread (tests that drop its connections). */
  replayInProcess?: boolean;
  /** Liveness and backoff overrides of every feed connection (tests: seeded jitter, stableAfterMs). */
  liveness?: LivenessOverrides;
  /** Longest wait at shutdown for backfills in progress, ms (default 30000). */
  backfillWaitMs?: number;
  /** Backfill tuning (tests shrink its waits). */
  backfillOptions?: IngestOptions["backfillOptions"];
}

/** Starts the all-in-one pipeline (`k2 run`) for a validated configuration. */
export async function startRun(
  config: RunConfig,
  logger: Logger,
  hooks: RunHooks = {},
): Promise<RunningPipeline> {
  return (await startProcess(config, logger, ALL_ROLES, hooks)) as RunningPipeline;
}

/** A process running some of the roles: the fields of the roles it does not run are null. */
export type RunningProcess = Omit<RunningPipeline, "feed" | "store" | "serving"> & {
  feed: FeedHandle | null;
  store: Store | null;
  serving: Serving | null;
  /** The bus consumer of the persist role. */
  persistConsumer: Consumer | null;
};

/**
 * Starts the roles of one process over the configured bus (`--bus`) and store (`--db`): everything
 * for `k2 run`, one role for `k2 ingest`, `k2 persist` and `k2 serve`. The pipeline's wiring, in
 * the order it is built: store and bus, the outputs (ingest: `--redis-out`, `--zmq-pub`), the replay servers, the spill journal, the store consumer
 * (persist), serving, the publisher behind the backlog gate, `/health` and HTTP, the feeds, the end of
 * the replays, and the bounded shutdown.
 */
export async function startProcess(
  config: RunConfig,
  logger: Logger,
  roles: Roles,
  hooks: RunHooks = {},
): Promise<RunningProcess> {
  const feedConfigs = roles.ingest ? config.feeds : [];
  const venues = feedConfigs.map((f) => venueOf(f.exchange));
  const metrics = new Metrics();
  const store = roles.persist || roles.serve ? createStore(config.db) : null;
  await store?.init();
  const bus = await openBus(config.bus, roles, logger);
  const memoryBus = bus instanceof MemoryBus ? bus : null;
  const group = config.group;
  // outputs (--redis-out, --zmq-pub): the ingest side's own bus consumer hands every trade and quote
  // on; bound before the replays start, so subscribers connect before the first record
  const outputs = roles.ingest
    ? await startOutputs({ config: config.outputs, bus, feeds: venues, metrics, logger })
    : null;

  // the venues' endpoints: an in-process replay server for each feed given a recording
  const replays = await FeedReplays.start(
    feedConfigs,
    venues,
    {
      speed: config.speed,
      faults: config.faults,
      resume: hooks.resumeReplay,
      inProcess: hooks.replayInProcess,
      stampReceiveTimes: config.replayClock === "recorded",
    },
    logger,
  );

  // spill journal (ingest side): records beyond the backlog budget, and what shutdown could not store
  const journal = roles.ingest ? new Journal(config.journalDir) : null;
  if (journal && journal.records > 0) {
    logger.warn(
      { records: journal.records, dir: journal.dir },
      "the spill journal holds records from an earlier run: replaying them first",
    );
  }
  // with the memory bus a journaled record is safe once stored; with a networked bus, once published
  const ackJournalOnStore = memoryBus !== null && roles.persist;

  // store side first, so nothing published waits for a consumer
  const persist = !(roles.persist && store)
    ? null
    : startPersist({
        bus,
        group,
        store,
        metrics,
        logger,
        batchSize: config.batchSize,
        batchMaxWaitMs: config.batchMaxWaitMs,
        maxBatchSize: config.maxBatchSize,
        onStored: ackJournalOnStore && journal ? (messages) => journal.ack(messages) : undefined,
        storeStallMs: config.storeStallMs,
        storeBookChanges: config.storeBookChanges,
      });
  /** The order books the feeds maintain (`--streams depth`), for `GET /api/v1/book` and `book.{N}`. */
  const books = new LiveBookRegistry();
  const serving =
    roles.serve && store
      ? startServing({
          books,
          bus,
          store,
          metrics,
          logger,
          candleGraceMs: config.candleGraceMs,
          maxResponseBytes: config.gateway.apiMaxResponseBytes,
        })
      : null;
  // gap detection resumes from the store: what was missed while this process was down is a gap too.
  // The read is bounded: a store that cannot answer (locked tables, a hung server) does not keep the
  // feeds from starting (and spilling); the sequences are applied when they come, and /health says
  // so meanwhile.
  const lastRead = roles.ingest && store ? readLastSequences(store, logger) : null;
  const stored = (lastRead ? await lastRead.within(LAST_SEQUENCES_WAIT_MS) : null) ?? [];

  const publisher = new Publisher(bus, logger);
  /** Records received and not yet stored, held in memory. */
  const memoryBacklog = () => publisher.pending() + (memoryBus && persist ? memoryBus.backlog(group) : 0);
  const probe = new RunProbe();
  // the backlog gate is in place before the first frame can arrive
  /** The feeds, once started (the gate pauses and resumes them). */
  const started: FeedHandle[] = [];
  let gate: BacklogGate | null = null;
  if (journal) {
    if (ackJournalOnStore) {
      if (memoryBus) memoryBus.onDuplicate = (m) => journal.ack([m]);
    } else publisher.onAcked = (batch) => journal.ack(batch);
    gate = new BacklogGate({
      budget: config.maxBacklog,
      policy: config.backlogPolicy,
      backlog: memoryBacklog,
      journal,
      publish: (m) => publisher.pushDirect(m),
      pause: () => {
        for (const f of started) f.connection.pause();
      },
      resume: () => {
        for (const f of started) f.connection.resume();
      },
      metrics,
      logger,
    });
    const g = gate;
    publisher.gate = (m) => g.admit(m);
    g.start();
  }

  /** For each live feed, what to try when its venue cannot be reached (null for a replayed feed). */
  const connectHints = venues.map((venue, i) => (replays.servers[i] ? null : offlineHint(venue.exchange)));
  /**
   * The feeds: started once HTTP listens, so start-up's own work (the HTTP server's plugins, their
   * modules) is done before the first frame rather than competing with it, and a busy port stops
   * start-up before any venue is connected.
   */
  const feeds: FeedHandle[] = [];
  /** Why the process is unhealthy (one sentence each), for `/health` and `/api/v1/status`. */
  const health = async (): Promise<string[]> => {
    const problems: string[] = [...backfillProblems(feeds.map((f) => f.backfill))];
    for (const f of feeds) {
      problems.push(
        ...(f.books?.problems() ?? []),
        ...(f.checksumBooks?.problems() ?? []),
        ...(f.sequencedBooks?.problems() ?? []),
      );
    }
    if (lastRead?.problem) problems.push(lastRead.problem);
    for (const f of feeds) {
      if (f.connection.state !== "CONNECTED") {
        const failure = f.connection.lastFailure;
        const hint = connectHints[feeds.indexOf(f)];
        problems.push(
          `feed ${f.venue.exchange} ${f.connection.state.toLowerCase()}${failure ? `: ${failure.message}${hint ? `; ${hint}` : ""}` : ""}`,
        );
      }
    }
    problems.push(...feedLivenessProblems(feeds));
    const s = store ? await store.check() : null;
    if (s) problems.push(s);
    const b = bus.check ? await bus.check() : null;
    if (b) problems.push(b);
    const w = persist?.health.problem(memoryBacklog() + (journal?.records ?? 0));
    if (w) problems.push(w);
    const o = journal ? backlogProblem(memoryBacklog(), journal.records, config.maxBacklog) : null;
    if (o) problems.push(o);
    problems.push(...replays.problems());
    return problems;
  };
  let gateway: GatewayService | undefined;
  const app = await createHttpServer({
    metrics,
    health,
    register: async (app) => {
      if (!serving) return;
      // auth first (it guards /api and /ws), then the REST API, then gateway, status and dashboard
      gateway = registerLiveServing(app, {
        feed: serving.live,
        // pages of the store merged with the records received but not stored yet
        history: serving.source,
        recent: serving.recent,
        books,
        config: config.gateway,
        metrics,
        logger,
        status: {
          feeds,
          // what the feeds subscribed to (a recording's own symbols when replayed without --symbols)
          symbols: roles.ingest
            ? replays.subscriptions.flatMap((s) => s.symbols)
            : config.feeds.flatMap((f) => f.symbols),
          storeLag: () => persist?.consumer.lag() ?? 0,
          problems: health,
          replays: () => replays.states(),
        },
      });
      await serving.register(app);
    },
  });
  const httpPort = await listen(app, config.httpPort, config.httpHost);
  // the relays that start a new group at the bus's end (outputs, the live feed) join before the first
  // record is published, and before "http listening", so they miss none of it, and a client connected
  // since sees every record published since (on a networked bus joining takes a moment: a Kafka
  // group's first join waits for the broker's initial rebalance delay, 3 s by default)
  const relays = [outputs?.consumer.ready(), serving?.ready()].filter((p) => p !== undefined);
  if (relays.length > 0 && !(await within(Promise.all(relays), RELAY_JOIN_WAIT_MS))) {
    logger.warn(
      { waitedMs: RELAY_JOIN_WAIT_MS, bus: bus.name },
      "the live feed or the outputs have not joined the bus yet; the feeds start, and what they publish before the join reaches the store but is not relayed live",
    );
  }
  feeds.push(
    ...venues.map((venue, i) =>
      startIngest(
        {
          venue,
          subscription: replays.subscriptions[i],
          wsUrl: replays.wsUrl(i, feedConfigs[i].wsUrl),
          bus,
          metrics,
          logger,
          onRawFrame: () => probe.frame(),
          backoffInitialMs: hooks.backoffInitialMs,
          liveness: { ...config.liveness, backoffMaxMs: config.backoffMaxMs, ...hooks.liveness },
          resumeFrom: stored.filter((l) => l.exchange === venue.exchange),
          backfill: config.backfill,
          // --rest-url, else the replay server's own REST emulation, else the venue's
          restUrl: config.restUrls?.[i] ?? replays.restUrl(i),
          backfillOptions: hooks.backfillOptions,
          bookSnapshots: config.bookSnapshots,
          connectHint: connectHints[i] ?? undefined,
          recordedClock: replays.servers[i] !== null && config.replayClock === "recorded",
        },
        publisher,
      ),
    ),
  );
  started.push(...feeds);
  for (const f of feeds) {
    if (f.books) books.add(f.books);
    if (f.checksumBooks) books.add(f.checksumBooks);
    if (f.sequencedBooks) books.add(f.sequencedBooks);
  }
  if (lastRead && !lastRead.done) {
    logger.warn(
      { waitedMs: LAST_SEQUENCES_WAIT_MS },
      "the store has not answered for the last stored sequences; the feeds start, and gaps across the restart are reported when it does",
    );
    void lastRead.result.then((late) => {
      for (const f of feeds) f.resumeSequences(late.filter((l) => l.exchange === f.venue.exchange));
    });
  }
  // in the background: a store that does not answer (locked tables) must not hold up start-up
  if (roles.ingest && store && config.backfill) {
    void resumeOpenGaps(store, feeds, logger).catch((err) =>
      logger.error({ err: (err as Error).message }, "open sequence gaps of an earlier run not read"),
    );
  }

  const httpUrl = `http://${config.httpHost}:${httpPort}`;
  logger.info({ port: httpPort, host: config.httpHost }, `http listening on ${httpUrl}`);

  // the recordings are bounded: once every one is received and relayed, close every open candle
  const received = replays.whenReceived(feeds, logger);
  const replayDone =
    received
      ?.then(() => {
        if (stopping) return; // stopped before the end: the summary says what was received
        const frames = feeds.reduce((n, f) => n + f.counts.frames, 0);
        const next = config.exitAtEnd
          ? "flushing and exiting"
          : serving
            ? `still serving on ${httpUrl}/ (dashboard; API docs at ${httpUrl}/docs) until Ctrl-C`
            : `still running (/health and /metrics on ${httpUrl}) until Ctrl-C`;
        logger.info(
          { frames, receive_ms: Math.round(probe.receiveMs()) },
          replayFinishedMessage(frames, probe.sinceFirstFrameMs(), next),
        );
      })
      .then(() => publisher.flush())
      .then(() => serving?.endOfStream())
      .catch((err) => {
        logger.error({ err: (err as Error).message }, "closing candles at the end of the replay");
      }) ?? null;

  let stopping: Promise<RunSummary> | null = null;
  /**
   * Bounded shutdown (`--shutdown-timeout`): stop the feeds, read the spill journal back, flush the
   * publisher and the store consumer; what is not stored when the time is up (publisher buffer, bus
   * queue and batch in flight) is written to the journal, for the next start to replay.
   */
  const stop = (reason: string): Promise<RunSummary> => {
    if (stopping) return stopping;
    stopping = (async () => {
      const deadline = performance.now() + config.shutdownTimeoutMs;
      const left = () => Math.max(0, deadline - performance.now());
      logger.info(
        { reason, timeoutMs: config.shutdownTimeoutMs },
        "shutting down: stopping feed, draining bus, flushing store",
      );
      await within(Promise.all(feeds.map((f) => f.connection.stop())), left());
      // records spilled earlier go to the store too while there is time (the gate reads them back)
      while (journal && journal.records > 0 && left() > 0) await sleep(Math.min(20, left()));
      gate?.stop();
      let complete = await publisher.flushWithin(Math.max(1, left()));
      await within(serving?.stop() ?? Promise.resolve(), left());
      // backfills in progress finish first (bounded by what is left of the timeout), so their
      // records are in the final flush
      const backfillWaitMs = Math.min(hooks.backfillWaitMs ?? 30_000, left());
      const idle = await Promise.all(feeds.map((f) => f.backfill.waitIdle(backfillWaitMs)));
      if (idle.includes(false)) {
        logger.warn(
          { backfillWaitMs },
          "shutdown: backfills still running are stopped; their gaps stay open",
        );
      }
      // book snapshots requested before the end are answered and applied first: a replay at full speed
      // can end before a book's first one is, and what the book held for it would go unchecked
      const bookWaitMs = Math.min(BOOK_SETTLE_MS, left());
      if (!(await within(Promise.all(feeds.map((f) => f.books?.snapshotsInFlight())), bookWaitMs))) {
        logger.warn({ waitMs: bookWaitMs }, "shutdown: book snapshot requests still unanswered are dropped");
      }
      for (const f of feeds) f.books?.stop();
      await Promise.all(feeds.map((f) => f.backfill.stop()));
      // what the backfills and books published since the first flush (recovered records, then each
      // gap's outcome) is acknowledged too, before the store consumer drains the bus; else it would be
      // neither stored nor journaled while the summary counts the gap filled
      complete = (await publisher.flushWithin(Math.max(1, left()))) && complete;
      await within(outputs?.stop(left()) ?? Promise.resolve(), left());
      // persist alone (k2 persist) finishes and acks its batch in flight; with ingest in the same
      // process it drains everything that was published
      if (persist)
        complete = (await within(persist.consumer.stop({ drain: roles.ingest }), left())) && complete;
      const journaledNow = complete
        ? 0
        : journalUnstored({
            publisher,
            queued: memoryBus && persist ? memoryBus.takeUnacked(group) : [],
            journal,
            timeoutMs: config.shutdownTimeoutMs,
            logger,
          });
      try {
        journal?.close();
      } catch (err) {
        logger.error({ err: (err as Error).message }, "shutdown: closing the journal failed");
      }
      const end = performance.now();
      // a store stuck on a write does not hold the exit past the timeout (plus a little for closing)
      await within(store?.close() ?? Promise.resolve(), Math.max(left(), 2000));
      await within(app.close(), Math.max(left(), 2000));
      await replays.stop();
      await within(bus.close(), Math.max(left(), 2000));
      probe.stop();
      const summary = summarize({
        feeds,
        persist,
        busDuplicates: memoryBus?.deduplicated ?? 0,
        faults: replays.faultCounts(),
        probe,
        end,
        journal,
        journaledNow,
        gate,
        complete,
      });
      logger.info(
        feeds.length > 1
          ? { ...summary, by_exchange: Object.fromEntries(feeds.map((f) => [f.venue.exchange, f.counts])) }
          : summary,
        "stopped",
      );
      return summary;
    })();
    return stopping;
  };

  const replayServer = replays.servers[0] ?? null;
  return {
    httpPort,
    replayUrl: replayServer?.url ?? null,
    replayServer,
    replayServers: replays.servers,
    feed: feeds[0] ?? null,
    feeds,
    store,
    metrics,
    serving,
    persistConsumer: persist?.consumer ?? null,
    gateway: gateway ?? null,
    stop,
    replayDone,
  };
}

/** A recording of each venue's data in the shared data set beside the checkout, for the offline hint. */
const DEMO_RECORDINGS: Record<string, string> = {
  BINANCE: "../shared/data/binance-spot/btcusdt_20240808.gz",
  COINBASE: "../shared/data/cryptofeed/COINBASE.jsonl.gz",
  KRAKEN: "../shared/data/cryptofeed/KRAKEN.jsonl.gz",
};

/**
 * What to try when a live venue cannot be reached: replay a recording instead, e.g.
 * `no network? try: npm start -- --replay ../shared/data/binance-spot/btcusdt_20240808.gz`.
 */
export function offlineHint(exchange: string): string {
  const file = DEMO_RECORDINGS[exchange] ?? DEMO_RECORDINGS.BINANCE;
  const flag =
    exchange === "BINANCE" || !DEMO_RECORDINGS[exchange] ? "" : `--exchange ${exchange.toLowerCase()} `;
  return `no network? try: npm start -- ${flag}--replay ${file}`;
}

/**
 * The venue registered as `exchange`.
 * @throws {Error} for an unknown exchange (the configuration has checked it)
 */
function venueOf(exchange: string): Venue {
  const v = getVenue(exchange);
  if (!v) throw new Error(`unknown exchange ${exchange}`);
  return v;
}

/** The bus `--bus` names: in-process memory, or a client named after the roles it serves (`k2-ingest`). */
async function openBus(spec: string, roles: Roles, logger: Logger): Promise<Bus> {
  if (spec === "memory") return new MemoryBus();
  const name = `k2-${Object.entries(roles)
    .filter(([, v]) => v)
    .map(([k]) => k)
    .join("-")}`;
  return createBus(spec, {
    name,
    onError: (err, context) => logger.warn({ err: err.message, context }, "bus error"),
  });
}

/** Frame times and peak memory of a run (sampled every 250 ms), for its log lines and summary. */
class RunProbe {
  /** First and last market data frame received, `performance.now()` ms (0: none yet). */
  firstFrameAt = 0;
  lastFrameAt = 0;
  /** Peak resident set size and V8 heap used, bytes. */
  maxRss = process.memoryUsage.rss();
  maxHeap = process.memoryUsage().heapUsed;
  private readonly timer = setInterval(() => this.sample(), 250);

  constructor() {
    this.timer.unref();
  }

  /** A raw frame arrived. */
  frame(): void {
    this.lastFrameAt = performance.now();
    if (this.firstFrameAt === 0) this.firstFrameAt = this.lastFrameAt;
  }

  /** From the first frame to now, ms (0 before any frame). */
  sinceFirstFrameMs(): number {
    return this.firstFrameAt ? performance.now() - this.firstFrameAt : 0;
  }

  /** From the first to the last frame received, ms. */
  receiveMs(): number {
    return this.firstFrameAt ? this.lastFrameAt - this.firstFrameAt : 0;
  }

  /** Stops sampling, after a last sample. */
  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  private sample(): void {
    this.maxRss = Math.max(this.maxRss, process.memoryUsage.rss());
    this.maxHeap = Math.max(this.maxHeap, process.memoryUsage().heapUsed);
  }
}

/** How long shutdown waits for book snapshot requests in flight (within `--shutdown-timeout`), ms. */
const BOOK_SETTLE_MS = 10_000;

/** How long start-up waits for the live feed's and the outputs' bus consumers to join, ms. */
const RELAY_JOIN_WAIT_MS = 20_000;

/** How long start-up waits for the store's last venue sequences before the feeds start anyway, ms. */
const LAST_SEQUENCES_WAIT_MS = 10_000;

/**
 * The store's last venue sequences, read once in the background (retried every 5 s on an error):
 * `within(ms)` resolves with them or null when they are not there in time; `result` resolves when they
 * are; `problem` is the /health sentence until then (null once read, or while within the first wait).
 */
function readLastSequences(
  store: Store,
  logger: Logger,
): {
  within(ms: number): Promise<LastSequence[] | null>;
  result: Promise<LastSequence[]>;
  readonly done: boolean;
  readonly problem: string | null;
} {
  const startedAt = Date.now();
  let done = false;
  let lastError: string | null = null;
  const result = (async () => {
    for (;;) {
      try {
        const r = await store.lastSequences();
        done = true;
        return r;
      } catch (e) {
        lastError = (e as Error).message;
        logger.error({ err: lastError }, "reading the last stored sequences failed; retrying in 5 s");
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
  })();
  return {
    result,
    get done() {
      return done;
    },
    get problem() {
      if (done || Date.now() - startedAt < LAST_SEQUENCES_WAIT_MS) return null;
      const waited = Math.round((Date.now() - startedAt) / 1000);
      return `gap detection across the restart: the store has not given the last stored sequences for ${waited} s${lastError ? ` (${lastError})` : ""}; gaps since the last run are reported once it does`;
    },
    within: (ms) => Promise.race([result, new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]),
  };
}

/**
 * Gaps an earlier run left `open` (it stopped or died mid-backfill) are handed to the backfill of
 * their exchange's feed again, oldest first (the 1000 most recent at most).
 */
async function resumeOpenGaps(store: Store, feeds: FeedHandle[], logger: Logger): Promise<void> {
  const rows = await store.query(
    `SELECT exchange, symbol, data_type, from_sequence, to_sequence, detected_at FROM sequence_gaps
     WHERE status = 'open' ORDER BY detected_at DESC LIMIT 1000`,
  );
  let n = 0;
  for (const r of rows.reverse()) {
    const f = feeds.find((x) => x.venue.exchange === r.exchange);
    if (!f) continue;
    f.backfill.resume({
      exchange: String(r.exchange),
      symbol: String(r.symbol),
      data_type: r.data_type as SequenceGap["data_type"],
      from_sequence: Number(r.from_sequence),
      to_sequence: Number(r.to_sequence),
      detected_at: Number(r.detected_at),
    });
    n++;
  }
  if (n > 0) logger.info({ gaps: n }, "open sequence gaps of an earlier run handed to the backfill");
}

/** Ingest counts of several feeds, added up. */
function sumCounts(all: IngestCounts[]): IngestCounts {
  const total = emptyIngestCounts();
  for (const c of all) for (const k of Object.keys(total) as (keyof IngestCounts)[]) total[k] += c[k];
  return total;
}

/**
 * At a shutdown that ran out of time: writes the records not stored (the publisher's unacknowledged
 * ones and `queued`, the memory bus's) to the spill journal, and logs what happened to them; returns
 * how many were written (0 without a journal: a networked bus delivers them again).
 */
function journalUnstored(x: {
  publisher: Publisher;
  queued: BusMessage[];
  journal: Journal | null;
  timeoutMs: number;
  logger: Logger;
}): number {
  const { journal, logger } = x;
  const unacked: BusMessage[] = [...x.publisher.takeUnacked(), ...x.queued];
  // records read back from the journal are still in their segment on disk
  const fresh = journal ? unacked.filter((m) => !journal.owns(m)) : unacked;
  let journaled = 0;
  try {
    if (journal) journaled = journal.append(fresh);
  } catch (err) {
    logger.error({ err: (err as Error).message, records: fresh.length }, "shutdown: journal not writable");
  }
  logger.error(
    { timeoutMs: x.timeoutMs, notStored: unacked.length, journaled, journal: journal?.dir },
    journal
      ? "shutdown timeout: records not stored in time were written to the journal; the next start replays them"
      : "shutdown timeout: the batch in flight was not acknowledged; the bus delivers it again",
  );
  return journaled;
}

/** What {@link summarize} adds up at the end of a run. */
interface SummaryInputs {
  feeds: FeedHandle[];
  persist: { counts: PersistCounts; consumer: Consumer } | null;
  /** Records the memory bus dropped as already seen. */
  busDuplicates: number;
  faults: FaultCounts | null;
  probe: RunProbe;
  /** When the final flush ended, `performance.now()` ms. */
  end: number;
  journal: Journal | null;
  journaledNow: number;
  gate: BacklogGate | null;
  /** Everything was stored within the shutdown timeout. */
  complete: boolean;
}

/** The summary of a stopped run (see {@link RunSummary} for each figure). */
function summarize(x: SummaryInputs): RunSummary {
  const ingest = sumCounts(x.feeds.map((f) => f.counts));
  const persist = x.persist?.counts ?? emptyPersistCounts();
  const { firstFrameAt, lastFrameAt } = x.probe;
  const elapsed = firstFrameAt ? Math.round(x.end - firstFrameAt) : 0;
  const activeEnd = Math.max(lastFrameAt, x.persist?.counts.lastWriteAt ?? 0);
  const active = firstFrameAt ? Math.round(Math.min(x.end, activeEnd) - firstFrameAt) : 0;
  const sum = (of: (f: FeedHandle) => number) => x.feeds.reduce((n, f) => n + of(f), 0);
  return {
    frames: ingest.frames,
    trades: ingest.trades,
    quotes: ingest.quotes,
    rejected: ingest.rejected,
    duplicates: persist.duplicates + x.busDuplicates,
    aggTrades: ingest.aggTrades,
    stored: persist.stored,
    gaps: ingest.gaps,
    reconnects: sum((f) => f.connection.reconnects),
    faults: x.faults,
    redeliveries: x.persist?.consumer.redeliveries() ?? 0,
    elapsed_ms: elapsed,
    frames_per_s: active > 0 ? Math.round((ingest.frames * 1000) / active) : 0,
    active_ms: active,
    receive_ms: firstFrameAt ? Math.round(lastFrameAt - firstFrameAt) : 0,
    max_rss_mb: Math.round(x.probe.maxRss / 1048576),
    // detected by this run, plus gaps an earlier run left open and this one took over
    gaps_detected: ingest.gaps + sum((f) => f.backfill.counts.resumed),
    gaps_filled: sum((f) => f.backfill.counts.filled),
    missing: sum((f) => f.backfill.missing),
    poison: persist.poison,
    book_changes: ingest.bookChanges,
    book_checks: sum((f) => (f.books?.counts.checks ?? 0) + (f.sequencedBooks?.tickerChecks().tickers ?? 0)),
    book_mismatches: sum(
      (f) => (f.books?.counts.mismatches ?? 0) + (f.sequencedBooks?.tickerChecks().never ?? 0),
    ),
    book_checks_late: sum((f) => f.sequencedBooks?.tickerChecks().late ?? 0),
    resyncs: sum(
      (f) =>
        (f.books?.counts.resyncs ?? 0) +
        (f.checksumBooks?.counts.resyncs ?? 0) +
        (f.sequencedBooks?.counts.resyncs ?? 0),
    ),
    checksums_verified: sum((f) => f.checksumBooks?.counts.checksumsVerified ?? 0),
    checksum_failures: sum((f) => f.checksumBooks?.counts.checksumFailures ?? 0),
    book_snapshots: ingest.bookSnapshots,
    book_changes_stored: persist.bookChanges,
    book_snapshots_stored: persist.bookSnapshots,
    journaled: x.journal?.unacknowledged ?? 0,
    journaled_at_shutdown: x.journaledNow,
    max_backlog: x.gate?.peak ?? 0,
    max_heap_mb: Math.round(x.probe.maxHeap / 1048576),
    journal_read_back: x.gate?.readBack ?? 0,
    shutdown_timed_out: !x.complete,
  };
}

/** Resolves true when `p` settles within `ms`, false when the time is up first (`p` keeps running). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const settled = p.then(
    () => true as const,
    () => true as const,
  );
  const ok = await Promise.race([settled, timedOut]);
  clearTimeout(timer);
  return ok;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
