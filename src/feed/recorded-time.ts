/**
 * Recorded receive times on a replay's wire. A replay server started with `stampReceiveTimes` (by
 * `k2 run --replay`, unless `--replay-clock wall`) sends, right before each recorded data frame, a
 * WebSocket ping (RFC 6455 §5.5.2, a control frame: the venue's own messages stay byte for byte as
 * recorded) whose payload is `k2-recv:<µs since epoch>`, the frame's receive time in the recording.
 * A {@link VenueConnection} opened with `recordedClock` takes that time as the next frame's receipt
 * time instead of its wall clock, and does not answer these pings (any other ping is answered).
 */

/** Payload prefix of a recorded-receive-time ping. */
const PREFIX = "k2-recv:";
const PREFIX_BYTES = Buffer.from(PREFIX, "latin1");

/**
 * The ping payload carrying a recorded receive time.
 * @param us receive time, µs since epoch (a safe integer)
 */
export function recordedTimePayload(us: number): Buffer {
  return Buffer.from(`${PREFIX}${us}`, "latin1");
}

/**
 * The recorded receive time (µs since epoch) a ping payload carries, or null when it is not a
 * recorded-receive-time ping (e.g. a venue's own ping).
 */
export function parseRecordedTime(payload: Buffer): number | null {
  if (payload.length <= PREFIX_BYTES.length || payload.length > 40) return null;
  if (payload.compare(PREFIX_BYTES, 0, PREFIX_BYTES.length, 0, PREFIX_BYTES.length) !== 0) return null;
  const digits = payload.toString("latin1", PREFIX_BYTES.length);
  if (!/^\d{1,16}$/.test(digits)) return null;
  const us = Number(digits);
  return Number.isSafeInteger(us) ? us : null;
}

/**
 * µs since epoch of a receive time written as ns since epoch in decimal (`<ns>` of a capture line),
 * truncated to the µs; 0 when `ns` is empty. Exact for any time before the year 2255.
 */
export function nsTextToUs(ns: string): number {
  return ns.length > 3 ? Number(ns.slice(0, -3)) : 0;
}
