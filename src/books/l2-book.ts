/**
 * L2Book: one level-2 order book (aggregated quantity per price level) for one symbol, with exact
 * price keys.
 *
 * Prices and quantities go in and come out as canonical DECIMAL(18,8) strings (`"61837.63000000"`, see
 * `schema/decimal.ts`; parse venue strings with `parseNonNegativeDecimal` first). The sort key of a
 * level is the exact scaled integer of its price held as two safe integers: `hi` = the integer part
 * (at most 10 digits) and `lo` = the 8 fractional digits as an integer (0..99,999,999). No price ever
 * passes through a binary float, and every DECIMAL(18,8) value (up to 9,999,999,999.99999999) is
 * ordered exactly.
 *
 * Structure: per side, parallel arrays sorted worst → best (bids ascending, asks descending), so the
 * best level is the last element. A level update is a binary search (O(log n)) plus, for an insert
 * or a removal, a move of the elements between that level and the best one: updates cluster near
 * the top of the book, so the move is short (`bench/books.ts` measures it at 1,000–5,000 levels with
 * uniformly random prices too, the worst case for this layout).
 *
 * A venue that checksums its own string forms (Kraken) can keep them per level beside the exact
 * values (`venuePrice` / `venueQuantity` arguments of {@link L2Book.apply}).
 */

/** The two sides of a book: `bid` (buy orders) and `ask` (sell orders; Coinbase calls them `offer`). */
export type BookSide = "bid" | "ask";

/** A price level as exact DECIMAL(18,8) strings: `[price, quantity]`; quantity `"0.00000000"` = removed. */
export type BookLevelPair = readonly [price: string, quantity: string];

/** Quantity of a removed level, canonical DECIMAL(18,8). */
export const ZERO_QUANTITY = "0.00000000";

/** What one level update did to the book. `absent`: a removal of a level the book does not hold. */
export type LevelChange = "insert" | "update" | "remove" | "absent";

/** Thrown when a price or quantity handed to the book is not a canonical non-negative DECIMAL(18,8). */
export class BookValueError extends Error {
  constructor(
    readonly field: "price" | "quantity",
    readonly value: string,
  ) {
    super(`${field} is not a canonical non-negative DECIMAL(18,8) string: ${JSON.stringify(value)}`);
    this.name = "BookValueError";
  }
}

/** Integer part of a canonical DECIMAL(18,8) string; sets {@link keyLo}. Throws on another shape. */
let keyLo = 0;
function keyOf(s: string, field: "price" | "quantity"): number {
  const len = s.length;
  const dot = len - 9;
  if (dot < 1 || dot > 10 || s.charCodeAt(dot) !== 46 || (dot > 1 && s.charCodeAt(0) === 48)) {
    throw new BookValueError(field, s);
  }
  let hi = 0;
  for (let i = 0; i < dot; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) throw new BookValueError(field, s);
    hi = hi * 10 + d;
  }
  let lo = 0;
  for (let i = dot + 1; i < len; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) throw new BookValueError(field, s);
    lo = lo * 10 + d;
  }
  keyLo = lo;
  return hi;
}

/** One side: parallel arrays sorted by (hi, lo) ascending; bids store the price, asks its negation. */
class SideLevels {
  hi: number[] = [];
  lo: number[] = [];
  price: string[] = [];
  qty: string[] = [];
  vPrice: string[] = [];
  vQty: string[] = [];

  constructor(readonly negate: boolean) {}

  /** First index whose key is ≥ (hi, lo). */
  search(hi: number, lo: number): number {
    const H = this.hi;
    const L = this.lo;
    let l = 0;
    let r = H.length;
    while (l < r) {
      const m = (l + r) >>> 1;
      const h = H[m];
      if (h < hi || (h === hi && L[m] < lo)) l = m + 1;
      else r = m;
    }
    return l;
  }

  clear(): void {
    this.hi = [];
    this.lo = [];
    this.price = [];
    this.qty = [];
    this.vPrice = [];
    this.vQty = [];
  }

  /** Removes the `count` worst levels. */
  dropWorst(count: number): void {
    this.hi.splice(0, count);
    this.lo.splice(0, count);
    this.price.splice(0, count);
    this.qty.splice(0, count);
    this.vPrice.splice(0, count);
    this.vQty.splice(0, count);
  }
}

/**
 * A level-2 book for one symbol. Not tied to a venue: the venue procedures (`binance.ts`, `kraken.ts`,
 * `coinbase.ts`) decide what to apply and when, and set {@link L2Book.sequence}.
 */
export class L2Book {
  private readonly bids = new SideLevels(false);
  private readonly asks = new SideLevels(true);
  /** Last venue sequence applied (Binance final update id `u`, Coinbase `sequence_num`), or null. */
  sequence: number | null = null;

  /**
   * Sets one level to an absolute quantity: inserts it, replaces its quantity, or removes it when
   * `quantity` is `"0.00000000"`.
   * @param price canonical DECIMAL(18,8) string
   * @param quantity canonical DECIMAL(18,8) string, absolute (not a delta)
   * @param venuePrice the venue's own string for the price (kept for checksums), default `price`
   * @param venueQuantity the venue's own string for the quantity, default `quantity`
   * @throws {BookValueError} when `price` or `quantity` is not canonical
   */
  apply(
    side: BookSide,
    price: string,
    quantity: string,
    venuePrice: string = price,
    venueQuantity: string = quantity,
  ): LevelChange {
    const s = side === "bid" ? this.bids : this.asks;
    let hi = keyOf(price, "price");
    let lo = keyLo;
    if (s.negate) {
      hi = -hi;
      lo = -lo;
    }
    if (quantity !== ZERO_QUANTITY) keyOf(quantity, "quantity");
    const i = s.search(hi, lo);
    const found = i < s.hi.length && s.hi[i] === hi && s.lo[i] === lo;
    if (quantity === ZERO_QUANTITY) {
      if (!found) return "absent";
      s.hi.splice(i, 1);
      s.lo.splice(i, 1);
      s.price.splice(i, 1);
      s.qty.splice(i, 1);
      s.vPrice.splice(i, 1);
      s.vQty.splice(i, 1);
      return "remove";
    }
    if (found) {
      s.qty[i] = quantity;
      s.vPrice[i] = venuePrice;
      s.vQty[i] = venueQuantity;
      return "update";
    }
    if (i === s.hi.length) {
      s.hi.push(hi);
      s.lo.push(lo);
      s.price.push(price);
      s.qty.push(quantity);
      s.vPrice.push(venuePrice);
      s.vQty.push(venueQuantity);
    } else {
      s.hi.splice(i, 0, hi);
      s.lo.splice(i, 0, lo);
      s.price.splice(i, 0, price);
      s.qty.splice(i, 0, quantity);
      s.vPrice.splice(i, 0, venuePrice);
      s.vQty.splice(i, 0, venueQuantity);
    }
    return "insert";
  }

  /**
   * Replaces one side with the given levels (a snapshot), in O(n log n) whatever their order: levels
   * with quantity 0 are skipped, and a price given twice keeps its last quantity.
   * @param levels `[price, quantity]` canonical DECIMAL(18,8) pairs, any order
   * @param venueStrings the venue's own `[price, quantity]` strings, index for index (default: the
   *   exact ones)
   * @throws {BookValueError} when a price or quantity is not canonical
   */
  load(side: BookSide, levels: readonly BookLevelPair[], venueStrings?: readonly BookLevelPair[]): void {
    const s = side === "bid" ? this.bids : this.asks;
    const n = levels.length;
    const his = new Array<number>(n);
    const los = new Array<number>(n);
    const order: number[] = [];
    for (let i = 0; i < n; i++) {
      const [p, q] = levels[i];
      let hi = keyOf(p, "price");
      let lo = keyLo;
      if (q !== ZERO_QUANTITY) keyOf(q, "quantity");
      if (s.negate) {
        hi = -hi;
        lo = -lo;
      }
      his[i] = hi;
      los[i] = lo;
      order.push(i);
    }
    // stable sort by key: equal prices keep their order, so the last one given wins below
    order.sort((a, b) => his[a] - his[b] || los[a] - los[b]);
    s.clear();
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      const next = order[k + 1];
      if (next !== undefined && his[next] === his[i] && los[next] === los[i]) continue;
      const [p, q] = levels[i];
      if (q === ZERO_QUANTITY) continue;
      s.hi.push(his[i]);
      s.lo.push(los[i]);
      s.price.push(p);
      s.qty.push(q);
      const v = venueStrings?.[i];
      s.vPrice.push(v ? v[0] : p);
      s.vQty.push(v ? v[1] : q);
    }
  }

  /** Empties both sides and forgets the sequence. */
  clear(): void {
    this.bids.clear();
    this.asks.clear();
    this.sequence = null;
  }

  /** Number of levels held on a side. */
  depth(side: BookSide): number {
    return (side === "bid" ? this.bids : this.asks).hi.length;
  }

  /**
   * Keeps only the best `maxLevels` levels of each side (Kraken: the subscribed depth).
   * @returns the levels removed, worst first, as `[price, "0.00000000"]` pairs per side
   */
  truncate(maxLevels: number): { bids: BookLevelPair[]; asks: BookLevelPair[] } {
    const out = { bids: [] as BookLevelPair[], asks: [] as BookLevelPair[] };
    for (const [s, list] of [
      [this.bids, out.bids],
      [this.asks, out.asks],
    ] as const) {
      const excess = s.hi.length - maxLevels;
      if (excess <= 0) continue;
      for (let i = 0; i < excess; i++) list.push([s.price[i], ZERO_QUANTITY]);
      s.dropWorst(excess);
    }
    return out;
  }

  /** Price of the `i`-th best level of a side (0 = best), canonical DECIMAL(18,8), or undefined. */
  priceAt(side: BookSide, i: number): string | undefined {
    const s = side === "bid" ? this.bids : this.asks;
    return s.price[s.price.length - 1 - i];
  }

  /** Quantity of the `i`-th best level of a side (0 = best), canonical DECIMAL(18,8), or undefined. */
  quantityAt(side: BookSide, i: number): string | undefined {
    const s = side === "bid" ? this.bids : this.asks;
    return s.qty[s.qty.length - 1 - i];
  }

  /** The venue's own price string of the `i`-th best level (as last sent), or undefined. */
  venuePriceAt(side: BookSide, i: number): string | undefined {
    const s = side === "bid" ? this.bids : this.asks;
    return s.vPrice[s.vPrice.length - 1 - i];
  }

  /** The venue's own quantity string of the `i`-th best level (as last sent), or undefined. */
  venueQuantityAt(side: BookSide, i: number): string | undefined {
    const s = side === "bid" ? this.bids : this.asks;
    return s.vQty[s.vQty.length - 1 - i];
  }

  /** Best bid `[price, quantity]`, or null when the side is empty. */
  bestBid(): BookLevelPair | null {
    const s = this.bids;
    const n = s.price.length;
    return n === 0 ? null : [s.price[n - 1], s.qty[n - 1]];
  }

  /** Best ask `[price, quantity]`, or null when the side is empty. */
  bestAsk(): BookLevelPair | null {
    const s = this.asks;
    const n = s.price.length;
    return n === 0 ? null : [s.price[n - 1], s.qty[n - 1]];
  }

  /** The best `n` levels of a side, best first (fewer when the side holds fewer). */
  top(side: BookSide, n: number): BookLevelPair[] {
    const s = side === "bid" ? this.bids : this.asks;
    const len = s.price.length;
    const count = Math.min(n, len);
    const out: BookLevelPair[] = new Array(count);
    for (let k = 0; k < count; k++) out[k] = [s.price[len - 1 - k], s.qty[len - 1 - k]];
    return out;
  }

  /** True when both sides hold levels and best bid ≥ best ask (a crossed book: a defect or a race). */
  isCrossed(): boolean {
    const b = this.bids;
    const a = this.asks;
    const nb = b.hi.length;
    const na = a.hi.length;
    if (nb === 0 || na === 0) return false;
    const bh = b.hi[nb - 1];
    const ah = -a.hi[na - 1];
    return bh > ah || (bh === ah && b.lo[nb - 1] >= -a.lo[na - 1]);
  }
}
