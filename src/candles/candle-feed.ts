/**
 * Wires the pure {@link CandleAggregator} to the live feed and the bus: trades from the live feed go
 * in; closed candles (boundary crossed, grace elapsed, end of a replay) and open-candle updates go out
 * on the bus topic `market.{asset_class}.candles.{exchange}` (key = symbol). From there the store's
 * consumer writes the closed ones to `candles_v2` and the live consumer emits every one as a `candle`
 * event — so candles follow the same one-way path as trades: bus → (store | serve).
 *
 * Open-candle updates are conflated: at most one per (exchange, symbol, interval) per event-loop turn,
 * carrying the candle as it stands after every trade of that turn. Message ids are deterministic
 * (`candle/EXCHANGE/SYMBOL/interval/start/open|closed/trade_count`), so a candle published twice (two
 * aggregators on one networked bus, a replay) is deduplicated by the bus.
 */
import type { Bus, BusMessage } from "../bus/bus.js";
import { Publisher } from "../bus/publisher.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { type CandleV2, candleTopic } from "../schema/candles.js";
import type { TradeV2 } from "../schema/records.js";
import { candleMetrics } from "./candle-metrics.js";
import { CandleAggregator, type CandleAggregatorOptions } from "./candles.js";

/**
 * Where the candle feed takes its trades from: every trade relayed off the bus, in bus order. The
 * serving layer's `LiveFeed` (`src/serve/live/feed.ts`) satisfies it.
 */
export interface TradeEvents {
  /** Adds a trade listener; returns a function that removes it. */
  on(event: "trade", listener: (trade: TradeV2) => void): () => void;
}

/** Options of {@link startCandleFeed}. */
export interface CandleFeedOptions extends CandleAggregatorOptions {
  /** The trades to aggregate (the serving layer's live feed). */
  live: TradeEvents;
  bus: Bus;
  logger: Logger;
  metrics: Metrics;
  /** How often the grace rule is checked, ms (default 250). */
  tickMs?: number;
  /** Wall clock, µs since epoch (tests). */
  nowUs?: () => number;
}

/** A running candle feed. */
export interface CandleFeed {
  aggregator: CandleAggregator;
  /**
   * End of a bounded stream (a replay fully received and relayed): closes and publishes every open
   * candle, resolving when the bus has acknowledged them.
   */
  endOfStream(): Promise<void>;
  /** Stops listening and the grace timer; resolves when everything published is acknowledged. */
  stop(): Promise<void>;
}

const defaultNowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** Starts aggregating the live trades into candles published on the bus. */
export function startCandleFeed(opts: CandleFeedOptions): CandleFeed {
  const aggregator = new CandleAggregator(opts);
  const nowUs = opts.nowUs ?? defaultNowUs;
  const publisher = new Publisher(opts.bus, opts.logger);
  const m = candleMetrics(opts.metrics);
  let scheduled = false;

  const publish = (candles: CandleV2[]) => {
    for (const c of candles) {
      const msg: BusMessage<CandleV2> = {
        topic: candleTopic(c.asset_class, c.exchange),
        key: c.symbol,
        id: `candle/${c.exchange}/${c.symbol}/${c.interval}/${c.interval_start}/${c.closed ? "closed" : "open"}/${c.trade_count}`,
        value: c,
      };
      publisher.push(msg);
      (c.closed ? m.candlesClosed : m.candlesOpen).labels(c.interval).inc();
    }
  };
  const flushOpen = () => {
    scheduled = false;
    publish(aggregator.takeOpenUpdates());
  };
  let lateSeen = { amended: 0, dropped: 0 };
  const countLate = () => {
    if (aggregator.amendedLate !== lateSeen.amended) {
      m.lateTrades.labels("amended").inc(aggregator.amendedLate - lateSeen.amended);
    }
    if (aggregator.droppedLate !== lateSeen.dropped) {
      m.lateTrades.labels("dropped").inc(aggregator.droppedLate - lateSeen.dropped);
    }
    lateSeen = { amended: aggregator.amendedLate, dropped: aggregator.droppedLate };
  };

  const off = opts.live.on("trade", (t) => {
    const closed = aggregator.addTrade(t, nowUs());
    if (closed.length > 0) {
      publish(closed);
      countLate();
    }
    if (!scheduled) {
      scheduled = true;
      setImmediate(flushOpen);
    }
  });
  const timer = setInterval(() => {
    const closed = aggregator.advance(nowUs());
    if (closed.length > 0) publish(closed);
  }, opts.tickMs ?? 250);
  timer.unref();

  return {
    aggregator,
    async endOfStream() {
      flushOpen();
      publish(aggregator.closeAll());
      await publisher.flush();
    },
    async stop() {
      off();
      clearInterval(timer);
      if (scheduled) flushOpen();
      await publisher.flushWithin(30_000);
    },
  };
}
