/**
 * Order-book records (issue #13): level changes as the venue sent them, and periodic top-N snapshots
 * of the maintained book.
 *
 * Units as in `records.ts`: `timestamp` and `ingestion_timestamp` are µs since the Unix epoch (UTC);
 * prices and quantities are canonical DECIMAL(18,8) strings (`decimal.ts`), never binary floats.
 * A level is a `[price, quantity]` pair; in a change, quantity `"0.00000000"` means the level was
 * removed. Bus subject/topic for changes: `market.{asset_class}.book.{exchange}`.
 */

/** One price level, `[price, quantity]`, both canonical DECIMAL(18,8) strings. */
export type BookLevel = [price: string, quantity: string];

/**
 * book_changes_v2: one venue book message for one symbol — a snapshot (`is_snapshot`: the levels
 * replace the book) or a set of level changes (absolute quantities; 0 = removed).
 */
export interface BookChangeV2 {
  /** Upper case (`BINANCE`, `KRAKEN`, `COINBASE`). */
  exchange: string;
  /** Venue symbol, upper case (`BTCUSDT`, `XBT/CHF`, `BTC-USD`). */
  symbol: string;
  /** Venue time of the change where sent (Binance `E`), else ingestion time; µs since epoch UTC. */
  timestamp: number;
  /** True when the levels are a whole book (REST snapshot, Kraken `as`/`bs`, Coinbase `snapshot`). */
  is_snapshot: boolean;
  /** Bid levels changed (or, in a snapshot, all bids), best first for a snapshot, as sent otherwise. */
  bids: BookLevel[];
  /** Ask levels, as `bids`. */
  asks: BookLevel[];
  /** First venue sequence covered (Binance `U`, snapshot `lastUpdateId`; Coinbase `sequence_num`), or null. */
  first_source_sequence: number | null;
  /** Last venue sequence covered (Binance `u`, snapshot `lastUpdateId`; Coinbase `sequence_num`), or null. */
  last_source_sequence: number | null;
  /** Receipt time in this process, µs since epoch UTC. */
  ingestion_timestamp: number;
  /** Every venue field not mapped above, as strings (e.g. Kraken `checksum`, `republish` counts). */
  vendor_data: Record<string, string>;
}

/**
 * book_snapshots_v2: the best N levels of the maintained book of one symbol, taken every interval
 * (`--book-depth 10 --book-interval 1s` by default).
 */
export interface BookSnapshotV2 {
  /** Upper case (`BINANCE`). */
  exchange: string;
  /** Venue symbol, upper case. */
  symbol: string;
  /** When the snapshot was taken (the interval's tick), µs since epoch UTC. */
  timestamp: number;
  /** N requested; `bids`/`asks` hold fewer levels when the book holds fewer. */
  depth: number;
  /** Best N bids, best (highest price) first. */
  bids: BookLevel[];
  /** Best N asks, best (lowest price) first. */
  asks: BookLevel[];
  /** Last venue sequence applied to the book when taken (Binance `u`, Coinbase `sequence_num`), or null. */
  last_source_sequence: number | null;
  /** Time of the book's last resync (new snapshot after a break or a checksum failure), µs, or null. */
  last_resync_timestamp: number | null;
}
