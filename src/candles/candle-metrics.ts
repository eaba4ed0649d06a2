/**
 * Prometheus metrics of the live candle feed, registered on the process's registry (one set per
 * {@link Metrics} instance, created on first use).
 */
import { Counter } from "prom-client";
import { type Metrics, metricSet } from "../ops/metrics.js";

/** The candle feed's metrics. */
export interface CandleMetrics {
  /** Candles published, by interval: open-candle updates and closed candles. */
  candlesOpen: Counter<"interval">;
  candlesClosed: Counter<"interval">;
  /** Trades older than their candle's close: `amended` the last closed candle, or `dropped`. */
  lateTrades: Counter<"outcome">;
}

/** The candle metrics of `metrics`' registry (created once per registry). */
export const candleMetrics: (metrics: Metrics) => CandleMetrics = metricSet((registers) => ({
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
}));
