/**
 * What a venue file provides. A venue is one file (`src/venues/<name>.ts`) holding its feed
 * description and its mappers, plus one entry in `src/venues/registry.ts`; nothing else changes.
 */
import type { BookChangeV2 } from "../schema/books.js";
import type { AssetClass, DataType, DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../schema/records.js";

/** Where a normalizer sends what it makes of each frame. Calls are synchronous and cheap. */
export interface NormalizedSink {
  /** A normalized trade; `dataType` is `trades` or `aggtrades`. */
  trade(record: TradeV2, dataType: "trades" | "aggtrades"): void;
  quote(record: QuoteV2): void;
  /** A frame rejected with a reason, kept with its raw text. */
  deadLetter(letter: DeadLetter): void;
  /** A sequence gap, with the missing range. */
  gap(gap: SequenceGap): void;
  /** A frame that carries no market data (subscription ack, heartbeat, status), by kind. */
  control(kind: string, raw: string): void;
  /**
   * A venue anomaly that is not a record (optional; the pipeline counts and logs it):
   * `conflicting_duplicate` — a trade id seen before with different content (the frame is also
   * dead-lettered, with both versions); `sequence_regression` — a trade id below the last seen and not
   * a known duplicate (the record is still stored).
   */
  anomaly?(anomaly: VenueAnomaly): void;
  /**
   * A book change (depth diff, or a whole book) of a subscribed book stream (optional: a sink without
   * it counts the frame as a control frame `depth_not_kept`). `venueMessage`: the venue's parsed message
   * where a venue-specific book keeper needs more than the record (Kraken: the `KrakenBookMessage`,
   * whose own price and volume strings its CRC32 checksum is computed over).
   */
  bookChange?(change: BookChangeV2, venueMessage?: unknown): void;
}

/** What {@link NormalizedSink.anomaly} reports. */
export interface VenueAnomaly {
  kind: "conflicting_duplicate" | "sequence_regression";
  symbol: string;
  dataType: "trades" | "aggtrades";
  /** The venue trade id. */
  id: number | string;
  /** Highest id seen before on this symbol (sequence_regression), or null. */
  last: number | null;
}

/** Per-connection state of a normalizer: sequence tracking for gap detection and platform sequences. */
export interface FrameNormalizer {
  /**
   * Normalizes one raw frame and reports every outcome to the sink. Never throws: a frame that
   * cannot be normalized becomes a dead letter.
   * @param raw the frame text exactly as received
   * @param receivedAtUs receipt time, µs since epoch
   */
  normalize(raw: string, receivedAtUs: number): void;
  /**
   * Called when a new venue connection opens, before its first frame: per-connection state (Coinbase
   * `sequence_num`, Kraken v1 channel ids) starts over. Optional.
   */
  connectionOpened?(): void;
  /**
   * Seeds gap detection with the last venue sequences already stored (a restarted `k2 run`): the first
   * new id above `sequence + 1` is then a gap from `sequence + 1`, and ids at or below it are not.
   * Entries are this venue's (the caller filters by exchange). Called late (the store answered after
   * frames had arrived), the ids between a stored sequence and the first received since are reported
   * as a gap (`receivedAtUs` its detection time). Optional: venues whose sequences restart per
   * connection (Coinbase `sequence_num`) have nothing to resume.
   */
  resumeSequences?(last: readonly StoredSequence[], receivedAtUs?: number): void;
  /** The normalizer's sequence tracker (platform sequences of backfilled records come from it too). */
  readonly sequences?: SequenceTracker;
}

/** The highest venue sequence stored for a symbol and data type (from the store, at start). */
export interface StoredSequence {
  symbol: string;
  data_type: "trades" | "aggtrades";
  sequence: number;
}

/** One REST request of a backfill: the URL to GET and its request weight (Binance weights). */
export interface BackfillRequest {
  url: string;
  weight: number;
}

/** What a backfill mapper needs besides the response body. */
export interface BackfillContext {
  symbol: string;
  dataType: "trades" | "aggtrades";
  /** Receipt time of the response, µs since epoch (the records' ingestion_timestamp). */
  receivedAtUs: number;
  /** Next platform_sequence of a symbol (the feed's own counter). */
  platformSequence(symbol: string): number;
}

/**
 * How a venue's REST API fills a sequence gap of trades: a URL builder and a response mapper, paged
 * by venue id (`fromId`). Used by the backfill worker (`src/feed/backfill.ts`).
 */
export interface RestBackfill {
  /** Live REST base URL (`https://api.binance.com`). */
  defaultRestUrl: string;
  /** Data types whose gaps it can fill. */
  dataTypes: readonly ("trades" | "aggtrades")[];
  /** Most records one page returns (Binance: 1000). */
  pageLimit: number;
  /** The venue's request-weight budget per minute (Binance spot: 6000 per IP). */
  weightPerMinute: number;
  /** Response header carrying the weight used in the current minute (`x-mbx-used-weight-1m`). */
  usedWeightHeader?: string;
  /** The page of up to `limit` records from venue id `fromId` (inclusive). */
  request(
    baseUrl: string,
    symbol: string,
    dataType: "trades" | "aggtrades",
    fromId: number,
    limit: number,
  ): BackfillRequest;
  /**
   * Maps a response body (parsed JSON) to records with `source_sequence` set and
   * `vendor_data.source = "rest_backfill"`, with the same message ids the stream gives.
   * @throws {import("./mapping.js").Reject} when the body or a record does not have the documented shape
   */
  records(body: unknown, ctx: BackfillContext): TradeV2[];
}

/**
 * How a replay server speaks a venue's subscription protocol, so that a recording of the venue
 * (cryptofeed raw-data format, `src/replay/cryptofeed-replay-server.ts`) is served to the venue's own
 * feed handler unchanged. Subscriptions and recorded frames are described by keys `<stream>|<SYMBOL>`
 * in the venue's own names (`market_trades|BTC-USD`, `trade|XBT/USD`, `aggTrade|NKNUSDT`);
 * `<stream>|` (empty symbol) stands for every symbol of that stream.
 */
export interface ReplayDialect {
  /** Keys a connection URL subscribes to (Binance `/stream?streams=a/b`); `[]` when the URL names none. */
  urlKeys(url: string): string[];
  /** A client→venue text message read as a (un)subscription, or null when it is not one. */
  subscription(message: string): { subscribe: boolean; keys: string[] } | null;
  /**
   * The answer the replay server itself gives to a client message (Binance `{"result":null,"id":N}`),
   * or null when the recording holds the venue's answers (Coinbase, Kraken).
   */
  reply(message: string): string | null;
  /**
   * Key of a recorded venue frame, or null when the frame belongs to the whole connection (acks,
   * heartbeats, status, and every frame of a venue that numbers its frames per connection, where
   * leaving one out would be a sequence gap the recording does not have).
   */
  frameKey(raw: string): string | null;
}

/** Replay key of a stream and symbol: `market_trades|BTC-USD`. */
export function replayKey(stream: string, symbol: string): string {
  return `${stream}|${symbol}`;
}

/**
 * What a venue declares about its WebSocket connection: the URL, the messages sent on each open and
 * the venue's limits. The feed's `ConnectionOptions` (`src/feed/connection.ts`) extends it with the
 * backoff and liveness settings a process chooses.
 */
export interface VenueConnectionSpec {
  /** Full URL to connect to (the venue builds it, e.g. Binance `/stream?streams=...`). */
  url: string;
  /** Text messages sent after each (re)connect, in order, through the rate limiter (subscriptions). */
  onOpenMessages: () => string[];
  /** At most this many messages per second sent to the server (Binance: 5). */
  maxMessagesPerSecond: number;
  /**
   * Venue's maximum connection age, ms (Binance: 24 h). A new connection is opened this long minus
   * `rolloverLeadMs` after connecting; the old one closes once the new one delivers its first frame.
   */
  maxConnectionAgeMs?: number;
}

/** Subscription request for a venue: which symbols and which venue streams / channels. */
export interface Subscription {
  /** Venue symbols, upper case (`BTCUSDT`). */
  symbols: string[];
  /** Venue stream / channel names (`trade`, `aggTrade`, `bookTicker` for Binance). */
  streams: string[];
}

/** A venue's feed description: endpoint, subscriptions, limits and mappers. */
export interface Venue {
  /** Upper-case exchange code written into records (`BINANCE`). */
  exchange: string;
  assetClass: AssetClass;
  /** Default live endpoint base URL. */
  defaultWsUrl: string;
  /** Streams available and those subscribed by default. */
  streams: readonly string[];
  defaultStreams: readonly string[];
  defaultSymbols: readonly string[];
  /** Data types the given streams produce (for topics and tables). */
  dataTypesOf(streams: string[]): DataType[];
  /**
   * Checks a subscription against the venue's rules.
   * @throws {Error} with a message naming the offending flag value
   */
  validate(sub: Subscription): void;
  /** Connection options (URL, subscribe messages, venue limits) for a base URL. */
  connection(baseUrl: string, sub: Subscription): VenueConnectionSpec;
  /** A fresh normalizer writing into `sink`. */
  createNormalizer(sink: NormalizedSink, sub: Subscription): FrameNormalizer;
  /** How a replay server speaks this venue's protocol (recordings of it can then be replayed). */
  replay?: ReplayDialect;
  /** REST backfill of trade gaps; absent when the venue's REST API cannot fill its gaps. */
  backfill?: RestBackfill;
  /** REST depth snapshots for a local book kept from diffs (Binance); absent when the stream has them. */
  bookSnapshot?: BookSnapshotRest;
  /**
   * Messages that resubscribe one symbol's book stream (Kraken: unsubscribe then subscribe `book` for
   * that pair, after a checksum failure), in the protocol of `baseUrl`; absent when the venue has none.
   */
  bookResubscribe?(baseUrl: string, symbol: string): string[];
}

/**
 * How a venue's REST API gives a whole book for a symbol (Binance `GET /api/v3/depth`), for the local
 * book procedure of `src/feed/books.ts`. Uses the venue's {@link RestBackfill} weight budget.
 */
export interface BookSnapshotRest {
  /** Levels per side asked for (Binance: 1000, weight 50). */
  limit: number;
  /** The request for a symbol's snapshot, with its weight. */
  request(baseUrl: string, symbol: string, limit: number): BackfillRequest;
  /**
   * Maps a response body (parsed JSON) to a book_changes_v2 snapshot (`is_snapshot` true).
   * @throws {import("./mapping.js").Reject} when the body does not have the documented shape
   */
  snapshot(body: unknown, symbol: string, receivedAtUs: number): BookChangeV2;
}

/**
 * A venue's `dataTypesOf` when each stream produces one data type: the data types of the given
 * streams, in the order of `byStream` (`{ trade: "trades", bookTicker: "quotes" }`).
 */
export function dataTypesByStream(
  byStream: Readonly<Record<string, DataType>>,
): (streams: string[]) => DataType[] {
  const known = Object.keys(byStream);
  return (streams) => known.filter((st) => streams.includes(st)).map((st) => byStream[st]);
}

/**
 * A venue's `validate` rules shared by every venue: each stream is one of the venue's, each symbol
 * passes `checkSymbol`, and there is at least one of each.
 * @param what the venue's word for a stream, named in the error (`Binance stream`, `Kraken channel`)
 * @throws {Error} `--streams: unknown <what> "<stream>" (expected a, b)`, what `checkSymbol` throws, or
 *   `--symbols/--streams: nothing to subscribe to`
 */
export function checkSubscription(
  sub: Subscription,
  streams: readonly string[],
  what: string,
  checkSymbol: (symbol: string) => void,
): void {
  for (const st of sub.streams) {
    if (!streams.includes(st))
      throw new Error(`--streams: unknown ${what} "${st}" (expected ${streams.join(", ")})`);
  }
  for (const s of sub.symbols) checkSymbol(s);
  if (sub.symbols.length === 0 || sub.streams.length === 0) {
    throw new Error("--symbols/--streams: nothing to subscribe to");
  }
}

/**
 * Sequence gap detector and platform sequence counter, shared by venues.
 *
 * platform_sequence starts at the process start time in µs and increases by one per record per
 * (exchange, symbol): monotonic within a run, and across restarts as long as a symbol averages under
 * one record per µs. A deterministic replay starts it at the recording's first receive time instead
 * ({@link startAt}), so that it depends only on the recording.
 */
export class SequenceTracker {
  private readonly last = new Map<string, number>();
  private readonly platform = new Map<string, number>();
  private seed = Math.floor(performance.timeOrigin * 1000);
  /** Records whose source sequence was not above the last seen (overlap or replay duplicates). */
  duplicates = 0;

  /**
   * Starts platform_sequence at `us` (µs since epoch: a replay's first recorded receive time) instead
   * of the process start. No effect once a platform_sequence has been issued.
   */
  startAt(us: number): void {
    if (this.platform.size === 0) this.seed = Math.floor(us);
  }

  /** Next platform_sequence for a symbol. */
  nextPlatformSequence(symbol: string): number {
    const n = (this.platform.get(symbol) ?? this.seed) + 1;
    this.platform.set(symbol, n);
    return n;
  }

  /**
   * Observes a contiguous venue sequence (Binance trade id `t`, aggregate id `a`, Coinbase
   * `sequence_num`). Returns the missing inclusive range when `seq` skips ahead, else null.
   */
  observe(key: string, seq: number): [number, number] | null {
    const prev = this.last.get(key);
    if (prev === undefined) {
      this.last.set(key, seq);
      this.first.set(key, seq);
      return null;
    }
    if (seq === prev + 1) {
      this.last.set(key, seq);
      return null;
    }
    if (seq <= prev) {
      this.duplicates++;
      return null;
    }
    this.last.set(key, seq);
    return [prev + 1, seq - 1];
  }

  /**
   * Seeds the last sequence of `key` (from the store, at start) unless a higher one was already seen:
   * the next `observe` reports a gap from `seq + 1`. When frames of `key` were already observed
   * (the store answered late), returns the range between `seq` and the first of them, if any: the
   * caller reports it as a gap.
   */
  resume(key: string, seq: number): [number, number] | null {
    const prev = this.last.get(key);
    if (prev === undefined || seq > prev) this.last.set(key, seq);
    // read late (the store answered after frames had arrived): the ids between the stored one and
    // the first one received since are the gap the restart left
    const first = this.first.get(key);
    return first !== undefined && first > seq + 1 ? [seq + 1, first - 1] : null;
  }

  /** The first sequence observed per key (for a {@link resume} that comes after frames). */
  private readonly first = new Map<string, number>();

  /** Forgets the last sequence of `key` (a new connection numbers its frames from the start again). */
  forget(key: string): void {
    this.last.delete(key);
  }
}

/** {@link TradeIdMemory.check} verdicts other than a conflict (which returns the first version). */
export const ID_NEW = 0;
export const ID_DUPLICATE = 1;
export const ID_REGRESSION = 2;

/** A trade's content as compared for duplicates and quoted in reasons: `price .., quantity .., time .. µs, side ..`. */
export function tradeContent(t: Pick<TradeV2, "price" | "quantity" | "timestamp" | "side">): string {
  return `price ${t.price}, quantity ${t.quantity}, time ${t.timestamp} µs, side ${t.side}`;
}

/**
 * The remembered trades of one key, in fixed-size slots (no allocation per trade): ordered numeric
 * ids go to slot `id % size` (ids are dense, so the slots hold the last `size` ids); other ids get the
 * next slot of a ring and a Map from id to slot. Each slot keeps the id and the trade's content
 * (references to the record's price and quantity strings, its time and side).
 */
interface IdWindow {
  ids: (number | string | undefined)[];
  prices: string[];
  quantities: string[];
  times: Float64Array;
  sides: string[];
  /** Unordered ids only: id → slot. */
  slots: Map<number | string, number> | null;
  next: number;
  last: number | null;
}

/**
 * Bounded memory of recent trade ids per key (`trades/BTCUSDT`) with each trade's content (price,
 * quantity, time, side). Tells an exact duplicate (a reconnect overlap: stored once by the bus and store
 * dedupe) from a conflicting duplicate (same id, different content: a dead letter) and from an id going
 * backwards (a sequence regression: stored, counted). Keeps about the last `perKey` ids of each key;
 * the keys are the subscribed symbols, so memory is bounded by subscription × `perKey`.
 */
export class TradeIdMemory {
  private readonly byKey = new Map<string, IdWindow>();

  /** @param perKey ids remembered per key (default 4096) */
  constructor(private readonly perKey = 4096) {}

  /**
   * Checks and remembers one complete trade. Returns {@link ID_NEW}, {@link ID_DUPLICATE} (same id,
   * same content), {@link ID_REGRESSION} (ordered id below the highest seen and not remembered), or,
   * for a conflicting duplicate, the {@link tradeContent} of the first version (which stays remembered).
   * @param id the venue trade id
   * @param order the id as a number when ids are ordered and dense (Binance `t`/`a`, Kraken v2
   *   `trade_id`), else null
   */
  check(key: string, id: number | string, t: TradeV2, order: number | null): number | string {
    let w = this.byKey.get(key);
    if (!w) {
      const n = this.perKey;
      w = {
        ids: new Array(n),
        prices: new Array(n),
        quantities: new Array(n),
        times: new Float64Array(n),
        sides: new Array(n),
        slots: order === null ? new Map() : null,
        next: 0,
        last: null,
      };
      this.byKey.set(key, w);
    }
    let slot: number | undefined;
    if (w.slots === null && order !== null) {
      slot = order % this.perKey;
      if (w.ids[slot] !== id) slot = undefined;
    } else slot = w.slots?.get(id);
    if (slot !== undefined) {
      const same =
        w.prices[slot] === t.price &&
        w.quantities[slot] === t.quantity &&
        w.times[slot] === t.timestamp &&
        w.sides[slot] === t.side;
      if (same) return ID_DUPLICATE;
      return tradeContent({
        price: w.prices[slot],
        quantity: w.quantities[slot],
        timestamp: w.times[slot],
        side: w.sides[slot] as TradeV2["side"],
      });
    }
    if (w.slots === null && order !== null) slot = order % this.perKey;
    else {
      slot = w.next;
      w.next = (w.next + 1) % this.perKey;
      const old = w.ids[slot];
      if (old !== undefined) w.slots?.delete(old);
      w.slots?.set(id, slot);
    }
    w.ids[slot] = id;
    w.prices[slot] = t.price;
    w.quantities[slot] = t.quantity;
    w.times[slot] = t.timestamp;
    w.sides[slot] = t.side;
    if (order === null) return ID_NEW;
    if (w.last !== null && order < w.last) return ID_REGRESSION;
    w.last = order;
    return ID_NEW;
  }

  /** Highest ordered id seen on `key`, or null. */
  last(key: string): number | null {
    return this.byKey.get(key)?.last ?? null;
  }
}
