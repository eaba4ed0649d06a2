/**
 * What the live serving layer (WebSocket gateway, dashboard) needs of the record stream, whatever it
 * comes from: an in-process event source of trades, quotes, ticks (latest trade + best bid/ask per
 * symbol) and candles. `k2 run` feeds it from the in-process bus ({@link BusLiveFeed}); a separate
 * `k2 serve` can feed it from a networked bus without the gateway changing.
 *
 * Events are delivered synchronously, in bus order per symbol; listeners must not block (the gateway's
 * fan-out only queues and writes to sockets without awaiting them).
 */
import { EventEmitter } from "node:events";
import type { Bus, Consumer } from "../bus/bus.js";
import { topicKind } from "../bus/bus.js";
import type { Logger } from "../ops/logger.js";
import type { QuoteV2, Side, TradeV2 } from "../schema/records.js";

/**
 * Latest state of one instrument: the last trade and the best bid/ask, as exact DECIMAL(18,8) strings
 * (null until the first trade / quote has been seen). Times are µs since epoch UTC.
 */
export interface Tick {
  exchange: string;
  symbol: string;
  last_price: string | null;
  last_quantity: string | null;
  last_side: Side | null;
  /** Venue time of the last trade, µs. */
  last_trade_timestamp: number | null;
  bid_price: string | null;
  bid_quantity: string | null;
  ask_price: string | null;
  ask_quantity: string | null;
  /** Time of the last best bid/ask update, µs. */
  quote_timestamp: number | null;
  /** Receipt time (ingestion_timestamp) of the record that last changed this tick, µs. */
  ingestion_timestamp: number;
}

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
 * A source of live records. A Node `EventEmitter<LiveFeedEvents>` satisfies it; so does an emitter
 * whose `on` returns a function that removes the listener (then `off` is not needed).
 */
export interface LiveFeed {
  on<E extends keyof LiveFeedEvents>(event: E, listener: (...args: LiveFeedEvents[E]) => void): unknown;
  off?<E extends keyof LiveFeedEvents>(event: E, listener: (...args: LiveFeedEvents[E]) => void): unknown;
  /** Current tick of every symbol seen so far (sent to a client when it subscribes to `ticks`). */
  ticks?(): Iterable<Tick>;
}

/**
 * Keeps the latest trade and best bid/ask per (exchange, symbol) and returns the updated tick.
 * O(1) per record; the returned object is a fresh copy the caller may hand out.
 */
export class TickBook {
  private readonly ticks = new Map<string, Tick>();

  private entry(exchange: string, symbol: string, at: number): Tick {
    const key = `${exchange}\u0000${symbol}`;
    let t = this.ticks.get(key);
    if (!t) {
      t = {
        exchange,
        symbol,
        last_price: null,
        last_quantity: null,
        last_side: null,
        last_trade_timestamp: null,
        bid_price: null,
        bid_quantity: null,
        ask_price: null,
        ask_quantity: null,
        quote_timestamp: null,
        ingestion_timestamp: at,
      };
      this.ticks.set(key, t);
    }
    return t;
  }

  /** Applies a trade; returns the updated tick (a copy). */
  trade(r: TradeV2): Tick {
    const t = this.entry(r.exchange, r.symbol, r.ingestion_timestamp);
    t.last_price = r.price;
    t.last_quantity = r.quantity;
    t.last_side = r.side;
    t.last_trade_timestamp = r.timestamp;
    t.ingestion_timestamp = r.ingestion_timestamp;
    return { ...t };
  }

  /** Applies a best bid/ask update; returns the updated tick (a copy). */
  quote(q: QuoteV2): Tick {
    const t = this.entry(q.exchange, q.symbol, q.ingestion_timestamp);
    t.bid_price = q.bid_price;
    t.bid_quantity = q.bid_quantity;
    t.ask_price = q.ask_price;
    t.ask_quantity = q.ask_quantity;
    t.quote_timestamp = q.timestamp;
    t.ingestion_timestamp = q.ingestion_timestamp;
    return { ...t };
  }

  /** Copies of every tick. */
  all(): Tick[] {
    return [...this.ticks.values()].map((t) => ({ ...t }));
  }
}

/**
 * {@link LiveFeed} fed by a consumer group of its own on the bus (`k2-live-gateway` by default): trades
 * (topic kind `trades`; aggregate trades are not forwarded) and quotes, plus the ticks derived from
 * them. The group takes every message as soon as it is published (batch size 1), so live latency is one
 * event-loop turn after the publisher's ack; a listener that throws is logged and never makes the bus
 * redeliver.
 */
export class BusLiveFeed extends EventEmitter<LiveFeedEvents> implements LiveFeed {
  private readonly book = new TickBook();
  private readonly consumer: Consumer;

  constructor(bus: Bus, logger: Logger, opts: { group?: string } = {}) {
    super();
    this.consumer = bus.consume(
      {
        group: opts.group ?? "k2-live-gateway",
        topicPrefixes: ["market."],
        batchSize: 1,
        maxWaitMs: 1000,
        maxBatchSize: 10_000,
      },
      async (batch) => {
        for (const m of batch) {
          try {
            const kind = topicKind(m.topic);
            if (kind === "trades") {
              const trade = m.value as TradeV2;
              this.emit("trade", trade);
              this.emit("tick", this.book.trade(trade));
            } else if (kind === "quotes") {
              const quote = m.value as QuoteV2;
              this.emit("quote", quote);
              this.emit("tick", this.book.quote(quote));
            }
          } catch (err) {
            logger.error({ err: (err as Error).message, topic: m.topic }, "live feed listener failed");
          }
        }
      },
    );
  }

  ticks(): Tick[] {
    return this.book.all();
  }

  /** Records published but not yet handed to the listeners. */
  lag(): number {
    return this.consumer.lag();
  }

  /** Hands over everything already published, then stops. */
  async stop(): Promise<void> {
    await this.consumer.stop({ drain: true });
  }
}
