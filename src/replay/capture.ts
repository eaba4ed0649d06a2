/**
 * Capture files: gzip text, one frame per line, `<receive time, ns since epoch> <raw frame text>`
 * (the format of hftbacktest's collector and of `k2 record`). Read as a stream, so a capture of any size
 * replays in bounded memory.
 */

import { once } from "node:events";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { createGunzip, createGzip, type Gzip } from "node:zlib";

/** One captured frame. */
export interface CapturedFrame {
  /** Receive time, ns since epoch, as its decimal string (exact; beyond 2^53). */
  ns: string;
  /** Receive time in ms since epoch (for pacing), rounded. */
  ms: number;
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
        yield { ns: head, ms: Number(head.slice(0, -6) || "0"), raw: line.slice(sp + 1) };
      } else {
        yield { ns: "", ms: 0, raw: line };
      }
    }
  } finally {
    rl.close();
    input.destroy();
  }
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
