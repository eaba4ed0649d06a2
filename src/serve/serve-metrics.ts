/**
 * Prometheus metrics of the serving layer, registered on the pipeline's registry (one set per
 * {@link Metrics} instance, created on first use). The candle feed's counters are in
 * `src/candles/candle-metrics.ts`.
 */
import { Counter } from "prom-client";
import type { Metrics } from "../ops/metrics.js";

/** The serving layer's metrics. */
export interface ServeMetrics {
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
    liveListenerErrors: new Counter({
      name: "k2_live_listener_errors_total",
      help: "Live feed listener calls that threw (isolated; the ingest path is not affected)",
      registers,
    }),
  };
  cache.set(metrics, m);
  return m;
}
