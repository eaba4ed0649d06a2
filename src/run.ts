/**
 * `k2 run`: the all-in-one process on the embedded default — feed (live or an in-process replay
 * server), in-process bus, DuckDB store, HTTP `/health` and `/metrics` — with graceful shutdown that
 * flushes every buffer.
 */
import { MemoryBus } from "./bus/memory.js";
import type { RunConfig } from "./config.js";
import type { Logger } from "./ops/logger.js";
import { Metrics } from "./ops/metrics.js";
import {
  type FeedHandle,
  type IngestCounts,
  type PersistCounts,
  Publisher,
  startIngest,
  startPersist,
} from "./pipeline.js";
import { detectCaptureFormat, REPLAY_SERVERS } from "./replay/index.js";
import type { ReplayServer } from "./replay/replay-server.js";
import { WorkerReplayServer } from "./replay/replay-worker.js";
import type { Gateway } from "./serve/gateway.js";
import { createHttpServer, listen } from "./serve/http.js";
import { BusLiveFeed } from "./serve/live-feed.js";
import { registerLiveServing } from "./serve/live-serving.js";
import { DuckDBStore } from "./store/duckdb.js";
import type { Store } from "./store/store.js";
import { getVenue } from "./venues/registry.js";

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
  /** From the first market data frame to the end of the final flush, ms. */
  elapsed_ms: number;
  frames_per_s: number;
  /** From the first to the last market data frame received, ms. */
  receive_ms: number;
  /** Peak resident set size, MiB. */
  max_rss_mb: number;
}

export interface RunningPipeline {
  /** HTTP port actually bound. */
  httpPort: number;
  /** ws:// URL of the in-process replay server, when replaying. */
  replayUrl: string | null;
  replayServer: ReplayServer | null;
  feed: FeedHandle;
  store: Store;
  metrics: Metrics;
  /** The WebSocket gateway at `/ws` (for its counters). */
  gateway: Gateway;
  /** Stops the feed, drains the bus, flushes the store, closes everything; resolves with the summary. */
  stop(reason: string): Promise<RunSummary>;
  /** Resolves when the replay has been fully received (only with a replay). */
  replayDone: Promise<void> | null;
}

/** Starts the all-in-one pipeline for a validated configuration. */
export async function startRun(
  config: RunConfig,
  logger: Logger,
  hooks: {
    /** Reconnect backoff start, ms (tests). */
    backoffInitialMs?: number;
    /** Replay server resumes where a dropped connection broke (tests). */
    resumeReplay?: boolean;
    /** Keep the replay server on the main thread (tests that drop its connections). */
    replayInProcess?: boolean;
  } = {},
): Promise<RunningPipeline> {
  const venue = getVenue(config.exchange);
  if (!venue) throw new Error(`unknown exchange ${config.exchange}`);
  const metrics = new Metrics();
  const store = new DuckDBStore({ path: config.db });
  await store.init();
  const bus = new MemoryBus({ dedupeWindowMs: Number(process.env.K2_DEDUPE ?? 120000) });

  let replayServer: ReplayServer | null = null;
  let wsUrl = config.wsUrl;
  if (config.replay) {
    const format = detectCaptureFormat(config.replay);
    const replayOpts = { file: config.replay, speed: config.speed, resume: hooks.resumeReplay };
    replayServer =
      hooks.replayInProcess || !WorkerReplayServer.available()
        ? new REPLAY_SERVERS[format](replayOpts)
        : new WorkerReplayServer(format, replayOpts);
    await replayServer.start();
    wsUrl = replayServer.url;
    logger.info({ file: config.replay, speed: config.speed, url: wsUrl }, "replay server started");
  }

  // store side first, so nothing published waits for a consumer
  const persist = startPersist({
    bus,
    store,
    metrics,
    logger,
    batchSize: config.batchSize,
    batchMaxWaitMs: config.batchMaxWaitMs,
    maxBatchSize: config.maxBatchSize,
  });
  // live records for the gateway and dashboard: a consumer group of its own, before anything is published
  const live = new BusLiveFeed(bus, logger);
  const publisher = new Publisher(bus, logger);
  let firstFrameAt = 0;
  let lastFrameAt = 0;
  let maxRss = process.memoryUsage.rss();
  const rssTimer = setInterval(() => {
    maxRss = Math.max(maxRss, process.memoryUsage.rss());
  }, 250);
  rssTimer.unref();
  const feed = startIngest(
    {
      venue,
      subscription: { symbols: config.symbols, streams: config.streams },
      wsUrl,
      bus,
      metrics,
      logger,
      onRawFrame: () => {
        lastFrameAt = performance.now();
        if (firstFrameAt === 0) firstFrameAt = lastFrameAt;
      },
      backoffInitialMs: hooks.backoffInitialMs,
    },
    publisher,
  );

  let gateway: Gateway | undefined;
  const app = await createHttpServer({
    metrics,
    health: async () => {
      const problems: string[] = [];
      if (feed.connection.state !== "CONNECTED") {
        problems.push(`feed ${venue.exchange} ${feed.connection.state.toLowerCase()}`);
      }
      const s = await store.check();
      if (s) problems.push(s);
      return problems;
    },
    register: (app) => {
      gateway = registerLiveServing(app, {
        feed: live,
        config: config.gateway,
        metrics,
        logger,
        status: { feeds: [feed], symbols: config.symbols, storeLag: () => persist.consumer.lag() },
      });
    },
  });
  const httpPort = await listen(app, config.httpPort, config.httpHost);
  logger.info(
    { port: httpPort, host: config.httpHost },
    `http listening on http://${config.httpHost}:${httpPort}`,
  );

  let replayDone: Promise<void> | null = null;
  if (replayServer) {
    const server = replayServer;
    replayDone = new Promise<void>((resolve) => {
      server.on("end", () => {
        // the server has written everything; wait until the client has read it all
        const check = () => {
          if (feed.connection.framesReceived >= server.totalSent) resolve();
          else setTimeout(check, 5);
        };
        check();
      });
    });
  }

  let stopping: Promise<RunSummary> | null = null;
  const stop = (reason: string): Promise<RunSummary> => {
    if (stopping) return stopping;
    stopping = (async () => {
      logger.info({ reason }, "shutting down: stopping feed, draining bus, flushing store");
      await feed.connection.stop();
      await publisher.flush();
      await live.stop();
      await persist.consumer.stop({ drain: true });
      const end = performance.now();
      await store.close();
      await app.close();
      if (replayServer) await replayServer.stop();
      await bus.close();
      clearInterval(rssTimer);
      maxRss = Math.max(maxRss, process.memoryUsage.rss());
      const summary = summarize(feed.counts, persist.counts, bus.deduplicated, feed.connection.reconnects);
      summary.elapsed_ms = firstFrameAt ? Math.round(end - firstFrameAt) : 0;
      summary.receive_ms = firstFrameAt ? Math.round(lastFrameAt - firstFrameAt) : 0;
      summary.frames_per_s =
        summary.elapsed_ms > 0 ? Math.round((summary.frames * 1000) / summary.elapsed_ms) : 0;
      summary.max_rss_mb = Math.round(maxRss / 1048576);
      logger.info(summary, "stopped");
      return summary;
    })();
    return stopping;
  };

  return {
    httpPort,
    replayUrl: replayServer?.url ?? null,
    replayServer,
    feed,
    store,
    metrics,
    gateway: gateway!,
    stop,
    replayDone,
  };
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
    elapsed_ms: 0,
    receive_ms: 0,
    frames_per_s: 0,
    max_rss_mb: 0,
  };
}
