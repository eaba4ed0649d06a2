/**
 * Binance Spot: feed description and mappers for `trade`, `aggTrade`, `bookTicker` and `depth`
 * (`<symbol>@depth@100ms` diffs, mapped to book_changes_v2; the local book is kept by the feed,
 * `src/feed/books.ts`, by the procedure in `src/books/binance.ts`).
 *
 * Follows Binance's "WebSocket Streams for Binance" (binance-spot-api-docs, web-socket-streams.md):
 * - combined streams at `/stream?streams=<s1>/<s2>`, frames wrapped as `{"stream":..,"data":..}`;
 *   raw streams at `/ws/<stream>` send the payload alone;
 * - `{"method":"SUBSCRIBE","params":[..],"id":N}` answered by `{"result":null,"id":N}`;
 * - limits: 5 incoming messages per second per connection (subscribe, unsubscribe, pong), at most
 *   1024 streams per connection, a connection lives at most 24 hours; the server pings every 20 s and
 *   the `ws` client answers with a pong automatically.
 * Payloads: trade `{e,E,s,t,p,q,T,m,M}`, aggTrade `{e,E,s,a,p,q,f,l,T,m,M}`, bookTicker `{u,s,b,B,a,A}`
 * (typed below, each field with the doc's meaning and unit).
 * Aggressor side: `m` (buyer is the maker) true → the seller was the taker → `SELL`; false → `BUY`.
 */
import { parseBinanceDepthDiff, parseBinanceDepthSnapshot } from "../books/binance.js";
import { type BookChangeV2, type BookLevel, bookChangeMessageId } from "../schema/books.js";
import { deterministicMessageId } from "../schema/message-id.js";
import type { QuoteV2, TradeV2 } from "../schema/records.js";
import { quoteCurrency } from "../schema/records.js";
import { BinanceFastPath, binanceQuote } from "./binance-scan.js";
import {
  addVendorFields,
  asObject,
  currencyOf,
  deadLetterOf,
  decimalOf,
  fail,
  intOf,
  parseFrame,
  Reject,
  reasonText,
  shown,
  sourceOf,
  symbolOf,
  tradeDecimalOf,
  type Unchecked,
} from "./mapping.js";
import {
  type BackfillContext,
  type BookSnapshotRest,
  checkSubscription,
  dataTypesByStream,
  type FrameNormalizer,
  ID_REGRESSION,
  type NormalizedSink,
  type ReplayDialect,
  type RestBackfill,
  replayKey,
  SequenceTracker,
  type StoredSequence,
  type Subscription,
  TradeIdMemory,
  tradeContent,
  type Venue,
  type VenueConnectionSpec,
} from "./venue.js";

const EXCHANGE = "BINANCE";
/**
 * Largest Binance frame K2 reads, in characters: the subscribed streams' payloads (trade, aggTrade,
 * bookTicker) are under 600 characters; a larger frame is a dead letter.
 */
export const BINANCE_MAX_FRAME_CHARS = 65_536;
/** Latest venue time (ms) whose µs still fits a safe integer (year ~2255): later ones are rejected. */
const MAX_TIME_MS = Math.floor(Number.MAX_SAFE_INTEGER / 1000);
/** Binance symbols: `BTCUSDT` (upper case letters and digits, 2 to 20). */
const SYMBOL = /^[A-Z0-9]{2,20}$/;
/** Binance: at most 5 messages per second sent by the client on one connection. */
export const BINANCE_MAX_MESSAGES_PER_SECOND = 5;
/** Binance: at most 1024 streams on one connection. */
export const BINANCE_MAX_STREAMS = 1024;
/** Binance: a connection is closed by the server after 24 hours. */
export const BINANCE_MAX_CONNECTION_AGE_MS = 24 * 60 * 60 * 1000;

export const BINANCE_STREAMS = ["trade", "aggTrade", "bookTicker", "depth"] as const;
export type BinanceStream = (typeof BINANCE_STREAMS)[number];
/** Streams subscribed when `--streams` is not given (depth diffs are asked for explicitly). */
export const BINANCE_DEFAULT_STREAMS = ["trade", "aggTrade", "bookTicker"] as const;
/** Wire name of a stream where it differs from K2's: `depth` is the 100 ms diff depth stream. */
const WIRE_NAMES: Readonly<Record<string, string>> = { depth: "depth@100ms" };

// ---------------------------------------------------------------------------------------------------
// Binance messages, as the spot docs describe them (web-socket-streams.md, rest-api.md). Times are ms
// since epoch (K2 does not ask for `timeUnit=MICROSECOND`); prices and quantities are decimal strings.
// The normalizer reads them through `Unchecked<..>`: every field stays `unknown` until a reader of
// mapping.ts has checked it.

/** Combined-stream envelope (`/stream?streams=..`): `{"stream":"btcusdt@trade","data":{..}}`. */
export interface BinanceEnvelope {
  /** Stream name, `<symbol lower case>@<stream>`. */
  stream: string;
  /** The payload a raw stream (`/ws/<stream>`) would send alone. */
  data: BinanceTrade | BinanceAggTrade | BinanceBookTicker;
}

/** Answer to a request: `{"result":null,"id":1}`, or `{"error":{"code":2,"msg":".."},"id":1}`. */
export interface BinanceResponse {
  /** `null` for SUBSCRIBE / UNSUBSCRIBE. */
  result?: unknown;
  /** The request's id. */
  id: number | string | null;
  error?: { code: number; msg: string };
}

/** `<symbol>@trade`: one trade. */
export interface BinanceTrade {
  /** Event type, `trade`. */
  e: "trade";
  /** Event time, ms since epoch (vendor_data `event_time`). */
  E: number;
  /** Symbol, upper case: `BTCUSDT`. */
  s: string;
  /** Trade id, per symbol, without gaps. */
  t: number;
  /** Price, decimal string, in the quote currency. */
  p: string;
  /** Quantity, decimal string, in the base currency. */
  q: string;
  /** Trade time, ms since epoch. */
  T: number;
  /** Is the buyer the market maker? true: the seller was the taker (aggressor `SELL`). */
  m: boolean;
  /** "Ignore" (vendor_data `is_best_match`). */
  M: boolean;
  /** Buyer and seller order ids: sent by earlier versions of the stream (vendor_data). */
  b?: number;
  a?: number;
}

/** `<symbol>@aggTrade`: trades of one taker order at one price, aggregated. */
export interface BinanceAggTrade {
  /** Event type, `aggTrade`. */
  e: "aggTrade";
  /** Event time, ms since epoch. */
  E: number;
  s: string;
  /** Aggregate trade id, per symbol, without gaps. */
  a: number;
  /** Price and quantity, decimal strings. */
  p: string;
  q: string;
  /** First and last trade id aggregated (vendor_data `first_trade_id`, `last_trade_id`). */
  f: number;
  l: number;
  /** Trade time, ms since epoch. */
  T: number;
  /** Is the buyer the market maker? */
  m: boolean;
  /** "Ignore". */
  M: boolean;
}

/** `<symbol>@bookTicker`: best bid/ask, pushed on every change (spot sends no event type or time). */
export interface BinanceBookTicker {
  /** Order book update id (source_sequence; not contiguous across bookTicker frames). */
  u: number;
  s: string;
  /** Best bid price and quantity, decimal strings. */
  b: string;
  B: string;
  /** Best ask price and quantity, decimal strings. */
  a: string;
  A: string;
  /** Event type, time and transaction time (ms): not sent by spot, sent by futures; used when present. */
  e?: "bookTicker";
  E?: number;
  T?: number;
}

/** REST `GET /api/v3/historicalTrades`: one trade. */
export interface BinanceRestTrade {
  /** Trade id (the stream's `t`). */
  id: number;
  /** Price, quantity and quote quantity, decimal strings. */
  price: string;
  qty: string;
  quoteQty: string;
  /** Trade time, ms since epoch. */
  time: number;
  isBuyerMaker: boolean;
  isBestMatch: boolean;
}

/** REST `GET /api/v3/aggTrades`: one aggregate trade (the stream's fields without `e`, `E`, `s`). */
export type BinanceRestAggTrade = Omit<BinanceAggTrade, "e" | "E" | "s">;

/** Any stream payload, fields unchecked. */
type Payload = Unchecked<BinanceTrade> & Unchecked<BinanceAggTrade> & Unchecked<BinanceBookTicker>;

/** Stream names for a subscription: `btcusdt@trade`, ... (symbols lower case, as Binance names them). */
export function binanceStreamNames(sub: Subscription): string[] {
  const out: string[] = [];
  for (const s of sub.symbols) {
    for (const st of sub.streams) out.push(`${s.toLowerCase()}@${WIRE_NAMES[st] ?? st}`);
  }
  return out;
}

const SYMBOL_WHAT = "a Binance symbol like BTCUSDT";

const TRADE_MAPPED = new Set<keyof BinanceTrade>(["s", "t", "p", "q", "T", "m"]);
const AGG_MAPPED = new Set<keyof BinanceAggTrade>(["s", "a", "p", "q", "T", "m"]);
const QUOTE_MAPPED = new Set<keyof BinanceBookTicker>(["s", "u", "b", "B", "a", "A", "T"]);
/** Readable names for the Binance fields that land in vendor_data. */
const VENDOR_NAMES = new Map(
  Object.entries({
    e: "event_type",
    E: "event_time",
    M: "is_best_match",
    f: "first_trade_id",
    l: "last_trade_id",
    b: "buyer_order_id",
    a: "seller_order_id",
  }),
);

function vendorData(data: Record<string, unknown>, mapped: ReadonlySet<string>, names = VENDOR_NAMES) {
  return addVendorFields({}, data, mapped, names);
}

const QUOTE_NAMES = new Map(Object.entries({ e: "event_type", E: "event_time" }));

/** A subscribed Binance stream: its symbol (upper case) and event type. */
interface StreamOf {
  symbol: string;
  type: BinanceStream;
}

/**
 * Binance normalizer for one connection. Handles combined (`{"stream","data"}`) and raw payloads,
 * subscription acks (`{"result":null,"id":N}`) and venue errors (`{"error":{..}}`, dead-lettered with
 * the venue's message).
 *
 * Every record belongs to a subscribed stream: an envelope's `stream` must be subscribed and its
 * payload's symbol `s` and event type `e` must be the stream's; a payload without envelope must name a
 * subscribed stream by `s` and `e`. Trades with a zero price or quantity, and a trade id seen before with
 * different content (a conflicting duplicate, reported with both versions), are dead letters; a trade
 * id below the last seen is reported as a sequence regression and stored.
 *
 * Combined-stream frames are read first by the fast path (`binance-scan.ts`, a scanner over the frame
 * that builds the same record without `JSON.parse`); a frame it does not accept goes through the general
 * path below, which gives every dead letter its reason.
 */
export class BinanceNormalizer implements FrameNormalizer {
  readonly sequences = new SequenceTracker();
  /** Recent trade ids per `<data type>/<symbol>` with their content (duplicates, regressions). */
  readonly tradeIds = new TradeIdMemory();
  private readonly subscribed = new Map<string, StreamOf>();
  /** The fast path, or null when turned off (tests and the benchmark compare both paths). */
  readonly fast: BinanceFastPath | null;

  /** @param opts `fastPath: false` sends every frame through the general path (default true) */
  constructor(
    private readonly sink: NormalizedSink,
    sub: Subscription,
    opts: { fastPath?: boolean } = {},
  ) {
    for (const s of sub.symbols) {
      for (const st of sub.streams) {
        this.subscribed.set(`${s.toLowerCase()}@${WIRE_NAMES[st] ?? st}`, {
          symbol: s.toUpperCase(),
          type: st as BinanceStream,
        });
      }
    }
    this.fast = opts.fastPath === false ? null : this.fastPath();
  }

  private fastPath(): BinanceFastPath | null {
    const streams = [];
    for (const [name, { symbol, type }] of this.subscribed) {
      if (type === "depth") continue; // depth diffs: the general path (the scanner leaves unknown streams to it)
      let currency: string;
      try {
        currency = quoteCurrency(symbol);
      } catch {
        return null; // such a frame is a dead letter, which is the general path's to write
      }
      const dataType = type === "trade" ? "trades" : type === "aggTrade" ? "aggtrades" : "quotes";
      streams.push({ name, symbol, type, dataType, currency } as const);
    }
    return new BinanceFastPath(streams, {
      trade: TRADE_MAPPED,
      aggTrade: AGG_MAPPED,
      bookTicker: QUOTE_MAPPED,
      tradeNames: VENDOR_NAMES,
      quoteNames: QUOTE_NAMES,
    });
  }

  resumeSequences(last: readonly StoredSequence[], receivedAtUs = 0): void {
    for (const l of last) {
      const gap = this.sequences.resume(`${l.data_type}/${l.symbol}`, l.sequence);
      if (gap) {
        this.sink.gap({
          exchange: EXCHANGE,
          symbol: l.symbol,
          data_type: l.data_type,
          from_sequence: gap[0],
          to_sequence: gap[1],
          detected_at: receivedAtUs,
        });
      }
    }
  }

  normalize(raw: string, receivedAtUs: number): void {
    let source = "binance";
    try {
      const fast = this.fast?.read(raw, receivedAtUs, this.sequences);
      if (fast) {
        const st = this.fast?.stream as NonNullable<BinanceFastPath["stream"]>;
        source = st.source;
        if (st.dataType === "quotes") this.sink.quote(fast as QuoteV2);
        else this.emitTrade(fast as TradeV2, st.symbol, st.dataType, receivedAtUs, st.key);
        return;
      }
      const msg = parseFrame(raw, BINANCE_MAX_FRAME_CHARS);
      if (msg === null || typeof msg !== "object" || Array.isArray(msg)) fail("frame is not a JSON object");
      const obj = msg as Unchecked<BinanceEnvelope> & Unchecked<BinanceResponse> & Payload;
      let data: Payload = obj;
      let stream: string | undefined;
      let streamOf: StreamOf | undefined;
      if (typeof obj.stream === "string") {
        stream = obj.stream;
        streamOf = this.subscribed.get(stream);
        if (!streamOf) fail(`frame for unsubscribed stream ${reasonText(stream)}`);
        source = `binance:${stream}`;
        const d = obj.data;
        if (d === null || typeof d !== "object" || Array.isArray(d)) fail("missing data object");
        data = d as Payload;
      } else if ("result" in obj && "id" in obj) {
        this.sink.control("subscription_ack", raw);
        return;
      } else if ("error" in obj) {
        const err = obj.error as Unchecked<BinanceResponse["error"]> | null;
        fail(`venue error ${reasonText(err?.code)}: ${reasonText(err?.msg)}`);
      } else if ("lastUpdateId" in obj) {
        // REST depth snapshot some recorders interleave; not a stream frame this feed subscribes to
        fail("depth snapshot is not a subscribed stream");
      }
      const e = data.e;
      let type: BinanceStream;
      if (e === "trade" || e === "aggTrade") type = e;
      else if (e === "depthUpdate") type = "depth";
      else if (e === undefined || e === "bookTicker") {
        if (e === undefined && (stream === undefined || !stream.endsWith("@bookTicker")) && !("u" in data)) {
          fail("missing event type (e)");
        }
        type = "bookTicker";
      } else fail(`unknown event type ${shown(e)}`);
      // fast path: the payload names its stream's (subscribed, validated) symbol exactly
      const symbol =
        streamOf && data.s === streamOf.symbol ? streamOf.symbol : symbolOf(data.s, "s", SYMBOL, SYMBOL_WHAT);
      if (streamOf) {
        if (streamOf.type !== type) fail(`${type} payload in stream ${stream}`);
        if (streamOf.symbol !== symbol) fail(`symbol (s) ${symbol} does not match stream ${stream}`);
      } else if (!this.subscribed.has(`${symbol.toLowerCase()}@${WIRE_NAMES[type] ?? type}`)) {
        fail(
          `frame for unsubscribed stream ${symbol.toLowerCase()}@${WIRE_NAMES[type] ?? type} (payload without envelope)`,
        );
      }
      if (type === "depth") this.depth(data, receivedAtUs);
      else if (type === "trade") this.trade(data, symbol, receivedAtUs, "trades");
      else if (type === "aggTrade") this.trade(data, symbol, receivedAtUs, "aggtrades");
      else this.quote(data, symbol, receivedAtUs);
    } catch (err) {
      if (!(err instanceof Reject)) throw err;
      if (source === "binance") {
        // frames that did not parse still name their stream in the envelope's first bytes
        const m = /^\{"stream":"([^"\\]{1,64})"/.exec(raw);
        if (m) source = sourceOf("binance", m[1]);
      }
      // part null: the id is `BINANCE/dlq/<raw>`, as Binance dead letters have always been stored
      this.sink.deadLetter(deadLetterOf(EXCHANGE, source, err.message, raw, receivedAtUs, null));
    }
  }

  private trade(
    data: Unchecked<BinanceTrade> & Unchecked<BinanceAggTrade>,
    symbol: string,
    receivedAtUs: number,
    dataType: "trades" | "aggtrades",
  ): void {
    const idKey = dataType === "trades" ? "t" : "a";
    const idName = dataType === "trades" ? "trade id" : "aggregate trade id";
    const id = intOf(data[idKey], idName, idKey, false);
    const price = tradeDecimalOf(data.p, "price", "p");
    const quantity = tradeDecimalOf(data.q, "quantity", "q");
    const tradeTimeMs = intOf(data.T, "trade time", "T", false);
    if (tradeTimeMs > MAX_TIME_MS) fail(`trade time (T) is out of range: ${tradeTimeMs}`);
    const m = data.m;
    if (typeof m !== "boolean") fail("missing buyer-is-maker flag (m)");
    const currency = currencyOf(symbol);
    const record: TradeV2 = {
      message_id: deterministicMessageId(`${EXCHANGE}/${dataType}/${symbol}/${id}`),
      trade_id: `${EXCHANGE}-${id}`,
      symbol,
      exchange: EXCHANGE,
      asset_class: "crypto",
      timestamp: tradeTimeMs * 1000,
      price,
      quantity,
      currency,
      side: m ? "SELL" : "BUY",
      trade_conditions: [],
      source_sequence: id,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: this.sequences.nextPlatformSequence(symbol),
      vendor_data: vendorData(data, dataType === "trades" ? TRADE_MAPPED : AGG_MAPPED),
    };
    this.emitTrade(record, symbol, dataType, receivedAtUs, `${dataType}/${symbol}`);
  }

  /**
   * Duplicate, regression and gap checks of a complete trade record, then the sink.
   * @param key `<data type>/<symbol>`, the key of its trade ids and sequence
   * @throws {Reject} on a conflicting duplicate
   */
  private emitTrade(
    record: TradeV2,
    symbol: string,
    dataType: "trades" | "aggtrades",
    receivedAtUs: number,
    key: string,
  ): void {
    const id = record.source_sequence as number;
    const idName = dataType === "trades" ? "trade id" : "aggregate trade id";
    // the id is remembered only once the record is complete (a rejected record leaves no trace)
    const verdict = this.tradeIds.check(key, id, record, id);
    if (typeof verdict === "string") {
      this.sink.anomaly?.({ kind: "conflicting_duplicate", symbol, dataType, id, last: null });
      fail(
        `conflicting duplicate of ${idName} ${id}: first seen with ${verdict}; this frame has ${tradeContent(record)}`,
      );
    }
    if (verdict === ID_REGRESSION) {
      this.sink.anomaly?.({
        kind: "sequence_regression",
        symbol,
        dataType,
        id,
        last: this.tradeIds.last(key),
      });
    }
    const gap = this.sequences.observe(key, id);
    if (gap) {
      this.sink.gap({
        exchange: EXCHANGE,
        symbol,
        data_type: dataType,
        from_sequence: gap[0],
        to_sequence: gap[1],
        detected_at: receivedAtUs,
      });
    }
    this.sink.trade(record, dataType);
  }

  /** A `depthUpdate` diff as a book_changes_v2 record (levels exact, `U`/`u` as first/last sequence). */
  private depth(data: unknown, receivedAtUs: number): void {
    const diff = bookFrameOf(() => parseBinanceDepthDiff(data), "depth diff");
    if (diff.eventTime > MAX_TIME_MS) fail(`event time (E) is out of range: ${diff.eventTime}`);
    const record = bookChangeOf(
      diff,
      diff.eventTime * 1000,
      false,
      diff.firstUpdateId,
      diff.finalUpdateId,
      receivedAtUs,
    );
    if (this.sink.bookChange) this.sink.bookChange(record);
    else this.sink.control("depth_not_kept", "");
  }

  private quote(data: Unchecked<BinanceBookTicker>, symbol: string, receivedAtUs: number): void {
    const u = intOf(data.u, "update id", "u", false);
    const bid_price = decimalOf(data.b, "bid price", "b");
    const bid_quantity = decimalOf(data.B, "bid quantity", "B");
    const ask_price = decimalOf(data.a, "ask price", "a");
    const ask_quantity = decimalOf(data.A, "ask quantity", "A");
    const venueTime = data.T ?? data.E;
    const timestamp =
      typeof venueTime === "number" &&
      Number.isSafeInteger(venueTime) &&
      venueTime >= 0 &&
      venueTime <= MAX_TIME_MS
        ? venueTime * 1000
        : receivedAtUs;
    const record = binanceQuote(
      deterministicMessageId(`${EXCHANGE}/quotes/${symbol}/${u}`),
      symbol,
      timestamp,
      bid_price,
      bid_quantity,
      ask_price,
      ask_quantity,
      currencyOf(symbol),
      u,
      receivedAtUs,
      this.sequences.nextPlatformSequence(symbol),
      vendorData(data, QUOTE_MAPPED, QUOTE_NAMES),
    );
    this.sink.quote(record);
  }
}

/** Replay key of a Binance stream name: `nknusdt@aggTrade` → `aggTrade|NKNUSDT`. */
function streamKey(stream: string): string | null {
  const at = stream.indexOf("@");
  return at > 0 ? replayKey(stream.slice(at + 1), stream.slice(0, at).toUpperCase()) : null;
}

/**
 * Replay dialect (cryptofeed recordings of Binance combined streams): streams are named in the URL
 * (`/stream?streams=a/b`, `/ws/a/b`) and by `SUBSCRIBE` / `UNSUBSCRIBE` requests, which the replay server
 * answers itself (`{"result":null,"id":N}`, as Binance does; the recording does not hold answers).
 * Frames are keyed by their envelope's `stream`, so only subscribed streams are sent.
 */
export const binanceReplayDialect: ReplayDialect = {
  urlKeys(url: string): string[] {
    const u = new URL(url, "ws://127.0.0.1");
    const names = u.pathname.startsWith("/ws/")
      ? u.pathname.slice(4).split("/")
      : (u.searchParams.get("streams") ?? "").split("/");
    return names.map(streamKey).filter((k): k is string => k !== null);
  },
  subscription(message: string) {
    let req: { method?: unknown; params?: unknown };
    try {
      req = JSON.parse(message);
    } catch {
      return null;
    }
    if ((req.method !== "SUBSCRIBE" && req.method !== "UNSUBSCRIBE") || !Array.isArray(req.params))
      return null;
    const keys = req.params
      .filter((p): p is string => typeof p === "string")
      .map(streamKey)
      .filter((k): k is string => k !== null);
    return { subscribe: req.method === "SUBSCRIBE", keys };
  },
  reply(message: string): string | null {
    try {
      const req = JSON.parse(message) as { method?: unknown; id?: unknown };
      if (req.method === "SUBSCRIBE" || req.method === "UNSUBSCRIBE") {
        return JSON.stringify({ result: null, id: req.id ?? null });
      }
    } catch {
      return JSON.stringify({ error: { code: 3, msg: "Invalid JSON" } });
    }
    return null;
  },
  frameKey(raw: string): string | null {
    if (!raw.startsWith('{"stream":"')) return null;
    const end = raw.indexOf('"', 11);
    return end > 11 ? streamKey(raw.slice(11, end)) : null;
  },
};

/** Binance REST request weights (spot rest-api.md, "Market Data endpoints"). */
export const BINANCE_REST_WEIGHT = { historicalTrades: 25, aggTrades: 4 } as const;
/** Binance spot REQUEST_WEIGHT limit per minute and IP (exchangeInfo `rateLimits`). */
export const BINANCE_WEIGHT_PER_MINUTE = 6000;

/** historicalTrades fields that are mapped to columns; the rest land in vendor_data. */
const REST_TRADE_MAPPED = new Set<keyof BinanceRestTrade>(["id", "price", "qty", "time", "isBuyerMaker"]);
const REST_TRADE_NAMES = new Map(
  Object.entries({ quoteQty: "quote_quantity", isBestMatch: "is_best_match" }),
);

/**
 * One REST trade as a TradeV2 with the streamed trade's message id, trade id and columns.
 * historicalTrades `{id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch}`; aggTrades
 * `{a,p,q,f,l,T,m,M}` (the stream's aggTrade fields without `e`, `E`, `s`).
 * @throws {Reject} on a missing or malformed field
 */
function restTrade(item: unknown, ctx: BackfillContext): TradeV2 {
  const data: Unchecked<BinanceRestTrade> & Unchecked<BinanceRestAggTrade> =
    asObject(item) ?? fail("REST trade is not an object");
  const trades = ctx.dataType === "trades";
  const id = trades
    ? intOf(data["id"], "trade id", "id", false)
    : intOf(data["a"], "aggregate trade id", "a", false);
  const price = tradeDecimalOf(data[trades ? "price" : "p"], "price", trades ? "price" : "p");
  const quantity = tradeDecimalOf(data[trades ? "qty" : "q"], "quantity", trades ? "qty" : "q");
  const timeMs = intOf(data[trades ? "time" : "T"], "trade time", trades ? "time" : "T", false);
  if (timeMs > MAX_TIME_MS) fail(`trade time (${trades ? "time" : "T"}) is out of range: ${timeMs}`);
  const m = data[trades ? "isBuyerMaker" : "m"];
  if (typeof m !== "boolean") fail(`missing buyer-is-maker flag (${trades ? "isBuyerMaker" : "m"})`);
  const symbol = ctx.symbol;
  return {
    message_id: deterministicMessageId(`${EXCHANGE}/${ctx.dataType}/${symbol}/${id}`),
    trade_id: `${EXCHANGE}-${id}`,
    symbol,
    exchange: EXCHANGE,
    asset_class: "crypto",
    timestamp: timeMs * 1000,
    price,
    quantity,
    currency: currencyOf(symbol),
    side: m ? "SELL" : "BUY",
    trade_conditions: [],
    source_sequence: id,
    ingestion_timestamp: ctx.receivedAtUs,
    platform_sequence: ctx.platformSequence(symbol),
    vendor_data: {
      ...(trades ? vendorData(data, REST_TRADE_MAPPED, REST_TRADE_NAMES) : vendorData(data, AGG_MAPPED)),
      source: "rest_backfill",
    },
  };
}

/**
 * Binance REST backfill (spot rest-api.md): `GET /api/v3/historicalTrades?symbol=&fromId=&limit=`
 * (weight 25) for `trade` gaps and `GET /api/v3/aggTrades?symbol=&fromId=&limit=` (weight 4) for
 * `aggTrade` gaps, at most 1000 records a page from `fromId` inclusive, in id order. Used weight comes
 * back in `X-MBX-USED-WEIGHT-1M`; 429 (and 418 after repeated violations) carry `Retry-After` seconds.
 */
export const binanceRestBackfill: RestBackfill = {
  defaultRestUrl: "https://api.binance.com",
  dataTypes: ["trades", "aggtrades"],
  pageLimit: 1000,
  weightPerMinute: BINANCE_WEIGHT_PER_MINUTE,
  usedWeightHeader: "x-mbx-used-weight-1m",
  request(baseUrl, symbol, dataType, fromId, limit) {
    const path = dataType === "trades" ? "historicalTrades" : "aggTrades";
    const q = new URLSearchParams({ symbol, fromId: String(fromId), limit: String(limit) });
    return {
      url: `${baseUrl.replace(/\/+$/, "")}/api/v3/${path}?${q}`,
      weight: BINANCE_REST_WEIGHT[path],
    };
  },
  records(body, ctx) {
    if (!Array.isArray(body)) fail("REST response is not an array");
    return body.map((item) => restTrade(item, ctx));
  },
};

/**
 * Reads a book frame with `parse` (`src/books/binance.ts`).
 * @throws {Reject} `<what>: <reason>` when it does not have the documented shape
 */
function bookFrameOf<T>(parse: () => T, what: string): T {
  try {
    return parse();
  } catch (err) {
    return fail(`${what}: ${(err as Error).message}`);
  }
}

/** A book_changes_v2 record of parsed levels (freshly parsed pairs, owned by the record from here on). */
function bookChangeOf(
  frame: {
    symbol: string;
    bids: readonly (readonly [string, string])[];
    asks: readonly (readonly [string, string])[];
  },
  timestamp: number,
  isSnapshot: boolean,
  first: number,
  last: number,
  receivedAtUs: number,
): BookChangeV2 {
  return {
    message_id: bookChangeMessageId(EXCHANGE, frame.symbol, isSnapshot, first, last, receivedAtUs),
    exchange: EXCHANGE,
    symbol: frame.symbol,
    timestamp,
    is_snapshot: isSnapshot,
    bids: frame.bids as BookLevel[],
    asks: frame.asks as BookLevel[],
    first_source_sequence: first,
    last_source_sequence: last,
    ingestion_timestamp: receivedAtUs,
    vendor_data: {},
  };
}

/** Request weight of `GET /api/v3/depth` by `limit` (spot rest-api.md, "Order book"). */
export function binanceDepthWeight(limit: number): number {
  return limit <= 100 ? 5 : limit <= 500 ? 25 : limit <= 1000 ? 50 : 250;
}

/**
 * Binance REST depth snapshot (spot rest-api.md, "Order book"): `GET /api/v3/depth?symbol=&limit=`
 * → `{lastUpdateId, bids, asks}`, best first; mapped to a book_changes_v2 snapshot whose first and
 * last sequence are `lastUpdateId`.
 */
export const binanceBookSnapshotRest: BookSnapshotRest = {
  limit: 1000,
  request(baseUrl, symbol, limit) {
    const q = new URLSearchParams({ symbol, limit: String(limit) });
    return { url: `${baseUrl.replace(/\/+$/, "")}/api/v3/depth?${q}`, weight: binanceDepthWeight(limit) };
  },
  snapshot(body, symbol, receivedAtUs) {
    const snap = bookFrameOf(() => parseBinanceDepthSnapshot(body, symbol), "depth snapshot");
    const id = snap.lastUpdateId;
    const record = bookChangeOf(snap, receivedAtUs, true, id, id, receivedAtUs);
    record.vendor_data.source = "rest_snapshot";
    return record;
  },
};

/** The Binance Spot venue. */
export const binance: Venue = {
  exchange: EXCHANGE,
  assetClass: "crypto",
  defaultWsUrl: "wss://stream.binance.com:9443",
  streams: BINANCE_STREAMS,
  defaultStreams: BINANCE_DEFAULT_STREAMS,
  defaultSymbols: ["BTCUSDT", "ETHUSDT", "BNBUSDT"],
  dataTypesOf: dataTypesByStream({ trade: "trades", aggTrade: "aggtrades", bookTicker: "quotes" }),
  validate(sub: Subscription): void {
    checkSubscription(sub, BINANCE_STREAMS, "Binance stream", (s) => {
      if (!SYMBOL.test(s)) throw new Error(`--symbols: "${s}" is not ${SYMBOL_WHAT}`);
      try {
        quoteCurrency(s);
      } catch {
        throw new Error(`--symbols: cannot derive the quote currency of "${s}"`);
      }
    });
    const n = sub.symbols.length * sub.streams.length;
    if (n > BINANCE_MAX_STREAMS) {
      throw new Error(
        `--symbols/--streams: ${n} streams exceed Binance's ${BINANCE_MAX_STREAMS} per connection`,
      );
    }
  },
  connection(baseUrl: string, sub: Subscription): VenueConnectionSpec {
    const names = binanceStreamNames(sub);
    const base = baseUrl.replace(/\/+$/, "");
    // Streams are named in the URL; a SUBSCRIBE after open also names them, so a server that keeps
    // subscriptions per request (or a replay server started without streams) gets them either way.
    return {
      url: `${base}/stream?streams=${names.join("/")}`,
      onOpenMessages: () => {
        const msgs: string[] = [];
        for (let i = 0; i < names.length; i += 200) {
          msgs.push(
            JSON.stringify({ method: "SUBSCRIBE", params: names.slice(i, i + 200), id: i / 200 + 1 }),
          );
        }
        return msgs;
      },
      maxMessagesPerSecond: BINANCE_MAX_MESSAGES_PER_SECOND,
      maxConnectionAgeMs: BINANCE_MAX_CONNECTION_AGE_MS,
    };
  },
  createNormalizer(sink: NormalizedSink, sub: Subscription): FrameNormalizer {
    return new BinanceNormalizer(sink, sub);
  },
  replay: binanceReplayDialect,
  backfill: binanceRestBackfill,
  bookSnapshot: binanceBookSnapshotRest,
};
