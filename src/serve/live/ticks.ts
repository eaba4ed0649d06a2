/**
 * Ticks: the latest trade and best bid/ask of each (exchange, symbol), kept in memory by the live feed
 * (`feed.ts`) and sent to gateway clients that subscribe to `ticks` (a snapshot first, then one tick
 * after each trade or quote of the symbol).
 */
import { toUnits, unitsToString } from "../../schema/decimal.js";
import type { AssetClass, QuoteV2, Side, TradeV2 } from "../../schema/records.js";

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

/**
 * The tick of every (exchange, symbol) seen so far. Each update stores a new {@link Tick} object (a
 * tick handed out is never mutated afterwards).
 */
export class TickBook {
  private readonly book = new Map<string, Tick>();

  /** Takes a trade into its symbol's tick (last price, quantity, side, trade id and time); returns the new tick. */
  applyTrade(t: TradeV2): Tick {
    const key = tickKey(t.exchange, t.symbol);
    const p = this.book.get(key) ?? emptyTick(t.exchange, t.symbol, t.asset_class, t.currency);
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
    this.book.set(key, tick);
    return tick;
  }

  /** Takes a quote into its symbol's tick (best bid/ask, spread, quote time); returns the new tick. */
  applyQuote(q: QuoteV2): Tick {
    const key = tickKey(q.exchange, q.symbol);
    const p = this.book.get(key) ?? emptyTick(q.exchange, q.symbol, q.asset_class, q.currency);
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
    this.book.set(key, tick);
    return tick;
  }

  /** Sets the tick of its (exchange, symbol) as given. */
  restore(t: Tick): void {
    this.book.set(tickKey(t.exchange, t.symbol), t);
  }

  /** The tick of one (exchange, symbol), O(1); exchange and symbol as stored (upper case). */
  get(exchange: string, symbol: string): Tick | undefined {
    return this.book.get(tickKey(exchange, symbol));
  }

  /** Every tick, one per (exchange, symbol) seen, sorted by exchange then symbol. */
  all(): Tick[] {
    return [...this.book.values()].sort((a, b) =>
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
