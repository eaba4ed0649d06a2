/**
 * Coinbase Advanced Trade WebSocket (`wss://advanced-trade-ws.coinbase.com`): feed description and
 * mappers for `market_trades` (→ trades_v2), `ticker` (→ quotes_v2), `level2` (→ book_changes_v2) and
 * `heartbeats`.
 *
 * Follows Coinbase's Advanced Trade docs (docs.cdp.coinbase.com, "Advanced Trade WebSocket Channels",
 * "WebSocket Rate Limits", the AsyncAPI pages of `market_trades`, `ticker`, `heartbeats`):
 * - one subscribe message per channel: `{"type":"subscribe","product_ids":[..],"channel":"ticker"}`
 *   (public market data needs no authentication); the venue confirms with a `subscriptions` frame;
 * - limits: unauthenticated messages 8 per second per IP (also new connections: 8 per second);
 * - "most channels close within 60-90 seconds if no updates are sent": the `heartbeats` channel is
 *   always subscribed (one frame per second) to keep the connection open;
 * - every frame is an envelope `{"channel","client_id","timestamp","sequence_num","events":[..]}` and
 *   `sequence_num` numbers all frames of one connection, whatever their channel, from 0: a skipped
 *   number is a lost frame (reported as a sequence gap of data type `frames`). Such gaps are not
 *   backfillable (the venue has no `backfill`): the number says neither which channel nor which product
 *   the lost frame carried, and Coinbase's REST market trades (`GET /api/v3/brokerage/market/products/
 *   {product_id}/ticker`) page by time (`start`/`end`, most recent `limit`), not by sequence or trade id,
 *   so a range of missing frames cannot be asked for; they are stored `unfillable`;
 * - `market_trades` events `{"type":"snapshot"|"update","trades":[{"product_id","trade_id","price",
 *   "size","time","side"}]}`; `ticker` events `{"type","tickers":[{"product_id","price",..,"best_bid",
 *   "best_bid_quantity","best_ask","best_ask_quantity"}]}`; errors `{"type":"error","message":..}`.
 *
 * Aggressor side. Coinbase's `side` on a market trade is the MAKER's side, as Coinbase documents for
 * its trade messages (Coinbase Exchange WebSocket feed, "match" messages: "The side field indicates the
 * maker order side. If the side is sell this indicates the maker was a sell order and the match is
 * considered an up-tick. A buy side match is a down-tick."; Advanced Trade `market_trades` carries the
 * same matches, and NautilusTrader's Coinbase adapter maps them the same way). So `SELL` (a resting ask
 * was hit) → aggressor `BUY`, `BUY` → aggressor `SELL`. The recording confirms it: trades printed at
 * the best ask carry `SELL` (test/venues/coinbase.test.ts checks this against the `ticker` frames).
 *
 * Snapshot vs update trades. On subscribing, Coinbase sends a `snapshot` event with the product's most
 * recent trades (100 per product in the recording), then `update` events. Snapshot trades are real
 * trades and are stored like updates. Both map to message_id `COINBASE/trades/<product>/<trade_id>`
 * and trade_id `COINBASE-<trade_id>`, so a trade delivered twice (in a snapshot and an update, or in
 * the snapshot of a later connection after a reconnect) is one record: the bus drops the repeat within
 * its dedupe window and the store's unique key (exchange, symbol, trade_id) drops it after that.
 * `vendor_data.event_type` says which event delivered the stored copy. Snapshot trades (newest first
 * on the wire) are emitted oldest first, so platform_sequence follows trade time.
 *
 * Books. `level2` (opt-in: `--streams …,level2`; its messages arrive on channel `l2_data`) maps each
 * event to a book_changes_v2 record: `snapshot` (the whole book, `is_snapshot`) or `update` (absolute
 * quantities per level, 0 removes), levels exact, timestamp the envelope's, first/last source sequence
 * the frame's `sequence_num`, message_id `COINBASE/book/<product>/<envelope timestamp>/<sequence_num>`
 * (stable across replays, distinct across connections whose numbering restarts). The record goes to
 * the sink with the parsed `CoinbaseL2Message` of that event (`src/books/coinbase.ts`); the book itself
 * is kept by the feed (`src/feed/coinbase-books.ts`). {@link coinbase}'s `bookResubscribe` renews one
 * product's `level2` subscription (unsubscribe, subscribe: Coinbase starts a subscription with a
 * snapshot).
 *
 * Quotes. `ticker` has no update id: a quote's message_id is `COINBASE/quotes/<product>/<envelope
 * timestamp>` (ns text, stable across replays) and its timestamp the envelope's, in µs.
 */
import { type CoinbaseL2Message, parseCoinbaseL2Message } from "../books/coinbase.js";
import type { BookChangeV2 } from "../schema/books.js";
import { deterministicMessageId } from "../schema/message-id.js";
import type { QuoteV2, Side, TradeV2 } from "../schema/records.js";
import {
  addVendorFields,
  asObject,
  currencyOf,
  deadLetterOf,
  decimalOf,
  FrameRejects,
  fail,
  intOf,
  isoMicrosOf,
  jsonObjectOrNull,
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

const EXCHANGE = "COINBASE";
/** Coinbase: unauthenticated messages are limited to 8 per second per IP. */
export const COINBASE_MAX_MESSAGES_PER_SECOND = 8;
/** Channels K2 subscribes to on Coinbase (`--streams`). */
export const COINBASE_STREAMS = ["market_trades", "ticker", "heartbeats", "level2"] as const;
/** Channels subscribed without `--streams` (`level2` is opt-in: its snapshot is megabytes). */
export const COINBASE_DEFAULT_STREAMS = ["market_trades", "ticker", "heartbeats"] as const;
/**
 * Largest Coinbase frame K2 reads, in characters. `level2` snapshots are large (the recording holds one
 * of 5,079,379 characters), so the bound is wide; a larger frame is a dead letter.
 */
export const COINBASE_MAX_FRAME_CHARS = 32 * 1024 * 1024;
/**
 * Channels Coinbase sends that K2 maps to no record (`l2_data`: unless `level2` is subscribed and the
 * sink keeps books): control frames (`unmapped:<channel>`); any other channel name is a dead letter.
 */
const UNMAPPED_CHANNELS = new Set([
  "l2_data",
  "level2",
  "candles",
  "status",
  "ticker_batch",
  "user",
  "futures_balance_summary",
]);
/** Coinbase product ids: `BTC-USD`. */
const PRODUCT = /^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$/;
const PRODUCT_WHAT = "a Coinbase product id like BTC-USD";

// ---------------------------------------------------------------------------------------------------
// Coinbase Advanced Trade messages, as the docs describe them (AsyncAPI pages of `market_trades`,
// `ticker`, `heartbeats`, `subscriptions`). Prices and sizes are decimal strings; times RFC 3339 (the
// envelope's with up to 9 fractional digits, ns). The normalizer reads them through `Unchecked<..>`:
// every field stays `unknown` until a reader of mapping.ts has checked it.

/** Every frame's envelope. */
export interface CoinbaseFrame<Event> {
  /** `market_trades`, `ticker`, `heartbeats`, `subscriptions`, `level2` (as `l2_data`), ... */
  channel: string;
  /** Empty for public channels. */
  client_id: string;
  /** When Coinbase sent the frame, RFC 3339 with ns (`"2023-02-09T20:19:35.39625135Z"`). */
  timestamp: string;
  /** Numbers every frame of a connection, whatever its channel, from 0. */
  sequence_num: number;
  events: Event[];
}

/** A frame as received, its fields unchecked. */
type Envelope = Unchecked<CoinbaseFrame<unknown>>;

/** A `market_trades` event: `snapshot` (the product's latest trades, newest first) or `update`. */
export interface CoinbaseMarketTradesEvent {
  type: "snapshot" | "update";
  trades: CoinbaseMarketTrade[];
}

/** One market trade. */
export interface CoinbaseMarketTrade {
  /** Trade id, a digit string, per product. */
  trade_id: string;
  /** Product id: `BTC-USD`. */
  product_id: string;
  /** Price (quote currency) and size (base currency), decimal strings. */
  price: string;
  size: string;
  /** The MAKER's side, `BUY` / `SELL` (see the file comment): the aggressor is the other side. */
  side: "BUY" | "SELL";
  /** Trade time, RFC 3339 with µs or less (`"2019-08-14T20:42:27.265Z"`). */
  time: string;
}

/** A `ticker` event. */
export interface CoinbaseTickerEvent {
  type: "snapshot" | "update";
  tickers: CoinbaseTicker[];
}

/** One ticker: best bid/ask and the product's 24-hour and 52-week statistics (no time of its own). */
export interface CoinbaseTicker {
  /** `ticker`. */
  type: string;
  product_id: string;
  /** Last trade price; 24-hour volume, low, high and change %; 52-week low and high (vendor_data). */
  price: string;
  volume_24_h: string;
  low_24_h: string;
  high_24_h: string;
  low_52_w: string;
  high_52_w: string;
  price_percent_chg_24_h: string;
  /** Best bid and ask with their quantities, decimal strings. */
  best_bid: string;
  best_bid_quantity: string;
  best_ask: string;
  best_ask_quantity: string;
}

/** A `heartbeats` event, one a second (control frame). */
export interface CoinbaseHeartbeatEvent {
  /** Coinbase's clock, Go time text (`"2023-06-23 20:31:56.121961769 +0000 UTC m=+91717.525857105"`). */
  current_time: string;
  /** Counts heartbeats since subscribing, a digit string. */
  heartbeat_counter: string;
}

/** An error frame (no envelope): `{"type":"error","message":..}`. */
export interface CoinbaseError {
  type: "error";
  message: string;
  reason?: string;
}

/**
 * Subscribe messages for a subscription: one per channel, `heartbeats` always included.
 * `{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}`
 */
export function coinbaseSubscribeMessages(sub: Subscription): string[] {
  const channels = [...new Set([...sub.streams, "heartbeats"])];
  return channels.map((channel) => JSON.stringify({ type: "subscribe", product_ids: sub.symbols, channel }));
}

const TRADE_MAPPED = new Set<keyof CoinbaseMarketTrade>([
  "product_id",
  "trade_id",
  "price",
  "size",
  "time",
  "side",
]);
const TICKER_MAPPED = new Set<keyof CoinbaseTicker>([
  "product_id",
  "best_bid",
  "best_bid_quantity",
  "best_ask",
  "best_ask_quantity",
]);

/**
 * Coinbase normalizer for one feed. Per connection it tracks `sequence_num` (reset when a connection
 * opens, and when a frame numbered 0 arrives: Coinbase numbers each connection from 0).
 *
 * Records come only from subscribed channels (`market_trades`, `ticker`) and subscribed products: a
 * trade or ticker of another product is a dead letter, as is a frame of an unsubscribed mapped channel
 * or of a channel Coinbase does not have. Trades with a zero price or size, and a `trade_id` seen
 * before with different content (conflicting duplicate, both versions in the reason), are dead letters.
 */
export class CoinbaseNormalizer implements FrameNormalizer {
  readonly sequences = new SequenceTracker();
  /** Recent trade ids per product with their content (conflicting duplicates). */
  readonly tradeIds = new TradeIdMemory();
  /** The connection's products, `BTC-USD,ETH-USD`: the `symbol` of a per-connection sequence gap. */
  private readonly connectionSymbols: string;
  private readonly products: Set<string>;
  private readonly channels: Set<string>;
  /** `level2` is subscribed and the sink takes book changes. */
  private readonly books: boolean;

  constructor(
    private readonly sink: NormalizedSink,
    sub: Subscription,
  ) {
    this.connectionSymbols = [...sub.symbols].sort().join(",");
    this.products = new Set(sub.symbols.map((s) => s.toUpperCase()));
    this.channels = new Set([...sub.streams, "heartbeats", "subscriptions"]);
    this.books = sub.streams.includes("level2") && sink.bookChange !== undefined;
  }

  connectionOpened(): void {
    this.sequences.forget("frames");
  }

  normalize(raw: string, receivedAtUs: number): void {
    let source = "coinbase";
    try {
      const msg = parseFrame(raw, COINBASE_MAX_FRAME_CHARS);
      const obj: Unchecked<CoinbaseFrame<unknown>> & Unchecked<CoinbaseError> =
        asObject(msg) ?? fail("frame is not a JSON object");
      if (obj.type === "error") {
        fail(`venue error: ${reasonText(obj.message)}${obj.reason ? ` (${reasonText(obj.reason)})` : ""}`);
      }
      const channel = obj.channel;
      if (typeof channel !== "string" || channel.length === 0) fail("missing channel");
      source = sourceOf("coinbase", channel);
      if (!this.channels.has(channel) && !UNMAPPED_CHANNELS.has(channel)) {
        fail(
          channel === "market_trades" || channel === "ticker"
            ? `channel ${channel} is not subscribed`
            : `unknown channel ${shown(channel)}`,
        );
      }
      const seq = this.observeSequence(obj.sequence_num, receivedAtUs);
      switch (channel) {
        case "market_trades":
        case "ticker": {
          const rejects = new FrameRejects(this.sink, EXCHANGE, source, raw, receivedAtUs);
          const records =
            channel === "ticker"
              ? this.tickers(obj, seq, rejects, receivedAtUs)
              : this.trades(obj, seq, rejects, receivedAtUs);
          // a frame always has an outcome: one with no records at all is a control frame
          if (records === 0 && rejects.count === 0) this.sink.control(`empty:${channel}`, raw);
          break;
        }
        case "heartbeats":
          this.sink.control("heartbeat", raw);
          break;
        case "subscriptions":
          this.sink.control("subscription_ack", raw);
          break;
        case "l2_data":
          if (this.books) {
            const rejects = new FrameRejects(this.sink, EXCHANGE, source, raw, receivedAtUs);
            if (this.level2(obj, rejects, receivedAtUs) === 0 && rejects.count === 0)
              this.sink.control("empty:l2_data", raw);
          } else this.sink.control("unmapped:l2_data", raw);
          break;
        default:
          // level2 / candles / status...: valid venue frames K2 has no mapper for
          this.sink.control(`unmapped:${channel}`, raw);
      }
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      this.sink.deadLetter(deadLetterOf(EXCHANGE, source, err.message, raw, receivedAtUs));
    }
  }

  /** Tracks `sequence_num`; reports a gap; returns it (null when the frame has none). */
  private observeSequence(v: unknown, receivedAtUs: number): number | null {
    if (v === undefined || v === null) return null;
    const seq = intOf(v, "sequence number", "sequence_num");
    if (seq === 0) this.sequences.forget("frames");
    const gap = this.sequences.observe("frames", seq);
    if (gap) {
      this.sink.gap({
        exchange: EXCHANGE,
        symbol: this.connectionSymbols,
        data_type: "frames",
        from_sequence: gap[0],
        to_sequence: gap[1],
        detected_at: receivedAtUs,
      });
    }
    return seq;
  }

  /** The frame's events, each an object. */
  private events(frame: Envelope): Record<string, unknown>[] {
    const events = frame.events;
    if (!Array.isArray(events)) fail("missing events array");
    return events.map((e, i) => asObject(e) ?? fail(`event ${i} is not an object`));
  }

  /**
   * A `market_trades` frame: its trades, oldest first within a snapshot, each a record or a dead letter
   * of its own. Returns the number of records.
   */
  private trades(frame: Envelope, seq: number | null, rejects: FrameRejects, receivedAtUs: number): number {
    const channelTimestamp = frame.timestamp;
    const out: { record: TradeV2; at: number }[] = [];
    this.events(frame).forEach((ev, e) => {
      const event: Unchecked<CoinbaseMarketTradesEvent> = ev;
      const eventType = vendorString(event.type ?? "", "type");
      const trades = event.trades;
      if (!Array.isArray(trades)) fail(`event ${e}: missing trades array`);
      const mapped: { record: TradeV2; at: number }[] = [];
      trades.forEach((t, i) => {
        try {
          const trade = asObject(t) ?? fail("not an object");
          mapped.push(this.trade(trade, eventType, channelTimestamp, seq, receivedAtUs));
        } catch (err) {
          if (!(err instanceof Reject)) throw err;
          rejects.add(`${e}.${i}`, `trade ${e}.${i}: ${err.message}`);
        }
      });
      // snapshots list the newest trade first: emit oldest first (stable for equal times)
      if (eventType === "snapshot") mapped.sort((a, b) => a.at - b.at);
      out.push(...mapped);
    });
    rejects.finish();
    for (const { record } of out) {
      record.platform_sequence = this.sequences.nextPlatformSequence(record.symbol);
      this.sink.trade(record, "trades");
    }
    return out.length;
  }

  /** One trade (its platform_sequence is set when it is emitted), with its time for ordering. */
  private trade(
    t: Unchecked<CoinbaseMarketTrade>,
    eventType: string,
    channelTimestamp: unknown,
    seq: number | null,
    receivedAtUs: number,
  ): { record: TradeV2; at: number } {
    const symbol = symbolOf(t.product_id, "product_id", PRODUCT, PRODUCT_WHAT);
    const id = t.trade_id;
    if (typeof id !== "string" && typeof id !== "number") fail("missing trade id (trade_id)");
    const tradeId = String(id);
    if (!/^[A-Za-z0-9-]{1,64}$/.test(tradeId)) fail(`trade id (trade_id) is not an id: ${shown(id)}`);
    if (!this.products.has(symbol)) fail(`product ${symbol} is not subscribed`);
    const price = tradeDecimalOf(t.price, "price", "price");
    const quantity = tradeDecimalOf(t.size, "quantity", "size");
    const timestamp = isoMicrosOf(t.time, "trade time", "time");
    const makerSide = t.side;
    // Coinbase `side` is the maker's side (see the file comment): the aggressor is the other side.
    const side: Side = makerSide === "SELL" ? "BUY" : makerSide === "BUY" ? "SELL" : "UNKNOWN";
    const vendor: Record<string, string> = {
      event_type: eventType,
      maker_side: vendorString(makerSide ?? "", "side"),
    };
    if (typeof channelTimestamp === "string") {
      vendor["channel_timestamp"] = vendorString(channelTimestamp, "channel_timestamp");
    }
    addVendorFields(vendor, t, TRADE_MAPPED);
    const record: TradeV2 = {
      message_id: deterministicMessageId(`${EXCHANGE}/trades/${symbol}/${tradeId}`),
      trade_id: `${EXCHANGE}-${tradeId}`,
      symbol,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp,
      price,
      quantity,
      currency: currencyOf(symbol),
      side,
      trade_conditions: [],
      source_sequence: seq,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: 0,
      vendor_data: vendor,
    };
    // the id is remembered only once the record is complete (a rejected record leaves no trace)
    const verdict = this.tradeIds.check(symbol, tradeId, record, null);
    if (typeof verdict === "string") {
      this.sink.anomaly?.({
        kind: "conflicting_duplicate",
        symbol,
        dataType: "trades",
        id: tradeId,
        last: null,
      });
      fail(
        `conflicting duplicate of trade id ${tradeId}: first seen with ${verdict}; this frame has ${tradeContent(record)}`,
      );
    }
    return { record, at: timestamp };
  }

  /**
   * An `l2_data` frame: each event a book_changes_v2 record handed to the sink with its parsed message
   * (see the file header), an event of an unsubscribed product a dead letter of its own. Returns the
   * number of records.
   */
  private level2(frame: Envelope, rejects: FrameRejects, receivedAtUs: number): number {
    let m: CoinbaseL2Message | null;
    try {
      m = parseCoinbaseL2Message(frame);
    } catch (err) {
      fail(`level2: ${(err as Error).message}`);
    }
    if (!m) fail("level2: not an l2_data message");
    const timestamp = isoMicrosOf(m.timestamp, "level2 time", "timestamp");
    let records = 0;
    m.events.forEach((e, i) => {
      try {
        const symbol = symbolOf(e.productId, "product_id", PRODUCT, PRODUCT_WHAT);
        if (!this.products.has(symbol)) fail(`product ${symbol} is not subscribed`);
        const isSnapshot = e.type === "snapshot";
        const record: BookChangeV2 = {
          message_id: deterministicMessageId(
            `${EXCHANGE}/book/${symbol}/${m.timestamp}/${m.sequence}${isSnapshot ? "/snapshot" : ""}`,
          ),
          exchange: EXCHANGE,
          symbol,
          timestamp,
          is_snapshot: isSnapshot,
          bids: e.updates.filter((u) => u.side === "bid").map((u) => [u.price, u.quantity]),
          asks: e.updates.filter((u) => u.side === "ask").map((u) => [u.price, u.quantity]),
          first_source_sequence: m.sequence,
          last_source_sequence: m.sequence,
          ingestion_timestamp: receivedAtUs,
          vendor_data: { event_type: e.type },
        };
        this.sink.bookChange?.(record, { sequence: m.sequence, timestamp: m.timestamp, events: [e] });
        records++;
      } catch (err) {
        if (!(err instanceof Reject)) throw err;
        rejects.add(`${i}`, `level2 event ${i}: ${err.message}`);
      }
    });
    rejects.finish();
    return records;
  }

  /**
   * A `ticker` frame: each ticker a quote at the envelope's time, or a dead letter of its own. Returns
   * the number of records.
   */
  private tickers(frame: Envelope, seq: number | null, rejects: FrameRejects, receivedAtUs: number): number {
    const channelTimestamp = frame.timestamp;
    const timestamp = isoMicrosOf(channelTimestamp, "ticker time", "timestamp");
    const seen = new Map<string, number>();
    let quotes = 0;
    this.events(frame).forEach((ev, e) => {
      const event: Unchecked<CoinbaseTickerEvent> = ev;
      const eventType = vendorString(event.type ?? "", "type");
      const tickers = event.tickers;
      if (!Array.isArray(tickers)) fail(`event ${e}: missing tickers array`);
      tickers.forEach((t, i) => {
        try {
          const ticker: Unchecked<CoinbaseTicker> = asObject(t) ?? fail("not an object");
          const symbol = symbolOf(ticker.product_id, "product_id", PRODUCT, PRODUCT_WHAT);
          if (!this.products.has(symbol)) fail(`product ${symbol} is not subscribed`);
          const n = seen.get(symbol) ?? 0;
          seen.set(symbol, n + 1);
          const vendor = addVendorFields({ event_type: eventType }, ticker, TICKER_MAPPED);
          const record: QuoteV2 = {
            message_id: deterministicMessageId(
              `${EXCHANGE}/quotes/${symbol}/${channelTimestamp}${n > 0 ? `/${n}` : ""}`,
            ),
            symbol,
            exchange: EXCHANGE,
            asset_class: "crypto",
            timestamp,
            bid_price: decimalOf(ticker.best_bid, "bid price", "best_bid"),
            bid_quantity: decimalOf(ticker.best_bid_quantity, "bid quantity", "best_bid_quantity"),
            ask_price: decimalOf(ticker.best_ask, "ask price", "best_ask"),
            ask_quantity: decimalOf(ticker.best_ask_quantity, "ask quantity", "best_ask_quantity"),
            currency: currencyOf(symbol),
            source_sequence: seq,
            ingestion_timestamp: receivedAtUs,
            platform_sequence: this.sequences.nextPlatformSequence(symbol),
            vendor_data: vendor,
          };
          this.sink.quote(record);
          quotes++;
        } catch (err) {
          if (!(err instanceof Reject)) throw err;
          rejects.add(`${e}.${i}`, `ticker ${e}.${i}: ${err.message}`);
        }
      });
    });
    rejects.finish();
    return quotes;
  }
}

/**
 * Replay dialect: subscriptions are `{"type":"subscribe"|"unsubscribe","product_ids":[..],"channel":..}`
 * messages (keys `<channel>|<product>`); the recording holds Coinbase's `subscriptions` answers.
 * Frames are never filtered by channel or product: `sequence_num` numbers every frame of a connection,
 * so serving a connection's frames in part would create gaps the recording does not have (frames of
 * channels K2 has no mapper for reach the normalizer as control frames).
 */
export const coinbaseReplayDialect: ReplayDialect = {
  urlKeys: () => [],
  subscription(message: string) {
    const o = jsonObjectOrNull(message);
    if (!o || (o["type"] !== "subscribe" && o["type"] !== "unsubscribe")) return null;
    const channel = o["channel"];
    if (typeof channel !== "string") return null;
    const products = Array.isArray(o["product_ids"])
      ? o["product_ids"].filter((p): p is string => typeof p === "string")
      : [];
    const keys = products.length ? products.map((p) => replayKey(channel, p.toUpperCase())) : [`${channel}|`];
    return { subscribe: o["type"] === "subscribe", keys };
  },
  reply: () => null,
  frameKey: () => null,
};

/** The Coinbase Advanced Trade venue. */
export const coinbase: Venue = {
  exchange: EXCHANGE,
  assetClass: "crypto",
  defaultWsUrl: "wss://advanced-trade-ws.coinbase.com",
  streams: COINBASE_STREAMS,
  defaultStreams: COINBASE_DEFAULT_STREAMS,
  defaultSymbols: ["BTC-USD", "ETH-USD"],
  dataTypesOf: dataTypesByStream({ market_trades: "trades", ticker: "quotes" }),
  validate(sub: Subscription): void {
    checkSubscription(sub, COINBASE_STREAMS, "Coinbase channel", (s) => {
      if (!PRODUCT.test(s)) throw new Error(`--symbols: "${s}" is not ${PRODUCT_WHAT}`);
    });
  },
  connection(baseUrl: string, sub: Subscription): VenueConnectionSpec {
    return {
      url: baseUrl,
      onOpenMessages: () => coinbaseSubscribeMessages(sub),
      maxMessagesPerSecond: COINBASE_MAX_MESSAGES_PER_SECOND,
    };
  },
  createNormalizer(sink: NormalizedSink, sub: Subscription): FrameNormalizer {
    return new CoinbaseNormalizer(sink, sub);
  },
  bookResubscribe: (_baseUrl, product) => coinbaseBookResubscribeMessages(product),
  replay: coinbaseReplayDialect,
};

/**
 * Messages that renew one product's `level2` subscription (after a `sequence_num` gap): unsubscribe,
 * then subscribe; Coinbase answers the new subscription with a snapshot of the product's book.
 */
export function coinbaseBookResubscribeMessages(product: string): string[] {
  return ["unsubscribe", "subscribe"].map((type) =>
    JSON.stringify({ type, product_ids: [product], channel: "level2" }),
  );
}
