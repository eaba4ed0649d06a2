/**
 * The canonical V2 records (`../shared/design/schema-v2.md`): every source is normalized into one of
 * these before anything else sees it.
 *
 * Units: `timestamp` and `ingestion_timestamp` are µs since the Unix epoch (UTC) as JS numbers (exact
 * up to 2^53 µs, i.e. until year 2255). Prices and quantities are canonical DECIMAL(18,8) strings
 * (see `decimal.ts`), never binary floats.
 */
import {
  ASSET_CLASS_VALUES,
  type DEAD_LETTER_COLUMNS,
  type GAP_STATUS_VALUES,
  type QUOTE_COLUMNS,
  type RecordOf,
  type SEQUENCE_GAP_COLUMNS,
  type SIDE_VALUES,
  type TRADE_COLUMNS,
} from "./tables.js";

export type AssetClass = (typeof ASSET_CLASS_VALUES)[number];
export const ASSET_CLASSES: readonly AssetClass[] = ASSET_CLASS_VALUES;

/** Aggressor side of a trade. */
export type Side = (typeof SIDE_VALUES)[number];

/**
 * Data types carried on the bus and stored. `aggtrades` are Binance aggregate trades: the same
 * executions as `trades` grouped per taker order, so they live in a table of their own
 * (`agg_trades_v2`) and never double-count volume in `trades_v2`.
 */
export type DataType = "trades" | "aggtrades" | "quotes";

/**
 * trades_v2 (and agg_trades_v2): one executed trade. Its columns, with units and meaning, are
 * {@link TRADE_COLUMNS} in `tables.ts`: message_id (UUID, deterministic v8 from
 * `exchange/data_type/symbol/venue id`), trade_id (`<EXCHANGE>-<venue id>`), symbol, exchange, asset_class,
 * timestamp (exchange trade time, µs), price and quantity (DECIMAL(18,8) strings), currency, side,
 * trade_conditions, source_sequence (venue sequence or null), ingestion_timestamp (receipt, µs),
 * platform_sequence, vendor_data (every unmapped venue field, as strings).
 */
export interface TradeV2 extends RecordOf<typeof TRADE_COLUMNS> {}

/**
 * quotes_v2: best bid/ask (Binance `bookTicker`); columns in {@link QUOTE_COLUMNS}: timestamp is the
 * venue time where sent, else the ingestion time (µs); bid/ask price and quantity DECIMAL(18,8) strings;
 * source_sequence Binance `u` (order book update id) or null.
 */
export interface QuoteV2 extends RecordOf<typeof QUOTE_COLUMNS> {}

/**
 * A frame that could not be normalized, kept with its raw text ({@link DEAD_LETTER_COLUMNS}): message_id
 * deterministic from source + receipt + raw text (a replayed dead letter is stored once), source (e.g.
 * `binance:btcusdt@trade` or a file path and line), reason (e.g. `price: more than 8 significant
 * fractional digits for DECIMAL(18,8)`), raw, received_at (µs).
 */
export interface DeadLetter extends RecordOf<typeof DEAD_LETTER_COLUMNS> {}

/**
 * A detected sequence gap ({@link SEQUENCE_GAP_COLUMNS}): venue sequences `from_sequence..to_sequence`
 * (inclusive) never arrived; detected_at µs. `symbol` is the symbol, or for a per-connection sequence
 * the connection's symbols joined by `,`; `data_type` a data type (Binance trade ids) or `frames` for a
 * sequence numbering every frame of a connection (Coinbase `sequence_num`). `status` is the backfill
 * outcome (absent = `open`): `open` detected, backfill pending or running; `filled` every missing record
 * was recovered from the venue's REST API; `partial` some were; `unfillable` none could be.
 * `backfilled`: records recovered (absent = 0).
 */
export interface SequenceGap extends RecordOf<typeof SEQUENCE_GAP_COLUMNS> {}

/** Backfill outcome of a sequence gap (see {@link SequenceGap}). */
export type GapStatus = (typeof GAP_STATUS_VALUES)[number];

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
