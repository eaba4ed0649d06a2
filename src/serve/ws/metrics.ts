/**
 * The gateway's counters and their Prometheus metrics: {@link GatewayStats} (what `/api/v1/status` and
 * the worker pool read), {@link GatewayCounts} (the running totals the gateway's parts add to) and
 * {@link registerGatewayMetrics} (`k2_ws_*`, read from the stats at scrape time).
 */
import { Counter, Gauge } from "prom-client";
import type { Metrics } from "../../ops/metrics.js";

/** Counters of the gateway (also exported to `/metrics`). */
export interface GatewayStats {
  /** Worker processes serving the clients (0: served in this process). */
  workers: number;
  clients: number;
  /** Groups of clients with identical subscriptions (served together). */
  groups: number;
  /** Clients currently behind (with a non-empty send queue). */
  behind: number;
  messages_sent: number;
  conflated: number;
  disconnected_slow: number;
  disconnected_idle: number;
  rejected_unauthorized: number;
}

/** Counters of a gateway with no clients yet. */
export function emptyGatewayStats(): GatewayStats {
  return {
    workers: 0,
    clients: 0,
    groups: 0,
    behind: 0,
    messages_sent: 0,
    conflated: 0,
    disconnected_slow: 0,
    disconnected_idle: 0,
    rejected_unauthorized: 0,
  };
}

/** Running totals of a gateway process, added to by its parts (messages written, conflated, clients cut). */
export interface GatewayCounts {
  sent: number;
  conflated: number;
  slow: number;
  idle: number;
  unauthorized: number;
}

/** Totals at zero. */
export function newGatewayCounts(): GatewayCounts {
  return { sent: 0, conflated: 0, slow: 0, idle: 0, unauthorized: 0 };
}

/**
 * Registers the gateway's metrics on `metrics.registry`: `k2_ws_clients`, `k2_ws_clients_behind`,
 * `k2_ws_messages_sent_total`, `k2_ws_messages_conflated_total` and `k2_ws_disconnects_total{reason}`,
 * read from `stats` at scrape time (which may be async: the worker pool asks its processes).
 */
export function registerGatewayMetrics(
  metrics: Metrics,
  stats: () => GatewayStats | Promise<GatewayStats>,
): void {
  const registers = [metrics.registry];
  // one stats call per scrape, shared by the five metrics
  let pending: Promise<GatewayStats> | null = null;
  const current = () => {
    pending ??= Promise.resolve(stats()).finally(() => {
      setTimeout(() => {
        pending = null;
      }, 10);
    });
    return pending;
  };
  const reported = newGatewayCounts();
  /** Counters only go up: a delta is added when positive (a restarted worker process starts at 0). */
  const add = (c: Counter, key: keyof typeof reported, value: number, label?: string) => {
    const d = value - reported[key];
    if (d > 0) (label ? c.labels(label) : c).inc(d);
    if (d !== 0) reported[key] = value;
  };
  new Gauge({
    name: "k2_ws_clients",
    help: "WebSocket gateway clients connected",
    registers,
    async collect() {
      this.set((await current()).clients);
    },
  });
  new Gauge({
    name: "k2_ws_clients_behind",
    help: "WebSocket clients with messages waiting in their send queue",
    registers,
    async collect() {
      this.set((await current()).behind);
    },
  });
  new Counter({
    name: "k2_ws_messages_sent_total",
    help: "Messages written to WebSocket clients (data, replies, heartbeats; a batch counts once)",
    registers,
    async collect() {
      add(this, "sent", (await current()).messages_sent);
    },
  });
  new Counter({
    name: "k2_ws_messages_conflated_total",
    help: "Quotes/ticks replaced by a newer one of the same symbol while a client was behind",
    registers,
    async collect() {
      add(this, "conflated", (await current()).conflated);
    },
  });
  new Counter({
    name: "k2_ws_disconnects_total",
    help: "WebSocket clients closed by the gateway, by reason (slow_consumer, idle, unauthorized)",
    labelNames: ["reason"],
    registers,
    async collect() {
      const s = await current();
      add(this, "slow", s.disconnected_slow, "slow_consumer");
      add(this, "idle", s.disconnected_idle, "idle");
      add(this, "unauthorized", s.rejected_unauthorized, "unauthorized");
    },
  });
}
