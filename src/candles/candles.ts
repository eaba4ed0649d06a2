/**
 * Live OHLCV aggregator: turns the trade stream into candles per (exchange, symbol, interval) as trades
 * arrive. Pure: no I/O, no timers — the caller feeds trades and wall-clock times and publishes what
 * comes back (`src/candles/candle-feed.ts` wires it to the bus).
 *
 * Event time, not wall clock: a trade goes into the candle of its `timestamp` (`intervalStart`).
 * A candle closes
 *   - when a trade of the same (exchange, symbol) falls into a later interval (crosses its boundary), or
 *   - after a grace period past its end, for quiet markets: the event clock of the symbol is estimated as
 *     the last trade's timestamp plus the wall time elapsed since that trade arrived, and a candle
 *     closes once that estimate reaches `interval_end + grace`. Live, this is the wall clock (less the
 *     venue latency); in a replay it runs at the replay's pace, so a replay of old data does not close
 *     every candle at once.
 *   - at the end of a bounded stream (`closeAll`, when a replay has been fully received).
 *
 * Late trades (a trade for a candle already closed by the grace rule): the most recently closed
 * candle of each (exchange, symbol, interval) is kept, and a late trade for it amends it — the amended
 * candle is published again, closed, and replaces the stored one (the store keeps the candle with the
 * larger trade_count). A trade older than that is counted in `droppedLate` and left to the SQL candles.
 *
 * Exact arithmetic in bigint units (`src/schema/decimal.ts`): prices and volume at scale 1e-8, quote
 * volume (Σ price·quantity) at scale 1e-16 exactly, VWAP = quote volume / volume rounded half-even to
 * 8 places — the same strings as the SQL query over trades_v2 (`src/store/reads.ts`).
 */
import {
  CANDLE_INTERVALS,
  type CandleInterval,
  type CandleV2,
  compareTradeOrder,
  INTERVAL_US,
  intervalStart,
} from "../schema/candles.js";
import { divRoundHalfEven, toUnits, unitsToString } from "../schema/decimal.js";
import type { AssetClass, TradeV2 } from "../schema/records.js";

/** Options of {@link CandleAggregator}. */
export interface CandleAggregatorOptions {
  /** Intervals to build (default all of {@link CANDLE_INTERVALS}). */
  intervals?: readonly CandleInterval[];
  /** Grace past a candle's end before a quiet market closes it, µs (default 2,000,000 = 2 s). */
  graceUs?: number;
}

/** Running state of one candle, in exact units. */
interface CandleState {
  exchange: string;
  symbol: string;
  assetClass: AssetClass;
  interval: CandleInterval;
  start: number;
  end: number;
  open: bigint;
  high: bigint;
  low: bigint;
  close: bigint;
  /** Σ quantity, scale 1e-8. */
  volume: bigint;
  /** Σ price·quantity, scale 1e-16. */
  quoteVolume: bigint;
  count: number;
  firstTs: number;
  firstId: string;
  lastTs: number;
  lastId: string;
  /** Changed since the last `takeOpenUpdates`. */
  dirty: boolean;
}

/** Per (exchange, symbol): the event clock estimate and the candles of each interval. */
interface StreamState {
  /** Largest trade timestamp seen, µs. */
  lastEventUs: number;
  /** Wall time when it arrived, µs. */
  lastWallUs: number;
  open: Map<CandleInterval, CandleState>;
  lastClosed: Map<CandleInterval, CandleState>;
}

/** The aggregator. Not thread-safe by design: one instance per consumer. */
export class CandleAggregator {
  private readonly intervals: readonly CandleInterval[];
  private readonly graceUs: number;
  private readonly streams = new Map<string, StreamState>();
  /** Trades that amended an already closed candle. */
  amendedLate = 0;
  /** Trades too late to amend any live candle (still in the SQL candles). */
  droppedLate = 0;

  constructor(opts: CandleAggregatorOptions = {}) {
    this.intervals = opts.intervals ?? CANDLE_INTERVALS;
    this.graceUs = opts.graceUs ?? 2_000_000;
    if (!Number.isSafeInteger(this.graceUs) || this.graceUs < 0) {
      throw new RangeError(`graceUs: expected a non-negative integer, got ${opts.graceUs}`);
    }
  }

  /**
   * Adds one trade (event time = `trade.timestamp`).
   * @param nowUs wall-clock time of arrival, µs since epoch (drives the grace rule)
   * @returns candles closed by this trade — the previous candle of each interval whose boundary it
   *   crossed, or an amended candle for a late trade — each with `closed: true`
   */
  addTrade(trade: TradeV2, nowUs: number): CandleV2[] {
    const key = `${trade.exchange}\u0000${trade.symbol}`;
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { lastEventUs: trade.timestamp, lastWallUs: nowUs, open: new Map(), lastClosed: new Map() };
      this.streams.set(key, stream);
    } else if (trade.timestamp >= stream.lastEventUs) {
      stream.lastEventUs = trade.timestamp;
      stream.lastWallUs = nowUs;
    }
    const price = toUnits(trade.price);
    const quantity = toUnits(trade.quantity);
    const closed: CandleV2[] = [];
    for (const interval of this.intervals) {
      const start = intervalStart(trade.timestamp, interval);
      const cur = stream.open.get(interval);
      if (cur && cur.start === start) {
        apply(cur, trade, price, quantity);
        continue;
      }
      if (cur && start > cur.start) {
        stream.open.delete(interval);
        stream.lastClosed.set(interval, cur);
        closed.push(snapshot(cur, true));
      } else if (cur || (stream.lastClosed.get(interval)?.start ?? -Infinity) >= start) {
        // older than the open candle, or than the last closed one: a late trade
        const last = stream.lastClosed.get(interval);
        if (last && last.start === start) {
          apply(last, trade, price, quantity);
          closed.push(snapshot(last, true));
          this.amendedLate++;
        } else {
          this.droppedLate++;
        }
        continue;
      }
      const state = newState(trade, interval, start, price, quantity);
      stream.open.set(interval, state);
    }
    return closed;
  }

  /**
   * Closes candles of quiet markets: those whose `interval_end + grace` has been reached by the
   * symbol's estimated event clock (last trade timestamp + wall time since it arrived).
   * @param nowUs wall-clock time, µs since epoch
   * @returns the candles closed now (`closed: true`)
   */
  advance(nowUs: number): CandleV2[] {
    const closed: CandleV2[] = [];
    for (const stream of this.streams.values()) {
      const eventNow = stream.lastEventUs + Math.max(0, nowUs - stream.lastWallUs);
      for (const [interval, state] of stream.open) {
        if (eventNow >= state.end + this.graceUs) {
          stream.open.delete(interval);
          stream.lastClosed.set(interval, state);
          closed.push(snapshot(state, true));
        }
      }
    }
    return closed;
  }

  /** Closes every open candle (the end of a bounded stream, e.g. a replay fully received). */
  closeAll(): CandleV2[] {
    const closed: CandleV2[] = [];
    for (const stream of this.streams.values()) {
      for (const [interval, state] of stream.open) {
        stream.lastClosed.set(interval, state);
        closed.push(snapshot(state, true));
      }
      stream.open.clear();
    }
    return closed;
  }

  /** Open candles changed since the last call (`closed: false` snapshots), then marks them clean. */
  takeOpenUpdates(): CandleV2[] {
    const out: CandleV2[] = [];
    for (const stream of this.streams.values()) {
      for (const state of stream.open.values()) {
        if (!state.dirty) continue;
        state.dirty = false;
        out.push(snapshot(state, false));
      }
    }
    return out;
  }

  /** The open candle of (exchange, symbol, interval), if any, as a `closed: false` snapshot. */
  openCandle(exchange: string, symbol: string, interval: CandleInterval): CandleV2 | undefined {
    const state = this.streams.get(`${exchange}\u0000${symbol}`)?.open.get(interval);
    return state ? snapshot(state, false) : undefined;
  }
}

function newState(
  t: TradeV2,
  interval: CandleInterval,
  start: number,
  price: bigint,
  quantity: bigint,
): CandleState {
  return {
    exchange: t.exchange,
    symbol: t.symbol,
    assetClass: t.asset_class,
    interval,
    start,
    end: start + INTERVAL_US[interval],
    open: price,
    high: price,
    low: price,
    close: price,
    volume: quantity,
    quoteVolume: price * quantity,
    count: 1,
    firstTs: t.timestamp,
    firstId: t.trade_id,
    lastTs: t.timestamp,
    lastId: t.trade_id,
    dirty: true,
  };
}

function apply(s: CandleState, t: TradeV2, price: bigint, quantity: bigint): void {
  if (price > s.high) s.high = price;
  if (price < s.low) s.low = price;
  s.volume += quantity;
  s.quoteVolume += price * quantity;
  s.count++;
  if (compareTradeOrder(t.timestamp, t.trade_id, s.firstTs, s.firstId) < 0) {
    s.open = price;
    s.firstTs = t.timestamp;
    s.firstId = t.trade_id;
  }
  if (compareTradeOrder(t.timestamp, t.trade_id, s.lastTs, s.lastId) > 0) {
    s.close = price;
    s.lastTs = t.timestamp;
    s.lastId = t.trade_id;
  }
  s.dirty = true;
}

/** The record of a candle state; VWAP = Σp·q (1e-16) / Σq (1e-8) → 1e-8, rounded half-even. */
function snapshot(s: CandleState, closed: boolean): CandleV2 {
  return {
    exchange: s.exchange,
    symbol: s.symbol,
    asset_class: s.assetClass,
    interval: s.interval,
    interval_start: s.start,
    interval_end: s.end,
    open: unitsToString(s.open),
    high: unitsToString(s.high),
    low: unitsToString(s.low),
    close: unitsToString(s.close),
    volume: unitsToString(s.volume, 8),
    quote_volume: unitsToString(s.quoteVolume, 16),
    vwap: s.volume === 0n ? null : unitsToString(divRoundHalfEven(s.quoteVolume, s.volume)),
    trade_count: s.count,
    first_trade_id: s.firstId,
    last_trade_id: s.lastId,
    closed,
  };
}
