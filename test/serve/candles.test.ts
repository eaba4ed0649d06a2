import { describe, expect, it } from "vitest";
import { CandleAggregator } from "../../src/candles/candles.js";
import type { CandleV2 } from "../../src/schema/candles.js";
import { compareTradeOrder, intervalStart } from "../../src/schema/candles.js";
import type { TradeV2 } from "../../src/schema/records.js";

const T0 = Date.UTC(2024, 7, 8, 23, 55, 0) * 1000; // a minute boundary, µs

function trade(id: number, tsUs: number, price: string, quantity: string, symbol = "BTCUSDT"): TradeV2 {
  return {
    message_id: `00000000-0000-8000-8000-${String(id).padStart(12, "0")}`,
    trade_id: `BINANCE-${id}`,
    symbol,
    exchange: "BINANCE",
    asset_class: "crypto",
    timestamp: tsUs,
    price,
    quantity,
    currency: "USDT",
    side: "BUY",
    trade_conditions: [],
    source_sequence: id,
    ingestion_timestamp: tsUs,
    platform_sequence: id,
    vendor_data: {},
  };
}

const only = (cs: CandleV2[], interval: string) => cs.filter((c) => c.interval === interval);

describe("CandleAggregator", () => {
  it("builds OHLCV with exact volume, 16-place quote volume and half-even VWAP", () => {
    const agg = new CandleAggregator({ intervals: ["1m"] });
    agg.addTrade(trade(1, T0 + 1_000_000, "61837.63000000", "0.02000000"), 0);
    agg.addTrade(trade(2, T0 + 2_000_000, "61900.00000000", "0.00000001"), 0);
    agg.addTrade(trade(3, T0 + 3_000_000, "61000.10000000", "1.50000000"), 0);
    const [c] = agg.takeOpenUpdates();
    // Σq = 1.52000001; Σp·q = 1236.7526 + 0.00061900 + 91500.15 = 92736.90321900
    expect(c).toMatchObject({
      interval: "1m",
      interval_start: T0,
      interval_end: T0 + 60_000_000,
      open: "61837.63000000",
      high: "61900.00000000",
      low: "61000.10000000",
      close: "61000.10000000",
      volume: "1.52000001",
      quote_volume: "92736.9032190000000000",
      trade_count: 3,
      first_trade_id: "BINANCE-1",
      last_trade_id: "BINANCE-3",
      closed: false,
    });
    // 92736.90321900 / 1.52000001 = 61011.11999...; check the rounding against exact bigint division
    const num = 927369032190000000000n; // × 1e16
    const den = 152000001n; // × 1e8
    const q = (num * 10n) / den; // one extra digit
    const expected = q % 10n >= 5n ? q / 10n + 1n : q / 10n;
    expect(c.vwap).toBe(`${expected / 100000000n}.${String(expected % 100000000n).padStart(8, "0")}`);
    expect(agg.takeOpenUpdates()).toEqual([]); // nothing changed since
  });

  it("rounds VWAP half to even at the 9th digit", () => {
    const agg = new CandleAggregator({ intervals: ["1m"] });
    // Σp·q / Σq = (0.00000001·1 + 0.00000002·1) / 2 = 0.000000015 → 0.00000002 (even)
    agg.addTrade(trade(1, T0, "0.00000001", "1.00000000"), 0);
    agg.addTrade(trade(2, T0 + 1, "0.00000002", "1.00000000"), 0);
    expect(agg.takeOpenUpdates()[0].vwap).toBe("0.00000002");
    const agg2 = new CandleAggregator({ intervals: ["1m"] });
    // (0.00000002 + 0.00000003) / 2 = 0.000000025 → 0.00000002 (even)
    agg2.addTrade(trade(1, T0, "0.00000002", "1.00000000"), 0);
    agg2.addTrade(trade(2, T0 + 1, "0.00000003", "1.00000000"), 0);
    expect(agg2.takeOpenUpdates()[0].vwap).toBe("0.00000002");
  });

  it("closes a candle when a later trade crosses its boundary (event time, not wall clock)", () => {
    const agg = new CandleAggregator({ intervals: ["1s", "1m"] });
    expect(agg.addTrade(trade(1, T0 + 59_999_999, "10.00000000", "1.00000000"), 1)).toEqual([]);
    const closed = agg.addTrade(trade(2, T0 + 60_000_000, "11.00000000", "2.00000000"), 1);
    expect(closed.map((c) => [c.interval, c.interval_start, c.closed, c.trade_count])).toEqual([
      ["1s", T0 + 59_000_000, true, 1],
      ["1m", T0, true, 1],
    ]);
    expect(agg.openCandle("BINANCE", "BTCUSDT", "1m")).toMatchObject({
      interval_start: T0 + 60_000_000,
      open: "11.00000000",
      trade_count: 1,
    });
  });

  it("orders trades with equal timestamps by trade id numerically (length, then text)", () => {
    const agg = new CandleAggregator({ intervals: ["1m"] });
    // arrive out of id order at one timestamp: open must be id 9, close id 10
    agg.addTrade(trade(10, T0, "2.00000000", "1.00000000"), 0);
    agg.addTrade(trade(9, T0, "1.00000000", "1.00000000"), 0);
    const c = agg.openCandle("BINANCE", "BTCUSDT", "1m")!;
    expect([c.open, c.close, c.first_trade_id, c.last_trade_id]).toEqual([
      "1.00000000",
      "2.00000000",
      "BINANCE-9",
      "BINANCE-10",
    ]);
    expect(compareTradeOrder(1, "BINANCE-9", 1, "BINANCE-10")).toBeLessThan(0);
  });

  it("closes a quiet market's candle after the grace, on the symbol's estimated event clock", () => {
    const agg = new CandleAggregator({ intervals: ["1m"], graceUs: 2_000_000 });
    const wall0 = 5_000_000_000_000_000; // wall clock far ahead of the (replayed) event time
    agg.addTrade(trade(1, T0 + 50_000_000, "1.00000000", "1.00000000"), wall0);
    // event clock ≈ T0+50s + elapsed wall time; closes once it reaches T0+60s + 2s
    expect(agg.advance(wall0)).toEqual([]);
    expect(agg.advance(wall0 + 11_999_999)).toEqual([]);
    const closed = agg.advance(wall0 + 12_000_000);
    expect(closed).toHaveLength(1);
    expect(closed[0]).toMatchObject({ interval_start: T0, closed: true, trade_count: 1 });
    expect(agg.advance(wall0 + 20_000_000)).toEqual([]);
  });

  it("amends the last closed candle with a late trade, and drops older ones", () => {
    const agg = new CandleAggregator({ intervals: ["1m"], graceUs: 0 });
    agg.addTrade(trade(1, T0 + 1, "1.00000000", "1.00000000"), 0);
    agg.addTrade(trade(2, T0 + 60_000_000, "2.00000000", "1.00000000"), 0); // closes T0
    const amended = agg.addTrade(trade(3, T0 + 2, "3.00000000", "1.00000000"), 0);
    expect(amended).toHaveLength(1);
    expect(amended[0]).toMatchObject({
      interval_start: T0,
      trade_count: 2,
      high: "3.00000000",
      close: "3.00000000",
      closed: true,
    });
    expect(agg.amendedLate).toBe(1);
    // a trade two intervals back has no candle to amend
    agg.addTrade(trade(4, T0 + 120_000_000, "4.00000000", "1.00000000"), 0); // closes T0+60s
    expect(agg.addTrade(trade(5, T0 + 3, "5.00000000", "1.00000000"), 0)).toEqual([]);
    expect(agg.droppedLate).toBe(1);
  });

  it("keeps symbols apart and closes everything at the end of a bounded stream", () => {
    const agg = new CandleAggregator({ intervals: ["1m", "1d"] });
    agg.addTrade(trade(1, T0, "1.00000000", "1.00000000", "BTCUSDT"), 0);
    agg.addTrade(trade(1, T0 + 5, "2.00000000", "3.00000000", "ETHUSDT"), 0);
    const all = agg.closeAll();
    expect(all).toHaveLength(4);
    expect(only(all, "1d").map((c) => [c.symbol, c.interval_start, c.volume])).toEqual([
      ["BTCUSDT", intervalStart(T0, "1d"), "1.00000000"],
      ["ETHUSDT", intervalStart(T0, "1d"), "3.00000000"],
    ]);
    expect(agg.openCandle("BINANCE", "BTCUSDT", "1m")).toBeUndefined();
    expect(agg.closeAll()).toEqual([]);
  });

  it("rejects a negative grace", () => {
    expect(() => new CandleAggregator({ graceUs: -1 })).toThrowError(/graceUs/);
  });
});
