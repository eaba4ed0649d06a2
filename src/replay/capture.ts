/**
 * Capture files: gzip text, one frame per line, `<receive time, ns since epoch> <raw frame text>`
 * (the format of hftbacktest's collector and of `k2 record`). Read as a stream, so a capture of any size
 * replays in bounded memory.
 */

import { once } from "node:events";
import {
  closeSync,
  createReadStream,
  createWriteStream,
  openSync,
  readSync,
  type WriteStream,
} from "node:fs";
import { createInterface } from "node:readline";
import { constants, createGunzip, createGzip, type Gzip, gunzipSync } from "node:zlib";
import { nsTextToUs } from "../feed/recorded-time.js";

/** One captured frame. */
export interface CapturedFrame {
  /** Receive time, ns since epoch, as its decimal string (exact; beyond 2^53). */
  ns: string;
  /** Receive time in ms since epoch (for pacing), rounded. */
  ms: number;
  /** Receive time in µs since epoch, truncated (0: the line has none). */
  us: number;
  /** Raw frame text. */
  raw: string;
}

/**
 * Streams frames from a capture file (gzip detected by magic bytes or `.gz`). Lines without the
 * `<ns> ` prefix are yielded with `ns` = "" so nothing is dropped silently; blank lines are skipped.
 */
export async function* readCapture(path: string): AsyncGenerator<CapturedFrame> {
  const input = createReadStream(path, { highWaterMark: 1 << 20 });
  const stream = path.endsWith(".gz") ? input.pipe(createGunzip()) : input;
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of rl) {
      if (line.length === 0) continue;
      const sp = line.indexOf(" ");
      const head = sp > 0 ? line.slice(0, sp) : "";
      if (sp > 0 && /^\d+$/.test(head)) {
        yield {
          ns: head,
          ms: Number(head.slice(0, -6) || "0"),
          us: nsTextToUs(head),
          raw: line.slice(sp + 1),
        };
      } else {
        yield { ns: "", ms: 0, us: 0, raw: line };
      }
    }
  } finally {
    rl.close();
    input.destroy();
  }
}

/**
 * Streams the frames of consecutive captures (e.g. `btcusdt_20240808.gz` then `btcusdt_20240809.gz`)
 * as one session: each file's frames, in file order.
 */
export async function* readCaptures(paths: readonly string[]): AsyncGenerator<CapturedFrame> {
  for (const path of paths) yield* readCapture(path);
}

/** Writes frames in capture format (`k2 record`). */
export class CaptureWriter {
  private readonly gzip: Gzip;
  private readonly out: WriteStream;
  /** Frames written. */
  frames = 0;

  constructor(path: string) {
    this.gzip = createGzip();
    this.out = createWriteStream(path);
    this.gzip.pipe(this.out);
  }

  /** Appends one frame; `receivedAtUs` is µs since epoch (written as ns). */
  write(raw: string, receivedAtUs: number): void {
    this.frames++;
    this.gzip.write(`${receivedAtUs}000 ${raw}\n`);
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    this.gzip.end();
    await once(this.out, "close");
  }
}

/**
 * A capture decompressed into one buffer with per-frame offsets, for replaying at full speed without
 * per-frame decoding: frame i is `buf[start[i], end[i])`, received at `ms[i]` (`us[i]` in µs), on stream
 * `streams[streamId[i]]` (-1: no stream, e.g. a REST snapshot line).
 */
export interface LoadedCapture {
  buf: Buffer;
  start: Uint32Array;
  end: Uint32Array;
  ms: Float64Array;
  /** Receive time, µs since epoch, truncated (exact: below 2^53); 0 when the line has none. */
  us: Float64Array;
  streamId: Int32Array;
  streams: string[];
  count: number;
}

/** Captures up to this size (compressed) are loaded into memory by the replay servers; larger stream. */
export const PRELOAD_MAX_BYTES = 256 * 1024 * 1024;

const STREAM_PREFIX = Buffer.from('{"stream":"');

/**
 * zlib's output chunk size for gunzipping the whole of `gz` at once: the uncompressed size its gzip
 * trailer states (ISIZE, RFC 1952 §2.3.1: the size mod 2^32 of the last member), so the output is one
 * buffer instead of 16 KiB chunks concatenated at the end (a 15.5 MB capture peaked 20 MB lower in
 * RSS). A hint only: a multi-member or > 4 GiB file just gets more chunks, concatenated as before.
 */
function gunzipChunkSize(gz: Buffer): number {
  const isize = gz.length >= 18 ? gz.readUInt32LE(gz.length - 4) : 0;
  return Math.min(Math.max(64 * 1024, isize + 1), 1 << 30);
}

/**
 * Loads a `<ns> <frame>` capture (gzip or plain) into a {@link LoadedCapture}; several paths are
 * consecutive captures loaded as one session, in order.
 */
export async function loadCapture(path: string | readonly string[]): Promise<LoadedCapture> {
  const { readFile } = await import("node:fs/promises");
  const { gunzipSync } = await import("node:zlib");
  const parts: Buffer[] = [];
  for (const p of typeof path === "string" ? [path] : path) {
    let b = await readFile(p);
    if (b[0] === 0x1f && b[1] === 0x8b) b = gunzipSync(b, { chunkSize: gunzipChunkSize(b) });
    parts.push(b);
    // a file without a final newline must not run into the next file's first line
    if (b.length > 0 && b[b.length - 1] !== 10) parts.push(Buffer.from("\n"));
  }
  const buf = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  let lines = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) lines++;
  lines++;
  const start = new Uint32Array(lines);
  const end = new Uint32Array(lines);
  const ms = new Float64Array(lines);
  const us = new Float64Array(lines);
  const streamId = new Int32Array(lines);
  const streams: string[] = [];
  const ids = new Map<string, number>();
  let count = 0;
  let pos = 0;
  while (pos < buf.length) {
    let nl = buf.indexOf(10, pos);
    if (nl < 0) nl = buf.length;
    let lineEnd = nl;
    if (lineEnd > pos && buf[lineEnd - 1] === 13) lineEnd--;
    if (lineEnd > pos) {
      let sp = pos;
      let t = 0;
      while (sp < lineEnd && buf[sp] >= 48 && buf[sp] <= 57) {
        t = t * 10 + (buf[sp] - 48);
        sp++;
      }
      let frameStart = pos;
      if (sp > pos && sp < lineEnd && buf[sp] === 32) {
        frameStart = sp + 1;
        ms[count] = Math.round(t / 1e6);
        // the µs exactly from the digits (t, a double, is not exact in ns)
        let u = 0;
        for (let k = pos; k < sp - 3; k++) u = u * 10 + (buf[k] - 48);
        us[count] = u;
      } else {
        ms[count] = 0;
        us[count] = 0;
      }
      start[count] = frameStart;
      end[count] = lineEnd;
      let sid = -1;
      if (
        buf.compare(STREAM_PREFIX, 0, STREAM_PREFIX.length, frameStart, frameStart + STREAM_PREFIX.length) ===
        0
      ) {
        const q = buf.indexOf(34, frameStart + STREAM_PREFIX.length);
        if (q > 0 && q < lineEnd) {
          const name = buf.toString("latin1", frameStart + STREAM_PREFIX.length, q);
          sid = ids.get(name) ?? -1;
          if (sid < 0) {
            sid = streams.length;
            streams.push(name);
            ids.set(name, sid);
          }
        }
      }
      streamId[count] = sid;
      count++;
    }
    pos = nl + 1;
  }
  return { buf, start, end, ms, us, streamId, streams, count };
}

/**
 * The first 64 KiB of a capture file, gunzipped when it is gzip (a truncated gzip stream is read as
 * far as it goes): enough to tell its format or read its header line.
 * @throws {Error} when the file cannot be read, or `<file>: cannot read gzip data: …`
 */
export function readCaptureHead(file: string): Buffer {
  const fd = openSync(file, "r");
  const buf = Buffer.alloc(65536);
  let n: number;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  const head = buf.subarray(0, n);
  if (head[0] !== 0x1f || head[1] !== 0x8b) return head;
  try {
    return gunzipSync(head, { finishFlush: constants.Z_SYNC_FLUSH });
  } catch (e) {
    throw new Error(`${file}: cannot read gzip data: ${(e as Error).message}`);
  }
}
