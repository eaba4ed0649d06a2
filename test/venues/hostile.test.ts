/**
 * Hostile venue input, one probe at a time, on each venue's normalizer: deep nesting, huge frames and
 * values, unsubscribed or mismatched symbols, garbage symbols, zero price / quantity, conflicting
 * duplicates, ids going backwards, lone surrogates. Each must end as a dead letter with a reason (or,
 * for a regression, a stored record plus a reported anomaly), never a throw.
 */
import { describe, expect, it } from "vitest";
import type { TradeV2 } from "../../src/schema/records.js";
import { TradeV2Schema } from "../../src/schema/validators.js";
import { BinanceNormalizer } from "../../src/venues/binance.js";
import { CoinbaseNormalizer } from "../../src/venues/coinbase.js";
import { KrakenNormalizer } from "../../src/venues/kraken.js";
import { MAX_DEAD_LETTER_RAW_CHARS, MAX_DEAD_LETTERS_PER_FRAME } from "../../src/venues/mapping.js";
import {
  type FrameNormalizer,
  ID_DUPLICATE,
  ID_NEW,
  ID_REGRESSION,
  type NormalizedSink,
  TradeIdMemory,
  tradeContent,
  type VenueAnomaly,
} from "../../src/venues/venue.js";
import { collectingSink } from "./recording.js";

const AT = 1_795_000_000_000_000;

function harness(make: (sink: NormalizedSink) => FrameNormalizer) {
  const { sink, out } = collectingSink();
  const anomalies: VenueAnomaly[] = [];
  sink.anomaly = (a) => anomalies.push(a);
  const n = make(sink);
  return { out, anomalies, feed: (raw: string) => n.normalize(raw, AT) };
}

const deep = (depth: number, leaf = "1") => "[".repeat(depth) + leaf + "]".repeat(depth);

describe("Binance: hostile frames", () => {
  const SUB = { symbols: ["BTCUSDT", "ETHUSDT"], streams: ["trade", "aggTrade", "bookTicker"] };
  const bin = () => harness((s) => new BinanceNormalizer(s, SUB));
  const trade = (fields: Record<string, unknown> = {}, stream = "btcusdt@trade") =>
    JSON.stringify({
      stream,
      data: {
        e: "trade",
        E: 1,
        s: "BTCUSDT",
        t: 100,
        p: "61837.63",
        q: "0.02",
        T: 1723161255342,
        m: true,
        M: true,
        ...fields,
      },
    });
  const withRaw = (json: string, key: string, rawValue: string) =>
    json.replace(/\}\}$/, `,"${key}":${rawValue}}}`);

  it("5,000-deep nesting in `e` and 20,000-deep in an unmapped field: dead letters naming the bound", () => {
    const h = bin();
    h.feed(`{"stream":"btcusdt@trade","data":{"e":${deep(5000)},"s":"BTCUSDT"}}`);
    h.feed(withRaw(trade(), "x", deep(20_000)));
    expect(h.out.trades).toEqual([]);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "unknown event type <value nested deeper than 32 levels>",
      'vendor field "x" is nested deeper than 32 levels',
    ]);
  });

  it("a vendor value of 33 levels or over 4096 characters is rejected, not cut; 32 levels are kept", () => {
    const h = bin();
    h.feed(withRaw(trade({ t: 1 }), "x", deep(31)));
    expect(h.out.trades[0].vendor_data.x).toBe(deep(31));
    h.feed(withRaw(trade({ t: 2 }), "x", deep(33)));
    h.feed(trade({ t: 3, x: "y".repeat(4097) }));
    expect(h.out.trades).toHaveLength(1);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      'vendor field "x" is nested deeper than 32 levels',
      'vendor field "x" is larger than 4096 characters (4097)',
    ]);
  });

  it("a 5 MB frame is a dead letter keeping its whole text; one past 8 Mi characters keeps the first 8 Mi", () => {
    const h = bin();
    const raw = trade({ x: "y".repeat(5 * 1024 * 1024) });
    h.feed(raw);
    expect(h.out.trades).toEqual([]);
    const [d] = h.out.deadLetters;
    expect(d.reason).toBe(`frame of ${raw.length} characters is larger than the 65536-character bound`);
    expect(d.raw).toBe(raw);
    expect(d.source).toBe("binance:btcusdt@trade");
    const huge = trade({ x: "y".repeat(9 * 1024 * 1024) });
    h.feed(huge);
    const e = h.out.deadLetters[1];
    expect(e.reason).toBe(
      `frame of ${huge.length} characters is larger than the 65536-character bound (raw text cut to its first ${MAX_DEAD_LETTER_RAW_CHARS} of ${huge.length} characters)`,
    );
    expect(e.raw).toBe(huge.slice(0, MAX_DEAD_LETTER_RAW_CHARS));
    expect(MAX_DEAD_LETTER_RAW_CHARS).toBe(8 * 1024 * 1024);
  });

  it("unsubscribed symbols, mismatched envelopes and garbage symbols are dead letters", () => {
    const h = bin();
    const payload = (s: string, e = "trade") =>
      JSON.stringify({ e, E: 1, s, t: 7, p: "1.5", q: "2", T: 1723161255342, m: false });
    h.feed(payload("XRPUSDT")); // no envelope, not subscribed
    h.feed(JSON.stringify({ stream: "btcusdt@trade", data: JSON.parse(payload("ETHUSDT")) }));
    h.feed(JSON.stringify({ stream: "btcusdt@trade", data: JSON.parse(payload("BTCUSDT", "aggTrade")) }));
    h.feed(payload("BTC'; DROP TABLE trades_v2;--USDT"));
    h.feed(JSON.stringify({ stream: "xrpusdt@trade", data: JSON.parse(payload("XRPUSDT")) }));
    expect(h.out.trades).toEqual([]);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "frame for unsubscribed stream xrpusdt@trade (payload without envelope)",
      "symbol (s) ETHUSDT does not match stream btcusdt@trade",
      "aggTrade payload in stream btcusdt@trade",
      `symbol (s) is not a Binance symbol like BTCUSDT: "BTC'; DROP TABLE trades_v2;--USDT"`,
      "frame for unsubscribed stream xrpusdt@trade",
    ]);
    // a subscribed payload without envelope (raw `/ws/` stream) is still read
    h.feed(payload("ETHUSDT"));
    expect(h.out.trades.map((t) => t.symbol)).toEqual(["ETHUSDT"]);
  });

  it("zero price or zero quantity on a trade is a dead letter", () => {
    const h = bin();
    h.feed(trade({ t: 1, p: "0.00000000" }));
    h.feed(trade({ t: 2, q: "0" }));
    expect(h.out.trades).toEqual([]);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual(["price (p) is zero", "quantity (q) is zero"]);
  });

  it("a trade id re-sent with other content is a dead letter with both versions; an exact repeat is not", () => {
    const h = bin();
    h.feed(trade({ t: 10 }));
    h.feed(trade({ t: 10, E: 2 })); // exact duplicate (reconnect overlap; event time is not content)
    h.feed(trade({ t: 10, p: "61900" }));
    h.feed(trade({ t: 10, m: false }));
    expect(h.out.trades.map((t) => t.trade_id)).toEqual(["BINANCE-10", "BINANCE-10"]);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "conflicting duplicate of trade id 10: first seen with price 61837.63000000, quantity 0.02000000, time 1723161255342000 µs, side SELL; this frame has price 61900.00000000, quantity 0.02000000, time 1723161255342000 µs, side SELL",
      "conflicting duplicate of trade id 10: first seen with price 61837.63000000, quantity 0.02000000, time 1723161255342000 µs, side SELL; this frame has price 61837.63000000, quantity 0.02000000, time 1723161255342000 µs, side BUY",
    ]);
    expect(h.anomalies.map((a) => a.kind)).toEqual(["conflicting_duplicate", "conflicting_duplicate"]);
  });

  it("a trade id below the last seen is stored and reported as a sequence regression", () => {
    const h = bin();
    for (const t of [20, 21, 15, 22]) h.feed(trade({ t }));
    expect(h.out.trades.map((t) => t.source_sequence)).toEqual([20, 21, 15, 22]);
    expect(h.out.deadLetters).toEqual([]);
    expect(h.anomalies).toEqual([
      { kind: "sequence_regression", symbol: "BTCUSDT", dataType: "trades", id: 15, last: 21 },
    ]);
  });

  it("a lone surrogate is a dead letter naming the field; a surrogate pair is kept", () => {
    const h = bin();
    h.feed(withRaw(trade({ t: 1 }), "x", '"\\ud800"'));
    h.feed(withRaw(trade({ t: 2 }), "x", '"a\\uDFFFb"'));
    h.feed(withRaw(trade({ t: 3 }), "x", '"\\ud83d\\ude00"'));
    h.feed(trade({ t: 4 }).replace("}}", ',"x":"\ud800"}}')); // a raw lone surrogate in the text itself
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "field data.x is not well-formed UTF-16 (lone surrogate)",
      "field data.x is not well-formed UTF-16 (lone surrogate)",
      "frame text is not well-formed UTF-16 (lone surrogate) (lone surrogates of the raw text replaced by U+FFFD)",
    ]);
    expect(h.out.trades.map((t) => t.vendor_data.x)).toEqual(["😀"]);
    // deep nesting around a lone surrogate: linear work, the path shows its innermost levels
    h.feed(withRaw(trade({ t: 5 }), "x", `${"[".repeat(30_000)}"\\ud800"${"]".repeat(30_000)}`));
    expect(h.out.deadLetters.at(-1)!.reason).toBe(
      `field …${"[0]".repeat(40)} is not well-formed UTF-16 (lone surrogate)`,
    );
    expect(h.out.deadLetters[2].raw).toContain('"x":"\ufffd"');
  });
});

describe("Coinbase: hostile frames", () => {
  const SUB = { symbols: ["BTC-USD"], streams: ["market_trades"] };
  const cb = () => harness((s) => new CoinbaseNormalizer(s, SUB));
  let seq = 0;
  const trades = (list: Record<string, unknown>[], channel = "market_trades") =>
    JSON.stringify({
      channel,
      client_id: "",
      timestamp: "2026-08-09T10:00:00.1Z",
      sequence_num: seq++,
      events: [{ type: "update", trades: list }],
    });
  const t = (fields: Record<string, unknown> = {}) => ({
    product_id: "BTC-USD",
    trade_id: "500",
    price: "60000.5",
    size: "0.1",
    time: "2026-08-09T10:00:00.05Z",
    side: "BUY",
    ...fields,
  });

  it("dead-letters unsubscribed products and channels, unknown channels and zero prices", () => {
    const h = cb();
    h.feed(trades([t({ product_id: "ETH-USD" }), t({ trade_id: "501", price: "0" })]));
    h.feed(JSON.stringify({ channel: "ticker", sequence_num: seq++, events: [] }));
    h.feed(JSON.stringify({ channel: "x".repeat(100), sequence_num: seq++ }));
    h.feed(trades([t({ trade_id: "502" })]));
    expect(h.out.trades.map((r) => r.trade_id)).toEqual(["COINBASE-502"]);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "trade 0.0: product ETH-USD is not subscribed",
      "trade 0.1: price (price) is zero",
      "channel ticker is not subscribed",
      `unknown channel "${"x".repeat(100)}"`,
    ]);
    expect(h.out.deadLetters[3].source).toBe(`coinbase:${"x".repeat(64)}`);
  });

  it("conflicting duplicate trade ids are dead letters; exact repeats (snapshot overlap) are not", () => {
    const h = cb();
    h.feed(trades([t()]));
    h.feed(trades([t()]));
    h.feed(trades([t({ size: "0.2" })]));
    expect(h.out.trades).toHaveLength(2);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "trade 0.0: conflicting duplicate of trade id 500: first seen with price 60000.50000000, quantity 0.10000000, time 1786269600050000 µs, side SELL; this frame has price 60000.50000000, quantity 0.20000000, time 1786269600050000 µs, side SELL",
    ]);
    expect(h.anomalies.map((a) => a.kind)).toEqual(["conflicting_duplicate"]);
  });

  it("deep nesting, lone surrogates and a thousand bad trades in one frame end as bounded dead letters", () => {
    const h = cb();
    h.feed(trades([t({ extra: 0 })]).replace('"extra":0', `"extra":${deep(5000)}`));
    h.feed(trades([t({ trade_id: "600" })]).replace('"side":"BUY"', '"side":"BUY","z":"\\udc00"'));
    const big = trades(Array.from({ length: 1000 }, (_, i) => t({ trade_id: `${700 + i}`, price: "0" })));
    h.feed(big);
    expect(h.out.trades).toEqual([]);
    const reasons = h.out.deadLetters.map((d) => d.reason);
    expect(reasons[0]).toBe('trade 0.0: vendor field "extra" is nested deeper than 32 levels');
    expect(reasons[1]).toBe("field events[0].trades[0].z is not well-formed UTF-16 (lone surrogate)");
    expect(reasons).toHaveLength(2 + MAX_DEAD_LETTERS_PER_FRAME + 1);
    expect(reasons.at(-1)).toBe(
      `${1000 - MAX_DEAD_LETTERS_PER_FRAME} more records of this frame rejected; the first of them: ` +
        `trade 0.${MAX_DEAD_LETTERS_PER_FRAME}: price (price) is zero`,
    );
    // every dead letter of the frame holds its whole text (113,836 characters, under the 8 Mi bound)
    expect(big.length).toBeLessThan(MAX_DEAD_LETTER_RAW_CHARS);
    for (const d of h.out.deadLetters.slice(2)) expect(d.raw).toBe(big);
  });

  it("a frame without trades still has an outcome (a control frame)", () => {
    const h = cb();
    h.feed(trades([]));
    expect(h.out.control).toEqual(["empty:market_trades"]);
  });
});

describe("Kraken: hostile frames", () => {
  it("v1: unsubscribed pair or channel, unknown channel names and zero volume are dead letters", () => {
    const h = harness((s) => new KrakenNormalizer(s, { symbols: ["XBT/USD"], streams: ["trade"] }));
    const tr = (pair: string, price = "50000.1", vol = "0.5") =>
      JSON.stringify([1, [[price, vol, "1618678142.557535", "b", "l", ""]], "trade", pair]);
    h.feed(tr("ETH/USD"));
    h.feed(JSON.stringify([2, { a: ["1", 1, "1"], b: ["1", 1, "1"] }, "ticker", "XBT/USD"]));
    h.feed(JSON.stringify([3, {}, "drop table", "XBT/USD"]));
    h.feed(tr("XBT/USD", "50000.1", "0.00000000"));
    h.feed(tr("XBT/USD"));
    expect(h.out.trades.map((r) => r.symbol)).toEqual(["XBT/USD"]);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "pair ETH/USD is not subscribed",
      "channel ticker is not subscribed",
      'unknown channel "drop table"',
      "trade 0: quantity (1) is zero",
    ]);
  });

  it("v2: conflicting duplicates are dead letters, regressions stored and reported, other pairs rejected", () => {
    const h = harness((s) => new KrakenNormalizer(s, { symbols: ["BTC/USD"], streams: ["trade"] }));
    const tr = (id: number, price = "65000.5", symbol = "BTC/USD") =>
      `{"channel":"trade","type":"update","data":[{"symbol":"${symbol}","side":"buy","price":${price},"qty":0.25,"ord_type":"market","trade_id":${id},"timestamp":"2026-01-01T00:00:00.123456Z"}]}`;
    h.feed(tr(100));
    h.feed(tr(101));
    h.feed(tr(101));
    h.feed(tr(101, "65001"));
    h.feed(tr(90));
    h.feed(tr(102, "65000.5", "ETH/USD"));
    h.feed(tr(103, "0"));
    expect(h.out.trades.map((r) => r.source_sequence)).toEqual([100, 101, 101, 90]);
    expect(h.out.trades.every((r) => TradeV2Schema.safeParse(r).success)).toBe(true);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      "conflicting duplicate of trade id 101: first seen with price 65000.50000000, quantity 0.25000000, time 1767225600123456 µs, side BUY; this frame has price 65001.00000000, quantity 0.25000000, time 1767225600123456 µs, side BUY",
      "trade 0: pair ETH/USD is not subscribed",
      "trade 0: price (price) is zero",
    ]);
    expect(h.anomalies).toEqual([
      { kind: "conflicting_duplicate", symbol: "BTC/USD", dataType: "trades", id: 101, last: null },
      { kind: "sequence_regression", symbol: "BTC/USD", dataType: "trades", id: 90, last: 101 },
    ]);
  });

  it("status values and channel names outside Kraken's lists do not become new control kinds", () => {
    const h = harness((s) => new KrakenNormalizer(s, { symbols: ["XBT/USD"], streams: ["trade"] }));
    h.feed('{"event":"systemStatus","status":"x-1"}');
    h.feed('{"event":"systemStatus","status":"maintenance"}');
    h.feed('{"channel":"weird-42","data":[]}');
    h.feed('{"method":"evil","result":{}}');
    expect(h.out.control).toEqual(["system_status_unknown", "system_status_maintenance"]);
    expect(h.out.deadLetters.map((d) => d.reason)).toEqual([
      'unknown channel "weird-42"',
      'unknown method "evil"',
    ]);
  });
});

describe("TradeIdMemory", () => {
  const t = (price: string) => ({ price, quantity: "1.00000000", timestamp: 5, side: "BUY" }) as TradeV2;

  it("remembers the last `perKey` ordered ids: older ones going backwards are regressions, not conflicts", () => {
    const m = new TradeIdMemory(8);
    for (let id = 100; id < 120; id++) expect(m.check("k", id, t("1.00000000"), id)).toBe(ID_NEW);
    expect(m.check("k", 119, t("1.00000000"), 119)).toBe(ID_DUPLICATE);
    expect(m.check("k", 113, t("2.00000000"), 113)).toBe(tradeContent(t("1.00000000")));
    expect(m.check("k", 105, t("2.00000000"), 105)).toBe(ID_REGRESSION); // forgotten: below the last, stored
    expect(m.last("k")).toBe(119);
    expect(m.check("other", 105, t("2.00000000"), 105)).toBe(ID_NEW); // keys are independent
  });

  it("keeps unordered ids (Coinbase) in a ring of `perKey` slots", () => {
    const m = new TradeIdMemory(4);
    for (const id of ["a", "b", "c", "d", "e"]) expect(m.check("k", id, t("1.00000000"), null)).toBe(ID_NEW);
    expect(m.check("k", "e", t("1.00000000"), null)).toBe(ID_DUPLICATE);
    expect(m.check("k", "b", t("3.00000000"), null)).toBe(tradeContent(t("1.00000000")));
    expect(m.check("k", "a", t("3.00000000"), null)).toBe(ID_NEW); // "a" was forgotten first
  });
});
