/**
 * Prometheus metrics of the serving layer, registered on the pipeline's registry (one set per
 * {@link Metrics} instance, created on first use). The candle feed's counters are in
 * `src/candles/candle-metrics.ts`.
 */
import { Counter } from "prom-client";
import { type Metrics, metricSet } from "../ops/metrics.js";

/** The serving layer's metrics. */
export interface ServeMetrics {
  /** Live-feed listener calls that threw (isolated from the ingest path). */
  liveListenerErrors: Counter;
}

/** The serving metrics of `metrics`' registry (created once per registry). */
export const serveMetrics: (metrics: Metrics) => ServeMetrics = metricSet((registers) => ({
  liveListenerErrors: new Counter({
    name: "k2_live_listener_errors_total",
    help: "Live feed listener calls that threw (isolated; the ingest path is not affected)",
    registers,
  }),
}));
