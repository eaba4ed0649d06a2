/**
 * The serving layer of one process, wired over a bus and a store: the live feed (its own bus consumer
 * group), the candle feed (live trades → candles → bus), the {@link MarketDataSource} and the HTTP
 * routes (OpenAPI docs and REST API v1). `k2 run` starts it beside the pipeline; other serving pieces
 * (WebSocket gateway, dashboard) take `live` / `source` from here.
 */
import type { FastifyInstance } from "fastify";
import type { Bus, Consumer } from "../bus/bus.js";
import { type CandleFeed, startCandleFeed } from "../candles/candle-feed.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { CandleInterval } from "../schema/candles.js";
import type { LiveBookSource } from "../schema/live-book.js";
import type { Store } from "../store/store.js";
import { startLiveConsumer } from "./live/consumer.js";
import { LiveFeed } from "./live/feed.js";
import { RecentWindow } from "./live/recent.js";
import { DEFAULT_MAX_RESPONSE_BYTES, registerApi, registerDocs } from "./rest/api.js";
import type { MarketDataSource } from "./rest/source.js";
import { StoreMarketDataSource } from "./rest/store-source.js";
import { serveMetrics } from "./serve-metrics.js";

/** Options of {@link startServing}. */
export interface ServingOptions {
  bus: Bus;
  store: Store;
  metrics: Metrics;
  logger: Logger;
  /** Grace past a candle's end before a quiet market closes it, ms (default 2000). */
  candleGraceMs?: number;
  /** Candle intervals built live (default all). */
  candleIntervals?: readonly CandleInterval[];
  /** Byte budget of one REST list response, bytes (`K2_API_MAX_RESPONSE_BYTES`; default 4 MiB). */
  maxResponseBytes?: number;
  /** The order books the process maintains (`GET /api/v1/book`), when it keeps any. */
  books?: LiveBookSource;
}

/** A running serving layer. */
export interface Serving {
  live: LiveFeed;
  /** The trades and quotes received lately (some perhaps not stored yet), `live/recent.ts`. */
  recent: RecentWindow;
  source: MarketDataSource;
  candles: CandleFeed;
  /** Registers `/docs` and `/api/v1` on the HTTP server (pass to `createHttpServer`'s `register`). */
  register(app: FastifyInstance): Promise<void>;
  /**
   * End of a bounded stream (a replay fully received): waits until the live consumer has relayed
   * every published record, then closes and publishes every open candle.
   */
  endOfStream(): Promise<void>;
  /**
   * Resolves once the live consumer has joined its group (`Consumer.ready`): from then on every record
   * published reaches the live feed. Start the feeds after it, or their first records are history only.
   */
  ready(): Promise<void>;
  /** Stops the candle feed and the live consumer (draining it); call before the store drains. */
  stop(): Promise<void>;
}

/** Starts the serving layer over `bus` and `store`. */
export function startServing(opts: ServingOptions): Serving {
  const live = new LiveFeed();
  const m = serveMetrics(opts.metrics);
  live.onListenerError = (err, event) => {
    m.liveListenerErrors.inc();
    opts.logger.warn({ err: (err as Error)?.message, event }, "live listener failed");
  };
  // the candle feed listens before the consumer starts, so it sees every trade
  const candles = startCandleFeed({
    live,
    bus: opts.bus,
    logger: opts.logger,
    metrics: opts.metrics,
    graceUs: (opts.candleGraceMs ?? 2000) * 1000,
    intervals: opts.candleIntervals,
  });
  const recent = new RecentWindow();
  recent.follow(live);
  const consumer: Consumer = startLiveConsumer({ bus: opts.bus, live });
  const source = new StoreMarketDataSource({
    store: opts.store,
    live,
    candles: candles.aggregator,
    recent,
    books: opts.books,
  });
  let stopped: Promise<void> | null = null;

  return {
    live,
    recent,
    source,
    candles,
    async register(app) {
      await registerDocs(app);
      await registerApi(app, source, opts.logger, {
        maxResponseBytes: opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      });
    },
    ready: () => consumer.ready(),
    async endOfStream() {
      while (consumer.lag() > 0) await new Promise((r) => setTimeout(r, 5));
      await candles.endOfStream();
    },
    stop() {
      stopped ??= (async () => {
        await consumer.stop({ drain: true });
        await candles.stop();
      })();
      return stopped;
    },
  };
}
