/**
 * Field readers shared by the venue mappers (Binance, Coinbase, Kraken): each either returns the exact
 * canonical value or throws {@link Reject} with the dead-letter reason. Nothing is guessed.
 */
import { DecimalError, parseNonNegativeDecimal } from "../schema/decimal.js";
import { deterministicMessageId } from "../schema/message-id.js";
import { type DeadLetter, quoteCurrency } from "../schema/records.js";
import { parseEpochSecondsMicros, parseIsoMicros, TimeError } from "../schema/time.js";

/** A record (or frame) that cannot be normalized; `message` is the dead-letter reason. */
export class Reject extends Error {}

/** Throws {@link Reject} with `reason`. */
export function fail(reason: string): never {
  throw new Reject(reason);
}

/** A JSON object (not null, not an array), or null. */
export function asObject(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Text of a venue value for `vendor_data` (strings as they are, anything else as JSON). */
export function vendorString(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

/**
 * A required non-negative DECIMAL(18,8) from a venue decimal string (`"65083.67"` → `"65083.67000000"`).
 * @throws {Reject} `missing <name> (<key>)` or `<name> (<key>): <decimal reason>: <value>`
 */
export function decimalOf(v: unknown, name: string, key: string): string {
  if (v === undefined || v === null) fail(`missing ${name} (${key})`);
  try {
    return parseNonNegativeDecimal(v);
  } catch (e) {
    if (e instanceof DecimalError) fail(`${name} (${key}): ${e.reason}: ${JSON.stringify(v)}`);
    throw e;
  }
}

/**
 * A required RFC 3339 time → µs since epoch.
 * @throws {Reject} `missing <name> (<key>)` or `<name> (<key>): not an RFC 3339 time: <value>`
 */
export function isoMicrosOf(v: unknown, name: string, key: string): number {
  if (v === undefined || v === null) fail(`missing ${name} (${key})`);
  try {
    return parseIsoMicros(v);
  } catch (e) {
    if (e instanceof TimeError) fail(`${name} (${key}): ${e.reason}: ${JSON.stringify(v)}`);
    throw e;
  }
}

/**
 * A required epoch-seconds decimal string (`"1618678142.557535"`) → µs since epoch.
 * @throws {Reject} as {@link isoMicrosOf}
 */
export function epochSecondsMicrosOf(v: unknown, name: string, key: string): number {
  if (v === undefined || v === null) fail(`missing ${name} (${key})`);
  try {
    return parseEpochSecondsMicros(v);
  } catch (e) {
    if (e instanceof TimeError) fail(`${name} (${key}): ${e.reason}: ${JSON.stringify(v)}`);
    throw e;
  }
}

/**
 * A required venue symbol, upper case, matching `pattern`.
 * @throws {Reject} `missing symbol (<key>)` or `symbol (<key>) is not a <what>: <value>`
 */
export function symbolOf(v: unknown, key: string, pattern: RegExp, what: string): string {
  if (typeof v !== "string" || v.length === 0) fail(`missing symbol (${key})`);
  const s = v.toUpperCase();
  if (!pattern.test(s)) fail(`symbol (${key}) is not ${what}: ${JSON.stringify(v)}`);
  return s;
}

const currencies = new Map<string, string>();

/**
 * Quote currency of a symbol (`BTCUSDT`, `BTC-USD`, `XBT/USD`), cached per symbol.
 * @throws {Reject} when none can be derived
 */
export function currencyOf(symbol: string): string {
  let c = currencies.get(symbol);
  if (c === undefined) {
    try {
      c = quoteCurrency(symbol);
    } catch (e) {
      fail((e as Error).message);
    }
    if (currencies.size < 100_000) currencies.set(symbol, c); // symbols are few; frames are many
  }
  return c;
}

/**
 * A non-negative integer sequence or id given as a JSON number or a digit string (`"1068572090"`).
 * @throws {Reject} `missing <name> (<key>)` or `<name> (<key>) is not a non-negative integer: <value>`
 */
export function intOf(v: unknown, name: string, key: string): number {
  if (v === undefined || v === null) fail(`missing ${name} (${key})`);
  const n =
    typeof v === "number" ? v : typeof v === "string" && /^\d{1,16}$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) {
    fail(`${name} (${key}) is not a non-negative integer: ${JSON.stringify(v)}`);
  }
  return n;
}

/**
 * A dead letter for `raw`. `part` distinguishes several rejected records of one frame (so each keeps
 * its own deterministic message_id: a replayed frame's dead letters are stored once).
 */
export function deadLetterOf(
  exchange: string,
  source: string,
  reason: string,
  raw: string,
  receivedAtUs: number,
  part = "",
): DeadLetter {
  return {
    message_id: deterministicMessageId(`${exchange}/dlq/${part}/${raw}`),
    exchange,
    source,
    reason,
    raw,
    received_at: receivedAtUs,
  };
}
