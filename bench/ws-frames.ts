/** WebSocket frame header parsing (RFC 6455 §5.2) shared by the benchmark's client and bare server. */

/** Where a frame's payload lies in a buffer. */
export interface FrameAt {
  /** 0x1 text, 0x8 close, 0x9 ping, 0xA pong. */
  opcode: number;
  /** Payload start (after the mask key when masked). */
  start: number;
  /** Payload end = start of the next frame. */
  end: number;
  /** Mask key offset, or -1 when unmasked. */
  mask: number;
}

/** The frame starting at `p`, or null when `buf` does not hold all of it yet. */
export function frameAt(buf: Buffer, p: number): FrameAt | null {
  if (p + 2 > buf.length) return null;
  const masked = (buf[p + 1] & 0x80) !== 0;
  let len = buf[p + 1] & 0x7f;
  let h = 2;
  if (len === 126) {
    if (p + 4 > buf.length) return null;
    len = buf.readUInt16BE(p + 2);
    h = 4;
  } else if (len === 127) {
    if (p + 10 > buf.length) return null;
    len = buf.readUInt32BE(p + 6);
    h = 10;
  }
  const mask = masked ? p + h : -1;
  const start = p + h + (masked ? 4 : 0);
  if (start + len > buf.length) return null;
  return { opcode: buf[p] & 0x0f, start, end: start + len, mask };
}
