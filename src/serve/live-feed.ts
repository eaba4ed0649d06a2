/**
 * What the live serving layer (WebSocket gateway, dashboard) needs of the record stream, whatever it
 * comes from: an in-process event source of trades, quotes, ticks (latest trade + best bid/ask per
 * symbol) and candles. `k2 run` and `k2 serve` hand it the serving layer's live feed (`live.ts`), which
 * tails the bus with a consumer group of its own.
 *
 * Events are delivered synchronously, in bus order per symbol; listeners must not block (the gateway's
 * fan-out only queues and writes to sockets without awaiting them).
 */
import type { QuoteV2, TradeV2 } from "../schema/records.js";
import type { Tick } from "./live.js";

export type { Tick } from "./live.js";

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

/** Events of a {@link LiveFeed}. */
export interface LiveFeedEvents {
  trade: [trade: TradeV2];
  quote: [quote: QuoteV2];
  tick: [tick: Tick];
  candle: [candle: LiveCandle];
}

/**
 * A listener as the feed sees it: the gateway passes each event's typed listener; `any` lets feeds whose
 * `on` is typed per event (the serving layer's `LiveFeed`, `EventEmitter<LiveFeedEvents>`) conform.
 */
// biome-ignore lint/suspicious/noExplicitAny: one signature for listeners of differently typed events
export type FeedListener = (value: any) => void;

/** Event names a {@link LiveFeed} delivers to the gateway. */
export type LiveFeedEventName = keyof LiveFeedEvents;

/**
 * A source of live records: the serving layer's `LiveFeed` (`live.ts`), or a Node
 * `EventEmitter<LiveFeedEvents>`. `on` may return a function that removes the listener; otherwise `off`
 * is used.
 */
export interface LiveFeed {
  on(event: LiveFeedEventName, listener: FeedListener): unknown;
  off?(event: LiveFeedEventName, listener: FeedListener): unknown;
  /** Current tick of every symbol seen so far (sent to a client when it subscribes to `ticks`). */
  ticks?(): Iterable<Tick>;
}
