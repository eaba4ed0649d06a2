/**
 * Kraken Spot WebSocket, API v1 (`wss://ws.kraken.com`, the protocol of the recording) and API v2
 * (`wss://ws.kraken.com/v2`): feed description and mappers for `trade` (→ trades_v2) and `ticker`
 * (→ quotes_v2), plus `heartbeat`, `systemStatus` / `status` and `subscriptionStatus` / subscribe acks.
 * The protocol follows the URL: a path ending in `/v2` speaks v2, anything else v1. The normalizer
 * reads both (a v1 frame is an array or an object with `event`; a v2 frame an object with `channel`
 * or `method`).
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
import { parseJsonExact } from "../schema/exact-json.js";
import { deterministicMessageId, murmur3x86_128 } from "../schema/message-id.js";
import type { DataType, QuoteV2, Side, TradeV2 } from "../schema/records.js";
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
  MAX_VENDOR_FIELDS,
  parseFrame,
  Reject,
  reasonText,
  shown,
  sourceOf,
  symbolOf,
  tradeDecimalOf,
  vendorString,
} from "./mapping.js";
import {
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
export const KRAKEN_STREAMS = ["trade", "ticker"] as const;
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
    JSON.stringify({ event: "subscribe", pair: sub.symbols, subscription: { name } }),
  );
}

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

function sideOf(v: unknown): Side {
  if (v === "b" || v === "buy") return "BUY";
  if (v === "s" || v === "sell") return "SELL";
  return "UNKNOWN";
}

const V2_TRADE_MAPPED = new Set(["symbol", "side", "price", "qty", "trade_id", "timestamp"]);
const V2_TICKER_MAPPED = new Set(["symbol", "bid", "bid_qty", "ask", "ask_qty", "timestamp"]);
/** Longest ticker JSON hashed into a quote's message_id, in characters. */
const TICKER_ID_MAX_CHARS = 65_536;
const V1_TICKER_MAPPED = new Set(["a", "b"]);
/** Readable names of the v1 ticker fields kept in vendor_data. */
const V1_TICKER_NAMES = new Map(
  Object.entries({
    c: "close",
    v: "volume",
    p: "vwap",
    t: "trades",
    l: "low",
    h: "high",
    o: "open",
  }),
);

/**
 * Kraken normalizer (v1 and v2 frames) for one feed.
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
  private readonly pairs: Set<string> | null;
  private readonly channels: Set<string> | null;

  constructor(
    private readonly sink: NormalizedSink,
    sub?: Subscription,
  ) {
    this.pairs = sub ? new Set(sub.symbols) : null;
    this.channels = sub ? new Set(sub.streams) : null;
  }

  /** Rejects a record of a pair or channel not subscribed (when the normalizer has a subscription). */
  private subscribed(channel: string, pair: string): void {
    if (this.channels && !this.channels.has(channel)) fail(`channel ${channel} is not subscribed`);
    if (this.pairs && !this.pairs.has(pair)) fail(`pair ${pair} is not subscribed`);
  }

  normalize(raw: string, receivedAtUs: number): void {
    let source = "kraken";
    try {
      const msg = parseFrame(raw, KRAKEN_MAX_FRAME_CHARS, parseJsonExact);
      if (Array.isArray(msg)) {
        const name = msg[msg.length - 2];
        source = sourceOf("kraken", typeof name === "string" ? name : "?");
        this.v1Data(msg, raw, source, receivedAtUs);
        return;
      }
      const obj = asObject(msg);
      if (!obj) fail("frame is not a JSON object or array");
      if (typeof obj["event"] === "string") {
        source = sourceOf("kraken", obj["event"]);
        this.v1Event(obj, raw);
      } else if (typeof obj["channel"] === "string") {
        source = sourceOf("kraken", obj["channel"]);
        this.v2Channel(obj, raw, source, receivedAtUs);
      } else if (typeof obj["method"] === "string") {
        source = sourceOf("kraken", obj["method"]);
        if (obj["success"] === false || obj["error"] !== undefined) {
          fail(`venue error: ${reasonText(obj["error"] ?? "request failed")}`);
        }
        if (obj["method"] !== "pong" && obj["method"] !== "subscribe" && obj["method"] !== "unsubscribe") {
          fail(`unknown method ${shown(obj["method"])}`);
        }
        this.sink.control(obj["method"] === "pong" ? "pong" : "subscription_ack", raw);
      } else if (obj["error"] !== undefined) {
        fail(`venue error: ${reasonText(obj["error"])}`);
      } else fail("frame has no event, channel or method");
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      this.sink.deadLetter(deadLetterOf(EXCHANGE, source, err.message, raw, receivedAtUs));
    }
  }

  /** v1 `{"event":..}` frames. */
  private v1Event(obj: Record<string, unknown>, raw: string): void {
    const event = obj["event"];
    switch (event) {
      case "heartbeat":
        this.sink.control("heartbeat", raw);
        return;
      case "pong":
        this.sink.control("pong", raw);
        return;
      case "systemStatus":
        this.sink.control(
          obj["status"] === "online"
            ? "system_status"
            : typeof obj["status"] === "string" && SYSTEM_STATUSES.has(obj["status"])
              ? `system_status_${obj["status"]}`
              : "system_status_unknown",
          raw,
        );
        return;
      case "subscriptionStatus":
        if (obj["status"] === "error") {
          fail(
            `venue error: ${reasonText(obj["errorMessage"] ?? "subscription failed")}` +
              (typeof obj["pair"] === "string" ? ` (pair ${reasonText(obj["pair"])})` : ""),
          );
        }
        this.sink.control("subscription_ack", raw);
        return;
      case "error":
        fail(`venue error: ${reasonText(obj["errorMessage"] ?? "error")}`);
        break;
      default:
        fail(`unknown event ${reasonText(event)}`);
    }
  }

  /** v1 `[channelID, payload.., channelName, pair]` frames. */
  private v1Data(msg: unknown[], raw: string, source: string, receivedAtUs: number): void {
    if (msg.length < 4) fail("data frame has fewer than 4 elements");
    const name = msg[msg.length - 2];
    if (typeof name !== "string") fail("missing channel name");
    const pair = symbolOf(msg[msg.length - 1], "pair", PAIR, PAIR_WHAT);
    const channelId = vendorString(msg[0], "channel_id");
    if (name === "trade" || name === "ticker") this.subscribed(name, pair);
    if (name === "trade") {
      const trades = msg[1];
      if (!Array.isArray(trades)) fail("trade payload is not an array");
      const seen = new Map<string, number>();
      const rejects = new FrameRejects(this.sink, EXCHANGE, source, raw, receivedAtUs);
      trades.forEach((t, i) => {
        try {
          this.v1Trade(t, pair, channelId, seen, receivedAtUs);
        } catch (err) {
          if (!(err instanceof Reject)) throw err;
          rejects.add(`${i}`, `trade ${i}: ${err.message}`);
        }
      });
      rejects.finish();
      // a frame always has an outcome: one with no trades at all is a control frame
      if (trades.length === 0) this.sink.control("empty:trade", raw);
    } else if (name === "ticker") {
      this.v1Ticker(msg[1], pair, channelId, receivedAtUs);
    } else if (V1_UNMAPPED.test(name)) {
      // book-*, spread, ohlc-*: valid venue frames K2 has no mapper for
      this.sink.control(`unmapped:${name.replace(/-\d+$/, "")}`, raw);
    } else fail(`unknown channel ${shown(name)}`);
  }

  private v1Trade(
    t: unknown,
    pair: string,
    channelId: string,
    seen: Map<string, number>,
    receivedAtUs: number,
  ): void {
    if (!Array.isArray(t)) fail("not an array");
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

  private v1Ticker(payload: unknown, pair: string, channelId: string, receivedAtUs: number): void {
    const p = asObject(payload) ?? fail("ticker payload is not an object");
    const a = p["a"];
    const b = p["b"];
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

  /** v2 `{"channel":..}` frames. */
  private v2Channel(obj: Record<string, unknown>, raw: string, source: string, receivedAtUs: number): void {
    const channel = obj["channel"] as string;
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
    if (this.channels && !this.channels.has(channel)) fail(`channel ${channel} is not subscribed`);
    const data = obj["data"];
    if (!Array.isArray(data)) fail("missing data array");
    const type = vendorString(obj["type"] ?? "", "type");
    // a frame always has an outcome: one with no records at all is a control frame
    if (data.length === 0) {
      this.sink.control(`empty:${channel}`, raw);
      return;
    }
    const rejects = new FrameRejects(this.sink, EXCHANGE, source, raw, receivedAtUs);
    if (channel === "trade") {
      const records: TradeV2[] = [];
      data.forEach((d, i) => {
        try {
          records.push(this.v2Trade(asObject(d) ?? fail("not an object"), type, receivedAtUs));
        } catch (err) {
          if (!(err instanceof Reject)) throw err;
          rejects.add(`${i}`, `trade ${i}: ${err.message}`);
        }
      });
      // gap detection and platform sequence in trade id order (a snapshot may list newest first)
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
        const gap = this.sequences.observe(`trades/${r.symbol}`, r.source_sequence!);
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
      rejects.finish();
      return;
    }
    data.forEach((d, i) => {
      try {
        this.v2Ticker(asObject(d) ?? fail("not an object"), type, receivedAtUs);
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        rejects.add(`${i}`, `ticker ${i}: ${err.message}`);
      }
    });
    rejects.finish();
  }

  private v2Trade(t: Record<string, unknown>, type: string, receivedAtUs: number): TradeV2 {
    const symbol = symbolOf(t["symbol"], "symbol", PAIR, PAIR_WHAT);
    if (this.pairs && !this.pairs.has(symbol)) fail(`pair ${symbol} is not subscribed`);
    const id = intOf(t["trade_id"], "trade id", "trade_id");
    const vendor = addVendorFields({ event_type: type }, t, V2_TRADE_MAPPED);
    return {
      message_id: deterministicMessageId(`${EXCHANGE}/trades/${symbol}/${id}`),
      trade_id: `${EXCHANGE}-${id}`,
      symbol,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp: isoMicrosOf(t["timestamp"], "trade time", "timestamp"),
      price: tradeDecimalOf(t["price"], "price", "price"),
      quantity: tradeDecimalOf(t["qty"], "quantity", "qty"),
      currency: currencyOf(symbol),
      side: sideOf(t["side"]),
      trade_conditions: [],
      source_sequence: id,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: 0,
      vendor_data: vendor,
    };
  }

  private v2Ticker(t: Record<string, unknown>, type: string, receivedAtUs: number): void {
    const symbol = symbolOf(t["symbol"], "symbol", PAIR, PAIR_WHAT);
    if (this.pairs && !this.pairs.has(symbol)) fail(`pair ${symbol} is not subscribed`);
    const ts = t["timestamp"];
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
      bid_price: decimalOf(t["bid"], "bid price", "bid"),
      bid_quantity: decimalOf(t["bid_qty"], "bid quantity", "bid_qty"),
      ask_price: decimalOf(t["ask"], "ask price", "ask"),
      ask_quantity: decimalOf(t["ask_qty"], "ask quantity", "ask_qty"),
      currency: currencyOf(symbol),
      source_sequence: null,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: this.sequences.nextPlatformSequence(symbol),
      vendor_data: vendor,
    };
    this.sink.quote(record);
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
    let o: Record<string, unknown> | null;
    try {
      o = asObject(JSON.parse(message));
    } catch {
      return null;
    }
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
    let o: Record<string, unknown> | null;
    try {
      o = asObject(JSON.parse(raw));
    } catch {
      return null;
    }
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
  defaultStreams: KRAKEN_STREAMS,
  defaultSymbols: ["XBT/USD", "ETH/USD"],
  dataTypesOf(streams: string[]): DataType[] {
    const out: DataType[] = [];
    if (streams.includes("trade")) out.push("trades");
    if (streams.includes("ticker")) out.push("quotes");
    return out;
  },
  validate(sub: Subscription): void {
    for (const st of sub.streams) {
      if (!(KRAKEN_STREAMS as readonly string[]).includes(st)) {
        throw new Error(`--streams: unknown Kraken channel "${st}" (expected ${KRAKEN_STREAMS.join(", ")})`);
      }
    }
    for (const s of sub.symbols) if (!PAIR.test(s)) throw new Error(`--symbols: "${s}" is not ${PAIR_WHAT}`);
    if (sub.symbols.length === 0 || sub.streams.length === 0) {
      throw new Error("--symbols/--streams: nothing to subscribe to");
    }
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
  replay: krakenReplayDialect,
};
