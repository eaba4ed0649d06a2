/**
 * The fast path of the Binance venue: a scanner over a frame's characters for Binance's fixed shapes,
 * the combined-stream envelope `{"stream":"btcusdt@trade","data":{..}}` of a `trade`, `aggTrade` or
 * `bookTicker` payload (binance-spot-api-docs, web-socket-streams.md), in any key order, with any JSON
 * whitespace between tokens.
 *
 * It builds the record straight from the frame: exact DECIMAL(18,8) strings from the digits (no float,
 * no `JSON.parse`), the message id hashed from the `BINANCE/<data type>/<SYMBOL>/` prefix encoded once
 * per stream and the id's digits, vendor_data from the values' text. Nothing is allocated per frame but
 * the record and its strings: the key → value spans live in typed arrays reused from frame to frame.
 *
 * Before the scanner, a frame in Binance's own layout (compact, the documented key order: what Binance
 * sends) is matched whole by one anchored pattern per stream ({@link exactLayout}: the literal text,
 * integers and canonical decimals where the values go; V8's compiled RegExp checks it faster than a
 * character loop) and its values are then read at their places, with no key dispatch; any other frame
 * goes to the scanner.
 *
 * It accepts only a strict subset of JSON it can read exactly: one-letter payload keys, each once;
 * strings of printable ASCII without escapes; integers of at most 15 digits; `true`, `false`, `null`.
 * A frame outside that subset, or one that any check of the general path would reject (unsubscribed
 * stream, wrong symbol or event type, a malformed or zero price, ...), makes {@link BinanceFastPath.read}
 * return null *before any side effect*; the caller then runs the general path (`JSON.parse` and the
 * readers of mapping.ts) on it, which dead-letters it with its reason. So correctness never depends on
 * this file: for every frame it accepts, its record equals the general path's, field by field (tested
 * on every recorded frame and by a property test).
 */
import { parseNonNegativeDecimal } from "../schema/decimal.js";
import { messageIdOfBytes } from "../schema/message-id.js";
import type { QuoteV2, TradeV2 } from "../schema/records.js";
import type { SequenceTracker } from "./venue.js";

/** A subscribed stream as the fast path needs it: names, ids and keys made once. */
export interface FastStream {
  /** Stream name, `btcusdt@trade`. */
  readonly name: string;
  /** Symbol, upper case: `BTCUSDT`. */
  readonly symbol: string;
  /** Binance stream (event type). */
  readonly type: "trade" | "aggTrade" | "bookTicker";
  readonly dataType: "trades" | "aggtrades" | "quotes";
  /** Quote currency of the symbol (`USDT`). */
  readonly currency: string;
  /** Dead-letter source, `binance:btcusdt@trade`. */
  readonly source: string;
  /** `<data type>/<SYMBOL>`: the key of its trade ids and sequence (made once, its hash kept). */
  readonly key: string;
  /** UTF-8 of `BINANCE/<data type>/<SYMBOL>/`, with room for the venue id after it. */
  readonly idBytes: Uint8Array;
  readonly idPrefixLength: number;
  /**
   * Lengths of the literal pieces of the stream's frame in Binance's own layout (compact, keys in the
   * documented order), between its values: see {@link exactPieces}.
   */
  readonly pieces: readonly number[];
  /** The whole frame in that layout (see {@link exactLayout}), or null when the names rule it out. */
  readonly layout: RegExp | null;
}

/**
 * The literal text of a frame of `name` in Binance's own layout, cut where its values go: trade
 * `{"stream":"btcusdt@trade","data":{"e":"trade","E":` E `,"s":"BTCUSDT","t":` t `,"p":"` p `","q":"` q
 * `","T":` T `,"m":` m `,"M":` M `}}`; aggTrade the same with `a` for `t` and `f`, `l` after `q`;
 * bookTicker `{"stream":"btcusdt@bookTicker","data":{"u":` u `,"s":"BTCUSDT","b":"` b `","B":"` B
 * `","a":"` a `","A":"` A `"}}`.
 */
export function exactPieces(name: string, symbol: string, type: FastStream["type"]): string[] {
  const head = `{"stream":"${name}","data":{`;
  if (type === "bookTicker")
    return [`${head}"u":`, `,"s":"${symbol}","b":"`, '","B":"', '","a":"', '","A":"', '"}}'];
  const id = type === "trade" ? "t" : "a";
  const ids = type === "trade" ? ['","T":'] : ['","f":', ',"l":', ',"T":'];
  return [
    `${head}"e":"${type}","E":`,
    `,"s":"${symbol}","${id}":`,
    ',"p":"',
    '","q":"',
    ...ids,
    ',"m":',
    ',"M":',
    "}}",
  ];
}

/** A JSON integer `JSON.stringify` gives back as written: no leading zero, at most 15 digits (exact). */
const INT_TEXT = "(?:0|[1-9][0-9]{0,14})";
/** A canonical DECIMAL(18,8): 1..10 integer digits without leading zero, `.`, 8 digits. */
const DECIMAL_TEXT = "(?:0|[1-9][0-9]{0,9})\\.[0-9]{8}";
const FLAG_TEXT = "(?:true|false)";
/** The third last character of each type's layout head (`E` of `"E":`, `u` of `"u":`). */
const BINANCE_TYPE_MARK = { trade: 69, aggTrade: 69, bookTicker: 117 } as const;

/**
 * The frame of `name` in Binance's own layout as one anchored pattern: the {@link exactPieces} literally,
 * integers and canonical decimals where their values go (what the layout reader reads without another
 * check). Every character of a matching frame is fixed by it, so a match is valid JSON without escapes.
 */
export function exactLayout(name: string, symbol: string, type: FastStream["type"]): RegExp {
  const p = exactPieces(name, symbol, type).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const values =
    type === "bookTicker"
      ? [INT_TEXT, DECIMAL_TEXT, DECIMAL_TEXT, DECIMAL_TEXT, DECIMAL_TEXT]
      : type === "trade"
        ? [INT_TEXT, INT_TEXT, DECIMAL_TEXT, DECIMAL_TEXT, INT_TEXT, FLAG_TEXT, FLAG_TEXT]
        : [
            INT_TEXT,
            INT_TEXT,
            DECIMAL_TEXT,
            DECIMAL_TEXT,
            INT_TEXT,
            INT_TEXT,
            INT_TEXT,
            FLAG_TEXT,
            FLAG_TEXT,
          ];
  let src = "^";
  for (let i = 0; i < values.length; i++) src += p[i] + values[i];
  return new RegExp(`${src}${p[values.length]}$`);
}

/** How the normalizer maps payload keys: the mapped keys of each event type and vendor_data names. */
export interface FastPathKeys {
  trade: ReadonlySet<string>;
  aggTrade: ReadonlySet<string>;
  bookTicker: ReadonlySet<string>;
  /** vendor_data names of trade and aggTrade fields (`E` → `event_time`); other keys keep their name. */
  tradeNames: ReadonlyMap<string, string>;
  /** vendor_data names of bookTicker fields. */
  quoteNames: ReadonlyMap<string, string>;
}

// value kinds in the span tables (0: key absent)
const STRING = 1;
const NUMBER = 2;
const TRUE = 3;
const FALSE = 4;
const NULL = 5;

const QUOTE = 34;
/** Longest frame the fast path reads (the general path's bound is larger; longer frames go there). */
const MAX_FAST_CHARS = 4096;
/** Most digits of an integer the fast path reads: below 2^53, so exact as a JS number. */
const MAX_INT_DIGITS = 15;
/** Latest venue time (ms) whose µs still fits a safe integer, as the general path checks it. */
const MAX_TIME_MS = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

/** Per event type and payload key (char code < 128): 0 vendor field, 1 mapped field. */
function mappedTable(keys: ReadonlySet<string>): Uint8Array {
  const t = new Uint8Array(128);
  for (const k of keys) if (k.length === 1 && k.charCodeAt(0) < 128) t[k.charCodeAt(0)] = 1;
  return t;
}

/** Per payload key: 1 for the keys whose string value a reader checks (exact text or decimal digits). */
function keysTable(keys: string): Uint8Array {
  const t = new Uint8Array(128);
  for (const k of keys) t[k.charCodeAt(0)] = 1;
  return t;
}
const CHECKED_TRADE = keysTable("espq");
const CHECKED_QUOTE = keysTable("esbBaA");

/** Per payload key (char code < 128): its vendor_data name. */
function namesTable(names: ReadonlyMap<string, string>): string[] {
  const t: string[] = [];
  for (let c = 0; c < 128; c++) {
    const k = String.fromCharCode(c);
    t.push(names.get(k) ?? k);
  }
  return t;
}

const isWs = (c: number) => c === 32 || c === 10 || c === 13 || c === 9;
/** Index of the first character at or after `i` that is not JSON whitespace. */
function skipWs(raw: string, i: number, n: number): number {
  while (i < n && isWs(raw.charCodeAt(i))) i++;
  return i;
}
const isLetter = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);

/**
 * The Binance fast path of one normalizer: {@link read} turns a combined-stream frame of a subscribed
 * stream into its record, or returns null (nothing done) when the general path must read the frame.
 */
export class BinanceFastPath {
  /** The stream of the last record {@link read} returned. */
  stream: FastStream | null = null;
  /** Frames read here / left to the general path (for tests and the benchmark). */
  hits = 0;
  misses = 0;
  /** Of the hits, the frames read as Binance's own layout (matched whole by its pattern, without the scanner). */
  exactHits = 0;

  private readonly streams = new Map<string, FastStream>();
  private readonly list: FastStream[] = [];
  // payload key (char code) → value span and kind; `order` lists the keys present, in frame order
  private readonly start = new Int32Array(128);
  private readonly end = new Int32Array(128);
  private readonly kind = new Uint8Array(128);
  private readonly order = new Uint8Array(64);
  private count = 0;
  private streamStart = -1;
  private streamEnd = -1;
  private readonly mapped: Record<FastStream["type"], Uint8Array>;
  private readonly tradeNames: string[];
  private readonly quoteNames: string[];

  /**
   * @param streams the subscribed streams (`btcusdt@trade` → symbol, type, data type, currency)
   * @param keys the general path's key tables, so both paths map the same keys the same way
   */
  constructor(
    streams: Iterable<{
      name: string;
      symbol: string;
      type: FastStream["type"];
      dataType: FastStream["dataType"];
      currency: string;
    }>,
    keys: FastPathKeys,
  ) {
    const encoder = new TextEncoder();
    for (const s of streams) {
      const prefix = encoder.encode(`BINANCE/${s.dataType}/${s.symbol}/`);
      const idBytes = new Uint8Array(prefix.length + MAX_INT_DIGITS);
      idBytes.set(prefix);
      const fs: FastStream = {
        ...s,
        source: `binance:${s.name}`,
        key: `${s.dataType}/${s.symbol}`,
        idBytes,
        idPrefixLength: prefix.length,
        pieces: exactPieces(s.name, s.symbol, s.type).map((t) => t.length),
        // names outside plain ASCII (never Binance's): no exact layout, the scanner reads their frames
        layout:
          /^[\x20-\x7e]*$/.test(s.name + s.symbol) && !/["\\]/.test(s.name + s.symbol)
            ? exactLayout(s.name, s.symbol, s.type)
            : null,
      };
      this.streams.set(s.name, fs);
      this.list.push(fs);
    }
    this.mapped = {
      trade: mappedTable(keys.trade),
      aggTrade: mappedTable(keys.aggTrade),
      bookTicker: mappedTable(keys.bookTicker),
    };
    this.tradeNames = namesTable(keys.tradeNames);
    this.quoteNames = namesTable(keys.quoteNames);
  }

  /**
   * The record of a combined-stream frame (a {@link TradeV2} for `trade` / `aggTrade`, a
   * {@link QuoteV2} for `bookTicker`; {@link stream} says which), with the next platform_sequence of its
   * symbol from `sequences`; or null, with no side effect, when the general path must read the frame.
   * @param raw the frame text as received
   * @param receivedAtUs receipt time, µs since epoch
   */
  read(raw: string, receivedAtUs: number, sequences: SequenceTracker): TradeV2 | QuoteV2 | null {
    const exact = this.exact(raw, receivedAtUs, sequences);
    if (exact !== null) {
      this.hits++;
      this.exactHits++;
      return exact;
    }
    // a backslash (an escape) anywhere: the general path unescapes; Binance's fixed shapes have none
    if (raw.length > MAX_FAST_CHARS || raw.indexOf("\\") >= 0 || !this.scan(raw)) {
      this.misses++;
      return null;
    }
    const st = this.findStream(raw);
    const rec = st === null ? null : this.record(raw, st, receivedAtUs, sequences);
    if (rec === null) this.misses++;
    else {
      this.hits++;
      this.stream = st;
    }
    return rec;
  }

  // ---- Binance's own layout: the frame matched whole by one pattern, then its values read in place ----

  /** Value of the last {@link digits}. */
  private num = 0;
  /** Whether the last {@link decimal} had a non-zero digit. */
  private nonZero = false;

  /** Index after the digits at `i` (a JSON integer the layout checked), its value in {@link num}. */
  private digits(raw: string, i: number): number {
    let v = 0;
    let c = raw.charCodeAt(i);
    while (c >= 48 && c <= 57) {
      v = v * 10 + (c - 48);
      c = raw.charCodeAt(++i);
    }
    this.num = v;
    return i;
  }

  /**
   * Index after the canonical decimal at `i` (one the layout checked: digits, `.`, 8 digits), whether
   * it is non-zero in {@link nonZero}.
   */
  private decimal(raw: string, i: number): number {
    let c = raw.charCodeAt(i);
    let nz = c !== 48;
    while (c !== 46) c = raw.charCodeAt(++i);
    const end = i + 9;
    for (i++; i < end && !nz; i++) nz = raw.charCodeAt(i) !== 48;
    this.nonZero = nz;
    return end;
  }

  /** The subscribed stream whose own layout the frame has, or null. */
  private exactStream(raw: string): FastStream | null {
    // `{"stream":"` then the name
    if (raw.charCodeAt(0) !== 123 || raw.charCodeAt(10) !== QUOTE) return null;
    if (this.list.length <= 8) {
      for (const st of this.list) {
        // the head's third last character (`E` of `"E":`, `u` of `"u":`) tells the types apart at once
        const k = st.pieces[0] - 3;
        if (st.layout !== null && raw.charCodeAt(k) === BINANCE_TYPE_MARK[st.type] && st.layout.test(raw))
          return st;
      }
      return null;
    }
    const e = raw.indexOf('"', 11);
    const st = e < 0 ? undefined : this.streams.get(raw.slice(11, e));
    return st?.layout?.test(raw) ? st : null;
  }

  /**
   * The record of a frame in Binance's own layout (see {@link exactPieces}): the whole frame matched by
   * the stream's {@link FastStream.layout} (so it is valid JSON without escapes, integers and canonical
   * decimals where the values go), then the values read at their places; null, with no side effect, for
   * any other frame or a value the general path would reject (a zero trade price or quantity, a trade
   * time beyond {@link MAX_TIME_MS}).
   */
  private exact(raw: string, receivedAtUs: number, seq: SequenceTracker): TradeV2 | QuoteV2 | null {
    const st = this.exactStream(raw);
    if (st === null) return null;
    const p = st.pieces;
    const u0 = p[0];
    if (st.type === "bookTicker") {
      const u1 = this.digits(raw, u0);
      const u = this.num;
      const b0 = u1 + p[1];
      const b1 = this.decimal(raw, b0);
      const B0 = b1 + p[2];
      const B1 = this.decimal(raw, B0);
      const a0 = B1 + p[3];
      const a1 = this.decimal(raw, a0);
      const A0 = a1 + p[4];
      const A1 = this.decimal(raw, A0);
      this.stream = st;
      return binanceQuote(
        this.messageIdOf(raw, st, u0, u1),
        st.symbol,
        receivedAtUs, // spot sends no venue time (T, E)
        raw.slice(b0, b1),
        raw.slice(B0, B1),
        raw.slice(a0, a1),
        raw.slice(A0, A1),
        st.currency,
        u,
        receivedAtUs,
        seq.nextPlatformSequence(st.symbol),
        {},
      );
    }
    const E0 = u0;
    const E1 = this.digits(raw, E0);
    const id0 = E1 + p[1];
    const id1 = this.digits(raw, id0);
    const id = this.num;
    const p0 = id1 + p[2];
    const p1 = this.decimal(raw, p0);
    if (!this.nonZero) return null;
    const q0 = p1 + p[3];
    const q1 = this.decimal(raw, q0);
    if (!this.nonZero) return null;
    let f0 = -1;
    let f1 = -1;
    let l0 = -1;
    let l1 = -1;
    let k = 4;
    let i = q1;
    if (st.type === "aggTrade") {
      f0 = i + p[k++];
      f1 = this.digits(raw, f0);
      l0 = f1 + p[k++];
      l1 = this.digits(raw, l0);
      i = l1;
    }
    i = this.digits(raw, i + p[k++]);
    const tradeTimeMs = this.num;
    if (tradeTimeMs > MAX_TIME_MS) return null;
    i += p[k++];
    const m = raw.charCodeAt(i) === 116; /* t(rue) */
    i += (m ? 4 : 5) + p[k];
    const M = raw.charCodeAt(i) === 116;
    this.stream = st;
    const vendor_data: Record<string, string> =
      st.type === "trade"
        ? { event_type: "trade", event_time: raw.slice(E0, E1), is_best_match: M ? "true" : "false" }
        : {
            event_type: "aggTrade",
            event_time: raw.slice(E0, E1),
            first_trade_id: raw.slice(f0, f1),
            last_trade_id: raw.slice(l0, l1),
            is_best_match: M ? "true" : "false",
          };
    return {
      message_id: this.messageIdOf(raw, st, id0, id1),
      trade_id: `BINANCE-${raw.slice(id0, id1)}`,
      symbol: st.symbol,
      exchange: "BINANCE",
      asset_class: "crypto",
      timestamp: tradeTimeMs * 1000,
      price: raw.slice(p0, p1),
      quantity: raw.slice(q0, q1),
      currency: st.currency,
      side: m ? "SELL" : "BUY",
      trade_conditions: [],
      source_sequence: id,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: seq.nextPlatformSequence(st.symbol),
      vendor_data,
    };
  }

  /** The message id of stream `st` and the venue id written at `raw[s..e)`. */
  private messageIdOf(raw: string, st: FastStream, s: number, e: number): string {
    const bytes = st.idBytes;
    let j = st.idPrefixLength;
    for (let i = s; i < e; i++) bytes[j++] = raw.charCodeAt(i);
    return messageIdOfBytes(bytes, j);
  }

  /** The subscribed stream the envelope names, or null. */
  private findStream(raw: string): FastStream | null {
    const s = this.streamStart;
    const len = this.streamEnd - s;
    if (this.list.length <= 8) {
      for (const st of this.list) if (st.name.length === len && raw.startsWith(st.name, s)) return st;
      return null;
    }
    return this.streams.get(raw.slice(s, this.streamEnd)) ?? null;
  }

  /** Reads the envelope and payload's spans; false when the frame is not of the accepted shape. */
  private scan(raw: string): boolean {
    for (let k = 0; k < this.count; k++) this.kind[this.order[k]] = 0;
    this.count = 0;
    this.streamStart = -1;
    let sawData = false;
    const n = raw.length;
    let i = 0;
    i = skipWs(raw, i, n);
    if (raw.charCodeAt(i) !== 123 /* { */) return false;
    i++;
    for (;;) {
      i = skipWs(raw, i, n);
      if (raw.charCodeAt(i) !== QUOTE) return false;
      if (raw.startsWith('stream"', i + 1)) {
        if (this.streamStart >= 0) return false;
        i = this.colon(raw, i + 8);
        if (i < 0 || raw.charCodeAt(i) !== QUOTE) return false;
        const e = raw.indexOf('"', i + 1); // no backslash in the frame: the next quote closes it
        if (e < 0) return false;
        this.streamStart = i + 1;
        this.streamEnd = e;
        i = e + 1;
      } else if (raw.startsWith('data"', i + 1)) {
        if (sawData) return false;
        sawData = true;
        i = this.colon(raw, i + 6);
        if (i < 0) return false;
        i = this.payload(raw, i);
        if (i < 0) return false;
      } else return false;
      i = skipWs(raw, i, n);
      const c = raw.charCodeAt(i++);
      if (c === 44 /* , */) continue;
      if (c !== 125 /* } */) return false;
      i = skipWs(raw, i, n);
      return i === n && sawData && this.streamStart >= 0;
    }
  }

  /** Index after `:` and the whitespace around it, from `i` (just after a key's closing quote), or -1. */
  private colon(raw: string, i: number): number {
    const n = raw.length;
    i = skipWs(raw, i, n);
    if (raw.charCodeAt(i) !== 58 /* : */) return -1;
    i++;
    i = skipWs(raw, i, n);
    return i;
  }

  /**
   * True when every string value that no reader checks (vendor fields, unread mapped fields) holds
   * printable ASCII only: a control character would make the frame malformed JSON, and anything else
   * is left to the general path.
   */
  private plainStrings(raw: string, checked: Uint8Array): boolean {
    for (let j = 0; j < this.count; j++) {
      const k = this.order[j];
      if (this.kind[k] !== STRING || checked[k] === 1) continue;
      for (let i = this.start[k]; i < this.end[k]; i++) {
        const c = raw.charCodeAt(i);
        if (c < 32 || c > 126) return false;
      }
    }
    return true;
  }

  /** Reads the payload object at `i` into the span tables; index after it, or -1. */
  private payload(raw: string, i: number): number {
    if (raw.charCodeAt(i) !== 123 /* { */) return -1;
    const n = raw.length;
    i = skipWs(raw, i + 1, n);
    if (raw.charCodeAt(i) === 125) return i + 1;
    // whitespace (every JSON whitespace character is ≤ 32, every token character above) is skipped only
    // where a character ≤ 32 is found: one comparison per token on Binance's compact frames
    for (;;) {
      // a one-letter key
      if (raw.charCodeAt(i) !== QUOTE || raw.charCodeAt(i + 2) !== QUOTE) return -1;
      const key = raw.charCodeAt(i + 1);
      if (!isLetter(key) || this.kind[key] !== 0) return -1;
      i += 3;
      if (raw.charCodeAt(i) <= 32) i = skipWs(raw, i, n);
      if (raw.charCodeAt(i) !== 58 /* : */) return -1;
      let c = raw.charCodeAt(++i);
      if (c <= 32) {
        i = skipWs(raw, i, n);
        c = raw.charCodeAt(i);
      }
      let e: number;
      let kind: number;
      if (c === QUOTE) {
        e = raw.indexOf('"', ++i); // no backslash in the frame: the next quote closes the string
        if (e < 0) return -1;
        kind = STRING;
      } else if (c >= 48 && c <= 57) {
        e = i + 1;
        let d = raw.charCodeAt(e);
        while (d >= 48 && d <= 57) d = raw.charCodeAt(++e);
        // no leading zero, no fraction or exponent (JSON.stringify would not give the same text back)
        if (e - i > MAX_INT_DIGITS || (c === 48 && e - i > 1) || d === 46 || d === 101 || d === 69) return -1;
        kind = NUMBER;
      } else if (c === 116 && raw.startsWith("true", i)) {
        e = i + 4;
        kind = TRUE;
      } else if (c === 102 && raw.startsWith("false", i)) {
        e = i + 5;
        kind = FALSE;
      } else if (c === 110 && raw.startsWith("null", i)) {
        e = i + 4;
        kind = NULL;
      } else return -1;
      this.start[key] = i;
      this.end[key] = e;
      this.kind[key] = kind;
      this.order[this.count++] = key;
      i = kind === STRING ? e + 1 : e;
      let sep = raw.charCodeAt(i);
      if (sep <= 32) {
        i = skipWs(raw, i, n);
        sep = raw.charCodeAt(i);
      }
      i++;
      if (sep === 125 /* } */) return i;
      if (sep !== 44 /* , */) return -1;
      if (raw.charCodeAt(i) <= 32) i = skipWs(raw, i, n);
    }
  }

  /** True when key `k` holds a string equal to `text`. */
  private stringIs(raw: string, k: number, text: string): boolean {
    return (
      this.kind[k] === STRING &&
      this.end[k] - this.start[k] === text.length &&
      raw.startsWith(text, this.start[k])
    );
  }

  /** The integer of a NUMBER key (at most 15 digits, so exact). */
  private intAt(raw: string, k: number): number {
    let v = 0;
    for (let i = this.start[k]; i < this.end[k]; i++) v = v * 10 + (raw.charCodeAt(i) - 48);
    return v;
  }

  /**
   * The canonical DECIMAL(18,8) string of a STRING key holding a non-negative decimal: Binance's own
   * canonical form (`"61837.63000000"`) checked digit by digit and taken as it is, any other through
   * `parseNonNegativeDecimal`; null when that rejects it (exponent, > 10 integer digits, a non-zero digit
   * past the 8th place, a negative value, ...).
   */
  private decimalAt(raw: string, k: number): string | null {
    if (this.kind[k] !== STRING) return null;
    const s = this.start[k];
    const e = this.end[k];
    const len = e - s;
    // already canonical (what Binance sends): 1..10 integer digits, no leading zero, '.', 8 digits
    const dot = e - 9;
    if (len >= 10 && len <= 19 && raw.charCodeAt(dot) === 46 && (dot === s + 1 || raw.charCodeAt(s) !== 48)) {
      let ok = true;
      for (let i = s; i < e; i++) {
        const c = raw.charCodeAt(i);
        if (i !== dot && (c < 48 || c > 57)) {
          ok = false;
          break;
        }
      }
      if (ok) return raw.slice(s, e);
    }
    // any other form ("61837.63", "5", ".5", "0.0020000000"): the general path's own exact parser, so
    // both paths agree by construction; what it rejects is the general path's to dead-letter
    try {
      return parseNonNegativeDecimal(raw.slice(s, e));
    } catch {
      return null;
    }
  }

  /** The message id of stream `st` and the venue id held by NUMBER key `k`. */
  private messageId(raw: string, st: FastStream, k: number): string {
    const bytes = st.idBytes;
    let j = st.idPrefixLength;
    for (let i = this.start[k]; i < this.end[k]; i++) bytes[j++] = raw.charCodeAt(i);
    return messageIdOfBytes(bytes, j);
  }

  /** vendor_data: every key not mapped for the stream's type, named through `names`, in frame order. */
  private vendor(raw: string, mapped: Uint8Array, names: string[]): Record<string, string> {
    // the spot trade's own fields (e, E, six mapped ones, M), in Binance's order: one object literal
    // instead of keyed stores. The record's checks found the six mapped keys, so the rest are e, E, M.
    if (
      names === this.tradeNames &&
      this.count === 9 &&
      this.kind[69] === NUMBER &&
      this.kind[101] === STRING
    ) {
      const o = this.order;
      const M = this.kind[77];
      if (o[0] === 101 && o[1] === 69 && o[8] === 77 && (M === TRUE || M === FALSE)) {
        return {
          event_type: raw.slice(this.start[101], this.end[101]), // checked: "trade" or "aggTrade"
          event_time: raw.slice(this.start[69], this.end[69]),
          is_best_match: M === TRUE ? "true" : "false",
        };
      }
    }
    if (this.count === 6 && names === this.quoteNames && this.kind[101] === 0 && this.kind[69] === 0) {
      return {}; // spot bookTicker: u, s, b, B, a, A (the six the record's checks found), all mapped
    }
    const out: Record<string, string> = {};
    for (let j = 0; j < this.count; j++) {
      const k = this.order[j];
      if (mapped[k] === 1) continue;
      const kind = this.kind[k];
      out[names[k]] =
        kind === TRUE
          ? "true"
          : kind === FALSE
            ? "false"
            : kind === NULL
              ? "null"
              : raw.slice(this.start[k], this.end[k]);
    }
    return out;
  }

  /** The record of a scanned frame of stream `st`, or null when the general path must decide. */
  private record(
    raw: string,
    st: FastStream,
    receivedAtUs: number,
    seq: SequenceTracker,
  ): TradeV2 | QuoteV2 | null {
    const K_e = 101;
    const K_s = 115;
    // event type: `e` names it; spot bookTicker sends none
    const type =
      this.kind[K_e] === 0
        ? "bookTicker"
        : this.stringIs(raw, K_e, "trade")
          ? "trade"
          : this.stringIs(raw, K_e, "aggTrade")
            ? "aggTrade"
            : this.stringIs(raw, K_e, "bookTicker")
              ? "bookTicker"
              : null;
    if (type !== st.type || !this.stringIs(raw, K_s, st.symbol)) return null;
    if (type === "bookTicker") return this.quote(raw, st, receivedAtUs, seq);
    const K_id = type === "trade" ? 116 /* t */ : 97; /* a */
    const K_T = 84;
    const K_m = 109;
    if (this.kind[K_id] !== NUMBER || this.kind[K_T] !== NUMBER) return null;
    const m = this.kind[K_m];
    if (m !== TRUE && m !== FALSE) return null;
    const tradeTimeMs = this.intAt(raw, K_T);
    if (tradeTimeMs > MAX_TIME_MS) return null;
    const price = this.decimalAt(raw, 112 /* p */);
    const quantity = this.decimalAt(raw, 113 /* q */);
    if (price === null || quantity === null || price === "0.00000000" || quantity === "0.00000000")
      return null;
    if (!this.plainStrings(raw, CHECKED_TRADE)) return null;
    const id = this.intAt(raw, K_id);
    const idText = raw.slice(this.start[K_id], this.end[K_id]);
    const record: TradeV2 = {
      message_id: this.messageId(raw, st, K_id),
      trade_id: `BINANCE-${idText}`,
      symbol: st.symbol,
      exchange: "BINANCE",
      asset_class: "crypto",
      timestamp: tradeTimeMs * 1000,
      price,
      quantity,
      currency: st.currency,
      side: m === TRUE ? "SELL" : "BUY",
      trade_conditions: [],
      source_sequence: id,
      ingestion_timestamp: receivedAtUs,
      platform_sequence: seq.nextPlatformSequence(st.symbol),
      vendor_data: this.vendor(raw, this.mapped[type], this.tradeNames),
    };
    return record;
  }

  private quote(raw: string, st: FastStream, receivedAtUs: number, seq: SequenceTracker): QuoteV2 | null {
    const K_u = 117;
    if (this.kind[K_u] !== NUMBER) return null;
    const bid_price = this.decimalAt(raw, 98 /* b */);
    const bid_quantity = this.decimalAt(raw, 66 /* B */);
    const ask_price = this.decimalAt(raw, 97 /* a */);
    const ask_quantity = this.decimalAt(raw, 65 /* A */);
    if (bid_price === null || bid_quantity === null || ask_price === null || ask_quantity === null)
      return null;
    if (!this.plainStrings(raw, CHECKED_QUOTE)) return null;
    // venue time: `T ?? E` (futures send them, spot does not), used when a whole ms count in range
    const K_T = 84;
    const K_E = 69;
    const t = this.kind[K_T] !== 0 && this.kind[K_T] !== NULL ? K_T : K_E;
    let timestamp = receivedAtUs;
    if (this.kind[t] === NUMBER) {
      const ms = this.intAt(raw, t);
      if (ms <= MAX_TIME_MS) timestamp = ms * 1000;
    }
    return binanceQuote(
      this.messageId(raw, st, K_u),
      st.symbol,
      timestamp,
      bid_price,
      bid_quantity,
      ask_price,
      ask_quantity,
      st.currency,
      this.intAt(raw, K_u),
      receivedAtUs,
      seq.nextPlatformSequence(st.symbol),
      this.vendor(raw, this.mapped.bookTicker, this.quoteNames),
    );
  }
}

/**
 * A Binance bookTicker's {@link QuoteV2} from its read fields: the one literal both paths build, so
 * their records keep the same fields in the same order. Prices and quantities are DECIMAL(18,8)
 * strings, `timestamp` and `receivedAtUs` µs since epoch, `u` the order book update id.
 */
export function binanceQuote(
  message_id: string,
  symbol: string,
  timestamp: number,
  bid_price: string,
  bid_quantity: string,
  ask_price: string,
  ask_quantity: string,
  currency: string,
  u: number,
  receivedAtUs: number,
  platform_sequence: number,
  vendor_data: Record<string, string>,
): QuoteV2 {
  return {
    message_id,
    symbol,
    exchange: "BINANCE",
    asset_class: "crypto",
    timestamp,
    bid_price,
    bid_quantity,
    ask_price,
    ask_quantity,
    currency,
    source_sequence: u,
    ingestion_timestamp: receivedAtUs,
    platform_sequence,
    vendor_data,
  };
}
