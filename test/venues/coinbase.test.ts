import { describe, expect, it } from "vitest";
import type { BookChangeV2 } from "../../src/schema/books.js";
import { deterministicMessageId } from "../../src/schema/message-id.js";
import { QuoteV2Schema, TradeV2Schema } from "../../src/schema/validators.js";
import {
  CoinbaseNormalizer,
  coinbase,
  coinbaseBookResubscribeMessages,
  coinbaseReplayDialect,
  coinbaseSubscribeMessages,
} from "../../src/venues/coinbase.js";
import { getVenue } from "../../src/venues/registry.js";
import { COINBASE_FILE, collectingSink, dec8, isoUs, lines, recvFrames } from "./recording.js";

// biome-ignore lint/suspicious/noExplicitAny: recorded venue frames, read as the venue wrote them
type Frame = any;

const SUB = { symbols: ["BTC-USD", "ETH-USD"], streams: ["market_trades", "ticker", "heartbeats"] };
const frames = recvFrames(COINBASE_FILE);
const parsed = frames.map((f) => JSON.parse(f));
const find = (pred: (o: Frame) => boolean) => {
  const i = parsed.findIndex(pred);
  expect(i).toBeGreaterThanOrEqual(0);
  return frames[i];
};

function normalizeAll(raws: string[], at = 1_800_000_000_000_000) {
  const { sink, out } = collectingSink();
  const n = new CoinbaseNormalizer(sink, SUB);
  for (const r of raws) n.normalize(r, at);
  return out;
}

describe("Coinbase market_trades → trades_v2 (real frames)", () => {
  it("maps every field of an update trade, with the aggressor side opposite to Coinbase's maker side", () => {
    const raw = find((o) => o.channel === "market_trades" && o.events[0].type === "update");
    const env = JSON.parse(raw);
    const t = env.events[0].trades[0];
    const out = normalizeAll([raw], 1_786_309_548_300_000);
    expect(out.deadLetters).toEqual([]);
    expect(out.trades.length).toBe(env.events[0].trades.length);
    const r = out.trades[0];
    expect(TradeV2Schema.parse(r)).toBeTruthy();
    expect(r.symbol).toBe(t.product_id);
    expect(r.exchange).toBe("COINBASE");
    expect(r.asset_class).toBe("crypto");
    expect(r.trade_id).toBe(`COINBASE-${t.trade_id}`);
    expect(r.message_id).toBe(deterministicMessageId(`COINBASE/trades/${t.product_id}/${t.trade_id}`));
    expect(r.price).toBe(dec8(t.price));
    expect(r.quantity).toBe(dec8(t.size));
    expect(r.timestamp).toBe(isoUs(t.time));
    expect(r.currency).toBe(t.product_id.split("-")[1]);
    expect(r.side).toBe(t.side === "SELL" ? "BUY" : "SELL");
    expect(r.vendor_data.maker_side).toBe(t.side);
    expect(r.vendor_data.event_type).toBe("update");
    expect(r.vendor_data.channel_timestamp).toBe(env.timestamp);
    expect(r.source_sequence).toBe(env.sequence_num);
    expect(r.ingestion_timestamp).toBe(1_786_309_548_300_000);
    expect(r.trade_conditions).toEqual([]);
  });

  it("keeps the exact decimals of every recorded trade (no float on the way)", () => {
    const out = normalizeAll(frames);
    const expected = new Map<string, { price: string; qty: string; side: string; time: number }>();
    for (const o of parsed) {
      if (o.channel !== "market_trades") continue;
      for (const e of o.events) {
        for (const t of e.trades) {
          expected.set(`${t.product_id}/${t.trade_id}`, {
            price: dec8(t.price),
            qty: dec8(t.size),
            side: t.side === "SELL" ? "BUY" : "SELL",
            time: isoUs(t.time),
          });
        }
      }
    }
    expect(out.trades.length).toBe(expected.size);
    for (const r of out.trades) {
      const e = expected.get(`${r.symbol}/${r.trade_id.slice("COINBASE-".length)}`)!;
      expect([r.price, r.quantity, r.side, r.timestamp]).toEqual([e.price, e.qty, e.side, e.time]);
    }
    // sub-cent quantities survive exactly, e.g. 0.00000015
    expect(out.trades.some((r) => r.quantity === "0.00000015")).toBe(true);
  });

  it("agrees with the book: trades at the best ask were buyer-initiated, at the best bid seller-initiated", () => {
    // Independent check of the maker-side reading of Coinbase's `side`, against the recorded tickers.
    const best = new Map<string, { bid: number; ask: number }>();
    let consistent = 0;
    let inverted = 0;
    const { sink, out } = collectingSink();
    const n = new CoinbaseNormalizer(sink, SUB);
    for (const [i, o] of parsed.entries()) {
      if (o.channel === "ticker") {
        for (const e of o.events)
          for (const t of e.tickers) best.set(t.product_id, { bid: +t.best_bid, ask: +t.best_ask });
      }
      const before = out.trades.length;
      n.normalize(frames[i], 0);
      if (o.channel !== "market_trades" || o.events[0].type !== "update") continue;
      for (const r of out.trades.slice(before)) {
        const b = best.get(r.symbol);
        if (!b) continue;
        const p = Number(r.price);
        const expected = p >= b.ask ? "BUY" : p <= b.bid ? "SELL" : null;
        if (expected === null) continue;
        if (r.side === expected) consistent++;
        else inverted++;
      }
    }
    expect(consistent + inverted).toBeGreaterThan(50);
    expect(consistent / (consistent + inverted)).toBeGreaterThan(0.9);
  });

  it("stores snapshot trades oldest first and gives a trade repeated in an update the same ids", () => {
    const raw = find((o) => o.channel === "market_trades" && o.events[0].type === "snapshot");
    const env = JSON.parse(raw);
    const out = normalizeAll([raw]);
    expect(out.trades.length).toBe(env.events[0].trades.length);
    const times = out.trades.map((t) => t.timestamp);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    const seqs = out.trades.map((t) => t.platform_sequence);
    expect(seqs.every((s, i) => i === 0 || s > seqs[i - 1])).toBe(true);
    expect(out.trades.every((t) => t.vendor_data.event_type === "snapshot")).toBe(true);
    // the newest snapshot trade delivered again as an update: same message_id and trade_id
    const newest = env.events[0].trades[0];
    const update = JSON.stringify({
      ...env,
      sequence_num: 1,
      events: [{ type: "update", trades: [newest] }],
    });
    const again = normalizeAll([update]).trades[0];
    const first = out.trades.find((t) => t.trade_id === `COINBASE-${newest.trade_id}`)!;
    expect(again.message_id).toBe(first.message_id);
    expect(again.trade_id).toBe(first.trade_id);
  });
});

describe("Coinbase ticker → quotes_v2 (real frames)", () => {
  it("maps best bid/ask and their quantities, at the envelope's time", () => {
    for (const type of ["snapshot", "update"]) {
      const raw = find((o) => o.channel === "ticker" && o.events[0].type === type);
      const env = JSON.parse(raw);
      const t = env.events[0].tickers[0];
      const out = normalizeAll([raw]);
      expect(out.quotes.length).toBe(1);
      const q = out.quotes[0];
      expect(QuoteV2Schema.parse(q)).toBeTruthy();
      expect(q.symbol).toBe(t.product_id);
      expect(q.bid_price).toBe(dec8(t.best_bid));
      expect(q.bid_quantity).toBe(dec8(t.best_bid_quantity));
      expect(q.ask_price).toBe(dec8(t.best_ask));
      expect(q.ask_quantity).toBe(dec8(t.best_ask_quantity));
      expect(q.timestamp).toBe(isoUs(env.timestamp));
      expect(q.currency).toBe("USD");
      expect(q.source_sequence).toBe(env.sequence_num);
      expect(q.message_id).toBe(deterministicMessageId(`COINBASE/quotes/${t.product_id}/${env.timestamp}`));
      expect(q.vendor_data.event_type).toBe(type);
      expect(q.vendor_data.price).toBe(t.price);
      expect(q.vendor_data.volume_24_h).toBe(t.volume_24_h);
    }
  });
});

describe("Coinbase control frames, errors and sequence gaps", () => {
  it("treats heartbeats, subscription acks and unmapped channels as control frames", () => {
    const kinds = (ch: string) => normalizeAll([find((o) => o.channel === ch)]).control;
    expect(kinds("heartbeats")).toEqual(["heartbeat"]);
    expect(kinds("subscriptions")).toEqual(["subscription_ack"]);
    expect(kinds("l2_data")).toEqual(["unmapped:l2_data"]);
    expect(kinds("candles")).toEqual(["unmapped:candles"]);
  });

  it("reports no gap over the whole recording, and the missing sequence_num when a frame is removed", () => {
    const all = normalizeAll(frames);
    expect(all.gaps).toEqual([]);
    expect(all.deadLetters).toEqual([]);
    const removed = parsed.findIndex((o) => o.sequence_num === 500);
    const holed = normalizeAll(frames.filter((_, i) => i !== removed));
    expect(holed.gaps).toHaveLength(1);
    expect(holed.gaps[0]).toMatchObject({
      exchange: "COINBASE",
      symbol: "BTC-USD,ETH-USD",
      data_type: "frames",
      from_sequence: 500,
      to_sequence: 500,
    });
  });

  it("starts sequence tracking over on a new connection", () => {
    // frame i of the recording carries sequence_num i
    expect(parsed.slice(0, 40).map((o) => o.sequence_num)).toEqual([...Array(40).keys()]);
    const { sink, out } = collectingSink();
    const n = new CoinbaseNormalizer(sink, SUB);
    for (const f of frames.slice(0, 40)) n.normalize(f, 0);
    n.connectionOpened();
    // the new connection's frames 5..9 then 11: 10 is missing on that connection
    for (const f of [...frames.slice(5, 10), frames[11]]) n.normalize(f, 0);
    expect(out.gaps.map((g) => [g.from_sequence, g.to_sequence])).toEqual([[10, 10]]);
    // a frame numbered 0 starts a connection too, even without the connection event
    for (const f of [...frames.slice(0, 3), frames[4]]) n.normalize(f, 0);
    expect(out.gaps.map((g) => [g.from_sequence, g.to_sequence])).toEqual([
      [10, 10],
      [3, 3],
    ]);
  });

  it("dead-letters a trade that does not fit DECIMAL(18,8) and keeps the frame's other trades", () => {
    const raw = find((o) => o.channel === "market_trades" && o.events[0].trades.length >= 2);
    const env = JSON.parse(raw);
    env.events[0].trades[0].price = "65083.123456789";
    const bad = JSON.stringify(env);
    const out = normalizeAll([bad]);
    expect(out.trades.length).toBe(env.events[0].trades.length - 1);
    expect(out.deadLetters).toHaveLength(1);
    expect(out.deadLetters[0].reason).toBe(
      'trade 0.0: price (price): more than 8 significant fractional digits for DECIMAL(18,8): "65083.123456789"',
    );
    expect(out.deadLetters[0].raw).toBe(bad);
    expect(out.deadLetters[0].source).toBe("coinbase:market_trades");
  });

  it("dead-letters venue errors with Coinbase's message, and malformed frames", () => {
    const out = normalizeAll([
      '{"type":"error","message":"failure to subscribe","reason":"product not found"}',
      "{not json",
      '{"channel":"ticker","timestamp":"2026-08-09T21:05:48Z","sequence_num":0}',
    ]);
    expect(out.deadLetters.map((d) => d.reason)).toEqual([
      "venue error: failure to subscribe (product not found)",
      "malformed JSON",
      "missing events array",
    ]);
  });
});

describe("Coinbase feed description", () => {
  it("is registered and subscribes once per channel, as recorded, always with heartbeats", () => {
    expect(getVenue("coinbase")).toBe(coinbase);
    const recorded = lines(COINBASE_FILE)
      .filter((l) => l.t === "send")
      .map((l) => l.data);
    const mine = coinbaseSubscribeMessages({
      symbols: ["BTC-USD", "ETH-USD"],
      streams: ["market_trades", "ticker"],
    });
    expect(mine).toEqual([
      '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"market_trades"}',
      '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"ticker"}',
      '{"type":"subscribe","product_ids":["BTC-USD","ETH-USD"],"channel":"heartbeats"}',
    ]);
    for (const m of mine) expect(recorded).toContain(m);
    const conn = coinbase.connection("wss://advanced-trade-ws.coinbase.com", SUB);
    expect(conn.maxMessagesPerSecond).toBe(8);
    expect(conn.url).toBe("wss://advanced-trade-ws.coinbase.com");
  });

  it("validates product ids and channels, naming the flag", () => {
    expect(() => coinbase.validate({ symbols: ["BTCUSD"], streams: ["ticker"] })).toThrow(
      /--symbols: "BTCUSD"/,
    );
    expect(() => coinbase.validate({ symbols: ["BTC-USD"], streams: ["candles"] })).toThrow(
      /--streams: unknown/,
    );
    expect(() => coinbase.validate({ symbols: ["BTC-USD"], streams: ["ticker", "level2"] })).not.toThrow();
    expect(coinbase.defaultStreams).not.toContain("level2");
    expect(coinbase.dataTypesOf(["market_trades", "ticker", "heartbeats"])).toEqual(["trades", "quotes"]);
  });

  it("replay dialect reads subscriptions as channel|product keys and never filters frames", () => {
    expect(coinbaseReplayDialect.subscription(coinbaseSubscribeMessages(SUB)[0])).toEqual({
      subscribe: true,
      keys: ["market_trades|BTC-USD", "market_trades|ETH-USD"],
    });
    expect(coinbaseReplayDialect.subscription('{"type":"unsubscribe","channel":"heartbeats"}')).toEqual({
      subscribe: false,
      keys: ["heartbeats|"],
    });
    expect(coinbaseReplayDialect.frameKey(frames[5])).toBeNull();
  });
});

describe("Coinbase level2 (l2_data) → book_changes_v2 (real frames)", () => {
  function level2(raws: string[], symbols = ["BTC-USD", "ETH-USD"]) {
    const { sink, out } = collectingSink();
    const changes: { change: BookChangeV2; message: unknown }[] = [];
    sink.bookChange = (change, message) => changes.push({ change, message });
    const n = new CoinbaseNormalizer(sink, { symbols, streams: ["market_trades", "ticker", "level2"] });
    for (const r of raws) n.normalize(r, 1_800_000_000_000_000);
    return { out, changes };
  }

  it("maps every l2_data event: snapshot then updates, exact levels, sequence_num as source sequence", () => {
    const { out, changes } = level2(frames);
    const l2 = parsed.filter((o) => o.channel === "l2_data");
    expect(out.deadLetters).toEqual([]);
    expect(out.control).not.toContain("unmapped:l2_data");
    expect(changes).toHaveLength(l2.length);
    expect(
      changes
        .filter((c) => c.change.is_snapshot)
        .map((c) => c.change.symbol)
        .sort(),
    ).toEqual(["BTC-USD", "ETH-USD"]);
    expect(new Set(changes.map((c) => c.change.message_id)).size).toBe(changes.length);
    changes.forEach(({ change }, i) => {
      const env = l2[i];
      const e = env.events[0];
      expect(change).toMatchObject({
        exchange: "COINBASE",
        symbol: e.product_id,
        is_snapshot: e.type === "snapshot",
        timestamp: isoUs(env.timestamp),
        first_source_sequence: env.sequence_num,
        last_source_sequence: env.sequence_num,
        vendor_data: { event_type: e.type },
      });
      const levels = (side: string) =>
        e.updates
          .filter((u: Frame) => u.side === side)
          .map((u: Frame) => [dec8(u.price_level), dec8(u.new_quantity)]);
      expect(change.bids).toEqual(levels("bid"));
      expect(change.asks).toEqual(levels("offer"));
    });
  });

  it("an event of an unsubscribed product is a dead letter; without level2 subscribed l2_data stays a control frame", () => {
    const raws = frames.filter((f) => JSON.parse(f).channel === "l2_data").slice(0, 40);
    const { out, changes } = level2(raws, ["BTC-USD"]);
    expect(changes.every((c) => c.change.symbol === "BTC-USD")).toBe(true);
    expect(changes.length).toBeGreaterThan(0);
    expect(out.deadLetters.length).toBe(raws.length - changes.length);
    expect(out.deadLetters[0].reason).toMatch(/product ETH-USD is not subscribed/);
    expect(normalizeAll(raws).control).toEqual(raws.map(() => "unmapped:l2_data"));
  });

  it("resubscribes one product's level2: unsubscribe, then subscribe", () => {
    expect(coinbase.bookResubscribe?.("wss://x", "ETH-USD")).toEqual(
      coinbaseBookResubscribeMessages("ETH-USD"),
    );
    expect(coinbaseBookResubscribeMessages("ETH-USD").map((m) => JSON.parse(m))).toEqual([
      { type: "unsubscribe", product_ids: ["ETH-USD"], channel: "level2" },
      { type: "subscribe", product_ids: ["ETH-USD"], channel: "level2" },
    ]);
  });
});
