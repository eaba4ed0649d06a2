import { describe, expect, it } from "vitest";
import {
  bookChangeAvroType,
  bookSnapshotAvroType,
  quoteAvroType,
  tradeAvroType,
} from "../../src/schema/avro.js";
import type { BookChangeV2 } from "../../src/schema/books.js";
import type { QuoteV2, TradeV2 } from "../../src/schema/records.js";
import { BinanceNormalizer } from "../../src/venues/binance.js";
import { framesWhere, sharedData } from "../helpers/capture.js";

async function normalizedFromCapture(): Promise<{
  trades: TradeV2[];
  quotes: QuoteV2[];
  books: BookChangeV2[];
}> {
  const frames = await framesWhere(
    sharedData("binance-spot/btcusdt_20240808.gz"),
    (r) => r.includes("@trade") || r.includes("@bookTicker") || r.includes("@depth"),
    600,
  );
  const trades: TradeV2[] = [];
  const quotes: QuoteV2[] = [];
  const books: BookChangeV2[] = [];
  const n = new BinanceNormalizer(
    {
      trade: (r) => trades.push(r),
      quote: (q) => quotes.push(q),
      bookChange: (b) => books.push(b),
      deadLetter: (d) => {
        throw new Error(d.reason);
      },
      gap: () => undefined,
      control: () => undefined,
    },
    { symbols: ["BTCUSDT"], streams: ["trade", "bookTicker", "depth"] },
  );
  for (const f of frames) n.normalize(f, 1_795_000_000_000_000);
  return { trades, quotes, books };
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

  it("round-trips book changes and book snapshots, levels as exact decimal pairs", async () => {
    const { books } = await normalizedFromCapture();
    expect(books.length).toBeGreaterThan(10);
    const bt = bookChangeAvroType();
    for (const b of books) expect(bt.fromBuffer(bt.toBuffer(b))).toEqual(b);
    const st = bookSnapshotAvroType();
    const snapshot = {
      exchange: "BINANCE",
      symbol: "BTCUSDT",
      timestamp: 1723161365000000,
      depth: 2,
      bids: [
        ["61765.99000000", "4.94449000"],
        ["61765.98000000", "0.00000001"],
      ],
      asks: [["9999999999.99999999", "1.00000000"]],
      last_source_sequence: 50093291200,
      last_resync_timestamp: null,
    };
    expect(st.fromBuffer(st.toBuffer(snapshot))).toEqual(snapshot);
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
