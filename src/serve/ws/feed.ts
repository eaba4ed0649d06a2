/**
 * {@link GatewayFeed}: what the WebSocket gateway needs of the record stream, whatever it comes from: an
 * in-process event source of trades, quotes, ticks (latest trade + best bid/ask per symbol) and
 * candles. `k2 run` and `k2 serve` hand it the serving layer's live feed (`LiveFeed`, `live/feed.ts`),
 * which tails the bus with a consumer group of its own; a gateway worker process hands it a `LiveFeed`
 * fed by the parent (`worker.ts`).
 *
 * Events are delivered synchronously, in bus order per symbol; listeners must not block (the gateway's
 * fan-out only queues and writes to sockets without awaiting them).
 */
import type { QuoteV2, TradeV2 } from "../../schema/records.js";
import type { Tick } from "../live/ticks.js";

export type { Tick } from "../live/ticks.js";

/**
 * An OHLCV candle as published by the live candle aggregator. The gateway only needs `symbol` and
 * `interval` (`1s`, `1m`, `5m`, `15m`, `1h`, `1d`) to route it to channel `candles.{interval}`; the
 * whole object (OHLCV fields and all) is sent to clients unchanged.
 */
export interface LiveCandle {
  exchange: string;
  symbol: string;
  interval: string;
}

/** Events of a {@link GatewayFeed}. */
export interface GatewayFeedEvents {
  trade: [trade: TradeV2];
  quote: [quote: QuoteV2];
  tick: [tick: Tick];
  candle: [candle: LiveCandle];
}

/**
 * A listener as the feed sees it: the gateway passes each event's typed listener; `any` lets feeds whose
 * `on` is typed per event (the serving layer's `LiveFeed`, `EventEmitter<GatewayFeedEvents>`) conform.
 */
// biome-ignore lint/suspicious/noExplicitAny: one signature for listeners of differently typed events
export type FeedListener = (value: any) => void;

/** Event names a {@link GatewayFeed} delivers to the gateway. */
export type GatewayFeedEventName = keyof GatewayFeedEvents;

/**
 * A source of live records for the gateway: the serving layer's `LiveFeed` (`live/feed.ts`), or a
 * Node `EventEmitter<GatewayFeedEvents>`. `on` may return a function that removes the listener;
 * otherwise `off` is used.
 */
export interface GatewayFeed {
  on(event: GatewayFeedEventName, listener: FeedListener): unknown;
  off?(event: GatewayFeedEventName, listener: FeedListener): unknown;
  /** Current tick of every symbol seen so far (sent to a client when it subscribes to `ticks`). */
  ticks?(): Iterable<Tick>;
}
