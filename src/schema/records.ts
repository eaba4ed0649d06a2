/**
 * The canonical V2 records (`../shared/design/schema-v2.md`): every source is normalized into one of
 * these before anything else sees it.
 *
 * Units: `timestamp` and `ingestion_timestamp` are µs since the Unix epoch (UTC) as JS numbers (exact
 * up to 2^53 µs, i.e. until year 2255). Prices and quantities are canonical DECIMAL(18,8) strings
 * (see `decimal.ts`), never binary floats.
 */
import { z } from "zod";

export type AssetClass = "equities" | "crypto" | "futures" | "options";
export const ASSET_CLASSES: readonly AssetClass[] = ["equities", "crypto", "futures", "options"];

/** Aggressor side of a trade. */
export type Side = "BUY" | "SELL" | "UNKNOWN";

/**
 * Data types carried on the bus and stored. `aggtrades` are Binance aggregate trades: the same
 * executions as `trades` grouped per taker order, so they live in a table of their own
 * (`agg_trades_v2`) and never double-count volume in `trades_v2`.
 */
export type DataType = "trades" | "aggtrades" | "quotes";

/** trades_v2: one executed trade. */
export interface TradeV2 {
  /** UUID; deterministic (v8) from `exchange/data_type/symbol/venue id` where the venue gives an id. */
  message_id: string;
  /** `<EXCHANGE>-<venue id>`, e.g. `BINANCE-3735683259`. */
  trade_id: string;
  /** Venue symbol, upper case (`BTCUSDT`, `BTC-USD`). */
  symbol: string;
  /** Upper case (`BINANCE`). */
  exchange: string;
  asset_class: AssetClass;
  /** Exchange trade time, µs since epoch UTC. */
  timestamp: number;
  /** DECIMAL(18,8) string. */
  price: string;
  /** DECIMAL(18,8) string. */
  quantity: string;
  /** Quote currency (`BTCUSDT` → `USDT`). */
  currency: string;
  side: Side;
  trade_conditions: string[];
  /** Venue sequence (Binance trade id `t`), or null. */
  source_sequence: number | null;
  /** Receipt time in this process, µs since epoch UTC. */
  ingestion_timestamp: number;
  /** Monotonic per (exchange, symbol) within this platform. */
  platform_sequence: number;
  /** Every venue field not mapped above, as strings. */
  vendor_data: Record<string, string>;
}

/** quotes_v2: best bid/ask (Binance `bookTicker`). */
export interface QuoteV2 {
  message_id: string;
  symbol: string;
  exchange: string;
  asset_class: AssetClass;
  /** Venue time where sent, else ingestion time; µs since epoch UTC. */
  timestamp: number;
  bid_price: string;
  bid_quantity: string;
  ask_price: string;
  ask_quantity: string;
  currency: string;
  /** Binance `u` (order book update id), or null. */
  source_sequence: number | null;
  ingestion_timestamp: number;
  platform_sequence: number;
  vendor_data: Record<string, string>;
}

/** A frame that could not be normalized, kept with its raw text. */
export interface DeadLetter {
  /** Deterministic from source + receipt + raw text, so a replayed dead letter is stored once. */
  message_id: string;
  exchange: string;
  /** Where the frame came from, e.g. `binance:btcusdt@trade` or a file path and line. */
  source: string;
  /** Why it was rejected, e.g. `price: more than 8 significant fractional digits for DECIMAL(18,8)`. */
  reason: string;
  /** The raw frame text as received. */
  raw: string;
  /** Receipt time, µs since epoch UTC. */
  received_at: number;
}

/** A detected sequence gap: venue sequences `from_sequence..to_sequence` (inclusive) never arrived. */
export interface SequenceGap {
  exchange: string;
  /** The symbol, or for a per-connection sequence the connection's symbols joined by `,`. */
  symbol: string;
  /**
   * What the sequence numbers: a data type (Binance trade ids), or `frames` for a sequence that
   * numbers every frame of a connection whatever its channel (Coinbase `sequence_num`).
   */
  data_type: DataType | "frames";
  from_sequence: number;
  to_sequence: number;
  /** µs since epoch UTC. */
  detected_at: number;
  /**
   * Outcome of the backfill (absent = `open`): `open` detected, backfill pending or running; `filled`
   * every missing record was recovered from the venue's REST API; `partial` some were; `unfillable`
   * none could be (quotes and per-connection frame sequences have no REST history, or the venue
   * returned nothing).
   */
  status?: GapStatus;
  /** Records recovered by the backfill (absent = 0). */
  backfilled?: number;
}

/** Backfill outcome of a sequence gap (see {@link SequenceGap.status}). */
export type GapStatus = "open" | "filled" | "partial" | "unfillable";

const decimalString = z.string().regex(/^-?(0|[1-9]\d{0,9})\.\d{8}$/, "DECIMAL(18,8) canonical string");
const micros = z.number().int().nonnegative();
const common = {
  message_id: z.uuid(),
  symbol: z.string().regex(/^[A-Z0-9][A-Z0-9._/-]*$/),
  exchange: z.string().regex(/^[A-Z0-9_]+$/),
  asset_class: z.enum(["equities", "crypto", "futures", "options"]),
  timestamp: micros,
  currency: z.string().min(1),
  source_sequence: z.number().int().nullable(),
  ingestion_timestamp: micros,
  platform_sequence: z.number().int().nonnegative(),
  vendor_data: z.record(z.string(), z.string()),
};

/** zod validator for {@link TradeV2} (used at boundaries and in tests, not per record on the hot path). */
export const TradeV2Schema = z.object({
  ...common,
  trade_id: z.string().min(1),
  price: decimalString,
  quantity: decimalString,
  side: z.enum(["BUY", "SELL", "UNKNOWN"]),
  trade_conditions: z.array(z.string()),
});

/** zod validator for {@link QuoteV2}. */
export const QuoteV2Schema = z.object({
  ...common,
  bid_price: decimalString,
  bid_quantity: decimalString,
  ask_price: decimalString,
  ask_quantity: decimalString,
});

/**
 * Bus topic for a data type: `market.{asset_class}.{data_type}.{exchange}`, lower case
 * (schema-v2 "Names on a bus").
 */
export function topicFor(assetClass: AssetClass, dataType: DataType, exchange: string): string {
  return `market.${assetClass}.${dataType}.${exchange.toLowerCase()}`;
}

/** Dead-letter topic: `market.dlq.{exchange}`. */
export function deadLetterTopic(exchange: string): string {
  return `market.dlq.${exchange.toLowerCase()}`;
}

/** Quote currencies recognised at the end of concatenated symbols (`BTCUSDT`), longest first. */
const QUOTE_SUFFIXES = [
  "FDUSD",
  "USDT",
  "USDC",
  "TUSD",
  "BUSD",
  "USDP",
  "DAI",
  "EUR",
  "GBP",
  "TRY",
  "BRL",
  "JPY",
  "AUD",
  "BTC",
  "ETH",
  "BNB",
  "USD",
];

/**
 * Quote currency of an instrument. `BTC-USD` / `XBT/USD` → after the separator; `BTCUSDT` → a known
 * quote suffix.
 * @throws {Error} when no currency can be derived (the frame is then dead-lettered, never guessed)
 */
export function quoteCurrency(symbol: string): string {
  const sep = symbol.search(/[-/]/);
  if (sep > 0) return symbol.slice(sep + 1);
  for (const q of QUOTE_SUFFIXES) {
    if (symbol.length > q.length && symbol.endsWith(q)) return q;
  }
  throw new Error(`cannot derive quote currency of ${symbol}`);
}
