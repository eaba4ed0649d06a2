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
 * Structure: per side, one array of levels sorted worst → best (bids ascending, asks descending), so the
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

/** One level: its exact key (price, negated for asks), exact strings and the venue's strings. */
interface Level {
  hi: number;
  lo: number;
  price: string;
  qty: string;
  vPrice: string;
  vQty: string;
}

/** One side: levels sorted by (hi, lo) ascending; bids key the price, asks its negation (best last). */
class SideLevels {
  levels: Level[] = [];

  constructor(readonly negate: boolean) {}

  /** First index whose key is ≥ (hi, lo). */
  search(hi: number, lo: number): number {
    const a = this.levels;
    let l = 0;
    let r = a.length;
    while (l < r) {
      const m = (l + r) >>> 1;
      const x = a[m];
      if (x.hi < hi || (x.hi === hi && x.lo < lo)) l = m + 1;
      else r = m;
    }
    return l;
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
    const a = s.levels;
    const i = s.search(hi, lo);
    const found = i < a.length && a[i].hi === hi && a[i].lo === lo;
    if (quantity === ZERO_QUANTITY) {
      if (!found) return "absent";
      if (i === a.length - 1) a.pop();
      else a.splice(i, 1);
      return "remove";
    }
    if (found) {
      const x = a[i];
      x.qty = quantity;
      x.vPrice = venuePrice;
      x.vQty = venueQuantity;
      return "update";
    }
    const x: Level = { hi, lo, price, qty: quantity, vPrice: venuePrice, vQty: venueQuantity };
    if (i === a.length) a.push(x);
    else a.splice(i, 0, x);
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
    const out: Level[] = [];
    for (let k = 0; k < order.length; k++) {
      const i = order[k];
      const next = order[k + 1];
      if (next !== undefined && his[next] === his[i] && los[next] === los[i]) continue;
      const [p, q] = levels[i];
      if (q === ZERO_QUANTITY) continue;
      const v = venueStrings?.[i];
      out.push({ hi: his[i], lo: los[i], price: p, qty: q, vPrice: v ? v[0] : p, vQty: v ? v[1] : q });
    }
    s.levels = out;
  }

  /** Empties both sides and forgets the sequence. */
  clear(): void {
    this.bids.levels = [];
    this.asks.levels = [];
    this.sequence = null;
  }

  /** Number of levels held on a side. */
  depth(side: BookSide): number {
    return (side === "bid" ? this.bids : this.asks).levels.length;
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
      const excess = s.levels.length - maxLevels;
      if (excess <= 0) continue;
      for (let i = 0; i < excess; i++) list.push([s.levels[i].price, ZERO_QUANTITY]);
      s.levels.splice(0, excess);
    }
    return out;
  }

  /** The `i`-th best level of a side (0 = best), or undefined. */
  private at(side: BookSide, i: number): Level | undefined {
    const a = (side === "bid" ? this.bids : this.asks).levels;
    return a[a.length - 1 - i];
  }

  /** Price of the `i`-th best level of a side (0 = best), canonical DECIMAL(18,8), or undefined. */
  priceAt(side: BookSide, i: number): string | undefined {
    return this.at(side, i)?.price;
  }

  /** Quantity of the `i`-th best level of a side (0 = best), canonical DECIMAL(18,8), or undefined. */
  quantityAt(side: BookSide, i: number): string | undefined {
    return this.at(side, i)?.qty;
  }

  /** The venue's own price string of the `i`-th best level (as last sent), or undefined. */
  venuePriceAt(side: BookSide, i: number): string | undefined {
    return this.at(side, i)?.vPrice;
  }

  /** The venue's own quantity string of the `i`-th best level (as last sent), or undefined. */
  venueQuantityAt(side: BookSide, i: number): string | undefined {
    return this.at(side, i)?.vQty;
  }

  /** Best bid `[price, quantity]`, or null when the side is empty. */
  bestBid(): BookLevelPair | null {
    const x = this.at("bid", 0);
    return x ? [x.price, x.qty] : null;
  }

  /** Best ask `[price, quantity]`, or null when the side is empty. */
  bestAsk(): BookLevelPair | null {
    const x = this.at("ask", 0);
    return x ? [x.price, x.qty] : null;
  }

  /** The best `n` levels of a side, best first (fewer when the side holds fewer). */
  top(side: BookSide, n: number): BookLevelPair[] {
    const a = (side === "bid" ? this.bids : this.asks).levels;
    const len = a.length;
    const count = Math.min(n, len);
    const out: BookLevelPair[] = new Array(count);
    for (let k = 0; k < count; k++) {
      const x = a[len - 1 - k];
      out[k] = [x.price, x.qty];
    }
    return out;
  }

  /** True when both sides hold levels and best bid ≥ best ask (a crossed book: a defect or a race). */
  isCrossed(): boolean {
    const b = this.at("bid", 0);
    const a = this.at("ask", 0);
    if (!b || !a) return false;
    return b.hi > -a.hi || (b.hi === -a.hi && b.lo >= -a.lo);
  }
}
