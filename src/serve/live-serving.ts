/**
 * Wires the live serving layer onto the HTTP server in one call: API token check for `/api/*`, the
 * WebSocket gateway at `/ws`, `GET /api/v1/status` and the dashboard at `/`.
 */
import type { FastifyInstance } from "fastify";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { registerApiAuth, TokenAuth } from "./auth.js";
import { registerDashboard } from "./dashboard.js";
import { Gateway } from "./gateway.js";
import type { GatewayConfig } from "./gateway-config.js";
import type { LiveFeed } from "./live-feed.js";
import { registerStatus, type StatusSources } from "./status.js";

export interface LiveServingOptions {
  feed: LiveFeed;
  config: GatewayConfig;
  metrics: Metrics;
  logger: Logger;
  status: Omit<StatusSources, "gateway">;
}

/** Registers auth, gateway, status and dashboard on `app`; returns the gateway (for its stats). */
export function registerLiveServing(app: FastifyInstance, opts: LiveServingOptions): Gateway {
  const auth = new TokenAuth(opts.config.apiTokens);
  registerApiAuth(app, auth);
  const gateway = new Gateway({
    feed: opts.feed,
    metrics: opts.metrics,
    logger: opts.logger,
    auth,
    heartbeatMs: opts.config.heartbeatMs,
    idleTimeoutMs: opts.config.idleTimeoutMs,
    maxQueue: opts.config.maxQueue,
    highWaterBytes: opts.config.highWaterBytes,
  });
  gateway.attach(app);
  registerStatus(app, { ...opts.status, gateway: () => gateway.stats() });
  registerDashboard(app);
  return gateway;
}
