import { describe, expect, it } from "vitest";
import type { BookChangeV2 } from "../../src/schema/books.js";
import { deterministicMessageId } from "../../src/schema/message-id.js";
import { QuoteV2Schema, TradeV2Schema } from "../../src/schema/validators.js";
import {
  KrakenNormalizer,
  kraken,
  krakenProtocol,
  krakenReplayDialect,
  krakenSubscribeMessages,
} from "../../src/venues/kraken.js";
import { getVenue } from "../../src/venues/registry.js";
import { collectingSink, dec8, KRAKEN_FILE, lines, recvFrames } from "./recording.js";

// biome-ignore lint/suspicious/noExplicitAny: recorded venue frames, read as the venue wrote them
type Frame = any;

const frames = recvFrames(KRAKEN_FILE);
const parsed = frames.map((f) => JSON.parse(f));
const findAll = (pred: (o: Frame) => boolean) => frames.filter((_, i) => pred(parsed[i]));
const find = (pred: (o: Frame) => boolean) => {
  const all = findAll(pred);
  expect(all.length).toBeGreaterThan(0);
  return all[0];
};
const isData = (name: string) => (o: Frame) => Array.isArray(o) && o[o.length - 2] === name;

function normalizeAll(raws: string[], at = 1_700_000_000_000_000) {
  const { sink, out } = collectingSink();
  const n = new KrakenNormalizer(sink);
  for (const r of raws) n.normalize(r, at);
  return out;
}

/** µs of a Kraken v1 `"seconds.micros"` string, by string arithmetic (independent of src/). */
const secUs = (s: string) => {
  const [a, b = ""] = s.split(".");
  return Number(a) * 1e6 + Number(`${b}000000`.slice(0, 6));
};

describe("Kraken v1 trade → trades_v2 (real frames)", () => {
  it("maps every field of each trade of a multi-trade frame", () => {
    const raw = find((o) => isData("trade")(o) && o[1].length === 2 && o[3] === "XMR/USD");
    const [channelId, trades, , pair] = JSON.parse(raw);
    const out = normalizeAll([raw], 1_618_678_150_900_000);
    expect(out.deadLetters).toEqual([]);
    expect(out.trades).toHaveLength(2);
    out.trades.forEach((r, i) => {
      const [price, volume, time, side, orderType, misc] = trades[i];
      expect(TradeV2Schema.parse(r)).toBeTruthy();
      expect(r.symbol).toBe(pair);
      expect(r.exchange).toBe("KRAKEN");
      expect(r.currency).toBe("USD");
      expect(r.price).toBe(dec8(price));
      expect(r.quantity).toBe(dec8(volume));
      expect(r.timestamp).toBe(secUs(time));
      expect(r.side).toBe(side === "b" ? "BUY" : "SELL");
      expect(r.source_sequence).toBeNull();
      expect(r.ingestion_timestamp).toBe(1_618_678_150_900_000);
      expect(r.vendor_data).toEqual({ channel_id: String(channelId), order_type: orderType, misc });
      expect(r.trade_id).toMatch(new RegExp(`^KRAKEN-${secUs(time)}-[0-9a-f]{12}$`));
      expect(r.message_id).toBe(deterministicMessageId(`KRAKEN/trades/${pair}/${r.trade_id.slice(7)}`));
    });
    expect(out.trades[0].trade_id).not.toBe(out.trades[1].trade_id);
  });

  it("reads small prices with 9 written decimals exactly (SC/EUR 0.042990 → 0.04299000)", () => {
    const raw = find((o) => isData("trade")(o) && o[3] === "SC/EUR");
    const r = normalizeAll([raw]).trades[0];
    expect(r.price).toBe(dec8(JSON.parse(raw)[1][0][0]));
    expect(r.price).toBe("0.04299000");
    expect(r.currency).toBe("EUR");
  });

  it("derives the same trade id whatever the frame boundaries, receipt time or normalizer", () => {
    const raw = find((o) => isData("trade")(o) && o[1].length === 2);
    const [ch, trades, name, pair] = JSON.parse(raw);
    const whole = normalizeAll([raw], 1).trades.map((t) => [t.trade_id, t.message_id]);
    const split = normalizeAll(
      [JSON.stringify([ch, [trades[1]], name, pair]), JSON.stringify([ch, [trades[0]], name, pair])],
      999,
    ).trades.map((t) => [t.trade_id, t.message_id]);
    expect(split.reverse()).toEqual(whole);
  });

  it("keeps two identical trades in one frame apart", () => {
    const raw = find((o) => isData("trade")(o) && o[1].length === 1);
    const [ch, trades, name, pair] = JSON.parse(raw);
    const out = normalizeAll([JSON.stringify([ch, [trades[0], trades[0]], name, pair])]);
    expect(new Set(out.trades.map((t) => t.trade_id)).size).toBe(2);
  });

  it("maps all ten recorded trades with no dead letter", () => {
    const expected = findAll(isData("trade")).reduce((n, f) => n + JSON.parse(f)[1].length, 0);
    const out = normalizeAll(frames);
    expect(out.trades).toHaveLength(expected);
    expect(out.deadLetters).toEqual([]);
  });
});

describe("Kraken v1 ticker → quotes_v2 (real frames)", () => {
  it("maps best bid/ask and their lot volumes; XBT-quoted pairs get currency XBT", () => {
    for (const pair of ["WAVES/EUR", "KSM/XBT"]) {
      const raw = find((o) => isData("ticker")(o) && o[3] === pair);
      const t = JSON.parse(raw)[1];
      const out = normalizeAll([raw], 1_618_678_133_000_001);
      expect(out.quotes).toHaveLength(1);
      const q = out.quotes[0];
      expect(QuoteV2Schema.parse(q)).toBeTruthy();
      expect(q.symbol).toBe(pair);
      expect(q.currency).toBe(pair.split("/")[1]);
      expect(q.bid_price).toBe(dec8(t.b[0]));
      expect(q.bid_quantity).toBe(dec8(t.b[2]));
      expect(q.ask_price).toBe(dec8(t.a[0]));
      expect(q.ask_quantity).toBe(dec8(t.a[2]));
      expect(q.timestamp).toBe(1_618_678_133_000_001); // v1 tickers carry no time: receipt time
      expect(q.vendor_data.bid_whole_lot_volume).toBe(String(t.b[1]));
      expect(q.vendor_data.volume).toBe(JSON.stringify(t.v));
      // content-based id: same ticker → same id, whenever received
      expect(normalizeAll([raw], 5).quotes[0].message_id).toBe(q.message_id);
    }
    const all = normalizeAll(frames).quotes;
    expect(all).toHaveLength(findAll(isData("ticker")).length);
    expect(new Set(all.map((q) => q.message_id)).size).toBe(all.length);
  });
});

describe("Kraken v1 control frames and venue errors", () => {
  it("treats heartbeat, systemStatus, subscriptionStatus and unmapped channels as control frames", () => {
    const kinds = (pred: (o: Frame) => boolean) => normalizeAll([find(pred)]).control;
    expect(kinds((o) => o.event === "heartbeat")).toEqual(["heartbeat"]);
    expect(kinds((o) => o.event === "systemStatus")).toEqual(["system_status"]);
    expect(kinds((o) => o.event === "subscriptionStatus")).toEqual(["subscription_ack"]);
    expect(kinds(isData("book-1000"))).toEqual(["unmapped:book"]);
  });

  it("dead-letters a subscriptionStatus error with Kraken's message", () => {
    // the error answer as Kraken's v1 docs show it (the recording has none)
    const raw =
      '{"errorMessage":"Currency pair not in ISO 4217-A3 format foo","event":"subscriptionStatus","pair":"foo","status":"error","subscription":{"name":"ticker"}}';
    const out = normalizeAll([raw]);
    expect(out.deadLetters).toHaveLength(1);
    expect(out.deadLetters[0]).toMatchObject({
      exchange: "KRAKEN",
      source: "kraken:subscriptionStatus",
      reason: "venue error: Currency pair not in ISO 4217-A3 format foo (pair foo)",
      raw,
    });
    expect(normalizeAll(['{"event":"error","errorMessage":"Malformed request"}']).deadLetters[0].reason).toBe(
      "venue error: Malformed request",
    );
  });

  it("dead-letters a trade with a bad volume and keeps its frame neighbours", () => {
    const raw = find((o) => isData("trade")(o) && o[1].length === 2);
    const f = JSON.parse(raw);
    f[1][1][1] = "1.123456789";
    const out = normalizeAll([JSON.stringify(f)]);
    expect(out.trades).toHaveLength(1);
    expect(out.deadLetters[0].reason).toBe(
      'trade 1: quantity (1): more than 8 significant fractional digits for DECIMAL(18,8): "1.123456789"',
    );
  });
});

// Kraken v2: no recording exists in ../shared/data; these frames follow the examples of Kraken's
// v2 docs ("trade", "ticker", subscribe acks), numbers written as JSON numbers as v2 sends them.
describe("Kraken v2 frames (doc examples)", () => {
  const trade = (id: number, price: string, qty: string) =>
    `{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell","price":${price},"qty":${qty},"ord_type":"market","trade_id":${id},"timestamp":"2023-09-25T07:49:37.708706Z"}]}`;

  it("maps trades exactly from JSON numbers, with trade_id as id and sequence", () => {
    const out = normalizeAll([trade(4665906, "0.5117", "40.12345678")]);
    expect(out.deadLetters).toEqual([]);
    const r = out.trades[0];
    expect(TradeV2Schema.parse(r)).toBeTruthy();
    expect(r).toMatchObject({
      symbol: "MATIC/USD",
      trade_id: "KRAKEN-4665906",
      message_id: deterministicMessageId("KRAKEN/trades/MATIC/USD/4665906"),
      price: "0.51170000",
      quantity: "40.12345678",
      side: "SELL",
      currency: "USD",
      source_sequence: 4665906,
      timestamp: Date.parse("2023-09-25T07:49:37.708Z") * 1000 + 706,
    });
    expect(r.vendor_data).toMatchObject({ event_type: "update", ord_type: "market" });
    // exponent notation and values a float would round are kept exact
    expect(normalizeAll([trade(1, "1.5e-5", "0.30000000")]).trades[0].price).toBe("0.00001500");
    expect(normalizeAll([trade(1, "12345678.12345678", "1")]).trades[0].price).toBe("12345678.12345678");
  });

  it("reports a gap in trade ids per pair, in id order within a frame", () => {
    const out = normalizeAll([trade(10, "1", "1"), trade(11, "1", "1"), trade(14, "1", "1")]);
    expect(out.gaps.map((g) => [g.symbol, g.data_type, g.from_sequence, g.to_sequence])).toEqual([
      ["MATIC/USD", "trades", 12, 13],
    ]);
    const snapshot = `{"channel":"trade","type":"snapshot","data":[${[22, 21, 20]
      .map(
        (id) =>
          `{"symbol":"BTC/USD","side":"buy","price":1,"qty":1,"ord_type":"limit","trade_id":${id},"timestamp":"2023-09-25T07:49:37Z"}`,
      )
      .join(",")}]}`;
    expect(normalizeAll([snapshot]).gaps).toEqual([]);
  });

  it("maps the ticker's bid/ask and quantities", () => {
    const raw =
      '{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17}]}';
    const q = normalizeAll([raw], 42).quotes[0];
    expect(QuoteV2Schema.parse(q)).toBeTruthy();
    expect(q).toMatchObject({
      symbol: "ALGO/USD",
      bid_price: "0.10025000",
      bid_quantity: "740.00000000",
      ask_price: "0.10036000",
      ask_quantity: "1361.44813783",
      currency: "USD",
      timestamp: 42,
    });
    expect(q.vendor_data.change).toBe("-0.00017");
  });

  it("treats acks and heartbeats as control frames and dead-letters a failed subscribe with Kraken's error", () => {
    const out = normalizeAll([
      '{"method":"subscribe","result":{"channel":"ticker","snapshot":true,"symbol":"ALGO/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}',
      '{"channel":"heartbeat"}',
      '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":12393906104898154338,"system":"online","version":"2.0.0"}]}',
      '{"error":"Currency pair not supported ALGO/USDX","method":"subscribe","success":false,"symbol":"ALGO/USDX","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}',
    ]);
    expect(out.control).toEqual(["subscription_ack", "heartbeat", "system_status"]);
    expect(out.deadLetters.map((d) => d.reason)).toEqual([
      "venue error: Currency pair not supported ALGO/USDX",
    ]);
  });
});

describe("Kraken feed description", () => {
  it("is registered; v1 subscribe messages are the recorded ones; v2 follows the URL", () => {
    expect(getVenue("kraken")).toBe(kraken);
    const recorded = lines(KRAKEN_FILE)
      .filter((l) => l.t === "send")
      .map((l) => l.data);
    const pairs = JSON.parse(recorded[0]!).pair;
    const v1 = krakenSubscribeMessages("wss://ws.kraken.com", {
      symbols: pairs,
      streams: ["trade", "ticker"],
    });
    expect(v1.every((m) => recorded.includes(m))).toBe(true);
    expect(krakenProtocol("wss://ws.kraken.com")).toBe("v1");
    expect(krakenProtocol("wss://ws.kraken.com/v2")).toBe("v2");
    const v2 = krakenSubscribeMessages("wss://ws.kraken.com/v2", {
      symbols: ["BTC/USD"],
      streams: ["trade", "ticker"],
    });
    expect(v2.map((m) => JSON.parse(m))).toEqual([
      { method: "subscribe", params: { channel: "trade", symbol: ["BTC/USD"], snapshot: true }, req_id: 1 },
      {
        method: "subscribe",
        params: { channel: "ticker", symbol: ["BTC/USD"], event_trigger: "bbo", snapshot: true },
        req_id: 2,
      },
    ]);
  });

  it("validates pairs as Kraken writes them, naming the flag", () => {
    expect(() => kraken.validate({ symbols: ["XBTUSD"], streams: ["trade"] })).toThrow(/--symbols: "XBTUSD"/);
    expect(() => kraken.validate({ symbols: ["XBT/USD"], streams: ["spread"] })).toThrow(
      /--streams: unknown/,
    );
    // the v1 book (depth 1000, checksummed) is a stream, asked for explicitly
    expect(() => kraken.validate({ symbols: ["XBT/USD"], streams: ["book"] })).not.toThrow();
    expect(kraken.defaultStreams).toEqual(["trade", "ticker"]);
    expect(() => kraken.validate({ symbols: ["XBT/USD"], streams: ["trade", "ticker"] })).not.toThrow();
  });

  it("replay dialect keys subscriptions and frames by channel and pair", () => {
    const sends = lines(KRAKEN_FILE).filter((l) => l.t === "send");
    expect(
      krakenReplayDialect.subscription(sends.find((l) => l.data!.includes('"book"'))!.data!)?.keys,
    ).toContain("book-1000|XMR/USD");
    expect(krakenReplayDialect.frameKey(find(isData("trade")))).toMatch(/^trade\|[A-Z]+\/[A-Z]+$/);
    expect(krakenReplayDialect.frameKey(find((o) => o.event === "subscriptionStatus"))).toBe(
      "trade|WAVES/EUR",
    );
    expect(krakenReplayDialect.frameKey(find((o) => o.event === "heartbeat"))).toBeNull();
  });
});

describe("Kraken v1 book → book_changes_v2", () => {
  it("maps a book snapshot and a checksummed update exactly, with the parsed message for the keeper", () => {
    const changes: { change: BookChangeV2; venue: unknown }[] = [];
    const other: string[] = [];
    const n = kraken.createNormalizer(
      {
        trade: () => other.push("trade"),
        quote: () => other.push("quote"),
        deadLetter: (d) => other.push(d.reason),
        gap: () => undefined,
        control: (kind) => other.push(kind),
        bookChange: (change, venue) => changes.push({ change, venue }),
      },
      { symbols: ["XBT/USD"], streams: ["book"] },
    );
    n.normalize(
      '[1234,{"as":[["5541.30000","2.50700000","1534614248.123678"]],"bs":[["5541.20000","1.52900000","1534614248.765567"]]},"book-1000","XBT/USD"]',
      1_795_000_000_000_000,
    );
    n.normalize(
      '[1234,{"a":[["5541.30000","0.00000000","1534614335.345903"]],"c":"974942666"},"book-1000","XBT/USD"]',
      1_795_000_000_000_001,
    );
    expect(other).toEqual([]);
    expect(changes.map((c) => c.change)).toEqual([
      expect.objectContaining({
        exchange: "KRAKEN",
        symbol: "XBT/USD",
        is_snapshot: true,
        timestamp: 1_534_614_248_765_567,
        bids: [["5541.20000000", "1.52900000"]],
        asks: [["5541.30000000", "2.50700000"]],
        first_source_sequence: null,
        vendor_data: { channel_id: "1234", channel_name: "book-1000" },
      }),
      expect.objectContaining({
        is_snapshot: false,
        timestamp: 1_534_614_335_345_903,
        asks: [["5541.30000000", "0.00000000"]],
        bids: [],
        vendor_data: { channel_id: "1234", channel_name: "book-1000", checksum: "974942666" },
      }),
    ]);
    expect(changes[0].change.message_id).not.toBe(changes[1].change.message_id);
    expect(changes[1].venue).toMatchObject({ kind: "update", checksum: "974942666", pair: "XBT/USD" });
  });
});
