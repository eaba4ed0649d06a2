/**
 * The tick book: a tick read after trades and quotes were only noted (the live feed with no `tick`
 * listener) equals the tick built eagerly after each of them, for any interleaving and symbols.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { QuoteV2, TradeV2 } from "../../src/schema/records.js";
import { LiveFeed } from "../../src/serve/live/feed.js";
import { type Tick, TickBook } from "../../src/serve/live/ticks.js";
import { quote as storedQuote, trade as storedTrade } from "../store/contract.js";

const price = fc
  .tuple(fc.integer({ min: 1, max: 99_999 }), fc.integer({ min: 0, max: 99_999_999 }))
  .map(([i, f]) => `${i}.${String(f).padStart(8, "0")}`);

// the store contract's records, with the fields a tick reads set per call
const trade = (symbol: string, n: number, p: string, q: string): TradeV2 =>
  storedTrade(n, { symbol, price: p, quantity: q });
const quote = (symbol: string, n: number, bid: string, ask: string): QuoteV2 =>
  storedQuote(n, { symbol, bid_price: bid, ask_price: ask });

const event = fc.record({
  kind: fc.constantFrom("trade", "quote"),
  symbol: fc.constantFrom("BTCUSDT", "ETHUSDT"),
  a: price,
  b: price,
  read: fc.boolean(),
});

describe("TickBook", () => {
  it("builds the same ticks when trades and quotes are only noted and read later", () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 60 }), (events) => {
        const eager = new TickBook();
        const lazy = new TickBook();
        events.forEach((e, n) => {
          if (e.kind === "trade") {
            const t = trade(e.symbol, n, e.a, e.b);
            eager.applyTrade(t);
            lazy.noteTrade(t);
          } else {
            const q = quote(e.symbol, n, e.a, e.b);
            eager.applyQuote(q);
            lazy.noteQuote(q);
          }
          // reads in between settle what was noted so far; later notes still apply
          if (e.read) expect(lazy.get("BINANCE", e.symbol)).toEqual(eager.get("BINANCE", e.symbol));
        });
        expect(lazy.all()).toEqual(eager.all());
      }),
      { numRuns: 300 },
    );
  });

  it("gives the spread of the latest quote and never changes a tick handed out", () => {
    const book = new TickBook();
    book.noteQuote(quote("BTCUSDT", 1, "100.00000000", "100.50000000"));
    const first = book.get("BINANCE", "BTCUSDT") as Tick;
    expect(first.spread).toBe("0.50000000");
    book.noteTrade(trade("BTCUSDT", 2, "100.25000000", "0.10000000"));
    book.noteQuote(quote("BTCUSDT", 3, "99.00000000", "101.00000000"));
    const second = book.get("BINANCE", "BTCUSDT") as Tick;
    expect(second).toMatchObject({
      spread: "2.00000000",
      last_price: "100.25000000",
      bid_price: "99.00000000",
    });
    expect(first).toMatchObject({ spread: "0.50000000", last_price: null, bid_price: "100.00000000" });
    expect(book.get("BINANCE", "ETHUSDT")).toBeUndefined();
  });

  it("the live feed emits ticks to listeners and keeps them readable without one", () => {
    const live = new LiveFeed();
    live.publishQuote(quote("BTCUSDT", 1, "10.00000000", "11.00000000"));
    expect(live.tick("BINANCE", "BTCUSDT")?.bid_price).toBe("10.00000000");
    const seen: Tick[] = [];
    const off = live.on("tick", (t) => seen.push(t));
    live.publishTrade(trade("BTCUSDT", 2, "10.50000000", "3.00000000"));
    expect(seen.map((t) => [t.last_price, t.bid_price])).toEqual([["10.50000000", "10.00000000"]]);
    off();
    live.publishQuote(quote("BTCUSDT", 3, "10.10000000", "10.90000000"));
    expect(seen).toHaveLength(1);
    expect(live.ticks()[0]).toMatchObject({
      last_price: "10.50000000",
      bid_price: "10.10000000",
      spread: "0.80000000",
    });
  });
});
