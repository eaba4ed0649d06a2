/**
 * OHLCV candles (`candles_v2`): one record per (exchange, symbol, interval, interval_start), built
 * from trades_v2 by event time (the trade `timestamp`), never by wall clock.
 *
 * Exactness: open/high/low/close are DECIMAL(18,8) strings; `volume` = Σ quantity with 8 places;
 * `quote_volume` = Σ price·quantity kept EXACT with 16 places (the product of two DECIMAL(18,8) has 16
 * fractional digits, so nothing is rounded); `vwap` = quote_volume / volume rounded half-to-even to 8
 * places (null when volume is zero). The live aggregator (`src/candles/candles.ts`, bigint units) and
 * the SQL query over stored trades (`src/store/reads.ts`) produce identical strings.
 *
 * Ordering of trades inside a candle ("trade order"): by `timestamp`, then by trade id compared as
 * (length, text) — numeric order for ids of the form `BINANCE-<digits>` — so `open` is the price of
 * the first trade and `close` of the last one even when several trades share a timestamp.
 */
import type { AssetClass } from "./records.js";
import { type CANDLE_COLUMNS, CANDLE_INTERVAL_VALUES, type RecordOf } from "./tables.js";

/** Candle intervals, shortest first. */
export const CANDLE_INTERVALS = CANDLE_INTERVAL_VALUES;
/** One of {@link CANDLE_INTERVALS}. */
export type CandleInterval = (typeof CANDLE_INTERVALS)[number];

/** Interval length in µs. Every length divides a UTC day, so buckets align to the epoch and to days. */
export const INTERVAL_US: Readonly<Record<CandleInterval, number>> = {
  "1s": 1_000_000,
  "1m": 60_000_000,
  "5m": 300_000_000,
  "15m": 900_000_000,
  "1h": 3_600_000_000,
  "1d": 86_400_000_000,
};

/** True when `s` names a candle interval. */
export function isCandleInterval(s: unknown): s is CandleInterval {
  return typeof s === "string" && (CANDLE_INTERVALS as readonly string[]).includes(s);
}

/** Start of the interval holding `timestampUs` (µs since epoch, floor to a multiple of the length). */
export function intervalStart(timestampUs: number, interval: CandleInterval): number {
  const len = INTERVAL_US[interval];
  return timestampUs - (((timestampUs % len) + len) % len);
}

/**
 * candles_v2: one OHLCV candle. Its stored columns are {@link CANDLE_COLUMNS} in `tables.ts`:
 * exchange and symbol (upper case), asset_class, interval, interval_start (inclusive) and interval_end
 * (exclusive, start + length) in µs since epoch UTC, open/high/low/close DECIMAL(18,8) (open/close: first
 * and last trade in trade order), volume Σ quantity with 8 places (may exceed DECIMAL(18,8)'s 10 integer
 * digits: DECIMAL(38,8)), quote_volume Σ price·quantity exact with 16 places (DECIMAL(38,16)), vwap
 * quote_volume / volume half-even to 8 places (null when volume is zero), trade_count, first_trade_id and
 * last_trade_id (in trade order).
 */
export interface CandleV2 extends RecordOf<typeof CANDLE_COLUMNS> {
  /** False while the interval is still open (a snapshot that later updates replace); not stored. */
  closed: boolean;
}

/** Bus topic of candles: `market.{asset_class}.candles.{exchange}` (lower case), key = symbol. */
export function candleTopic(assetClass: AssetClass, exchange: string): string {
  return `market.${assetClass}.candles.${exchange.toLowerCase()}`;
}

/**
 * Compares two trades in trade order: timestamp, then trade id by (length, text).
 * @returns negative, zero or positive
 */
export function compareTradeOrder(aTs: number, aId: string, bTs: number, bId: string): number {
  if (aTs !== bTs) return aTs < bTs ? -1 : 1;
  if (aId.length !== bId.length) return aId.length < bId.length ? -1 : 1;
  return aId < bId ? -1 : aId > bId ? 1 : 0;
}
