/**
 * Wires the live serving layer onto the HTTP server in one call: API token check for `/api/*`, the
 * WebSocket gateway at `/ws`, `GET /api/v1/status` and the dashboard at `/`.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { LiveBookSource } from "../schema/live-book.js";
import { registerApiAuth, TokenAuth } from "./auth.js";
import { registerDashboard } from "./dashboard.js";
import type { LiveFeed } from "./live/feed.js";
import type { RecentWindow } from "./live/recent.js";
import { registerStatus, type StatusSources } from "./status.js";
import type { GatewayConfig } from "./ws/config.js";
import { Gateway } from "./ws/gateway.js";
import { HISTORY_LOOP_SHARE, HistoryQueue, pacedHistory } from "./ws/history-queue.js";
import type { GatewayStats } from "./ws/metrics.js";
import { GatewayPool, gatewayWorkerScript } from "./ws/pool.js";
import type { ReplayHistory } from "./ws/replay.js";

export interface LiveServingOptions {
  feed: LiveFeed;
  config: GatewayConfig;
  metrics: Metrics;
  logger: Logger;
  status: Omit<StatusSources, "gateway">;
  /** History for `/ws` subscriptions `from` a point in time (the store's typed reads); none: refused. */
  history?: ReplayHistory;
  /** The records received lately, some perhaps not stored yet (`live/recent.ts`). */
  recent?: RecentWindow;
  /** The kept order books, for the gateway's `book.{N}` channels. */
  books?: LiveBookSource;
}

/** What the serving layer exposes of the gateway, in-process or in worker processes. */
export interface GatewayService {
  /** Counters (summed over the worker processes). */
  stats(): GatewayStats | Promise<GatewayStats>;
}

/**
 * Registers auth, gateway, status and dashboard on `app`; returns the gateway (for its stats). The
 * gateway runs in `config.workers` worker processes (`ws/pool.ts`), or in this process when that
 * is 0 or K2 runs from unbuilt sources (then a warning says so).
 */
export function registerLiveServing(app: FastifyInstance, opts: LiveServingOptions): GatewayService {
  const auth = new TokenAuth(opts.config.apiTokens);
  registerApiAuth(app, auth);
  const script = opts.config.workers > 0 ? gatewayWorkerScript() : null;
  if (opts.config.workers > 0 && !script) {
    opts.logger.warn("gateway worker script not built (npm run build): serving /ws in this process");
  }
  // in-process: the history page reads keep to their share of this loop while live clients are served
  let inProcess: Gateway | null = null;
  const pages = new HistoryQueue(HISTORY_LOOP_SHARE, () => inProcess?.liveBusy() ?? true);
  const gateway: GatewayService & { attach(app: FastifyInstance): void } = script
    ? new GatewayPool(
        {
          feed: opts.feed,
          config: opts.config,
          metrics: opts.metrics,
          logger: opts.logger,
          workers: opts.config.workers,
          history: opts.history,
          books: opts.books,
        },
        script,
      )
    : new Gateway({
        feed: opts.feed,
        metrics: opts.metrics,
        logger: opts.logger,
        auth,
        heartbeatMs: opts.config.heartbeatMs,
        idleTimeoutMs: opts.config.idleTimeoutMs,
        maxQueue: opts.config.maxQueue,
        highWaterBytes: opts.config.highWaterBytes,
        // pages read here one at a time within a share of this event loop (ingest's): live first
        history: opts.history && pacedHistory(opts.history, pages),
        recent: opts.recent,
        books: opts.books,
        replayMaxRange: opts.config.replayMaxRange,
        replayMaxRecords: opts.config.replayMaxRecords,
        connLimits: {
          perIp: opts.config.maxConnPerIp,
          perToken: opts.config.maxConnPerToken,
          limitLoopback: opts.config.limitLoopback,
        },
      });
  if (gateway instanceof Gateway) inProcess = gateway;
  gateway.attach(app);
  registerStatus(app, { ...opts.status, gateway: () => gateway.stats() });
  registerDashboard(app);
  return gateway;
}
