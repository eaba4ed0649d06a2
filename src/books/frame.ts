/**
 * Shared helpers for reading venue book frames into typed objects with exact strings. A frame that does
 * not have the documented shape throws {@link BookFrameError} (its message is the dead-letter reason).
 */
import { parseNonNegativeDecimal } from "../schema/decimal.js";
import type { BookLevelPair } from "./l2-book.js";

/** Thrown when a venue book frame does not have the documented shape. */
export class BookFrameError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = "BookFrameError";
  }
}

/** The frame as a JSON object. @throws {BookFrameError} */
export function objectOf(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new BookFrameError(`${what} is not an object`);
  return v as Record<string, unknown>;
}

/** A non-negative safe integer field (update ids, sequence numbers). @throws {BookFrameError} */
export function intOf(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new BookFrameError(`${what} is not a non-negative integer`);
  }
  return v;
}

/** A string field. @throws {BookFrameError} */
export function stringOf(v: unknown, what: string): string {
  if (typeof v !== "string") throw new BookFrameError(`${what} is not a string`);
  return v;
}

/**
 * `[["price","quantity"], …]` (Binance depth diffs and snapshots) → exact `[price, quantity]` pairs.
 * Extra elements of a level (older Binance frames carry an empty third one) are ignored.
 * @throws {BookFrameError} on another shape; {@link DecimalError} when a value is not DECIMAL(18,8)
 */
export function levelPairsOf(v: unknown, what: string): BookLevelPair[] {
  if (!Array.isArray(v)) throw new BookFrameError(`${what} is not an array of levels`);
  const out: BookLevelPair[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const l = v[i];
    if (!Array.isArray(l) || l.length < 2)
      throw new BookFrameError(`${what}[${i}] is not a [price, quantity] level`);
    out[i] = [parseNonNegativeDecimal(l[0]), parseNonNegativeDecimal(l[1])];
  }
  return out;
}
