import { describe, expect, it } from "vitest";
import type { BookChangeV2 } from "../../src/schema/books.js";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../../src/schema/records.js";
import { QuoteV2Schema, TradeV2Schema } from "../../src/schema/validators.js";
import { BinanceNormalizer, binance } from "../../src/venues/binance.js";
import type { NormalizedSink } from "../../src/venues/venue.js";
import { framesWhere, sharedData } from "../helpers/capture.js";

function collector() {
  const out = {
    trades: [] as { r: TradeV2; t: string }[],
    quotes: [] as QuoteV2[],
    dead: [] as DeadLetter[],
    gaps: [] as SequenceGap[],
    control: [] as string[],
  };
  const sink: NormalizedSink = {
    trade: (r, t) => out.trades.push({ r, t }),
    quote: (q) => out.quotes.push(q),
    deadLetter: (d) => out.dead.push(d),
    gap: (g) => out.gaps.push(g),
    control: (k) => out.control.push(k),
  };
  return { out, sink };
}

const SUB = { symbols: ["BTCUSDT", "ETHUSDT", "NKNUSDT"], streams: ["trade", "aggTrade", "bookTicker"] };
const RECEIVED = 1_795_000_000_123_456;

describe("Binance trade mapper on real frames", () => {
  it("maps every field of the first recorded BTCUSDT trade", async () => {
    const [raw] = await framesWhere(
      sharedData("binance-spot/btcusdt_20240808.gz"),
      (r) => r.includes("@trade"),
      1,
    );
    const { out, sink } = collector();
    new BinanceNormalizer(sink, SUB).normalize(raw, RECEIVED);
    expect(out.trades).toHaveLength(1);
    const { r, t } = out.trades[0];
    expect(t).toBe("trades");
    // {"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}
    expect(r).toMatchObject({
      trade_id: "BINANCE-3735683259",
      symbol: "BTCUSDT",
      exchange: "BINANCE",
      asset_class: "crypto",
      timestamp: 1723161255342000,
      price: "61837.63000000",
      quantity: "0.02000000",
      currency: "USDT",
      side: "SELL", // m (buyer is maker) true → the seller was the aggressor
      trade_conditions: [],
      source_sequence: 3735683259,
      ingestion_timestamp: RECEIVED,
      vendor_data: { event_type: "trade", event_time: "1723161255343", is_best_match: "true" },
    });
    expect(TradeV2Schema.safeParse(r).success).toBe(true);
  });

  it("maps buyer-taker trades to BUY and keeps decimals exact", async () => {
    const frames = await framesWhere(
      sharedData("binance-spot/ethusdt_20240808.gz"),
      (r) => r.includes("@trade") && r.includes('"m":false'),
      50,
    );
    const { out, sink } = collector();
    const n = new BinanceNormalizer(sink, SUB);
    for (const f of frames) n.normalize(f, RECEIVED);
    expect(out.trades).toHaveLength(50);
    for (let i = 0; i < frames.length; i++) {
      const d = JSON.parse(frames[i]).data;
      const r = out.trades[i].r;
      expect(r.side).toBe("BUY");
      // the stored string is the venue's string (already 8 places): nothing went through a float
      expect(r.price).toBe(d.p);
      expect(r.quantity).toBe(d.q);
      expect(r.currency).toBe("USDT");
    }
  });

  it("maps aggTrade (aggregate id a) with its trade id range in vendor_data", async () => {
    const lines = await framesWhere(
      sharedData("cryptofeed/BINANCE.jsonl.gz"),
      (r) => r.includes('aggTrade\\"'),
      1,
    );
    const raw = JSON.parse(lines[0]).data as string;
    const { out, sink } = collector();
    new BinanceNormalizer(sink, SUB).normalize(raw, RECEIVED);
    const d = JSON.parse(raw).data;
    expect(out.trades).toHaveLength(1);
    expect(out.trades[0].t).toBe("aggtrades");
    expect(out.trades[0].r).toMatchObject({
      trade_id: `BINANCE-${d.a}`,
      source_sequence: d.a,
      price: d.p,
      quantity: d.q,
      side: d.m ? "SELL" : "BUY",
      vendor_data: { event_type: "aggTrade", first_trade_id: String(d.f), last_trade_id: String(d.l) },
    });
  });
});

describe("Binance bookTicker mapper", () => {
  it("maps best bid/ask from a real frame; timestamp falls back to receipt time", async () => {
    const [raw] = await framesWhere(
      sharedData("binance-spot/btcusdt_20240808.gz"),
      (r) => r.includes("@bookTicker"),
      1,
    );
    const { out, sink } = collector();
    new BinanceNormalizer(sink, SUB).normalize(raw, RECEIVED);
    // {"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}
    expect(out.quotes).toHaveLength(1);
    const q = out.quotes[0];
    expect(q).toMatchObject({
      symbol: "BTCUSDT",
      exchange: "BINANCE",
      bid_price: "61837.63000000",
      bid_quantity: "3.78826000",
      ask_price: "61837.64000000",
      ask_quantity: "1.54698000",
      currency: "USDT",
      source_sequence: 50093239212,
      timestamp: RECEIVED,
      ingestion_timestamp: RECEIVED,
      vendor_data: {},
    });
    expect(QuoteV2Schema.safeParse(q).success).toBe(true);
  });
});

describe("deterministic ids, sequences and gaps", () => {
  it("gives the same message_id to the same trade received twice, and a rising platform_sequence", async () => {
    const frames = await framesWhere(
      sharedData("binance-spot/btcusdt_20240808.gz"),
      (r) => r.includes("@trade"),
      3,
    );
    const a = collector();
    const b = collector();
    const na = new BinanceNormalizer(a.sink, SUB);
    const nb = new BinanceNormalizer(b.sink, SUB);
    for (const f of frames) {
      na.normalize(f, RECEIVED);
      nb.normalize(f, RECEIVED + 5);
    }
    expect(a.out.trades.map((t) => t.r.message_id)).toEqual(b.out.trades.map((t) => t.r.message_id));
    const ps = a.out.trades.map((t) => t.r.platform_sequence);
    expect(ps[1]).toBe(ps[0] + 1);
    expect(ps[2]).toBe(ps[1] + 1);
  });

  it("reports a trade-id gap with the missing range, and none on duplicates", async () => {
    const frames = await framesWhere(
      sharedData("binance-spot/btcusdt_20240808.gz"),
      (r) => r.includes("@trade"),
      6,
    );
    const ids = frames.map((f) => JSON.parse(f).data.t as number);
    const { out, sink } = collector();
    const n = new BinanceNormalizer(sink, SUB);
    n.normalize(frames[0], RECEIVED);
    n.normalize(frames[1], RECEIVED);
    n.normalize(frames[1], RECEIVED); // duplicate: not a gap
    n.normalize(frames[4], RECEIVED); // frames 2 and 3 missing
    n.normalize(frames[5], RECEIVED);
    expect(out.gaps).toEqual([
      expect.objectContaining({
        symbol: "BTCUSDT",
        data_type: "trades",
        from_sequence: ids[2],
        to_sequence: ids[3],
      }),
    ]);
  });
});

describe("gap detection resumed from the store", () => {
  it("before any frame: the first new id past the stored one is a gap; read late: the gap is reported then", async () => {
    const frames = await framesWhere(
      sharedData("binance-spot/btcusdt_20240808.gz"),
      (r) => r.includes("@trade"),
      3,
    );
    const ids = frames.map((f) => JSON.parse(f).data.t as number);
    const stored = [
      { exchange: "BINANCE", symbol: "BTCUSDT", data_type: "trades" as const, sequence: ids[0] - 10 },
    ];
    // at start, as k2 run does when the store answers in time
    const early = collector();
    const a = new BinanceNormalizer(early.sink, SUB);
    a.resumeSequences(stored);
    expect(early.out.gaps).toEqual([]);
    a.normalize(frames[0], RECEIVED);
    expect(early.out.gaps).toEqual([
      expect.objectContaining({ from_sequence: ids[0] - 9, to_sequence: ids[0] - 1, detected_at: RECEIVED }),
    ]);
    // late: frames first, then the store's answer — the same range, reported when it comes
    const late = collector();
    const b = new BinanceNormalizer(late.sink, SUB);
    for (const f of frames) b.normalize(f, RECEIVED);
    expect(late.out.gaps).toEqual([]);
    b.resumeSequences(stored, RECEIVED + 7);
    expect(late.out.gaps).toEqual([
      expect.objectContaining({
        symbol: "BTCUSDT",
        data_type: "trades",
        from_sequence: ids[0] - 9,
        to_sequence: ids[0] - 1,
        detected_at: RECEIVED + 7,
      }),
    ]);
    // a stored id the frames continue from contiguously is no gap, early or late
    const none = collector();
    const c = new BinanceNormalizer(none.sink, SUB);
    c.normalize(frames[0], RECEIVED);
    c.resumeSequences([{ ...stored[0], sequence: ids[0] - 1 }], RECEIVED);
    c.normalize(frames[1], RECEIVED);
    expect(none.out.gaps).toEqual([]);
  });
});

describe("dead letters", () => {
  const good =
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}';
  it.each([
    ["broken JSON", good.slice(0, 40), "malformed JSON"],
    ["missing p", good.replace('"p":"61837.63000000",', ""), "missing price (p)"],
    [
      "p not a decimal",
      good.replace('"p":"61837.63000000"', '"p":"abc"'),
      'price (p): not a decimal string: "abc"',
    ],
    [
      "9 non-zero decimals",
      good.replace('"p":"61837.63000000"', '"p":"61837.630000001"'),
      "price (p): more than 8 significant fractional digits for DECIMAL(18,8)",
    ],
    [
      "11 integer digits",
      good.replace('"q":"0.02000000"', '"q":"12345678901.5"'),
      "quantity (q): too many integer digits",
    ],
    [
      "float price",
      good.replace('"p":"61837.63000000"', '"p":61837.63'),
      "price (p): not a decimal string: 61837.63",
    ],
    ["unknown event type", good.replace('"e":"trade"', '"e":"trade2"'), 'unknown event type "trade2"'],
    [
      "unsubscribed stream",
      good.replace("btcusdt@trade", "btcusdt@depth"),
      "frame for unsubscribed stream btcusdt@depth",
    ],
    ["missing symbol", good.replace('"s":"BTCUSDT",', ""), "missing symbol (s)"],
    ["not an object", "[1,2]", "frame is not a JSON object"],
    ["venue error", '{"error":{"code":2,"msg":"Invalid request"},"id":3}', "venue error 2: Invalid request"],
  ])("%s → dead letter with reason and raw text", (_name, raw, reason) => {
    const { out, sink } = collector();
    new BinanceNormalizer(sink, SUB).normalize(raw, RECEIVED);
    expect(out.trades).toHaveLength(0);
    expect(out.dead).toHaveLength(1);
    expect(out.dead[0].reason).toContain(reason);
    expect(out.dead[0].raw).toBe(raw);
    expect(out.dead[0].received_at).toBe(RECEIVED);
  });

  // Stored dead letters are deduplicated by message_id: the ids of malformed frames must not change
  // when the normalizer's code does. These were computed by the normalizer before it used the shared
  // readers of mapping.ts (`BINANCE/dlq/<raw>`, no part segment), and are pinned here.
  it.each([
    ["not JSON", "not json", "binance", "malformed JSON", "eff68a08-1541-83a2-9146-e764c5932823"],
    [
      "trade id as a digit string",
      '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161600123,"s":"BTCUSDT","t":"3735693016","p":"61637.63","q":"0.001","T":1723161600120,"m":true,"M":true}}',
      "binance:btcusdt@trade",
      'trade id (t) is not a non-negative integer: "3735693016"',
      "4bd7aff1-be34-841d-b1c1-08cb22a034c4",
    ],
    [
      "zero price",
      '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161600123,"s":"BTCUSDT","t":3735693016,"p":"0","q":"0.001","T":1723161600120,"m":true,"M":true}}',
      "binance:btcusdt@trade",
      "price (p) is zero",
      "a08e037e-5827-85fa-83d1-b871bf8810fa",
    ],
    [
      "bad symbol without envelope",
      '{"e":"trade","E":1723161600123,"s":"btc-usdt","t":1,"p":"1","q":"1","T":1,"m":true}',
      "binance",
      'symbol (s) is not a Binance symbol like BTCUSDT: "btc-usdt"',
      "b3c292b2-38e9-89fe-8dd6-91353edc9a48",
    ],
  ])(
    "%s: the dead letter's message_id, source and reason are the stored ones",
    (_n, raw, source, reason, id) => {
      const { out, sink } = collector();
      new BinanceNormalizer(sink, SUB).normalize(raw, RECEIVED);
      expect(out.dead.map((d) => [d.message_id, d.source, d.reason])).toEqual([[id, source, reason]]);
    },
  );

  it("treats subscription acks as control frames", () => {
    const { out, sink } = collector();
    new BinanceNormalizer(sink, SUB).normalize('{"result":null,"id":1}', RECEIVED);
    expect(out.control).toEqual(["subscription_ack"]);
    expect(out.dead).toHaveLength(0);
  });
});

describe("venue rules", () => {
  it("validates streams, symbols and the 1024-stream limit", () => {
    expect(() => binance.validate({ symbols: ["BTCUSDT"], streams: ["kline_1m"] })).toThrowError(/--streams/);
    expect(() => binance.validate({ symbols: ["btc-usd"], streams: ["trade"] })).toThrowError(/--symbols/);
    const many = Array.from({ length: 400 }, (_, i) => `S${i}USDT`);
    expect(() =>
      binance.validate({ symbols: many, streams: ["trade", "aggTrade", "bookTicker"] }),
    ).toThrowError(/1200 streams exceed Binance's 1024/);
  });

  it("builds a combined-stream URL and SUBSCRIBE requests", () => {
    const c = binance.connection("wss://stream.binance.com:9443/", {
      symbols: ["BTCUSDT"],
      streams: ["trade", "bookTicker"],
    });
    expect(c.url).toBe("wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@bookTicker");
    expect(c.onOpenMessages().map((m) => JSON.parse(m))).toEqual([
      { method: "SUBSCRIBE", params: ["btcusdt@trade", "btcusdt@bookTicker"], id: 1 },
    ]);
    expect(c.maxMessagesPerSecond).toBe(5);
  });
});

describe("Binance depth diffs and REST depth snapshots", () => {
  it("maps a recorded depthUpdate to a book change (U/u as first/last sequence, levels exact)", async () => {
    const [raw] = await framesWhere(
      sharedData("binance-spot/btcusdt_20240808.gz"),
      (r) => r.includes("@depth@100ms"),
      1,
    );
    const changes: BookChangeV2[] = [];
    const { out, sink } = collector();
    sink.bookChange = (c) => changes.push(c);
    new BinanceNormalizer(sink, { symbols: ["BTCUSDT"], streams: ["depth"] }).normalize(raw, RECEIVED);
    expect(out.dead).toEqual([]);
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({
      exchange: "BINANCE",
      symbol: "BTCUSDT",
      timestamp: 1723161255208000,
      is_snapshot: false,
      first_source_sequence: 50093239189,
      last_source_sequence: 50093239202,
      ingestion_timestamp: RECEIVED,
    });
    expect(changes[0].bids[0]).toEqual(["61737.63000000", "0.00000000"]);
    expect(changes[0].asks).toHaveLength(9);
  });

  it("subscribes depth as <symbol>@depth@100ms, not by default; depth is dead-lettered when not subscribed", () => {
    const c = binance.connection("wss://x", { symbols: ["BTCUSDT"], streams: ["trade", "depth"] });
    expect(c.url).toBe("wss://x/stream?streams=btcusdt@trade/btcusdt@depth@100ms");
    expect(binance.defaultStreams).not.toContain("depth");
    const { out, sink } = collector();
    new BinanceNormalizer(sink, { symbols: ["BTCUSDT"], streams: ["trade"] }).normalize(
      '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}}',
      RECEIVED,
    );
    expect(out.dead[0].reason).toMatch(/unsubscribed stream/);
  });

  it("requests GET /api/v3/depth with Binance's weight by limit and maps the body to a snapshot", () => {
    const rest = binance.bookSnapshot!;
    expect(rest.request("http://h/", "BTCUSDT", 1000)).toEqual({
      url: "http://h/api/v3/depth?symbol=BTCUSDT&limit=1000",
      weight: 50,
    });
    expect(rest.request("http://h", "BTCUSDT", 100).weight).toBe(5);
    const s = rest.snapshot({ lastUpdateId: 7, bids: [["1.5", "2"]], asks: [] }, "btcusdt", RECEIVED);
    expect(s).toMatchObject({
      symbol: "BTCUSDT",
      is_snapshot: true,
      first_source_sequence: 7,
      last_source_sequence: 7,
      bids: [["1.50000000", "2.00000000"]],
    });
    expect(() => rest.snapshot({ bids: [] }, "BTCUSDT", RECEIVED)).toThrowError(/depth snapshot/);
  });
});
