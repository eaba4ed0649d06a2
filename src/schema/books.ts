/**
 * Order-book records (issue #13): level changes as the venue sent them, and periodic top-N snapshots
 * of the maintained book.
 *
 * Units as in `records.ts`: `timestamp` and `ingestion_timestamp` are µs since the Unix epoch (UTC);
 * prices and quantities are canonical DECIMAL(18,8) strings (`decimal.ts`), never binary floats.
 * A level is a `[price, quantity]` pair; in a change, quantity `"0.00000000"` means the level was
 * removed. Bus subject/topic for changes: `market.{asset_class}.book.{exchange}`.
 */

import { deterministicMessageId } from "./message-id.js";
import type { AssetClass } from "./records.js";
import type { BOOK_CHANGE_COLUMNS, BOOK_SNAPSHOT_COLUMNS, BookLevel, RecordOf } from "./tables.js";

export type { BookLevel };

/**
 * book_changes_v2: one venue book message for one symbol — a snapshot (`is_snapshot`: the levels
 * replace the book) or a set of level changes (absolute quantities; 0 = removed). Columns, units and
 * meaning: {@link BOOK_CHANGE_COLUMNS} in `tables.ts`: message_id (deterministic UUID v8, see
 * {@link bookChangeMessageId}), exchange (upper case), symbol (venue symbol, upper case: `BTCUSDT`,
 * `XBT/CHF`, `BTC-USD`), timestamp (venue time where sent, else receipt; µs), is_snapshot, bids and
 * asks (`[price, quantity]` DECIMAL(18,8) string pairs; a snapshot's best first, a change's as sent),
 * first/last_source_sequence (Binance `U`/`u`, snapshot `lastUpdateId`, Coinbase `sequence_num`; or
 * null), ingestion_timestamp (receipt, µs), vendor_data (unmapped venue fields as strings, e.g. Kraken
 * `checksum`).
 */
export type BookChangeV2 = RecordOf<typeof BOOK_CHANGE_COLUMNS>;

/**
 * book_snapshots_v2: the best N levels of the maintained book of one symbol, taken every interval
 * (`--book-depth 10 --book-interval 1s` by default). Columns: {@link BOOK_SNAPSHOT_COLUMNS}:
 * exchange, symbol, timestamp (the interval boundary, µs on the venue's clock), depth (N requested),
 * bids (best first: highest price), asks (best first: lowest price), last_source_sequence (last
 * venue sequence applied, or null), last_resync_timestamp (µs, or null).
 */
export type BookSnapshotV2 = RecordOf<typeof BOOK_SNAPSHOT_COLUMNS>;

/**
 * message_id of a book change: deterministic UUID v8 of `EXCHANGE/book/SYMBOL/first-last` (`/snapshot`
 * appended for a whole book) when the venue numbers its book messages, so a replayed capture stores
 * each change once; else of `EXCHANGE/book/SYMBOL/@receipt µs/discriminator` (e.g. Kraken's checksum),
 * unique within a run and equal on a bus redelivery (the record carries it).
 */
export function bookChangeMessageId(
  exchange: string,
  symbol: string,
  isSnapshot: boolean,
  first: number | null,
  last: number | null,
  receivedAtUs: number,
  discriminator = "",
): string {
  const tail = isSnapshot ? "/snapshot" : "";
  if (first !== null && last !== null) {
    return deterministicMessageId(`${exchange}/book/${symbol}/${first}-${last}${tail}`);
  }
  return deterministicMessageId(`${exchange}/book/${symbol}/@${receivedAtUs}/${discriminator}${tail}`);
}

/** Bus topic of book changes: `market.{asset_class}.book.{exchange}` (key: the symbol). */
export function bookChangeTopic(assetClass: AssetClass, exchange: string): string {
  return `market.${assetClass}.book.${exchange.toLowerCase()}`;
}

/** Bus topic of periodic top-N book snapshots: `market.{asset_class}.booksnapshots.{exchange}`. */
export function bookSnapshotTopic(assetClass: AssetClass, exchange: string): string {
  return `market.${assetClass}.booksnapshots.${exchange.toLowerCase()}`;
}
