/**
 * Binance public-data aggTrades CSV → trades_v2-shaped records for table `agg_trades_v2`.
 *
 * Follows binance-public-data's README ("SPOT / AggTrades", files from `/api/v3/aggTrades`):
 * columns `Aggregate tradeId, Price, Quantity, First tradeId, Last tradeId, Timestamp, Was the buyer
 * the maker, Was the trade the best price match`, e.g. `0,0.20000000,50.00000000,0,0,1608872400000,
 * False,True`. USD-M / COIN-M futures files have the first 7 columns only, so 7 columns are accepted
 * too (no `is_best_match` then). Spot files have no header row; some (futures, re-exports) start with
 * one (`agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker`): the
 * first non-blank line is a header when every one of its fields starts with a letter (a data row
 * always has numbers, so a bad first row is dead-lettered, never skipped as a header).
 *
 * Timestamps: spot files are in milliseconds up to 2024 and in microseconds from 2025-01-01 on
 * ("The timestamp for SPOT Data from January 1st 2025 onwards will be in microseconds"). The unit is
 * decided per value by magnitude: below 10^14 it is ms (10^14 ms is the year 5138), from 10^14 on it
 * is µs (10^14 µs is 1973-03-03), so no real trade time is ambiguous. Values of 2^53 or more are
 * rejected.
 *
 * Records are the same as the live `aggTrade` stream's (src/venues/binance.ts), so a file loaded over
 * what streaming stored adds nothing: message_id from `BINANCE/aggtrades/<SYMBOL>/<a>`, trade_id
 * `BINANCE-<a>`, source_sequence `a`, side from "was the buyer the maker" (true → the seller was the
 * taker → `SELL`; false → `BUY`), vendor_data `first_trade_id`, `last_trade_id`, `is_best_match`
 * (`"true"`/`"false"`). The live stream also has `event_type` and `event_time`; a file has neither.
 */
import { DecimalError, parseNonNegativeDecimal } from "../schema/decimal.js";
import { deterministicMessageId, messageIdOfBytes } from "../schema/message-id.js";
import { quoteCurrency, type TradeV2 } from "../schema/records.js";
import { SequenceTracker } from "../venues/venue.js";
import { type RowParser, RowRejected } from "./load.js";

const EXCHANGE = "BINANCE";

/** Below this a transact time is in ms, from it on in µs (see the module comment). */
export const MICROS_THRESHOLD = 100_000_000_000_000;

/** Column names of the header row Binance writes (futures files), for reference and exports. */
export const AGGTRADES_HEADER = [
  "agg_trade_id",
  "price",
  "quantity",
  "first_trade_id",
  "last_trade_id",
  "transact_time",
  "is_buyer_maker",
  "is_best_match",
] as const;

/** Thrown for an unusable `--symbol`; the CLI exits 2. */
export class SymbolError extends Error {
  override name = "SymbolError";
}

const DIGITS = /^\d+$/;

function idField(v: string, name: string): string {
  const s = v.trim();
  if (!DIGITS.test(s)) throw new RowRejected(`${name} is not a non-negative integer: ${JSON.stringify(v)}`);
  // canonical digits, as the live mapper prints the JSON number
  return s.length > 1 && s.charCodeAt(0) === 48 ? BigInt(s).toString() : s;
}

function decimalField(v: string, name: string): string {
  try {
    return parseNonNegativeDecimal(v.trim());
  } catch (e) {
    if (e instanceof DecimalError) throw new RowRejected(`${name}: ${e.reason}: ${JSON.stringify(v)}`);
    throw e;
  }
}

function boolField(v: string, name: string): boolean {
  const s = v.trim().toLowerCase();
  if (s === "true") return true;
  if (s === "false") return false;
  throw new RowRejected(`${name} is not True/False: ${JSON.stringify(v)}`);
}

/**
 * Transact time → µs since epoch: ms below {@link MICROS_THRESHOLD}, µs from it on.
 * @throws {RowRejected} when not an integer or not below 2^53
 */
export function transactTimeToMicros(v: string): number {
  const s = v.trim();
  if (!DIGITS.test(s)) throw new RowRejected(`transact time is not an integer: ${JSON.stringify(v)}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new RowRejected(`transact time out of range: ${JSON.stringify(v)}`);
  if (n < MICROS_THRESHOLD) {
    const us = n * 1000;
    if (!Number.isSafeInteger(us)) throw new RowRejected(`transact time out of range: ${JSON.stringify(v)}`);
    return us;
  }
  return n;
}

/**
 * Checks a Binance symbol for `--symbol` and returns it upper case with its quote currency.
 * @throws {SymbolError} naming `--symbol`
 */
export function checkBinanceSymbol(symbol: string): { symbol: string; currency: string } {
  const s = symbol.trim().toUpperCase();
  if (!/^[A-Z0-9]{2,20}$/.test(s))
    throw new SymbolError(`--symbol: "${symbol}" is not a Binance symbol like BTCUSDT`);
  try {
    return { symbol: s, currency: quoteCurrency(s) };
  } catch {
    throw new SymbolError(`--symbol: cannot derive the quote currency of "${symbol}"`);
  }
}

/**
 * The symbol in a Binance public-data file name (`BTCUSDT-aggTrades-2024-08-08.zip` → `BTCUSDT`),
 * or null.
 */
export function symbolFromFileName(file: string): string | null {
  const m = /(?:^|[/\\])([A-Z0-9]{2,20})-aggTrades-[^/\\]*$/.exec(file);
  return m ? m[1] : null;
}

/**
 * Row parser for one Binance aggTrades file of one symbol.
 * @throws {SymbolError} from the constructor on an unusable symbol
 */
export class BinanceAggTradesParser implements RowParser {
  private readonly symbol: string;
  private readonly currency: string;
  private readonly sequences = new SequenceTracker();
  private sawFirstLine = false;
  /** `BINANCE/aggtrades/<SYMBOL>/` encoded once; the fast path writes the id's digits after it. */
  private readonly idName: Uint8Array;
  private readonly idPrefixLen: number;
  /** `trade_id` prefix. */
  private readonly tradeIdPrefix = `${EXCHANGE}-`;

  constructor(symbol: string) {
    const checked = checkBinanceSymbol(symbol);
    this.symbol = checked.symbol;
    this.currency = checked.currency;
    const prefix = new TextEncoder().encode(`${EXCHANGE}/aggtrades/${this.symbol}/`);
    this.idName = new Uint8Array(prefix.length + 32);
    this.idName.set(prefix);
    this.idPrefixLen = prefix.length;
  }

  parse(line: string, lineNo: number, nowUs: number): TradeV2 | null {
    if (this.sawFirstLine) {
      const fast = this.parseFast(line, nowUs);
      if (fast !== null) return fast;
    }
    return this.parseGeneral(line, lineNo, nowUs);
  }

  /**
   * The usual row, read in one pass over its characters: 7 or 8 fields, ids of 1 to 15 digits without
   * a leading zero, prices and quantities already canonical (`61685.99000000`), a transact time of
   * 1 to 16 digits and `True`/`False` flags, nothing else (no spaces, quotes or empty fields). Gives
   * the same record as {@link parseGeneral}; returns null for anything else, which then goes the
   * general way (and gets its reason there when it is bad).
   */
  private parseFast(line: string, nowUs: number): TradeV2 | null {
    const len = line.length;
    // field ends: indexes of the commas, then len
    const c0 = line.indexOf(",");
    const c1 = line.indexOf(",", c0 + 1);
    const c2 = line.indexOf(",", c1 + 1);
    const c3 = line.indexOf(",", c2 + 1);
    const c4 = line.indexOf(",", c3 + 1);
    const c5 = line.indexOf(",", c4 + 1);
    if (c5 < 0) return null;
    const c6 = line.indexOf(",", c5 + 1);
    let end6 = c6;
    let best: string | undefined;
    if (c6 < 0) {
      end6 = len;
    } else {
      if (line.indexOf(",", c6 + 1) >= 0) return null;
      best = flag(line, c6 + 1, len);
      if (best === undefined) return null;
    }
    const buyerIsMaker = flag(line, c5 + 1, end6);
    if (buyerIsMaker === undefined) return null;
    const id = digits(line, 0, c0, 15);
    const first = digits(line, c2 + 1, c3, 15);
    const last = digits(line, c3 + 1, c4, 15);
    const time = digits(line, c4 + 1, c5, 16);
    if (id < 0 || first < 0 || last < 0 || time < 0) return null;
    const price = line.slice(c0 + 1, c1);
    const quantity = line.slice(c1 + 1, c2);
    if (!canonicalDecimal(price) || !canonicalDecimal(quantity)) return null;
    let timestamp = time;
    if (time < MICROS_THRESHOLD) {
      timestamp = time * 1000;
      if (!Number.isSafeInteger(timestamp)) return null;
    }
    const aggId = line.slice(0, c0);
    const name = this.idName;
    let n = this.idPrefixLen;
    for (let i = 0; i < c0; i++) name[n++] = line.charCodeAt(i);
    const vendor_data: Record<string, string> = {
      first_trade_id: line.slice(c2 + 1, c3),
      last_trade_id: line.slice(c3 + 1, c4),
    };
    if (best !== undefined) vendor_data.is_best_match = best;
    return {
      message_id: messageIdOfBytes(name, n),
      trade_id: this.tradeIdPrefix + aggId,
      symbol: this.symbol,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp,
      price,
      quantity,
      currency: this.currency,
      side: buyerIsMaker === "true" ? "SELL" : "BUY",
      trade_conditions: [],
      source_sequence: id,
      ingestion_timestamp: nowUs,
      platform_sequence: this.sequences.nextPlatformSequence(this.symbol),
      vendor_data,
    };
  }

  /** Any row: trims fields, accepts any case of true/false and non-canonical decimals, says why a row is bad. */
  private parseGeneral(line: string, _lineNo: number, nowUs: number): TradeV2 | null {
    const f = line.split(",");
    if (!this.sawFirstLine) {
      this.sawFirstLine = true;
      if (f.every((x) => /^\s*"?[A-Za-z]/.test(x))) return null; // header row
    }
    if (f.length !== 8 && f.length !== 7) {
      throw new RowRejected(`expected 8 fields (7 for futures files), got ${f.length}`);
    }
    const aggId = idField(f[0], "aggregate trade id");
    const id = Number(aggId);
    if (!Number.isSafeInteger(id)) throw new RowRejected(`aggregate trade id out of range: ${aggId}`);
    const price = decimalField(f[1], "price");
    const quantity = decimalField(f[2], "quantity");
    const firstTradeId = idField(f[3], "first trade id");
    const lastTradeId = idField(f[4], "last trade id");
    const timestamp = transactTimeToMicros(f[5]);
    const buyerIsMaker = boolField(f[6], "is buyer maker");
    const vendor_data: Record<string, string> = {
      first_trade_id: firstTradeId,
      last_trade_id: lastTradeId,
    };
    if (f.length === 8) vendor_data.is_best_match = boolField(f[7], "is best match") ? "true" : "false";
    return {
      message_id: deterministicMessageId(`${EXCHANGE}/aggtrades/${this.symbol}/${id}`),
      trade_id: `${EXCHANGE}-${id}`,
      symbol: this.symbol,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp,
      price,
      quantity,
      currency: this.currency,
      side: buyerIsMaker ? "SELL" : "BUY",
      trade_conditions: [],
      source_sequence: id,
      ingestion_timestamp: nowUs,
      platform_sequence: this.sequences.nextPlatformSequence(this.symbol),
      vendor_data,
    };
  }
}

/**
 * The value of the digits `s[start..end)` (1 to `max` digits, no leading zero unless alone), else -1.
 * `max` ≤ 15 keeps the value exact; 16 digits are checked against 2^53.
 */
function digits(s: string, start: number, end: number, max: number): number {
  const n = end - start;
  if (n < 1 || n > max || (n > 1 && s.charCodeAt(start) === 48)) return -1;
  let v = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return n > 15 && !Number.isSafeInteger(v) ? -1 : v;
}

/** `"true"`/`"false"` for exactly `True`/`False` at `s[start..end)`, else undefined. */
function flag(s: string, start: number, end: number): "true" | "false" | undefined {
  const n = end - start;
  if (n === 4 && s.startsWith("True", start)) return "true";
  if (n === 5 && s.startsWith("False", start)) return "false";
  return undefined;
}

/** True when `s` is already a canonical DECIMAL(18,8): 1..10 digits (no leading zero unless alone), `.`, 8 digits. */
function canonicalDecimal(s: string): boolean {
  const len = s.length;
  const dot = len - 9;
  if (dot < 1 || dot > 10 || s.charCodeAt(dot) !== 46) return false;
  if (dot > 1 && s.charCodeAt(0) === 48) return false;
  for (let i = 0; i < len; i++) {
    if (i === dot) continue;
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Exchange code of the records this loader writes. */
export const BINANCE_AGGTRADES_EXCHANGE = EXCHANGE;
