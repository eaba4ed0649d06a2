/**
 * Prometheus metrics of the serving layer, registered on the pipeline's registry (one set per
 * {@link Metrics} instance, created on first use).
 */
import { Counter } from "prom-client";
import type { Metrics } from "../ops/metrics.js";

/** The serving layer's metrics. */
export interface ServeMetrics {
  /** Candles published, by interval: open-candle updates and closed candles. */
  candlesOpen: Counter<"interval">;
  candlesClosed: Counter<"interval">;
  /** Trades older than their candle's close: `amended` the last closed candle, or `dropped`. */
  lateTrades: Counter<"outcome">;
  /** Live-feed listener calls that threw (isolated from the ingest path). */
  liveListenerErrors: Counter;
}

const cache = new WeakMap<Metrics, ServeMetrics>();

/** The serving metrics of `metrics`' registry (created once per registry). */
export function serveMetrics(metrics: Metrics): ServeMetrics {
  let m = cache.get(metrics);
  if (m) return m;
  const registers = [metrics.registry];
  m = {
    candlesOpen: new Counter({
      name: "k2_candles_open_updates_total",
      help: "Open-candle updates published (conflated per event-loop turn), by interval",
      labelNames: ["interval"],
      registers,
    }),
    candlesClosed: new Counter({
      name: "k2_candles_closed_total",
      help: "Candles closed and published (including amendments after late trades), by interval",
      labelNames: ["interval"],
      registers,
    }),
    lateTrades: new Counter({
      name: "k2_candle_late_trades_total",
      help: "Trades arriving after their candle closed: amended (last closed candle) or dropped",
      labelNames: ["outcome"],
      registers,
    }),
    liveListenerErrors: new Counter({
      name: "k2_live_listener_errors_total",
      help: "Live feed listener calls that threw (isolated; the ingest path is not affected)",
      registers,
    }),
  };
  cache.set(metrics, m);
  return m;
}
