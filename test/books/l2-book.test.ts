import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type BookLevelPair, BookValueError, L2Book, ZERO_QUANTITY } from "../../src/books/l2-book.js";
import { parseNonNegativeDecimal, toUnits } from "../../src/schema/decimal.js";

/** Naive reference: a Map per side, sorted on read by exact bigint units. */
class NaiveBook {
  readonly sides = { bid: new Map<string, string>(), ask: new Map<string, string>() };
  apply(side: "bid" | "ask", p: string, q: string): void {
    if (q === ZERO_QUANTITY) this.sides[side].delete(p);
    else this.sides[side].set(p, q);
  }
  load(side: "bid" | "ask", levels: BookLevelPair[]): void {
    this.sides[side].clear();
    for (const [p, q] of levels) this.apply(side, p, q);
  }
  top(side: "bid" | "ask", n: number): BookLevelPair[] {
    const all = [...this.sides[side]].map(([p, q]) => [p, q] as const);
    all.sort((a, b) => {
      const d = toUnits(a[0]) - toUnits(b[0]);
      return side === "bid" ? (d > 0n ? -1 : d < 0n ? 1 : 0) : d < 0n ? -1 : d > 0n ? 1 : 0;
    });
    return all.slice(0, n);
  }
}

// prices from a small grid (so levels collide, update and vanish) across magnitudes, including the
// largest DECIMAL(18,8) values, where a float or a 1e8-scaled double would lose digits
const price = fc
  .tuple(fc.constantFrom("0", "1", "61837", "9007199254", "9999999999"), fc.integer({ min: 0, max: 40 }))
  .map(([i, f]) => parseNonNegativeDecimal(`${i}.${String(99_999_960 + f).padStart(8, "0")}`));
const quantity = fc.oneof(
  fc.constant(ZERO_QUANTITY),
  fc
    .integer({ min: 1, max: 10_000_000 })
    .map((n) => parseNonNegativeDecimal(`0.${String(n).padStart(8, "0")}`)),
);
const op = fc.record({ side: fc.constantFrom<"bid" | "ask">("bid", "ask"), price, quantity });
const levels = fc.array(fc.tuple(price, quantity), { maxLength: 30 });

describe("L2Book against a naive reference (Map + sort)", () => {
  it("random level updates: same top-N, best bid/ask and depth", () => {
    fc.assert(
      fc.property(
        levels,
        levels,
        fc.array(op, { maxLength: 300 }),
        fc.integer({ min: 1, max: 25 }),
        (b0, a0, ops, n) => {
          const book = new L2Book();
          const ref = new NaiveBook();
          book.load("bid", b0);
          book.load("ask", a0);
          ref.load("bid", b0);
          ref.load("ask", a0);
          for (const o of ops) {
            book.apply(o.side, o.price, o.quantity);
            ref.apply(o.side, o.price, o.quantity);
            expect(book.bestBid()).toEqual(ref.top("bid", 1)[0] ?? null);
            expect(book.bestAsk()).toEqual(ref.top("ask", 1)[0] ?? null);
          }
          for (const side of ["bid", "ask"] as const) {
            expect(book.top(side, n)).toEqual(ref.top(side, n));
            expect(book.depth(side)).toBe(ref.sides[side].size);
          }
          const cut = book.truncate(n);
          for (const side of ["bid", "ask"] as const) expect(book.top(side, 1000)).toEqual(ref.top(side, n));
          expect(cut.bids.length).toBe(Math.max(0, ref.sides.bid.size - n));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("reports what each update did, rejects non-canonical values, and detects a crossed book", () => {
    const book = new L2Book();
    expect(book.apply("bid", "100.00000000", "1.00000000")).toBe("insert");
    expect(book.apply("bid", "100.00000000", "2.00000000")).toBe("update");
    expect(book.apply("bid", "99.00000000", ZERO_QUANTITY)).toBe("absent");
    expect(book.apply("ask", "101.00000000", "1.00000000")).toBe("insert");
    expect(book.isCrossed()).toBe(false);
    book.apply("ask", "100.00000000", "1.00000000");
    expect(book.isCrossed()).toBe(true);
    expect(book.apply("ask", "100.00000000", ZERO_QUANTITY)).toBe("remove");
    expect(book.isCrossed()).toBe(false);
    for (const bad of ["100", "100.0", "0100.00000000", "1e2", "-1.00000000", "12345678901.00000000"]) {
      expect(() => book.apply("bid", bad, "1.00000000")).toThrow(BookValueError);
    }
    expect(() => book.apply("bid", "1.00000000", "1")).toThrow(BookValueError);
    // 9,007,199,254.74099313 and .74099312 differ by 1e-8 beyond 2^53 units: still two levels, in order
    book.apply("bid", "9007199254.74099313", "1.00000000");
    book.apply("bid", "9007199254.74099312", "1.00000000");
    expect(book.top("bid", 2).map((l) => l[0])).toEqual(["9007199254.74099313", "9007199254.74099312"]);
  });
});
