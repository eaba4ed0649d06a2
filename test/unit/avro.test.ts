import { describe, expect, it } from "vitest";
import { quoteAvroType, tradeAvroType } from "../../src/schema/avro.js";
import type { QuoteV2, TradeV2 } from "../../src/schema/records.js";
import { BinanceNormalizer } from "../../src/venues/binance.js";
import { framesWhere, sharedData } from "../helpers/capture.js";

async function normalizedFromCapture(): Promise<{ trades: TradeV2[]; quotes: QuoteV2[] }> {
  const frames = await framesWhere(
    sharedData("binance-spot/btcusdt_20240808.gz"),
    (r) => r.includes("@trade") || r.includes("@bookTicker"),
    400,
  );
  const trades: TradeV2[] = [];
  const quotes: QuoteV2[] = [];
  const n = new BinanceNormalizer(
    {
      trade: (r) => trades.push(r),
      quote: (q) => quotes.push(q),
      deadLetter: (d) => {
        throw new Error(d.reason);
      },
      gap: () => undefined,
      control: () => undefined,
    },
    { symbols: ["BTCUSDT"], streams: ["trade", "bookTicker"] },
  );
  for (const f of frames) n.normalize(f, 1_795_000_000_000_000);
  return { trades, quotes };
}

describe("Avro schemas (schema/*.avsc)", () => {
  it("round-trips normalized trades and quotes exactly", async () => {
    const { trades, quotes } = await normalizedFromCapture();
    expect(trades.length).toBeGreaterThan(10);
    expect(quotes.length).toBeGreaterThan(10);
    const tt = tradeAvroType();
    const qt = quoteAvroType();
    for (const t of trades) {
      expect(tt.isValid(t)).toBe(true);
      expect(tt.fromBuffer(tt.toBuffer(t))).toEqual(t);
    }
    for (const q of quotes) expect(qt.fromBuffer(qt.toBuffer(q))).toEqual(q);
  });

  it("encodes DECIMAL(18,8) extremes and signs exactly", () => {
    const tt = tradeAvroType();
    const base: TradeV2 = {
      message_id: "8327af07-cd5c-865d-9fd9-085da2dea347",
      trade_id: "X-1",
      symbol: "BTCUSDT",
      exchange: "BINANCE",
      asset_class: "crypto",
      timestamp: 1723161255342000,
      price: "9999999999.99999999",
      quantity: "0.00000001",
      currency: "USDT",
      side: "UNKNOWN",
      trade_conditions: ["A", "XT"],
      source_sequence: null,
      ingestion_timestamp: 1723161255342001,
      platform_sequence: 7,
      vendor_data: { k: "v" },
    };
    for (const price of [
      "9999999999.99999999",
      "0.00000000",
      "-0.00000001",
      "-9999999999.99999999",
      "128.00000000",
    ]) {
      const rec = { ...base, price };
      expect(tt.fromBuffer(tt.toBuffer(rec))).toEqual(rec);
    }
  });

  it("rejects a price that is not an exact DECIMAL(18,8)", () => {
    const tt = tradeAvroType();
    expect(() =>
      tt.toBuffer({
        message_id: "8327af07-cd5c-865d-9fd9-085da2dea347",
        trade_id: "X-1",
        symbol: "BTCUSDT",
        exchange: "BINANCE",
        asset_class: "crypto",
        timestamp: 1,
        price: "1.123456789",
        quantity: "1",
        currency: "USDT",
        side: "BUY",
        trade_conditions: [],
        source_sequence: 1,
        ingestion_timestamp: 1,
        platform_sequence: 1,
        vendor_data: {},
      }),
    ).toThrowError(/more than 8 significant fractional digits/);
  });
});
