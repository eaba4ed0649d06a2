/**
 * WebSocket frames as the gateway writes them: {@link textFrame} builds a server frame once so that
 * every client gets the same bytes; the other helpers read client frames and cut close reasons.
 */
import type { RawData } from "ws";

/** A final, unmasked text frame (RFC 6455 §5.2) carrying `text`. */
export function textFrame(text: string): Buffer {
  const len = Buffer.byteLength(text);
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + len);
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (len < 126) frame[1] = len;
  else if (len < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    frame.writeUInt32BE(len >>> 0, 6);
  }
  frame.write(text, head, "utf8");
  return frame;
}

/** JSON texts of records parsed by {@link parseRecord}, by record. */
const recordJson = new WeakMap<object, string>();

/**
 * Parses one record's JSON text (as `JSON.stringify` wrote it) and remembers the text with the object,
 * so that {@link recordText} gives it back instead of serializing the record again: a gateway worker
 * process receives each record as JSON text from the parent and sends the same text to its clients.
 * The record must not be mutated afterwards (the remembered text would no longer match it).
 * @throws {SyntaxError} when `json` is not valid JSON
 */
export function parseRecord(json: string): unknown {
  const value: unknown = JSON.parse(json);
  if (typeof value === "object" && value !== null) recordJson.set(value, json);
  return value;
}

/**
 * A record as JSON text: the text it was parsed from ({@link parseRecord}), which is what
 * `JSON.stringify(record)` would give (key order and number forms survive the round trip), or else
 * `JSON.stringify(record)`.
 */
export function recordText(record: object): string {
  return recordJson.get(record) ?? JSON.stringify(record);
}

/** The text of a message frame as `ws` delivers it (one buffer, fragments, or an ArrayBuffer). */
export function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

/** Close reasons are limited to 123 bytes (RFC 6455 §5.5). */
export function truncateReason(reason: string): string {
  let r = reason;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}
