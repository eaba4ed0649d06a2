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

/** One (exchange, symbol): its latest tick, and the trade and quote taken in since it was built. */
interface Entry {
  tick: Tick;
  /** Latest trade noted and not yet applied to `tick`. */
  trade: TradeV2 | null;
  /** Latest quote noted and not yet applied to `tick`. */
  quote: QuoteV2 | null;
}

/**
 * The tick of every (exchange, symbol) seen so far. Each update stores a new {@link Tick} object (a
 * tick handed out is never mutated afterwards).
 *
 * A tick depends only on the latest trade (its `last_*` fields) and the latest quote (best bid/ask,
 * quote time, spread) of its symbol, so {@link noteTrade} and {@link noteQuote} just keep the record
 * and the tick is built when read ({@link get}, {@link all}): what the live feed does while nobody
 * listens to ticks (the gateway processes keep their own), which spares the ingest process one tick
 * object and one spread per record.
 */
export class TickBook {
  /** exchange → symbol → entry (no key string built per record). */
  private readonly book = new Map<string, Map<string, Entry>>();

  private entry(exchange: string, symbol: string, assetClass: AssetClass, currency: string): Entry {
    let bySymbol = this.book.get(exchange);
    if (bySymbol === undefined) {
      bySymbol = new Map();
      this.book.set(exchange, bySymbol);
    }
    let e = bySymbol.get(symbol);
    if (e === undefined) {
      e = { tick: emptyTick(exchange, symbol, assetClass, currency), trade: null, quote: null };
      bySymbol.set(symbol, e);
    }
    return e;
  }

  /** Takes a trade into its symbol's tick (last price, quantity, side, trade id and time); returns the new tick. */
  applyTrade(t: TradeV2): Tick {
    const e = this.entry(t.exchange, t.symbol, t.asset_class, t.currency);
    e.trade = t;
    return settle(e);
  }

  /** Takes a quote into its symbol's tick (best bid/ask, spread, quote time); returns the new tick. */
  applyQuote(q: QuoteV2): Tick {
    const e = this.entry(q.exchange, q.symbol, q.asset_class, q.currency);
    e.quote = q;
    return settle(e);
  }

  /** As {@link applyTrade}, the tick built only when next read. */
  noteTrade(t: TradeV2): void {
    this.entry(t.exchange, t.symbol, t.asset_class, t.currency).trade = t;
  }

  /** As {@link applyQuote}, the tick built only when next read. */
  noteQuote(q: QuoteV2): void {
    this.entry(q.exchange, q.symbol, q.asset_class, q.currency).quote = q;
  }

  /** Sets the tick of its (exchange, symbol) as given. */
  restore(t: Tick): void {
    const e = this.entry(t.exchange, t.symbol, t.asset_class, t.currency);
    e.tick = t;
    e.trade = null;
    e.quote = null;
  }

  /** The tick of one (exchange, symbol), O(1); exchange and symbol as stored (upper case). */
  get(exchange: string, symbol: string): Tick | undefined {
    const e = this.book.get(exchange)?.get(symbol);
    return e === undefined ? undefined : settle(e);
  }

  /** Every tick, one per (exchange, symbol) seen, sorted by exchange then symbol. */
  all(): Tick[] {
    const out: Tick[] = [];
    for (const bySymbol of this.book.values()) for (const e of bySymbol.values()) out.push(settle(e));
    return out.sort((a, b) =>
      a.exchange === b.exchange ? cmp(a.symbol, b.symbol) : cmp(a.exchange, b.exchange),
    );
  }
}

/** The entry's tick with its noted trade and quote applied (a new object when either was noted). */
function settle(e: Entry): Tick {
  const t = e.trade;
  const q = e.quote;
  if (t === null && q === null) return e.tick;
  const p = e.tick;
  // most quotes change only quantities: keep the spread unless a price moved
  const spread =
    q === null
      ? p.spread
      : p.spread !== null && p.bid_price === q.bid_price && p.ask_price === q.ask_price
        ? p.spread
        : unitsToString(toUnits(q.ask_price) - toUnits(q.bid_price));
  e.tick = {
    exchange: p.exchange,
    symbol: p.symbol,
    asset_class: p.asset_class,
    currency: p.currency,
    last_price: t === null ? p.last_price : t.price,
    last_quantity: t === null ? p.last_quantity : t.quantity,
    last_side: t === null ? p.last_side : t.side,
    last_trade_id: t === null ? p.last_trade_id : t.trade_id,
    last_trade_time: t === null ? p.last_trade_time : t.timestamp,
    bid_price: q === null ? p.bid_price : q.bid_price,
    bid_quantity: q === null ? p.bid_quantity : q.bid_quantity,
    ask_price: q === null ? p.ask_price : q.ask_price,
    ask_quantity: q === null ? p.ask_quantity : q.ask_quantity,
    quote_time: q === null ? p.quote_time : q.timestamp,
    spread,
  };
  e.trade = null;
  e.quote = null;
  return e.tick;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

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
