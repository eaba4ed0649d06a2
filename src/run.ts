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
import type { FeedConfig } from "./config-feeds.js";
import { backfillProblems } from "./feed/backfill.js";
import type { LivenessOverrides } from "./feed/connection.js";
import { feedLivenessProblems } from "./feed/liveness.js";
import { backlogProblem, replayFinishedProblem } from "./ops/health-checks.js";
import type { Logger } from "./ops/logger.js";
import { Metrics } from "./ops/metrics.js";
import {
  type FeedHandle,
  type IngestCounts,
  type IngestOptions,
  type PersistCounts,
  startIngest,
  startPersist,
} from "./pipeline.js";
import { indexRecording, symbolsOfKeys } from "./replay/cryptofeed.js";
import { type FaultCounts, snapshotCounts } from "./replay/faults.js";
import { detectCaptureFormat, REPLAY_SERVERS } from "./replay/index.js";
import type { ReplayServer } from "./replay/replay-server.js";
import { WorkerReplayServer } from "./replay/replay-worker.js";
import type { SequenceGap } from "./schema/records.js";
import { createHttpServer, listen } from "./serve/http.js";
import { type GatewayService, registerLiveServing } from "./serve/live-serving.js";
import { type Serving, startServing } from "./serve/serving.js";
import { createStore } from "./store/index.js";
import type { LastSequence, Store } from "./store/store.js";
import { getVenue } from "./venues/registry.js";
import type { Subscription, Venue } from "./venues/venue.js";

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
  frames_per_s: number;
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
 * for `k2 run`, one role for `k2 ingest`, `k2 persist` and `k2 serve`.
 */
export async function startProcess(
  config: RunConfig,
  logger: Logger,
  roles: Roles,
  hooks: RunHooks = {},
): Promise<RunningProcess> {
  const feedConfigs: FeedConfig[] = config.feeds?.length
    ? config.feeds
    : [
        {
          exchange: config.exchange,
          symbols: config.symbols,
          streams: config.streams,
          wsUrl: config.wsUrl,
          replay: config.replay,
          symbolsDefaulted: false,
        },
      ];
  const venues: Venue[] = feedConfigs.map((f) => {
    const v = getVenue(f.exchange);
    if (!v) throw new Error(`unknown exchange ${f.exchange}`);
    return v;
  });
  const metrics = new Metrics();
  const store = roles.persist || roles.serve ? createStore(config.db) : null;
  await store?.init();
  const bus: Bus =
    config.bus === "memory"
      ? new MemoryBus()
      : await createBus(config.bus, {
          name: `k2-${Object.entries(roles)
            .filter(([, v]) => v)
            .map(([k]) => k)
            .join("-")}`,
          onError: (err, context) => logger.warn({ err: err.message, context }, "bus error"),
        });

  const replayServers: (ReplayServer | null)[] = [];
  const replayEnded: (Promise<{ sent: number; dataFrames: number }> | null)[] = [];
  const wsUrls: string[] = [];
  const subscriptions: Subscription[] = [];
  for (const [i, f] of (roles.ingest ? feedConfigs : []).entries()) {
    const sub: Subscription = { symbols: f.symbols, streams: f.streams };
    let server: ReplayServer | null = null;
    if (f.replay) {
      const format = detectCaptureFormat(f.replay);
      if (format === "cryptofeed" && f.symbolsDefaulted) {
        sub.symbols = await recordedSymbols(f.replay, venues[i], sub.streams, logger);
      }
      const replayOpts = {
        file: f.replay,
        speed: config.speed,
        resume: hooks.resumeReplay,
        ...(config.faults ? { faults: config.faults } : {}),
      };
      server =
        hooks.replayInProcess || !WorkerReplayServer.available()
          ? new REPLAY_SERVERS[format](replayOpts)
          : new WorkerReplayServer(format, replayOpts);
      await server.start();
      logger.info(
        { exchange: venues[i].exchange, file: f.replay, speed: config.speed, url: server.url },
        "replay server started",
      );
    }
    replayServers.push(server);
    // listen for the end now: at --speed max a short capture can be sent before the rest starts up
    replayEnded.push(server ? new Promise((resolve) => server.once("end", (info) => resolve(info))) : null);
    wsUrls.push(server ? server.url : f.wsUrl);
    subscriptions.push(sub);
  }
  const replayServer = replayServers[0] ?? null;

  // spill journal (ingest side): records beyond the backlog budget, and what shutdown could not store
  const group = config.group;
  const memoryBus = bus instanceof MemoryBus ? bus : null;
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
        group: config.group,
        store,
        metrics,
        logger,
        batchSize: config.batchSize,
        batchMaxWaitMs: config.batchMaxWaitMs,
        maxBatchSize: config.maxBatchSize,
        onStored: ackJournalOnStore && journal ? (messages) => journal.ack(messages) : undefined,
        storeStallMs: config.storeStallMs,
      });
  const serving =
    roles.serve && store
      ? startServing({
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
  const memoryBacklog = () =>
    publisher.pending() + (memoryBus && persist ? memoryBus.backlog(group ?? "k2-persist") : 0);
  let firstFrameAt = 0;
  let lastFrameAt = 0;
  let maxRss = process.memoryUsage.rss();
  let maxHeap = process.memoryUsage().heapUsed;
  const rssTimer = setInterval(() => {
    maxRss = Math.max(maxRss, process.memoryUsage.rss());
    maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
  }, 250);
  rssTimer.unref();
  // the backlog gate is in place before the first frame can arrive
  /** The feeds, once started (the gate pauses and resumes them). */
  const started: FeedHandle[] = [];
  let gate: BacklogGate | null = null;
  if (journal) {
    if (ackJournalOnStore) {
      if (memoryBus) memoryBus.onDuplicate = (m) => journal.ack([m]);
    } else publisher.onAcked = (batch) => journal.ack(batch);
    const g = new BacklogGate({
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
    publisher.gate = (m) => g.admit(m);
    g.start();
    gate = g;
  }
  const feeds = (roles.ingest ? venues : []).map((venue, i) =>
    startIngest(
      {
        venue,
        subscription: subscriptions[i],
        wsUrl: wsUrls[i],
        bus,
        metrics,
        logger,
        onRawFrame: () => {
          lastFrameAt = performance.now();
          if (firstFrameAt === 0) firstFrameAt = lastFrameAt;
        },
        backoffInitialMs: hooks.backoffInitialMs,
        liveness: { ...config.liveness, backoffMaxMs: config.backoffMaxMs, ...hooks.liveness },
        resumeFrom: stored.filter((l) => l.exchange === venue.exchange),
        backfill: config.backfill,
        // --rest-url, else the replay server's own REST emulation, else the venue's
        restUrl:
          config.restUrls?.[i] ?? (replayServers[i] ? replayServers[i]!.url.replace(/^ws:/, "http:") : null),
        backfillOptions: hooks.backfillOptions,
      },
      publisher,
    ),
  );
  started.push(...feeds);
  const feed = feeds[0] ?? null;
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
  /** When each feed's replay was fully received, ms since epoch (0: not yet, or live). */
  const replayFinishedAt: number[] = feeds.map(() => 0);

  /** Why the process is unhealthy (one sentence each), for `/health` and `/api/v1/status`. */
  const health = async (): Promise<string[]> => {
    const problems: string[] = [...backfillProblems(feeds.map((f) => f.backfill))];
    if (lastRead?.problem) problems.push(lastRead.problem);
    for (const f of feeds) {
      if (f.connection.state !== "CONNECTED") {
        problems.push(`feed ${f.venue.exchange} ${f.connection.state.toLowerCase()}`);
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
    for (const [i, at] of replayFinishedAt.entries()) {
      const file = feedConfigs[i]?.replay;
      if (at > 0 && file) problems.push(replayFinishedProblem(file, at));
    }
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
        config: config.gateway,
        metrics,
        logger,
        status: {
          feeds,
          symbols: feedConfigs.flatMap((f) => f.symbols),
          storeLag: () => persist?.consumer.lag() ?? 0,
          problems: health,
        },
      });
      await serving.register(app);
    },
  });
  const httpPort = await listen(app, config.httpPort, config.httpHost);
  logger.info(
    { port: httpPort, host: config.httpHost },
    `http listening on http://${config.httpHost}:${httpPort}`,
  );

  let replayDone: Promise<void> | null = null;
  const ends: Promise<void>[] = [];
  for (const [i, server] of replayServers.entries()) {
    const ended = replayEnded[i];
    if (!server || !ended) continue;
    const f = feeds[i];
    ends.push(
      ended.then(
        (info) =>
          new Promise<void>((resolve) => {
            // (with faults, the last connection may start at the end of the capture: frames came before)
            if (info.dataFrames === 0 && f.counts.frames === 0) {
              logger.warn(
                {
                  exchange: f.venue.exchange,
                  symbols: subscriptions[i].symbols,
                  streams: subscriptions[i].streams,
                },
                "replay sent no recorded frames: the subscription matches nothing in the recording",
              );
            }
            // the server has written everything; wait until the client has read it all. Frames
            // written on a connection the client then dropped (judged dead) never arrive: when nothing
            // more arrives for END_IDLE_MS, the replay is over with what was received.
            // (idle over many turns of the event loop, so that one long blocking turn is not mistaken
            // for the end)
            let seen = f.connection.framesReceived;
            let idleSince = performance.now();
            let idleChecks = 0;
            const check = () => {
              const received = f.connection.framesReceived;
              if (received >= server.totalSent) {
                replayFinishedAt[i] = Date.now();
                return resolve();
              }
              if (received !== seen) {
                seen = received;
                idleSince = performance.now();
                idleChecks = 0;
              } else if (++idleChecks >= 100 && performance.now() - idleSince > END_IDLE_MS) {
                logger.warn(
                  { exchange: f.venue.exchange, sent: server.totalSent, received },
                  "replay ended: frames written on a dropped connection never arrived",
                );
                replayFinishedAt[i] = Date.now();
                return resolve();
              }
              setTimeout(check, 5);
            };
            check();
          }),
      ),
    );
  }
  if (ends.length > 0) {
    // the streams are bounded: once everything is relayed, close every open candle
    replayDone = Promise.all(ends)
      .then(() => publisher.flush())
      .then(() => serving?.endOfStream())
      .catch((err) => {
        logger.error({ err: (err as Error).message }, "closing candles at the end of the replay");
      });
  }

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
      await Promise.all(feeds.map((f) => f.backfill.stop()));
      // persist alone (k2 persist) finishes and acks its batch in flight; with ingest in the same
      // process it drains everything that was published
      if (persist)
        complete = (await within(persist.consumer.stop({ drain: roles.ingest }), left())) && complete;
      let journaledNow = 0;
      if (!complete) {
        const unacked: BusMessage[] = publisher.takeUnacked();
        if (memoryBus && persist)
          for (const m of memoryBus.takeUnacked(group ?? "k2-persist")) unacked.push(m);
        // records read back from the journal are still in their segment on disk
        const fresh = journal ? unacked.filter((m) => !journal.owns(m)) : unacked;
        try {
          if (journal) journaledNow = journal.append(fresh);
        } catch (err) {
          logger.error(
            { err: (err as Error).message, records: fresh.length },
            "shutdown: journal not writable",
          );
        }
        logger.error(
          {
            timeoutMs: config.shutdownTimeoutMs,
            notStored: unacked.length,
            journaled: journaledNow,
            journal: journal?.dir,
          },
          journal
            ? "shutdown timeout: records not stored in time were written to the journal; the next start replays them"
            : "shutdown timeout: the batch in flight was not acknowledged; the bus delivers it again",
        );
      }
      try {
        journal?.close();
      } catch (err) {
        logger.error({ err: (err as Error).message }, "shutdown: closing the journal failed");
      }
      const end = performance.now();
      // a store stuck on a write does not hold the exit past the timeout (plus a little for closing)
      await within(store?.close() ?? Promise.resolve(), Math.max(left(), 2000));
      await within(app.close(), Math.max(left(), 2000));
      for (const server of replayServers) if (server) await server.stop();
      await within(bus.close(), Math.max(left(), 2000));
      clearInterval(rssTimer);
      maxRss = Math.max(maxRss, process.memoryUsage.rss());
      const summary = summarize(
        sumCounts(feeds.map((f) => f.counts)),
        persist?.counts ?? { stored: 0, duplicates: 0, batches: 0, poison: 0 },
        bus instanceof MemoryBus ? bus.deduplicated : 0,
        feeds.reduce((n, f) => n + f.connection.reconnects, 0),
      );
      summary.redeliveries = persist?.consumer.redeliveries() ?? 0;
      summary.faults = sumFaults(replayServers);
      // detected by this run, plus gaps an earlier run left open and this one took over
      summary.gaps_detected = summary.gaps + feeds.reduce((n, f) => n + f.backfill.counts.resumed, 0);
      summary.gaps_filled = feeds.reduce((n, f) => n + f.backfill.counts.filled, 0);
      summary.missing = feeds.reduce((n, f) => n + f.backfill.missing, 0);
      summary.elapsed_ms = firstFrameAt ? Math.round(end - firstFrameAt) : 0;
      summary.receive_ms = firstFrameAt ? Math.round(lastFrameAt - firstFrameAt) : 0;
      summary.frames_per_s =
        summary.elapsed_ms > 0 ? Math.round((summary.frames * 1000) / summary.elapsed_ms) : 0;
      summary.max_rss_mb = Math.round(maxRss / 1048576);
      summary.journaled = journal?.unacknowledged ?? 0;
      summary.journaled_at_shutdown = journaledNow;
      summary.max_backlog = gate?.peak ?? 0;
      summary.max_heap_mb = Math.round(maxHeap / 1048576);
      summary.journal_read_back = gate?.readBack ?? 0;
      summary.shutdown_timed_out = !complete;
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

  return {
    httpPort,
    replayUrl: replayServer?.url ?? null,
    replayServer,
    replayServers,
    feed,
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

/** Quiet time after the end of a replay before frames still missing are given up, ms. */
const END_IDLE_MS = 3000;

/** Fault counts of several replay servers, added up (null when none injects faults). */
function sumFaults(servers: (ReplayServer | null)[]): FaultCounts | null {
  let total: FaultCounts | null = null;
  for (const s of servers) {
    const c = s?.faultCounts();
    if (!c) continue;
    if (!total) {
      total = snapshotCounts(c);
      continue;
    }
    total.drops += c.drops;
    total.frames_lost += c.frames_lost;
    total.stalls += c.stalls;
    total.garbage_frames += c.garbage_frames;
    total.closes += c.closes;
    total.pings_unanswered += c.pings_unanswered;
    for (const [k, n] of Object.entries(c.lost_by_stream))
      total.lost_by_stream[k] = (total.lost_by_stream[k] ?? 0) + n;
  }
  return total;
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
  const total: IngestCounts = { frames: 0, trades: 0, aggTrades: 0, quotes: 0, rejected: 0, gaps: 0 };
  for (const c of all) {
    total.frames += c.frames;
    total.trades += c.trades;
    total.aggTrades += c.aggTrades;
    total.quotes += c.quotes;
    total.rejected += c.rejected;
    total.gaps += c.gaps;
  }
  return total;
}

/**
 * The symbols a cryptofeed recording subscribed to on the venue's streams, keeping those the venue
 * accepts (a replay without `--symbols` for its exchange subscribes to what was recorded).
 */
async function recordedSymbols(
  file: string,
  venue: Venue,
  streams: string[],
  logger: Logger,
): Promise<string[]> {
  const index = await indexRecording(file, (exchange) => getVenue(exchange.toLowerCase())?.replay);
  const keys = [...index.connections.values()].flatMap((c) => [...c.keys]);
  const accepted: string[] = [];
  for (const s of symbolsOfKeys(keys, venue.streams)) {
    try {
      venue.validate({ symbols: [s], streams });
      accepted.push(s);
    } catch (e) {
      logger.warn(
        { exchange: venue.exchange, symbol: s, reason: (e as Error).message },
        "recorded symbol skipped",
      );
    }
  }
  logger.info(
    { exchange: venue.exchange, symbols: accepted },
    "replay subscribes to the recording's symbols",
  );
  if (accepted.length === 0) return [...venue.defaultSymbols];
  return accepted;
}

function summarize(
  ingest: IngestCounts,
  persist: PersistCounts,
  busDuplicates: number,
  reconnects: number,
): RunSummary {
  return {
    frames: ingest.frames,
    trades: ingest.trades,
    quotes: ingest.quotes,
    rejected: ingest.rejected,
    duplicates: persist.duplicates + busDuplicates,
    aggTrades: ingest.aggTrades,
    stored: persist.stored,
    gaps: ingest.gaps,
    reconnects,
    faults: null,
    redeliveries: 0,
    elapsed_ms: 0,
    receive_ms: 0,
    frames_per_s: 0,
    max_rss_mb: 0,
    gaps_detected: 0,
    gaps_filled: 0,
    missing: 0,
    poison: persist.poison,
    journaled: 0,
    journaled_at_shutdown: 0,
    max_backlog: 0,
    max_heap_mb: 0,
    journal_read_back: 0,
    shutdown_timed_out: false,
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
