/**
 * Kraken Spot WebSocket, API v1 (`wss://ws.kraken.com`, the protocol of the recording) and API v2
 * (`wss://ws.kraken.com/v2`): feed description and mappers for `trade` (→ trades_v2) and `ticker`
 * (→ quotes_v2), plus `heartbeat`, `systemStatus` / `status` and `subscriptionStatus` / subscribe acks.
 * The protocol follows the URL: a path ending in `/v2` speaks v2, anything else v1. The feed's
 * normalizer parses each frame once and hands it by its shape to the v1 reader (an array, or an object
 * with `event`) or the v2 reader (an object with `channel` or `method`); each protocol's messages are
 * typed below as the docs describe them.
 *
 * The file reads top to bottom: the message types, what v1 and v2 share, the v1 normalizer, the v2
 * normalizer, the feed's normalizer, the replay dialect and the venue.
 *
 * Follows Kraken's "Spot WebSocket API" docs (docs.kraken.com, v1 "trade", "ticker",
 * "subscriptionStatus", "systemStatus", "heartbeat"; v2 "trade", "ticker", "heartbeat", "status"):
 * - v1 subscribe `{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"trade"}}`, answered
 *   per pair by `{"event":"subscriptionStatus","status":"subscribed"|"error","pair":..,
 *   "errorMessage"?:..}`; data frames are arrays `[channelID, payload, channelName, pair]`;
 *   - trade payload: `[[price, volume, time, side, orderType, misc], ..]`, several trades per frame,
 *     `time` decimal seconds with µs, `side` `b`/`s` the side of the order that triggered the trade
 *     (the aggressor), `orderType` `l`/`m`;
 *   - ticker payload: `{"a":[price, wholeLotVolume, lotVolume], "b":[..], "c", "v", "p", "t", "l",
 *     "h", "o"}`: best ask `a`, best bid `b` with their lot volumes;
 *   - `{"event":"heartbeat"}` about once a second without other traffic; `systemStatus` on connect.
 * - v2 subscribe `{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]}}`, answered by
 *   `{"method":"subscribe","success":true|false,"error"?:..}`; data `{"channel":"trade","type":
 *   "snapshot"|"update","data":[{"symbol","side","price","qty","ord_type","trade_id","timestamp"}]}`
 *   and `{"channel":"ticker","data":[{"symbol","bid","bid_qty","ask","ask_qty",..}]}`. v2 sends
 *   prices and quantities as JSON numbers: they are read from the frame text exactly
 *   (`parseJsonExact`), never through a float. The ticker is subscribed with `event_trigger: "bbo"`
 *   so a quote is sent on every best bid/offer change.
 * - limits: Kraken's message rate limit on a WebSocket connection is not a fixed published number
 *   (it answers `Exceeded msg rate` when exceeded); K2 sends at most 5 messages per second.
 *
 * Symbols are the pairs as the venue writes them (`XBT/USD` in v1, `BTC/USD` in v2); the currency is
 * the part after `/` (`XBT/USD` → `USD`, `KSM/XBT` → `XBT`).
 *
 * Trade ids. v2 trades carry `trade_id` (a per-book sequence number): message_id
 * `KRAKEN/trades/<pair>/<trade_id>`, trade_id `KRAKEN-<trade_id>`, source_sequence = trade_id, and
 * gaps in it are reported per pair. v1 trades carry no id, so one is derived from the trade itself:
 * `<time in µs>-<12 hex digits of MurmurHash3 of "<pair>/<time µs>/<price>/<volume>/<side>/<orderType>/
 * <n>">`, where price and volume are the canonical DECIMAL(18,8) strings and `n` counts identical
 * (time, price, volume, side, orderType) trades earlier in the same frame (0 unless Kraken sends two
 * indistinguishable trades together). The id depends only on what the trade is, not on frame
 * boundaries or receipt time, so replaying a recording twice, or a second connection delivering the
 * same trades, yields the same ids. v1 has no sequence number: gaps cannot be detected in v1.
 *
 * Quotes. v1 tickers carry no time and no id: the timestamp is the receipt time, and the message_id is
 * `KRAKEN/quotes/<pair>/<ticker payload JSON>`; the payload holds the day's cumulative volume and
 * trade count, which change with every trade, so distinct tickers get distinct ids and the same ticker
 * received twice gets one. v2 tickers use their `timestamp` when present (id
 * `KRAKEN/quotes/<pair>/<timestamp>`), else the same content rule.
 *
 * Venue errors (`subscriptionStatus` with `status: "error"`, v1 `{"event":"error"}`, v2 acks with
 * `success: false`) are dead-lettered with Kraken's `errorMessage` / `error` as the reason (and logged by
 * the pipeline as every dead letter is).
 */
import { type KrakenBookMessage, parseKrakenBookMessage } from "../books/kraken.js";
import { type BookChangeV2, bookChangeMessageId } from "../schema/books.js";
import { parseJsonExact } from "../schema/exact-json.js";
import { deterministicMessageId, murmur3x86_128 } from "../schema/message-id.js";
import type { QuoteV2, Side, TradeV2 } from "../schema/records.js";
import {
  addVendorFields,
  asObject,
  boundedJson,
  currencyOf,
  deadLetterOf,
  decimalOf,
  epochSecondsMicrosOf,
  FrameRejects,
  fail,
  intOf,
  isoMicrosOf,
  jsonObjectOrNull,
  MAX_VENDOR_FIELDS,
  parseFrame,
  Reject,
  reasonText,
  shown,
  sourceOf,
  symbolOf,
  tradeDecimalOf,
  type Unchecked,
  vendorString,
} from "./mapping.js";
import {
  checkSubscription,
  dataTypesByStream,
  type FrameNormalizer,
  ID_REGRESSION,
  type NormalizedSink,
  type ReplayDialect,
  replayKey,
  SequenceTracker,
  type Subscription,
  TradeIdMemory,
  tradeContent,
  type Venue,
  type VenueConnectionSpec,
} from "./venue.js";

const EXCHANGE = "KRAKEN";
/** K2's own bound on messages sent per second to Kraken (Kraken publishes no fixed number). */
export const KRAKEN_MAX_MESSAGES_PER_SECOND = 5;
/** Channels K2 subscribes to on Kraken (`--streams`). */
export const KRAKEN_STREAMS = ["trade", "ticker", "book"] as const;
/** Channels subscribed when `--streams` is not given (the book is asked for explicitly). */
export const KRAKEN_DEFAULT_STREAMS = ["trade", "ticker"] as const;
/** Depth of K2's v1 `book` subscription: Kraken's largest, so the checksum's top 10 are always held. */
export const KRAKEN_BOOK_DEPTH = 1000;
/**
 * Largest Kraken frame K2 reads, in characters (`book-1000` snapshots are the largest recorded frames,
 * 79,307 characters); a larger frame is a dead letter.
 */
export const KRAKEN_MAX_FRAME_CHARS = 4 * 1024 * 1024;
/** v1 channel names K2 has no mapper for (control frames `unmapped:<name>`); others are dead letters. */
const V1_UNMAPPED = /^(?:book-\d{1,5}|spread|ohlc-\d{1,5})$/;
/** v2 channels K2 has no mapper for (control frames); any other channel name is a dead letter. */
const V2_UNMAPPED = new Set(["book", "level3", "ohlc", "instrument", "executions", "balances"]);
/** Kraken system statuses (`systemStatus` / `status`); another value is counted as `system_status_unknown`. */
const SYSTEM_STATUSES = new Set(["online", "maintenance", "cancel_only", "limit_only", "post_only"]);
/** Kraken pairs: `XBT/USD`, `BTC/USD`. */
const PAIR = /^[A-Z0-9.]{1,20}\/[A-Z0-9.]{1,20}$/;
const PAIR_WHAT = "a Kraken pair like XBT/USD";

// ---------------------------------------------------------------------------------------------------
// Kraken messages, as the docs describe them. Frames are parsed with `parseJsonExact`: a JSON number on
// the wire arrives as its exact decimal text. The normalizers read these through `Unchecked<..>`: every
// field stays `unknown` until a reader of mapping.ts has checked it.

/** A JSON number on the wire, read as its exact decimal text (`parseJsonExact`): `0.5147` → `"0.5147"`. */
type ExactNumber = string;

/**
 * v1 data frame: `[channelID, payload, channelName, pair]`. Book frames may carry two payloads
 * (`[channelID, {a}, {b}, "book-10", pair]`), so the name and pair are read from the end.
 */
export type KrakenV1Data<Payload> = [
  /** Channel id Kraken gave the subscription (deprecated by Kraken; kept in vendor_data). */
  channelId: ExactNumber,
  payload: Payload,
  /** `trade`, `ticker`, `spread`, `book-<depth>`, `ohlc-<interval>`. */
  channelName: string,
  /** Pair as Kraken writes it in v1: `XBT/USD`. */
  pair: string,
];

/** v1 trade, one element of a `trade` payload (several per frame, oldest first). */
export type KrakenV1Trade = [
  /** Price, decimal string, in the quote currency. */
  price: string,
  /** Volume, decimal string, in the base currency. */
  volume: string,
  /** Trade time, seconds since epoch as a decimal string with µs (`"1618678142.557535"`). */
  time: string,
  /** `b` buy / `s` sell: the side of the order that triggered the trade (the aggressor). */
  side: "b" | "s",
  /** `m` market / `l` limit: the type of the triggering order. */
  orderType: "m" | "l",
  /** Miscellaneous information (usually empty). */
  misc: string,
  /** Later fields Kraken may add, kept in vendor_data as `field_<index>`. */
  ...more: unknown[],
];

/** v1 spread payload `[bid, ask, timestamp, bidVolume, askVolume]` (recognized, not mapped: `unmapped:spread`). */
export type KrakenV1Spread = [
  /** Best bid price, decimal string. */
  bid: string,
  /** Best ask price, decimal string. */
  ask: string,
  /** Time, seconds since epoch as a decimal string with µs. */
  timestamp: string,
  /** Best bid volume, decimal string. */
  bidVolume: string,
  /** Best ask volume, decimal string. */
  askVolume: string,
];

/** v1 ticker payload: best bid/ask and the day's statistics (no time, no id). */
export interface KrakenV1Ticker {
  /** Best ask `[price, wholeLotVolume, lotVolume]`, decimal strings (lotVolume: the quantity at the price). */
  a: [price: string, wholeLotVolume: string, lotVolume: string];
  /** Best bid `[price, wholeLotVolume, lotVolume]`, decimal strings. */
  b: [price: string, wholeLotVolume: string, lotVolume: string];
  /** Last trade closed `[price, lotVolume]`. */
  c: [price: string, lotVolume: string];
  /** Volume `[today, last 24 hours]`, base currency. */
  v: [today: string, last24Hours: string];
  /** Volume-weighted average price `[today, last 24 hours]`. */
  p: [today: string, last24Hours: string];
  /** Number of trades `[today, last 24 hours]` (integers). */
  t: [today: ExactNumber, last24Hours: ExactNumber];
  /** Low price `[today, last 24 hours]`. */
  l: [today: string, last24Hours: string];
  /** High price `[today, last 24 hours]`. */
  h: [today: string, last24Hours: string];
  /** Open price `[today, last 24 hours]`. */
  o: [today: string, last24Hours: string];
}

/** v1 event frame: `heartbeat`, `pong`, `systemStatus`, `subscriptionStatus`, `error`. */
export interface KrakenV1Event {
  event: "heartbeat" | "pong" | "systemStatus" | "subscriptionStatus" | "error";
  /**
   * `systemStatus`: `online`, `maintenance`, `cancel_only`, `limit_only`, `post_only`;
   * `subscriptionStatus`: `subscribed`, `unsubscribed`, `error`.
   */
  status?: string;
  /** Why a subscription or request failed (`subscriptionStatus` with status `error`, `error`). */
  errorMessage?: string;
  /** `subscriptionStatus`: the pair it answers for (`XBT/USD`). */
  pair?: string;
  /** `subscriptionStatus`: the channel name data frames will carry (`book-10`). */
  channelName?: string;
  channelID?: ExactNumber;
  subscription?: { name: string; depth?: ExactNumber; interval?: ExactNumber };
  /** `systemStatus`: connection id and API version. */
  connectionID?: ExactNumber;
  version?: string;
}

/** v2 data frame `{"channel","type","data":[..]}` (also `heartbeat` and `status`, which carry no records). */
export interface KrakenV2Data<Record> {
  /** `trade`, `ticker`, `book`, `ohlc`, `instrument`, `heartbeat`, `status`, ... */
  channel: string;
  /** `snapshot` (sent on subscribing) or `update`; kept in vendor_data as `event_type`. */
  type: "snapshot" | "update";
  data: Record[];
}

/** v2 trade, one element of a `trade` frame's `data`. */
export interface KrakenV2Trade {
  /** Pair as Kraken writes it in v2: `BTC/USD`. */
  symbol: string;
  /** `buy` / `sell`: the side of the taker (the aggressor). */
  side: "buy" | "sell";
  /** Price, a JSON number, in the quote currency. */
  price: ExactNumber;
  /** Quantity, a JSON number, in the base currency. */
  qty: ExactNumber;
  /** `market` / `limit`: the taker's order type (vendor_data). */
  ord_type: "market" | "limit";
  /** Trade id: a sequence number per book, without gaps. */
  trade_id: ExactNumber;
  /** Trade time, RFC 3339 with µs (`"2023-09-25T07:49:37.708706Z"`). */
  timestamp: string;
}

/** v2 ticker, one element of a `ticker` frame's `data` (sent on every best bid/offer change with `event_trigger: "bbo"`). */
export interface KrakenV2Ticker {
  symbol: string;
  /** Best bid price and quantity, JSON numbers. */
  bid: ExactNumber;
  bid_qty: ExactNumber;
  /** Best ask price and quantity, JSON numbers. */
  ask: ExactNumber;
  ask_qty: ExactNumber;
  /** Last trade price; 24-hour volume, VWAP, low, high; change since 24 hours (absolute and %): vendor_data. */
  last: ExactNumber;
  volume: ExactNumber;
  vwap: ExactNumber;
  low: ExactNumber;
  high: ExactNumber;
  change: ExactNumber;
  change_pct: ExactNumber;
  /** Time of the ticker, RFC 3339 with µs; absent in earlier versions of the channel. */
  timestamp?: string;
}

/** v2 answer to a request: `{"method":"subscribe","success":true,"result":{..},"time_in","time_out"}`. */
export interface KrakenV2Response {
  method: "subscribe" | "unsubscribe" | "pong";
  /** False when the request failed; `error` then says why. */
  success?: boolean;
  error?: string;
  result?: { channel: string; symbol: string; snapshot?: boolean };
  req_id?: ExactNumber;
  /** When Kraken received the request and sent the answer, RFC 3339. */
  time_in?: string;
  time_out?: string;
}

// ---------------------------------------------------------------------------------------------------
// Shared by v1 and v2.

/** Protocol version spoken at a URL: `v2` when the path ends in `/v2`, else `v1`. */
export function krakenProtocol(url: string): "v1" | "v2" {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return "v1";
  }
  return /\/v2\/?$/.test(path) ? "v2" : "v1";
}

/** Subscribe messages, one per stream, in the protocol of `url`. */
export function krakenSubscribeMessages(url: string, sub: Subscription): string[] {
  if (krakenProtocol(url) === "v2") {
    return sub.streams.map((channel, i) =>
      JSON.stringify({
        method: "subscribe",
        params:
          channel === "ticker"
            ? { channel, symbol: sub.symbols, event_trigger: "bbo", snapshot: true }
            : { channel, symbol: sub.symbols, snapshot: true },
        req_id: i + 1,
      }),
    );
  }
  return sub.streams.map((name) =>
    JSON.stringify({
      event: "subscribe",
      pair: sub.symbols,
      subscription: name === "book" ? { name, depth: KRAKEN_BOOK_DEPTH } : { name },
    }),
  );
}

/**
 * v1 messages resubscribing one pair's `book` (after a checksum failure: the pair's book was discarded
 * and Kraken sends a new snapshot on subscribe); the other pairs' subscriptions are untouched.
 */
export function krakenBookResubscribeMessages(pair: string): string[] {
  const subscription = { name: "book", depth: KRAKEN_BOOK_DEPTH };
  return [
    JSON.stringify({ event: "unsubscribe", pair: [pair], subscription }),
    JSON.stringify({ event: "subscribe", pair: [pair], subscription }),
  ];
}

/** Aggressor side of a v1 (`b`/`s`) or v2 (`buy`/`sell`) trade. */
function sideOf(v: unknown): Side {
  if (v === "b" || v === "buy") return "BUY";
  if (v === "s" || v === "sell") return "SELL";
  return "UNKNOWN";
}

/** Longest ticker JSON hashed into a quote's message_id, in characters. */
const TICKER_ID_MAX_CHARS = 65_536;

/**
 * The feed's subscribed channels and pairs (null: every one, for tests reading a whole recording).
 * Each check throws {@link Reject} with the dead-letter reason.
 */
class KrakenScope {
  private readonly pairs: Set<string> | null;
  private readonly channels: Set<string> | null;

  constructor(sub?: Subscription) {
    this.pairs = sub ? new Set(sub.symbols) : null;
    this.channels = sub ? new Set(sub.streams) : null;
  }

  channel(channel: string): void {
    if (this.channels && !this.channels.has(channel)) fail(`channel ${channel} is not subscribed`);
  }

  pair(pair: string): void {
    if (this.pairs && !this.pairs.has(pair)) fail(`pair ${pair} is not subscribed`);
  }
}

// ---------------------------------------------------------------------------------------------------
// v1.

/**
 * Derived v1 trade id: `<time µs>-<12 hex of MurmurHash3 x86_128 of the trade's content>` (see the
 * file comment).
 */
export function krakenV1TradeId(
  pair: string,
  timeUs: number,
  price: string,
  volume: string,
  side: string,
  orderType: string,
  occurrence: number,
): string {
  const name = `${pair}/${timeUs}/${price}/${volume}/${side}/${orderType}/${occurrence}`;
  const [h1, h2] = murmur3x86_128(new TextEncoder().encode(name));
  return `${timeUs}-${h1.toString(16).padStart(8, "0")}${h2.toString(16).padStart(8, "0").slice(0, 4)}`;
}

const V1_TICKER_MAPPED = new Set<keyof KrakenV1Ticker>(["a", "b"]);
/** Readable names of the v1 ticker fields kept in vendor_data. */
const V1_TICKER_NAMES = new Map<keyof KrakenV1Ticker, string>(
  Object.entries({
    c: "close",
    v: "volume",
    p: "vwap",
    t: "trades",
    l: "low",
    h: "high",
    o: "open",
  }) as [keyof KrakenV1Ticker, string][],
);

/**
 * Reads Kraken v1 frames (already parsed): events (`{"event":..}`) and data arrays
 * (`[channelID, payload, channelName, pair]`). Each method throws {@link Reject} for a frame that is a
 * dead letter as a whole; a rejected trade of a multi-trade frame is dead-lettered on its own.
 */
class KrakenV1Normalizer {
  /**
   * @param books map `book-<depth>` frames to book changes (the `book` channel is subscribed and the
   *   sink keeps books); else they are control frames `unmapped:book`
   */
  constructor(
    private readonly sink: NormalizedSink,
    private readonly sequences: SequenceTracker,
    private readonly scope: KrakenScope,
    private readonly books = false,
  ) {}

  /** `{"event":..}` frames: control frames, or venue errors (rejected with Kraken's `errorMessage`). */
  event(e: Unchecked<KrakenV1Event>, raw: string): void {
    switch (e.event) {
      case "heartbeat":
        this.sink.control("heartbeat", raw);
        return;
      case "pong":
        this.sink.control("pong", raw);
        return;
      case "systemStatus":
        this.sink.control(
          e.status === "online"
            ? "system_status"
            : typeof e.status === "string" && SYSTEM_STATUSES.has(e.status)
              ? `system_status_${e.status}`
              : "system_status_unknown",
          raw,
        );
        return;
      case "subscriptionStatus":
        if (e.status === "error") {
          fail(
            `venue error: ${reasonText(e.errorMessage ?? "subscription failed")}` +
              (typeof e.pair === "string" ? ` (pair ${reasonText(e.pair)})` : ""),
          );
        }
        this.sink.control("subscription_ack", raw);
        return;
      case "error":
        fail(`venue error: ${reasonText(e.errorMessage ?? "error")}`);
        break;
      default:
        fail(`unknown event ${reasonText(e.event)}`);
    }
  }

  /** `[channelID, payload.., channelName, pair]` frames: trades, tickers, or unmapped channels. */
  data(msg: unknown[], raw: string, source: string, receivedAtUs: number): void {
    if (msg.length < 4) fail("data frame has fewer than 4 elements");
    const name = msg[msg.length - 2];
    if (typeof name !== "string") fail("missing channel name");
    const pair = symbolOf(msg[msg.length - 1], "pair", PAIR, PAIR_WHAT);
    const channelId = vendorString(msg[0], "channel_id");
    if (name === "trade") {
      this.scope.channel(name);
      this.scope.pair(pair);
      this.trades(msg[1], pair, channelId, raw, source, receivedAtUs);
    } else if (name === "ticker") {
      this.scope.channel(name);
      this.scope.pair(pair);
      this.ticker(msg[1], pair, channelId, receivedAtUs);
    } else if (name.startsWith("book-") && this.books) {
      this.scope.channel("book");
      this.scope.pair(pair);
      this.book(msg, pair, channelId, receivedAtUs);
    } else if (V1_UNMAPPED.test(name)) {
      // book-*, spread, ohlc-*: valid venue frames K2 has no mapper for
      this.sink.control(`unmapped:${name.replace(/-\d+$/, "")}`, raw);
    } else fail(`unknown channel ${shown(name)}`);
  }

  /**
   * A v1 `book-<depth>` frame (snapshot `as`/`bs` or update `a`/`b` with checksum `c`) as a
   * book_changes_v2 record, handed to the sink with the parsed message (its venue strings feed the
   * checksum). Timestamp: the latest level time of the message, else the receipt time.
   */
  private book(msg: unknown[], pair: string, channelId: string, receivedAtUs: number): void {
    let m: KrakenBookMessage | null;
    try {
      // the channel id is the frame's one number: parseJsonExact gives its decimal text
      const id = typeof msg[0] === "string" && /^\d{1,15}$/.test(msg[0]) ? Number(msg[0]) : msg[0];
      m = parseKrakenBookMessage([id, ...msg.slice(1)]);
    } catch (err) {
      fail(`book: ${(err as Error).message}`);
    }
    if (!m) fail("book: not a book message");
    let latest = 0;
    for (const l of m.asks)
      latest = Math.max(latest, epochSecondsMicrosOf(l.timestamp, "book level time", "2"));
    for (const l of m.bids)
      latest = Math.max(latest, epochSecondsMicrosOf(l.timestamp, "book level time", "2"));
    const isSnapshot = m.kind === "snapshot";
    const vendor: Record<string, string> = { channel_id: channelId, channel_name: m.channelName };
    if (m.checksum !== null) vendor.checksum = m.checksum;
    const republished = m.asks.filter((l) => l.republish).length + m.bids.filter((l) => l.republish).length;
    if (republished > 0) vendor.republish = String(republished);
    const record: BookChangeV2 = {
      message_id: bookChangeMessageId(
        EXCHANGE,
        pair,
        isSnapshot,
        null,
        null,
        receivedAtUs,
        m.checksum ?? String(latest),
      ),
      exchange: EXCHANGE,
      symbol: pair,
      timestamp: latest > 0 ? latest : receivedAtUs,
      is_snapshot: isSnapshot,
      bids: m.bids.map((l) => [l.price, l.quantity]),
      asks: m.asks.map((l) => [l.price, l.quantity]),
      first_source_sequence: null,
      last_source_sequence: null,
      ingestion_timestamp: receivedAtUs,
      vendor_data: vendor,
    };
    this.sink.bookChange?.(record, m);
  }

  /** A `trade` payload: each trade a record, or a dead letter of its own. */
  private trades(
    payload: unknown,
    pair: string,
    channelId: string,
    raw: string,
    source: string,
    receivedAtUs: number,
  ): void {
    if (!Array.isArray(payload)) fail("trade payload is not an array");
    const seen = new Map<string, number>();
    const rejects = new FrameRejects(this.sink, EXCHANGE, source, raw, receivedAtUs);
    payload.forEach((t, i) => {
      try {
        this.trade(t, pair, channelId, seen, receivedAtUs);
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        rejects.add(`${i}`, `trade ${i}: ${err.message}`);
      }
    });
    rejects.finish();
    // a frame always has an outcome: one with no trades at all is a control frame
    if (payload.length === 0) this.sink.control("empty:trade", raw);
  }

  /** One trade; `seen` counts identical trades earlier in the frame (the id's occurrence number). */
  private trade(
    item: unknown,
    pair: string,
    channelId: string,
    seen: Map<string, number>,
    receivedAtUs: number,
  ): void {
    if (!Array.isArray(item)) fail("not an array");
    const t = item as Unchecked<KrakenV1Trade>;
    if (t.length > MAX_VENDOR_FIELDS) fail(`trade array has more than ${MAX_VENDOR_FIELDS} elements`);
    const price = tradeDecimalOf(t[0], "price", "0");
    const quantity = tradeDecimalOf(t[1], "quantity", "1");
    const timestamp = epochSecondsMicrosOf(t[2], "trade time", "2");
    const side = vendorString(t[3] ?? "", "side");
    const orderType = vendorString(t[4] ?? "", "order_type");
    const content = `${timestamp}/${price}/${quantity}/${side}/${orderType}`;
    const occurrence = seen.get(content) ?? 0;
    seen.set(content, occurrence + 1);
    const id = krakenV1TradeId(pair, timestamp, price, quantity, side, orderType, occurrence);
    const vendor: Record<string, string> = {
      channel_id: channelId,
      order_type: orderType,
      misc: vendorString(t[5] ?? "", "misc"),
    };
    for (let k = 6; k < t.length; k++) vendor[`field_${k}`] = vendorString(t[k], `field_${k}`);
    const record: TradeV2 = {
      message_id: deterministicMessageId(`${EXCHANGE}/trades/${pair}/${id}`),
      trade_id: `${EXCHANGE}-${id}`,
      symbol: pair,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp,
      price,
      quantity,
      currency: currencyOf(pair),
      side: sideOf(side),
      trade_conditions: [],
      source_sequence: null,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: this.sequences.nextPlatformSequence(pair),
      vendor_data: vendor,
    };
    this.sink.trade(record, "trades");
  }

  /** A `ticker` payload: one quote, timestamped at receipt (v1 tickers carry no time). */
  private ticker(payload: unknown, pair: string, channelId: string, receivedAtUs: number): void {
    const p: Unchecked<KrakenV1Ticker> = asObject(payload) ?? fail("ticker payload is not an object");
    const a = p.a;
    const b = p.b;
    if (!Array.isArray(a)) fail("missing best ask (a)");
    if (!Array.isArray(b)) fail("missing best bid (b)");
    const vendor = addVendorFields(
      {
        channel_id: channelId,
        ask_whole_lot_volume: vendorString(a[1] ?? "", "a[1]"),
        bid_whole_lot_volume: vendorString(b[1] ?? "", "b[1]"),
      },
      p,
      V1_TICKER_MAPPED,
      V1_TICKER_NAMES,
    );
    const record: QuoteV2 = {
      message_id: deterministicMessageId(
        `${EXCHANGE}/quotes/${pair}/${boundedJson(p, "ticker payload", TICKER_ID_MAX_CHARS)}`,
      ),
      symbol: pair,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp: receivedAtUs,
      bid_price: decimalOf(b[0], "bid price", "b[0]"),
      bid_quantity: decimalOf(b[2], "bid quantity", "b[2]"),
      ask_price: decimalOf(a[0], "ask price", "a[0]"),
      ask_quantity: decimalOf(a[2], "ask quantity", "a[2]"),
      currency: currencyOf(pair),
      source_sequence: null,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: this.sequences.nextPlatformSequence(pair),
      vendor_data: vendor,
    };
    this.sink.quote(record);
  }
}

// ---------------------------------------------------------------------------------------------------
// v2.

const V2_TRADE_MAPPED = new Set<keyof KrakenV2Trade>([
  "symbol",
  "side",
  "price",
  "qty",
  "trade_id",
  "timestamp",
]);
const V2_TICKER_MAPPED = new Set<keyof KrakenV2Ticker>([
  "symbol",
  "bid",
  "bid_qty",
  "ask",
  "ask_qty",
  "timestamp",
]);

/**
 * Reads Kraken v2 frames (already parsed): channel frames (`{"channel":..}`) and request answers
 * (`{"method":..}`). Each method throws {@link Reject} for a frame that is a dead letter as a whole; a
 * rejected record of a multi-record frame is dead-lettered on its own.
 */
class KrakenV2Normalizer {
  constructor(
    private readonly sink: NormalizedSink,
    private readonly sequences: SequenceTracker,
    private readonly tradeIds: TradeIdMemory,
    private readonly scope: KrakenScope,
  ) {}

  /** `{"method":..}` answers: acks and pongs, or venue errors (rejected with Kraken's `error`). */
  response(r: Unchecked<KrakenV2Response>, raw: string): void {
    if (r.success === false || r.error !== undefined) {
      fail(`venue error: ${reasonText(r.error ?? "request failed")}`);
    }
    if (r.method !== "pong" && r.method !== "subscribe" && r.method !== "unsubscribe") {
      fail(`unknown method ${shown(r.method)}`);
    }
    this.sink.control(r.method === "pong" ? "pong" : "subscription_ack", raw);
  }

  /** `{"channel":..}` frames: trades, tickers, heartbeat and status, or unmapped channels. */
  channel(
    frame: Unchecked<KrakenV2Data<unknown>>,
    channel: string,
    raw: string,
    source: string,
    receivedAtUs: number,
  ): void {
    if (channel === "heartbeat") {
      this.sink.control("heartbeat", raw);
      return;
    }
    if (channel === "status") {
      this.sink.control("system_status", raw);
      return;
    }
    if (channel !== "trade" && channel !== "ticker") {
      if (!V2_UNMAPPED.has(channel)) fail(`unknown channel ${shown(channel)}`);
      this.sink.control(`unmapped:${channel}`, raw);
      return;
    }
    this.scope.channel(channel);
    const data = frame.data;
    if (!Array.isArray(data)) fail("missing data array");
    const type = vendorString(frame.type ?? "", "type");
    // a frame always has an outcome: one with no records at all is a control frame
    if (data.length === 0) {
      this.sink.control(`empty:${channel}`, raw);
      return;
    }
    const rejects = new FrameRejects(this.sink, EXCHANGE, source, raw, receivedAtUs);
    if (channel === "trade") this.trades(data, type, rejects, receivedAtUs);
    else this.tickers(data, type, rejects, receivedAtUs);
    rejects.finish();
  }

  /**
   * A `trade` frame's records, emitted in trade id order (a snapshot may list newest first) after
   * duplicate, regression and gap checks per pair.
   */
  private trades(data: unknown[], type: string, rejects: FrameRejects, receivedAtUs: number): void {
    const records: TradeV2[] = [];
    data.forEach((d, i) => {
      try {
        records.push(this.trade(asObject(d) ?? fail("not an object"), type, receivedAtUs));
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        rejects.add(`${i}`, `trade ${i}: ${err.message}`);
      }
    });
    records.sort((x, y) => (x.source_sequence ?? 0) - (y.source_sequence ?? 0));
    for (const r of records) {
      const id = r.source_sequence!;
      const key = `trades/${r.symbol}`;
      const verdict = this.tradeIds.check(key, id, r, id);
      if (typeof verdict === "string") {
        this.sink.anomaly?.({
          kind: "conflicting_duplicate",
          symbol: r.symbol,
          dataType: "trades",
          id,
          last: null,
        });
        rejects.add(
          `duplicate ${id}`,
          `conflicting duplicate of trade id ${id}: first seen with ${verdict}; this frame has ${tradeContent(r)}`,
        );
        continue;
      }
      if (verdict === ID_REGRESSION) {
        this.sink.anomaly?.({
          kind: "sequence_regression",
          symbol: r.symbol,
          dataType: "trades",
          id,
          last: this.tradeIds.last(key),
        });
      }
      const gap = this.sequences.observe(key, id);
      if (gap) {
        this.sink.gap({
          exchange: EXCHANGE,
          symbol: r.symbol,
          data_type: "trades",
          from_sequence: gap[0],
          to_sequence: gap[1],
          detected_at: receivedAtUs,
        });
      }
      r.platform_sequence = this.sequences.nextPlatformSequence(r.symbol);
      this.sink.trade(r, "trades");
    }
  }

  /** One trade (its platform_sequence is set when it is emitted). */
  private trade(t: Unchecked<KrakenV2Trade>, type: string, receivedAtUs: number): TradeV2 {
    const symbol = symbolOf(t.symbol, "symbol", PAIR, PAIR_WHAT);
    this.scope.pair(symbol);
    const id = intOf(t.trade_id, "trade id", "trade_id");
    const vendor = addVendorFields({ event_type: type }, t, V2_TRADE_MAPPED);
    return {
      message_id: deterministicMessageId(`${EXCHANGE}/trades/${symbol}/${id}`),
      trade_id: `${EXCHANGE}-${id}`,
      symbol,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp: isoMicrosOf(t.timestamp, "trade time", "timestamp"),
      price: tradeDecimalOf(t.price, "price", "price"),
      quantity: tradeDecimalOf(t.qty, "quantity", "qty"),
      currency: currencyOf(symbol),
      side: sideOf(t.side),
      trade_conditions: [],
      source_sequence: id,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: 0,
      vendor_data: vendor,
    };
  }

  /** A `ticker` frame's records: each a quote, or a dead letter of its own. */
  private tickers(data: unknown[], type: string, rejects: FrameRejects, receivedAtUs: number): void {
    data.forEach((d, i) => {
      try {
        this.ticker(asObject(d) ?? fail("not an object"), type, receivedAtUs);
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        rejects.add(`${i}`, `ticker ${i}: ${err.message}`);
      }
    });
  }

  /** One ticker: a quote at its `timestamp` when present, else at receipt. */
  private ticker(t: Unchecked<KrakenV2Ticker>, type: string, receivedAtUs: number): void {
    const symbol = symbolOf(t.symbol, "symbol", PAIR, PAIR_WHAT);
    this.scope.pair(symbol);
    const ts = t.timestamp;
    const timestamp = ts === undefined ? receivedAtUs : isoMicrosOf(ts, "ticker time", "timestamp");
    const vendor = addVendorFields({ event_type: type }, t, V2_TICKER_MAPPED);
    const record: QuoteV2 = {
      message_id: deterministicMessageId(
        `${EXCHANGE}/quotes/${symbol}/${typeof ts === "string" ? ts : boundedJson(t, "ticker", TICKER_ID_MAX_CHARS)}`,
      ),
      symbol,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp,
      bid_price: decimalOf(t.bid, "bid price", "bid"),
      bid_quantity: decimalOf(t.bid_qty, "bid quantity", "bid_qty"),
      ask_price: decimalOf(t.ask, "ask price", "ask"),
      ask_quantity: decimalOf(t.ask_qty, "ask quantity", "ask_qty"),
      currency: currencyOf(symbol),
      source_sequence: null,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: this.sequences.nextPlatformSequence(symbol),
      vendor_data: vendor,
    };
    this.sink.quote(record);
  }
}

// ---------------------------------------------------------------------------------------------------
// The feed's normalizer: parses each frame once and hands it to the v1 or v2 reader by its shape.

/**
 * Kraken normalizer (v1 and v2 frames) for one feed. A v1 frame is an array or an object with `event`
 * ({@link KrakenV1Normalizer}); a v2 frame an object with `channel` or `method`
 * ({@link KrakenV2Normalizer}); a frame rejected by either is a dead letter with the reason.
 *
 * With a subscription, records come only from subscribed channels (`trade`, `ticker`) and pairs: a
 * data frame of another pair or of an unsubscribed mapped channel is a dead letter, as is a channel
 * name Kraken does not have. Trades with a zero price or volume are dead letters; a v2 `trade_id` seen
 * before with different content is a conflicting duplicate (dead letter with both versions), one below
 * the last seen a sequence regression (stored, reported). Without a subscription (tests reading a
 * whole recording) every pair and channel is accepted.
 */
export class KrakenNormalizer implements FrameNormalizer {
  readonly sequences = new SequenceTracker();
  /** Recent v2 trade ids per pair with their content (duplicates, regressions). */
  readonly tradeIds = new TradeIdMemory();
  private readonly v1: KrakenV1Normalizer;
  private readonly v2: KrakenV2Normalizer;

  constructor(
    private readonly sink: NormalizedSink,
    sub?: Subscription,
  ) {
    const scope = new KrakenScope(sub);
    const books = (sub?.streams.includes("book") ?? false) && sink.bookChange !== undefined;
    this.v1 = new KrakenV1Normalizer(sink, this.sequences, scope, books);
    this.v2 = new KrakenV2Normalizer(sink, this.sequences, this.tradeIds, scope);
  }

  normalize(raw: string, receivedAtUs: number): void {
    let source = "kraken";
    try {
      const msg = parseFrame(raw, KRAKEN_MAX_FRAME_CHARS, parseJsonExact);
      if (Array.isArray(msg)) {
        const name = msg[msg.length - 2];
        source = sourceOf("kraken", typeof name === "string" ? name : "?");
        this.v1.data(msg, raw, source, receivedAtUs);
        return;
      }
      const obj = asObject(msg);
      if (!obj) fail("frame is not a JSON object or array");
      const { event, channel, method } = obj;
      if (typeof event === "string") {
        source = sourceOf("kraken", event);
        this.v1.event(obj, raw);
      } else if (typeof channel === "string") {
        source = sourceOf("kraken", channel);
        this.v2.channel(obj, channel, raw, source, receivedAtUs);
      } else if (typeof method === "string") {
        source = sourceOf("kraken", method);
        this.v2.response(obj, raw);
      } else if (obj["error"] !== undefined) {
        fail(`venue error: ${reasonText(obj["error"])}`);
      } else fail("frame has no event, channel or method");
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      this.sink.deadLetter(deadLetterOf(EXCHANGE, source, err.message, raw, receivedAtUs));
    }
  }
}

/** Kraken channel name of a v1 subscription (`book` with depth 1000 → `book-1000`, as Kraken names it). */
function v1ChannelName(subscription: Record<string, unknown>): string | null {
  const name = subscription["name"];
  if (typeof name !== "string") return null;
  if (name === "book") return `book-${reasonText(subscription["depth"] ?? 10)}`;
  if (name === "ohlc") return `ohlc-${reasonText(subscription["interval"] ?? 1)}`;
  return name;
}

/**
 * Replay dialect (v1 and v2 messages): keys `<channel>|<pair>`. Recorded data frames and per-pair
 * `subscriptionStatus` answers are keyed to their channel and pair, so only what the client asked for
 * is sent; heartbeats and system status belong to the connection.
 */
export const krakenReplayDialect: ReplayDialect = {
  urlKeys: () => [],
  subscription(message: string) {
    const o = jsonObjectOrNull(message);
    if (!o) return null;
    if (o["event"] === "subscribe" || o["event"] === "unsubscribe") {
      const s = asObject(o["subscription"]);
      const channel = s ? v1ChannelName(s) : null;
      if (!channel || !Array.isArray(o["pair"])) return null;
      const keys = o["pair"]
        .filter((p): p is string => typeof p === "string")
        .map((p) => replayKey(channel, p));
      return { subscribe: o["event"] === "subscribe", keys };
    }
    if (o["method"] === "subscribe" || o["method"] === "unsubscribe") {
      const params = asObject(o["params"]);
      const channel = params?.["channel"];
      if (typeof channel !== "string") return null;
      const symbols = Array.isArray(params?.["symbol"]) ? (params["symbol"] as unknown[]) : [];
      const keys = symbols
        .filter((p): p is string => typeof p === "string")
        .map((p) => replayKey(channel, p));
      return { subscribe: o["method"] === "subscribe", keys: keys.length ? keys : [`${channel}|`] };
    }
    return null;
  },
  reply: () => null,
  frameKey(raw: string): string | null {
    if (raw.startsWith("[")) {
      const m = /,"([^"\\]+)","([^"\\]+)"\]\s*$/.exec(raw);
      return m ? replayKey(m[1], m[2]) : null;
    }
    const o = jsonObjectOrNull(raw);
    if (!o) return null;
    if (
      o["event"] === "subscriptionStatus" &&
      typeof o["channelName"] === "string" &&
      typeof o["pair"] === "string"
    ) {
      return replayKey(o["channelName"], o["pair"]);
    }
    const channel = o["channel"];
    if (
      typeof channel === "string" &&
      channel !== "heartbeat" &&
      channel !== "status" &&
      Array.isArray(o["data"])
    ) {
      const first = asObject(o["data"][0]);
      if (first && typeof first["symbol"] === "string") return replayKey(channel, first["symbol"]);
    }
    if (o["method"] === "subscribe") {
      const r = asObject(o["result"]);
      if (r && typeof r["channel"] === "string" && typeof r["symbol"] === "string") {
        return replayKey(r["channel"], r["symbol"]);
      }
    }
    return null;
  },
};

/** The Kraken Spot venue. */
export const kraken: Venue = {
  exchange: EXCHANGE,
  assetClass: "crypto",
  defaultWsUrl: "wss://ws.kraken.com",
  streams: KRAKEN_STREAMS,
  defaultStreams: KRAKEN_DEFAULT_STREAMS,
  defaultSymbols: ["XBT/USD", "ETH/USD"],
  dataTypesOf: dataTypesByStream({ trade: "trades", ticker: "quotes" }),
  validate(sub: Subscription): void {
    checkSubscription(sub, KRAKEN_STREAMS, "Kraken channel", (s) => {
      if (!PAIR.test(s)) throw new Error(`--symbols: "${s}" is not ${PAIR_WHAT}`);
    });
  },
  connection(baseUrl: string, sub: Subscription): VenueConnectionSpec {
    return {
      url: baseUrl,
      onOpenMessages: () => krakenSubscribeMessages(baseUrl, sub),
      maxMessagesPerSecond: KRAKEN_MAX_MESSAGES_PER_SECOND,
    };
  },
  createNormalizer(sink: NormalizedSink, sub: Subscription): FrameNormalizer {
    return new KrakenNormalizer(sink, sub);
  },
  bookResubscribe: (_baseUrl, pair) => krakenBookResubscribeMessages(pair),
  replay: krakenReplayDialect,
};
