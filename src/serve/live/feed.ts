/**
 * The live feed of the serving layer: an in-process event emitter of trades, quotes, candles, ticks,
 * sequence gaps and dead letters, plus the latest tick per symbol in memory.
 *
 * Where the events come from: `startLiveConsumer` (`consumer.ts`) subscribes a consumer group of its
 * own (`k2-live-…`, one per process) to every `market.` topic of the bus, so data keeps flowing one way — venue → normalize →
 * bus → (store | serve) — and the serving layer does not care whether the bus is in-process or
 * networked. The REST API (`api.ts`), the candle aggregator (`candles.ts`) and the WebSocket gateway
 * (through its `GatewayFeed` contract, `ws/feed.ts`) all listen here.
 *
 * Listeners run synchronously in publication order (per symbol, the bus order). A listener that
 * throws is isolated: the error is counted and reported to `onListenerError`, other listeners still
 * run, and nothing propagates back into the bus consumer (the ingest path is never delayed by a
 * failing consumer). Listeners must be cheap; anything slow belongs in the listener's own queue.
 */
import type { CandleV2 } from "../../schema/candles.js";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../../schema/records.js";
import { type Tick, TickBook } from "./ticks.js";

export type { Tick } from "./ticks.js";

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
  private readonly tickBook = new TickBook();
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

  /**
   * Publishes a trade: updates the tick book, emits `trade` then `tick` (with no `tick` listener the
   * tick is built only when read).
   */
  publishTrade(t: TradeV2): void {
    if (this.listeners.tick.length === 0) {
      this.tickBook.noteTrade(t);
      this.emit("trade", t);
      return;
    }
    const tick = this.tickBook.applyTrade(t);
    this.emit("trade", t);
    this.emit("tick", tick);
  }

  /**
   * Publishes a quote: updates the tick book (best bid/ask, spread), emits `quote` then `tick` (with no
   * `tick` listener the tick is built only when read).
   */
  publishQuote(q: QuoteV2): void {
    if (this.listeners.tick.length === 0) {
      this.tickBook.noteQuote(q);
      this.emit("quote", q);
      return;
    }
    const tick = this.tickBook.applyQuote(q);
    this.emit("quote", q);
    this.emit("tick", tick);
  }

  /**
   * Sets the tick of its (exchange, symbol) without emitting anything: how a gateway worker process
   * starts from the parent's tick book before the first trade or quote reaches it.
   */
  restoreTick(t: Tick): void {
    this.tickBook.restore(t);
  }

  /** The tick of one (exchange, symbol), O(1); exchange and symbol as stored (upper case). */
  tick(exchange: string, symbol: string): Tick | undefined {
    return this.tickBook.get(exchange, symbol);
  }

  /** Every tick, one per (exchange, symbol) seen, sorted by exchange then symbol. */
  ticks(): Tick[] {
    return this.tickBook.all();
  }
}
