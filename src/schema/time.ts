/**
 * Exact venue time strings → µs since the Unix epoch (UTC), without passing the fraction through a
 * binary float (`Date.parse` keeps only ms; `Number("1618678142.557535") * 1e6` can be off by one µs).
 */

import { previewValue } from "./decimal.js";

const ISO = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$/;

/** Thrown when a venue time string cannot be read exactly. `reason` is the dead-letter reason. */
export class TimeError extends Error {
  constructor(
    readonly reason: string,
    readonly input: unknown,
  ) {
    super(`${reason}: ${previewValue(input)}`);
    this.name = "TimeError";
  }
}

/**
 * RFC 3339 / ISO 8601 UTC time (`2026-08-09T21:05:42.514318Z`, up to 9 fractional digits, `Z` or a
 * `±hh:mm` offset) → µs since epoch. Digits beyond the µs are truncated (ns → µs), never rounded up
 * into the next µs.
 * @throws {TimeError} `not an RFC 3339 time` or `time out of range`
 */
export function parseIsoMicros(input: unknown): number {
  if (typeof input !== "string") throw new TimeError("not an RFC 3339 time", input);
  const m = ISO.exec(input);
  if (!m) throw new TimeError("not an RFC 3339 time", input);
  const [, y, mo, d, h, mi, s, frac = "", zone] = m;
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    throw new TimeError("time out of range", input);
  }
  let ms = Date.UTC(Number(y), month - 1, day, hour, minute, second);
  if (zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
  }
  const us = ms * 1000 + Number(`${frac}000000`.slice(0, 6));
  if (!Number.isSafeInteger(us) || us < 0) throw new TimeError("time out of range", input);
  return us;
}

/**
 * Decimal seconds since epoch as a string (Kraken v1 `"1618678142.557535"`) → µs since epoch, exactly.
 * Digits beyond the µs are truncated.
 * @throws {TimeError} `not an epoch-seconds string`
 */
export function parseEpochSecondsMicros(input: unknown): number {
  if (typeof input !== "string") throw new TimeError("not an epoch-seconds string", input);
  const m = /^(\d{1,11})(?:\.(\d{1,9}))?$/.exec(input);
  if (!m) throw new TimeError("not an epoch-seconds string", input);
  const us = Number(m[1]) * 1_000_000 + Number(`${m[2] ?? ""}000000`.slice(0, 6));
  if (!Number.isSafeInteger(us)) throw new TimeError("time out of range", input);
  return us;
}

/**
 * Current wall-clock time in µs since the Unix epoch, with sub-ms resolution from the monotonic clock
 * (`performance.timeOrigin + performance.now()`): the one clock for `received_at`, ingestion and
 * heartbeat timestamps.
 */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}
