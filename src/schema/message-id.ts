/**
 * Deterministic message ids.
 *
 * `message_id` is a UUID v8 (RFC 9562 §5.8, "custom") whose 122 free bits come from MurmurHash3
 * x86_128 (seed 0) of the UTF-8 name `EXCHANGE/data_type/SYMBOL/venue_id`. The same venue record
 * received twice (reconnect, replay, overlapping connections) gets the same id, so every bus and store
 * can deduplicate on it. SHA-1 (UUID v5) measured 0.31 M/s on these machines, slower than parsing the
 * frame (`../shared/design/performance-notes.md`); this runs several times faster and keeps the property.
 *
 * Where the venue gives no id, {@link randomMessageId} returns a UUID v4.
 */
import { randomUUID } from "node:crypto";

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/**
 * MurmurHash3 x86_128 of `bytes[0..len)` with seed 0, as four unsigned 32-bit words (h1..h4),
 * matching the reference implementation (Austin Appleby, public domain).
 */
export function murmur3x86_128(
  bytes: Uint8Array,
  len = bytes.length,
  seed = 0,
): [number, number, number, number] {
  murmurInto(bytes, len, seed);
  return [HASH[0], HASH[1], HASH[2], HASH[3]];
}

/** h1..h4 of the last {@link murmurInto} (no array per hash on the hot path). */
const HASH = new Uint32Array(4);

/** MurmurHash3 x86_128 of `bytes[0..len)` into {@link HASH}. */
function murmurInto(bytes: Uint8Array, len: number, seed: number): void {
  let h1 = seed >>> 0;
  let h2 = h1;
  let h3 = h1;
  let h4 = h1;
  const nblocks = len >>> 4;
  let k1: number;
  let k2: number;
  let k3: number;
  let k4: number;
  for (let b = 0; b < nblocks; b++) {
    const i = b << 4;
    k1 = bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24);
    k2 = bytes[i + 4] | (bytes[i + 5] << 8) | (bytes[i + 6] << 16) | (bytes[i + 7] << 24);
    k3 = bytes[i + 8] | (bytes[i + 9] << 8) | (bytes[i + 10] << 16) | (bytes[i + 11] << 24);
    k4 = bytes[i + 12] | (bytes[i + 13] << 8) | (bytes[i + 14] << 16) | (bytes[i + 15] << 24);

    k1 = Math.imul(k1, C1);
    k1 = (k1 << 15) | (k1 >>> 17);
    k1 = Math.imul(k1, C2);
    h1 ^= k1;
    h1 = (h1 << 19) | (h1 >>> 13);
    h1 = (h1 + h2) | 0;
    h1 = (Math.imul(h1, 5) + 0x561ccd1b) | 0;

    k2 = Math.imul(k2, C2);
    k2 = (k2 << 16) | (k2 >>> 16);
    k2 = Math.imul(k2, C3);
    h2 ^= k2;
    h2 = (h2 << 17) | (h2 >>> 15);
    h2 = (h2 + h3) | 0;
    h2 = (Math.imul(h2, 5) + 0x0bcaa747) | 0;

    k3 = Math.imul(k3, C3);
    k3 = (k3 << 17) | (k3 >>> 15);
    k3 = Math.imul(k3, C4);
    h3 ^= k3;
    h3 = (h3 << 15) | (h3 >>> 17);
    h3 = (h3 + h4) | 0;
    h3 = (Math.imul(h3, 5) + 0x96cd1c35) | 0;

    k4 = Math.imul(k4, C4);
    k4 = (k4 << 18) | (k4 >>> 14);
    k4 = Math.imul(k4, C1);
    h4 ^= k4;
    h4 = (h4 << 13) | (h4 >>> 19);
    h4 = (h4 + h1) | 0;
    h4 = (Math.imul(h4, 5) + 0x32ac3b17) | 0;
  }
  const tail = nblocks << 4;
  k1 = 0;
  k2 = 0;
  k3 = 0;
  k4 = 0;
  switch (len & 15) {
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm falls through
    case 15:
      k4 ^= bytes[tail + 14] << 16;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 14:
      k4 ^= bytes[tail + 13] << 8;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 13:
      k4 ^= bytes[tail + 12];
      k4 = Math.imul(k4, C4);
      k4 = (k4 << 18) | (k4 >>> 14);
      k4 = Math.imul(k4, C1);
      h4 ^= k4;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 12:
      k3 ^= bytes[tail + 11] << 24;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 11:
      k3 ^= bytes[tail + 10] << 16;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 10:
      k3 ^= bytes[tail + 9] << 8;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 9:
      k3 ^= bytes[tail + 8];
      k3 = Math.imul(k3, C3);
      k3 = (k3 << 17) | (k3 >>> 15);
      k3 = Math.imul(k3, C4);
      h3 ^= k3;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 8:
      k2 ^= bytes[tail + 7] << 24;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 7:
      k2 ^= bytes[tail + 6] << 16;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 6:
      k2 ^= bytes[tail + 5] << 8;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 5:
      k2 ^= bytes[tail + 4];
      k2 = Math.imul(k2, C2);
      k2 = (k2 << 16) | (k2 >>> 16);
      k2 = Math.imul(k2, C3);
      h2 ^= k2;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 4:
      k1 ^= bytes[tail + 3] << 24;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 3:
      k1 ^= bytes[tail + 2] << 16;
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: reference algorithm
    case 2:
      k1 ^= bytes[tail + 1] << 8;
    case 1:
      k1 ^= bytes[tail];
      k1 = Math.imul(k1, C1);
      k1 = (k1 << 15) | (k1 >>> 17);
      k1 = Math.imul(k1, C2);
      h1 ^= k1;
  }
  h1 ^= len;
  h2 ^= len;
  h3 ^= len;
  h4 ^= len;
  h1 = (h1 + h2) | 0;
  h1 = (h1 + h3) | 0;
  h1 = (h1 + h4) | 0;
  h2 = (h2 + h1) | 0;
  h3 = (h3 + h1) | 0;
  h4 = (h4 + h1) | 0;
  h1 = fmix32(h1);
  h2 = fmix32(h2);
  h3 = fmix32(h3);
  h4 = fmix32(h4);
  h1 = (h1 + h2) >>> 0;
  h1 = (h1 + h3) >>> 0;
  h1 = (h1 + h4) >>> 0;
  h2 = (h2 + h1) >>> 0;
  h3 = (h3 + h1) >>> 0;
  h4 = (h4 + h1) >>> 0;
  HASH[0] = h1;
  HASH[1] = h2;
  HASH[2] = h3;
  HASH[3] = h4;
}

/**
 * Deterministic UUID v8 for a venue record: `name` is `EXCHANGE/data_type/SYMBOL/venue_id`,
 * e.g. `BINANCE/trades/BTCUSDT/3735683259`. Returns the canonical 36-char lower-case form.
 */
export function deterministicMessageId(name: string): string {
  if (scratch.length < name.length * 3) scratch = new Uint8Array(name.length * 3);
  const { written } = encoder.encodeInto(name, scratch);
  return messageIdOfBytes(scratch, written);
}

/**
 * {@link deterministicMessageId} of a name already encoded as UTF-8: `bytes[0..len)`. The venues' fast
 * paths keep the `EXCHANGE/data_type/SYMBOL/` prefix encoded once and write only the venue id after it.
 * @returns the canonical 36-char lower-case UUID, identical to `deterministicMessageId` of the same name
 */
export function messageIdOfBytes(bytes: Uint8Array, len: number): string {
  murmurInto(bytes, len, 0);
  // version 8 in the high nibble of byte 6; variant 10xx in the high bits of byte 8
  const h2 = ((HASH[1] & 0xffff0fff) | 0x00008000) >>> 0;
  const h3 = ((HASH[2] & 0x3fffffff) | 0x80000000) >>> 0;
  const a = HASH[0];
  const d = HASH[3];
  const x = HEX_DIGITS;
  // the 36 character codes of `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` straight into one flat string
  // (20 concatenated pieces made a rope to flatten later; `Buffer#latin1Slice` is a call into C++)
  return String.fromCharCode(
    x[a >>> 28],
    x[(a >>> 24) & 15],
    x[(a >>> 20) & 15],
    x[(a >>> 16) & 15],
    x[(a >>> 12) & 15],
    x[(a >>> 8) & 15],
    x[(a >>> 4) & 15],
    x[a & 15],
    45,
    x[h2 >>> 28],
    x[(h2 >>> 24) & 15],
    x[(h2 >>> 20) & 15],
    x[(h2 >>> 16) & 15],
    45,
    x[(h2 >>> 12) & 15],
    x[(h2 >>> 8) & 15],
    x[(h2 >>> 4) & 15],
    x[h2 & 15],
    45,
    x[h3 >>> 28],
    x[(h3 >>> 24) & 15],
    x[(h3 >>> 20) & 15],
    x[(h3 >>> 16) & 15],
    45,
    x[(h3 >>> 12) & 15],
    x[(h3 >>> 8) & 15],
    x[(h3 >>> 4) & 15],
    x[h3 & 15],
    x[d >>> 28],
    x[(d >>> 24) & 15],
    x[(d >>> 20) & 15],
    x[(d >>> 16) & 15],
    x[(d >>> 12) & 15],
    x[(d >>> 8) & 15],
    x[(d >>> 4) & 15],
    x[d & 15],
  );
}

/** Character codes of the hex digits `0`..`f`. */
const HEX_DIGITS = Uint8Array.from("0123456789abcdef", (c) => c.charCodeAt(0));

/** Random UUID v4, only for records whose venue gives no id. */
export function randomMessageId(): string {
  return randomUUID();
}
