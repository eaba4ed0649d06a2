/**
 * The live feed of the serving layer: an in-process event emitter of trades, quotes, candles, ticks,
 * sequence gaps and dead letters, plus the latest tick per symbol in memory.
 *
 * Where the events come from: {@link startLiveConsumer} subscribes a consumer group of its own
 * (`k2-live`) to every `market.` topic of the bus, so data keeps flowing one way — venue → normalize →
 * bus → (store | serve) — and the serving layer does not care whether the bus is in-process or
 * networked. The REST API (`api.ts`), the candle aggregator (`candles.ts`) and the WebSocket gateway
 * all listen here.
 *
 * Listeners run synchronously in publication order (per symbol, the bus order). A listener that
 * throws is isolated: the error is counted and reported to `onListenerError`, other listeners still
 * run, and nothing propagates back into the bus consumer (the ingest path is never delayed by a
 * failing consumer). Listeners must be cheap; anything slow belongs in the listener's own queue.
 */
import type { Bus, Consumer } from "../bus/bus.js";
import { topicKind } from "../bus/bus.js";
import type { CandleV2 } from "../schema/candles.js";
import { toUnits, unitsToString } from "../schema/decimal.js";
import type { AssetClass, DeadLetter, QuoteV2, SequenceGap, Side, TradeV2 } from "../schema/records.js";

/**
 * Latest trade and best bid/ask of one (exchange, symbol). Prices and quantities are DECIMAL(18,8)
 * strings, times µs since epoch; fields of the side not seen yet are null.
 */
export interface Tick {
  exchange: string;
  symbol: string;
  asset_class: AssetClass;
  currency: string;
  /** Last trade: price, quantity, aggressor side, trade id and trade time (µs). */
  last_price: string | null;
  last_quantity: string | null;
  last_side: Side | null;
  last_trade_id: string | null;
  last_trade_time: number | null;
  /** Best bid/ask from the latest quote, and its time (µs). */
  bid_price: string | null;
  bid_quantity: string | null;
  ask_price: string | null;
  ask_quantity: string | null;
  quote_time: number | null;
  /** ask_price − bid_price, exact DECIMAL(18,8) string (null until a quote is seen). */
  spread: string | null;
}

/** Events of the live feed and their argument. */
export interface LiveEvents {
  trade: TradeV2;
  quote: QuoteV2;
  /** Open (updated) and closed candles, as published on `market.{asset_class}.candles.{exchange}`. */
  candle: CandleV2;
  /** The tick of a symbol after each trade or quote (a new object each time, never mutated). */
  tick: Tick;
  gap: SequenceGap;
  deadLetter: DeadLetter;
}

/** A live event name. */
export type LiveEventName = keyof LiveEvents;
type Listener<E extends LiveEventName> = (value: LiveEvents[E]) => void;

/** The in-process live emitter with the tick book. */
export class LiveFeed {
  private readonly listeners: { [E in LiveEventName]: Listener<E>[] } = {
    trade: [],
    quote: [],
    candle: [],
    tick: [],
    gap: [],
    deadLetter: [],
  };
  private readonly tickBook = new Map<string, Tick>();
  /** Listener calls that threw. */
  listenerErrors = 0;
  /** Called with each listener error (default: ignored after counting). */
  onListenerError: (err: unknown, event: LiveEventName) => void = () => undefined;

  /**
   * Adds a listener. Returns a function that removes it.
   * @example const off = live.on("trade", (t) => send(t)); ... off();
   */
  on<E extends LiveEventName>(event: E, listener: Listener<E>): () => void {
    (this.listeners[event] as Listener<E>[]).push(listener);
    return () => this.off(event, listener);
  }

  /** Removes a listener added with {@link on}. */
  off<E extends LiveEventName>(event: E, listener: Listener<E>): void {
    const list = this.listeners[event] as Listener<E>[];
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
  }

  /** Number of listeners of an event. */
  listenerCount(event: LiveEventName): number {
    return this.listeners[event].length;
  }

  /** Calls every listener of `event` with `value`, isolating listener errors. */
  emit<E extends LiveEventName>(event: E, value: LiveEvents[E]): void {
    const list = this.listeners[event] as Listener<E>[];
    if (list.length === 0) return;
    // a listener may remove itself while we iterate
    const snapshot = list.length === 1 ? list : list.slice();
    for (const l of snapshot) {
      try {
        l(value);
      } catch (err) {
        this.listenerErrors++;
        this.onListenerError(err, event);
      }
    }
  }

  /** Publishes a trade: updates the tick book, emits `trade` then `tick`. */
  publishTrade(t: TradeV2): void {
    const key = tickKey(t.exchange, t.symbol);
    const p = this.tickBook.get(key) ?? emptyTick(t.exchange, t.symbol, t.asset_class, t.currency);
    const tick: Tick = {
      exchange: p.exchange,
      symbol: p.symbol,
      asset_class: p.asset_class,
      currency: p.currency,
      last_price: t.price,
      last_quantity: t.quantity,
      last_side: t.side,
      last_trade_id: t.trade_id,
      last_trade_time: t.timestamp,
      bid_price: p.bid_price,
      bid_quantity: p.bid_quantity,
      ask_price: p.ask_price,
      ask_quantity: p.ask_quantity,
      quote_time: p.quote_time,
      spread: p.spread,
    };
    this.tickBook.set(key, tick);
    this.emit("trade", t);
    this.emit("tick", tick);
  }

  /** Publishes a quote: updates the tick book (best bid/ask, spread), emits `quote` then `tick`. */
  publishQuote(q: QuoteV2): void {
    const key = tickKey(q.exchange, q.symbol);
    const p = this.tickBook.get(key) ?? emptyTick(q.exchange, q.symbol, q.asset_class, q.currency);
    // most quotes change only quantities: keep the spread unless a price moved
    const spread =
      p.spread !== null && p.bid_price === q.bid_price && p.ask_price === q.ask_price
        ? p.spread
        : unitsToString(toUnits(q.ask_price) - toUnits(q.bid_price));
    const tick: Tick = {
      exchange: p.exchange,
      symbol: p.symbol,
      asset_class: p.asset_class,
      currency: p.currency,
      last_price: p.last_price,
      last_quantity: p.last_quantity,
      last_side: p.last_side,
      last_trade_id: p.last_trade_id,
      last_trade_time: p.last_trade_time,
      bid_price: q.bid_price,
      bid_quantity: q.bid_quantity,
      ask_price: q.ask_price,
      ask_quantity: q.ask_quantity,
      quote_time: q.timestamp,
      spread,
    };
    this.tickBook.set(key, tick);
    this.emit("quote", q);
    this.emit("tick", tick);
  }

  /**
   * Sets the tick of its (exchange, symbol) without emitting anything: how a gateway worker process
   * starts from the parent's tick book before the first trade or quote reaches it.
   */
  restoreTick(t: Tick): void {
    this.tickBook.set(tickKey(t.exchange, t.symbol), t);
  }

  /** The tick of one (exchange, symbol), O(1); exchange and symbol as stored (upper case). */
  tick(exchange: string, symbol: string): Tick | undefined {
    return this.tickBook.get(tickKey(exchange, symbol));
  }

  /** Every tick, one per (exchange, symbol) seen, sorted by exchange then symbol. */
  ticks(): Tick[] {
    return [...this.tickBook.values()].sort((a, b) =>
      a.exchange === b.exchange ? cmp(a.symbol, b.symbol) : cmp(a.exchange, b.exchange),
    );
  }
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const tickKey = (exchange: string, symbol: string) => `${exchange}\u0000${symbol}`;

function emptyTick(exchange: string, symbol: string, assetClass: AssetClass, currency: string): Tick {
  return {
    exchange,
    symbol,
    asset_class: assetClass,
    currency,
    last_price: null,
    last_quantity: null,
    last_side: null,
    last_trade_id: null,
    last_trade_time: null,
    bid_price: null,
    bid_quantity: null,
    ask_price: null,
    ask_quantity: null,
    quote_time: null,
    spread: null,
  };
}

/** Options of {@link startLiveConsumer}. */
export interface LiveConsumerOptions {
  bus: Bus;
  live: LiveFeed;
  /** Consumer group (default `k2-live`): its own queue, independent of the store's `k2-persist`. */
  group?: string;
  /**
   * Which data types to relay (default all: trades, quotes, candles, gaps, dlq). `aggtrades` are
   * never relayed as trades (they are the same executions grouped per taker order).
   */
  kinds?: string[];
}

/**
 * Subscribes the live feed to the bus: every message on a `market.` topic is relayed to `live` as it
 * is acknowledged by the bus (batch size 1: delivered as soon as it is published, in order).
 * Stop the returned consumer (`stop({ drain: true })`) before closing the bus.
 */
export function startLiveConsumer(opts: LiveConsumerOptions): Consumer {
  const { live } = opts;
  const kinds = new Set(opts.kinds ?? ["trades", "quotes", "candles", "gaps", "dlq"]);
  const kindOf = new Map<string, string>(); // topic → data type, parsed once per topic
  return opts.bus.consume(
    {
      group: opts.group ?? "k2-live",
      topicPrefixes: ["market."],
      batchSize: 1,
      maxWaitMs: 50,
      maxBatchSize: 10_000,
    },
    async (batch) => {
      for (const m of batch) {
        let kind = kindOf.get(m.topic);
        if (kind === undefined) {
          kind = topicKind(m.topic);
          kindOf.set(m.topic, kind);
        }
        if (!kinds.has(kind)) continue;
        switch (kind) {
          case "trades":
            live.publishTrade(m.value as TradeV2);
            break;
          case "quotes":
            live.publishQuote(m.value as QuoteV2);
            break;
          case "candles":
            live.emit("candle", m.value as CandleV2);
            break;
          case "gaps":
            live.emit("gap", m.value as SequenceGap);
            break;
          case "dlq":
            live.emit("deadLetter", m.value as DeadLetter);
            break;
        }
      }
    },
  );
}
