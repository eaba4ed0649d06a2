/**
 * Exact DECIMAL(18,8) handling.
 *
 * K2 never lets a price or quantity pass through a binary float. A DECIMAL(18,8) travels as its
 * canonical string: an optional `-`, 1..10 integer digits without leading zeros (or a single `0`),
 * a `.`, and exactly 8 fractional digits, e.g. `"61837.63000000"`. Arithmetic (VWAP, candles) uses
 * `bigint` scaled by 1e8 ("units").
 */

/** Number of fractional digits of DECIMAL(18,8). */
export const DECIMAL_SCALE = 8;
/** Maximum integer digits of DECIMAL(18,8) (18 − 8). */
export const DECIMAL_INT_DIGITS = 10;
const ZEROS = "00000000";
const SCALE_FACTOR = 100_000_000n;

/**
 * A venue value as quoted in an error message, bounded and never throwing: strings as JSON (cut to
 * 200 characters), objects and arrays by kind only (a deeply nested one would overflow
 * `JSON.stringify`'s stack), anything else as `String`.
 */
export function previewValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v);
  if (v !== null && typeof v === "object") return Array.isArray(v) ? "<array>" : "<object>";
  return String(v);
}

/** Thrown when a venue string is not an exact DECIMAL(18,8). `reason` is the dead-letter reason. */
export class DecimalError extends Error {
  constructor(
    readonly reason: string,
    readonly input: unknown,
  ) {
    super(`${reason}: ${previewValue(input)}`);
    this.name = "DecimalError";
  }
}

/**
 * Parses a venue decimal string (`"61837.63"`, `"0.00200000"`, `"5"`, `"-1.5"`) into the canonical
 * DECIMAL(18,8) string without any float conversion.
 *
 * Accepts: optional `-`/`+`, digits, optional `.` and digits. Trailing fractional zeros beyond 8 places
 * are accepted and dropped (`"1.1234567800"`); any non-zero digit beyond the 8th place is rejected, as
 * is an integer part of more than 10 digits, exponent notation, empty strings and non-strings.
 *
 * @returns canonical string, e.g. `"61837.63000000"`
 * @throws {DecimalError} with reason `not a decimal string`, `too many integer digits for DECIMAL(18,8)`
 *   or `more than 8 significant fractional digits for DECIMAL(18,8)`
 */
export function parseDecimal(input: unknown): string {
  if (typeof input !== "string") throw new DecimalError("not a decimal string", input);
  const s = input;
  const len = s.length;
  if (isCanonical(s, len)) return s; // venues such as Binance already send "61837.63000000"
  let i = 0;
  let negative = false;
  if (i < len) {
    const c = s.charCodeAt(0);
    if (c === 45 /* - */) {
      negative = true;
      i = 1;
    } else if (c === 43 /* + */) {
      i = 1;
    }
  }
  const intStart = i;
  while (i < len) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) break;
    i++;
  }
  const intEnd = i;
  let fracStart = i;
  let fracEnd = i;
  if (i < len && s.charCodeAt(i) === 46 /* . */) {
    i++;
    fracStart = i;
    while (i < len) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      i++;
    }
    fracEnd = i;
  }
  if (i !== len || (intEnd === intStart && fracEnd === fracStart)) {
    throw new DecimalError("not a decimal string", input);
  }
  // integer part without leading zeros
  let is = intStart;
  while (is < intEnd - 1 && s.charCodeAt(is) === 48) is++;
  const intPart = intEnd === intStart ? "0" : s.slice(is, intEnd);
  if (intPart.length > DECIMAL_INT_DIGITS) {
    throw new DecimalError("too many integer digits for DECIMAL(18,8)", input);
  }
  let frac: string;
  const fracLen = fracEnd - fracStart;
  if (fracLen === DECIMAL_SCALE) {
    frac = s.slice(fracStart, fracEnd);
  } else if (fracLen < DECIMAL_SCALE) {
    frac = s.slice(fracStart, fracEnd) + ZEROS.slice(fracLen);
  } else {
    for (let k = fracStart + DECIMAL_SCALE; k < fracEnd; k++) {
      if (s.charCodeAt(k) !== 48) {
        throw new DecimalError("more than 8 significant fractional digits for DECIMAL(18,8)", input);
      }
    }
    frac = s.slice(fracStart, fracStart + DECIMAL_SCALE);
  }
  if (negative && intPart === "0" && frac === ZEROS) negative = false;
  return negative ? `-${intPart}.${frac}` : `${intPart}.${frac}`;
}

/** True when `s` is already canonical: 1..10 digits (no leading zero unless alone), `.`, 8 digits. */
function isCanonical(s: string, len: number): boolean {
  const dot = len - 9;
  if (dot < 1 || dot > DECIMAL_INT_DIGITS || s.charCodeAt(dot) !== 46) return false;
  if (dot > 1 && s.charCodeAt(0) === 48) return false;
  for (let i = 0; i < len; i++) {
    if (i === dot) continue;
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * As {@link parseDecimal}, and also rejects negative values (prices and quantities).
 * @throws {DecimalError} also with reason `negative value`
 */
export function parseNonNegativeDecimal(input: unknown): string {
  const d = parseDecimal(input);
  if (d.charCodeAt(0) === 45) throw new DecimalError("negative value", input);
  return d;
}

/** Canonical DECIMAL(18,8) string → integer units of 1e-8 (`"1.5"` → `150000000n`). */
export function toUnits(decimal: string): bigint {
  const dot = decimal.indexOf(".");
  if (dot < 0) return BigInt(decimal) * SCALE_FACTOR;
  const frac = decimal.slice(dot + 1);
  return BigInt(decimal.slice(0, dot) + frac + ZEROS.slice(frac.length));
}

/** Integer units at `scale` fractional digits → decimal string with exactly `scale` places. */
export function unitsToString(units: bigint, scale = DECIMAL_SCALE): string {
  const neg = units < 0n;
  const abs = neg ? -units : units;
  let digits = abs.toString();
  if (scale === 0) return (neg ? "-" : "") + digits;
  if (digits.length <= scale) digits = "0".repeat(scale - digits.length + 1) + digits;
  const out = `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`;
  return neg ? `-${out}` : out;
}

/**
 * Exact division rounded half-to-even: `numerator / denominator`, both integers, result as integer.
 * @throws {RangeError} when `denominator` is zero
 */
export function divRoundHalfEven(numerator: bigint, denominator: bigint): bigint {
  if (denominator === 0n) throw new RangeError("division by zero");
  if (denominator < 0n) {
    numerator = -numerator;
    denominator = -denominator;
  }
  let q = numerator / denominator;
  let r = numerator % denominator;
  if (r < 0n) {
    q -= 1n;
    r += denominator;
  }
  const twice = 2n * r;
  if (twice > denominator || (twice === denominator && q % 2n !== 0n)) q += 1n;
  return q;
}

/**
 * Decimal string with any scale (e.g. DuckDB's DECIMAL(38,16) sum of `price * quantity`) → integer
 * units at `scale` fractional digits, exactly (no rounding: throws if digits would be lost).
 * @throws {DecimalError} on malformed input or lost digits
 */
export function decimalToScaledUnits(value: string, scale: number): bigint {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(value);
  if (!m) throw new DecimalError("not a decimal string", value);
  let frac = m[3] ?? "";
  if (frac.length > scale) {
    if (/[1-9]/.test(frac.slice(scale))) throw new DecimalError("digits lost at requested scale", value);
    frac = frac.slice(0, scale);
  }
  const units = BigInt(m[2] + frac + "0".repeat(scale - frac.length));
  return m[1] === "-" ? -units : units;
}

/**
 * VWAP = Σ(price·qty) / Σ(qty), rounded half-even to 8 places, from exact decimal strings of any scale.
 * @param notional Σ(price·quantity), e.g. DuckDB DECIMAL(38,16) as a string
 * @param volume Σ(quantity), decimal string
 * @returns DECIMAL(18,8)-style string, or null when volume is zero
 */
export function vwapFromSums(notional: string, volume: string): string | null {
  const n = decimalToScaledUnits(notional, 16);
  const v = decimalToScaledUnits(volume, 16);
  if (v === 0n) return null;
  // n/v has scale 0; multiply by 1e8 for 8 places.
  return unitsToString(divRoundHalfEven(n * SCALE_FACTOR, v));
}
