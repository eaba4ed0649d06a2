/**
 * Request parameter parsing for the REST API: every parameter is checked against a fixed rule and
 * turned into a typed value, or rejected with a {@link QueryParamError} naming it (the API answers
 * 400 `{"error":"bad_request","parameter":...,"reason":...}`). Values that pass are only ever bound as
 * SQL parameters; the rules also keep obviously hostile input (quotes, semicolons, spaces) out.
 */
import { CANDLE_INTERVALS, type CandleInterval, isCandleInterval } from "../../schema/candles.js";
import { QueryParamError, type SortOrder } from "../../store/page.js";

/** Page size bounds. */
export const LIMITS = {
  /** trades, quotes, gaps, dead letters */
  records: { default: 100, max: 1000 },
  candles: { default: 500, max: 5000 },
} as const;

/** Largest µs value accepted (2^53 − 1 µs: year 2255; JSON numbers stay exact). */
const MAX_US = Number.MAX_SAFE_INTEGER;

const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,6}))?)?(Z|z|[+\- ]\d{2}(?::?\d{2})?))?$/;

/**
 * Smallest bare integer read as µs, other than 0: 10^14 µs is 1973-03-03T09:46:40Z, before any market
 * data. Below it a value is far more likely seconds (10 digits today) or ms (13 digits) than µs, and
 * read as µs it would silently select everything since 1970; so it is refused with the unit it looks
 * like. Written with a unit suffix (`s`, `ms`, `us`) any magnitude is taken as given.
 */
export const MIN_BARE_US = 100_000_000_000_000;

/** Multipliers of the unit suffixes a numeric time may carry (`1723161360s`). */
const UNIT_US = { s: 1_000_000, ms: 1000, us: 1, µs: 1 } as const;

/** The unit a bare integer of `digits` digits most likely is, for the error message. */
function likelyUnit(digits: number): string {
  if (digits <= 11) return "seconds";
  if (digits <= 14) return "milliseconds";
  return "nanoseconds";
}

/**
 * The µs of a numeric time: a bare integer (µs; 0 or at least {@link MIN_BARE_US}) or an integer with
 * a unit suffix `s`, `ms`, `us`/`µs` (any magnitude). Returns undefined when `raw` is not numeric.
 * @throws {QueryParamError} naming `parameter` when the value is out of range, or bare and too small to
 *   be µs (the reason names the unit it looks like and how to write it)
 */
export function parseNumericTime(parameter: string, raw: string): number | undefined {
  const m = /^(\d{1,19})(s|ms|us|µs)?$/.exec(raw);
  if (!m) return undefined;
  const [, digits, unit] = m;
  const n = Number(digits) * (unit === undefined ? 1 : UNIT_US[unit as keyof typeof UNIT_US]);
  if (!Number.isSafeInteger(n) || n > MAX_US) {
    const hint =
      unit === undefined && digits.length >= 18
        ? `; ${raw} looks like ${likelyUnit(digits.length)}: pass µs (${digits.slice(0, -3)})`
        : "";
    throw new QueryParamError(parameter, `time out of range (0..${MAX_US} µs, year 2255)${hint}`);
  }
  if (unit === undefined && n !== 0 && n < MIN_BARE_US) {
    const u = likelyUnit(digits.length);
    const suffix = u === "seconds" ? "s" : "ms";
    throw new QueryParamError(
      parameter,
      `${raw} was read as µs since the epoch (${new Date(n / 1000).toISOString()}), before any market ` +
        `data; it looks like ${u}: write ${raw}${suffix}, or µs (${digits}${u === "seconds" ? "000000" : "000"}), ` +
        "or ISO-8601 (2024-08-08T23:56:00Z)",
    );
  }
  return n;
}

/**
 * Parses a time given as µs since the epoch (a bare integer: 0, or at least {@link MIN_BARE_US}), as an
 * integer with a unit suffix (`1723161360s`, `1723161360000ms`, `1723161360000000us`), or as ISO-8601
 * UTC/offset text: `2024-08-08`, `2024-08-08T00:05:00Z`, `2024-08-08T02:05:00.123456+02:00` (at most 6
 * fractional digits; a time of day needs a zone, `Z` or `±hh:mm`; a `+` decoded to a space by form
 * encoding is read as `+`).
 * @returns µs since epoch
 * @throws {QueryParamError} naming `parameter`; a bare integer too small to be µs (seconds, ms) is
 *   refused with the unit it looks like
 */
export function parseTime(parameter: string, raw: string): number {
  const numeric = parseNumericTime(parameter, raw);
  if (numeric !== undefined) return numeric;
  const m = ISO.exec(raw);
  if (!m) {
    throw new QueryParamError(
      parameter,
      "expected µs since the epoch (integer), an integer with a unit (1723161360s, 1723161360000ms) " +
        "or ISO-8601 time with a zone, e.g. 2024-08-08T00:05:00Z",
    );
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  if (h !== undefined && zone === undefined) {
    throw new QueryParamError(parameter, "ISO-8601 time of day needs a zone: Z or ±hh:mm");
  }
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h ?? 0);
  const minute = Number(mi ?? 0);
  const second = Number(s ?? 0);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(ms);
  if (
    year < 1970 ||
    check.getUTCFullYear() !== year ||
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    hour > 23 ||
    minute > 59 ||
    second > 59
  ) {
    throw new QueryParamError(parameter, "not a valid date and time (from 1970-01-01)");
  }
  let offsetMin = 0;
  if (zone !== undefined && zone !== "Z" && zone !== "z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = digits.length > 2 ? Number(digits.slice(2)) : 0;
    if (oh > 23 || om > 59) throw new QueryParamError(parameter, "zone offset out of range");
    offsetMin = sign * (oh * 60 + om);
  }
  const micros = (ms - offsetMin * 60_000) * 1000 + (frac === undefined ? 0 : Number(frac.padEnd(6, "0")));
  if (!Number.isSafeInteger(micros) || micros < 0 || micros > MAX_US) {
    throw new QueryParamError(parameter, "time out of range (1970 .. 2255)");
  }
  return micros;
}

/** The API token's query parameter (`?token=`, `auth.ts`): accepted by every route and ignored here. */
export const AUTH_PARAM = "token";

/**
 * Reads the query string of one request against the parameters a route allows. Unknown parameters and
 * parameters given more than once are rejected, except {@link AUTH_PARAM} (the API token), which every
 * route accepts. An empty value (`symbol=`) counts as absent.
 */
export class ParamReader {
  private readonly values = new Map<string, string>();

  /**
   * @param query Fastify's parsed query string (values are strings, or arrays when repeated)
   * @param allowed names this route accepts
   * @throws {QueryParamError} on an unknown or repeated parameter
   */
  constructor(query: unknown, allowed: readonly string[]) {
    const q = (query ?? {}) as Record<string, unknown>;
    for (const [name, value] of Object.entries(q)) {
      if (name === AUTH_PARAM) continue; // checked by the auth hook (auth.ts), not a query parameter
      if (!allowed.includes(name)) {
        throw new QueryParamError(
          safeName(name),
          `unknown parameter (allowed: ${allowed.join(", ") || "none"})`,
        );
      }
      if (typeof value !== "string") throw new QueryParamError(name, "given more than once");
      if (value !== "") this.values.set(name, value);
    }
  }

  /** The raw value, or undefined when absent. */
  raw(name: string): string | undefined {
    return this.values.get(name);
  }

  /** Exchange code (`binance` → `BINANCE`): letters, digits, `_`, up to 32. */
  exchange(name = "exchange"): string | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    if (!/^[A-Za-z0-9_]{1,32}$/.test(v)) {
      throw new QueryParamError(name, "expected an exchange code: letters, digits and _ (up to 32)");
    }
    return v.toUpperCase();
  }

  /** Venue symbol (`btcusdt` → `BTCUSDT`, `BTC-USD`): letters, digits, `.`, `_`, `/`, `-`, up to 32. */
  symbol(name = "symbol", required = false): string | undefined {
    const v = this.values.get(name);
    if (v === undefined) {
      if (required) throw new QueryParamError(name, "required");
      return undefined;
    }
    if (!/^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$/.test(v)) {
      throw new QueryParamError(
        name,
        "expected a venue symbol: a letter or digit, then letters, digits, . _ / - (up to 32)",
      );
    }
    return v.toUpperCase();
  }

  /** A time (see {@link parseTime}). */
  time(name: string): number | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : parseTime(name, v);
  }

  /** `from` and `to` with `from < to` when both are given. */
  range(): { from?: number; to?: number } {
    const from = this.time("from");
    const to = this.time("to");
    if (from !== undefined && to !== undefined && to <= from) {
      throw new QueryParamError("to", "must be after from (the range is [from, to))");
    }
    return { from, to };
  }

  /** An integer in [min, max], `fallback` when absent. */
  int(name: string, min: number, max: number, fallback: number): number {
    const v = this.values.get(name);
    if (v === undefined) return fallback;
    const n = /^\d{1,9}$/.test(v) ? Number(v) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new QueryParamError(name, `expected an integer from ${min} to ${max}`);
    }
    return n;
  }

  /** One of `values`, `fallback` when absent (required when `fallback` is undefined). */
  oneOf<T extends string>(name: string, values: readonly T[], fallback?: T): T {
    const v = this.values.get(name);
    if (v === undefined) {
      if (fallback === undefined) throw new QueryParamError(name, `required: one of ${values.join(", ")}`);
      return fallback;
    }
    if (!(values as readonly string[]).includes(v)) {
      throw new QueryParamError(name, `expected one of ${values.join(", ")}`);
    }
    return v as T;
  }

  /** `asc` or `desc`. */
  order(fallback: SortOrder): SortOrder {
    return this.oneOf("order", ["asc", "desc"] as const, fallback);
  }

  /** Candle interval (required). */
  interval(): CandleInterval {
    const v = this.oneOf("interval", CANDLE_INTERVALS);
    if (!isCandleInterval(v)) throw new QueryParamError("interval", "unknown interval");
    return v;
  }

  /** Opaque cursor text (decoded by the source). */
  cursor(): string | undefined {
    const v = this.values.get("cursor");
    if (v === undefined) return undefined;
    if (v.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(v)) {
      throw new QueryParamError("cursor", "not a cursor returned by this endpoint");
    }
    return v;
  }
}

/** A parameter name safe to echo back (printable ASCII, at most 64 characters). */
function safeName(name: string): string {
  const printable = name.replace(/[^\x20-\x7e]/g, "?");
  return printable.length > 64 ? `${printable.slice(0, 64)}…` : printable;
}
