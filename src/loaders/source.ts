/**
 * Line sources for the historical loaders: a plain text file, a gzip file, or the single CSV entry of
 * a ZIP archive (Binance public data ships `SYMBOL-aggTrades-YYYY-MM-DD.zip` holding one CSV), read
 * as a stream in chunks so memory stays bounded whatever the file size.
 *
 * The kind is detected from the file's first bytes (`PK\x03\x04` → ZIP, `\x1f\x8b` → gzip, anything
 * else → text), not from its name. ZIP entries are read with yauzl (github.com/thejoshwolfe/yauzl),
 * which reads the central directory and inflates the chosen entry as a stream.
 */
import { createReadStream, type ReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { createGunzip } from "node:zlib";
import yauzl from "yauzl";

/** Thrown when the input file cannot be opened or has no loadable content; the CLI exits 2. */
export class SourceError extends Error {
  override name = "SourceError";
}

/** Longest line accepted (characters); a longer one means the file is not line-oriented text. */
export const MAX_LINE_CHARS = 1 << 20;

/** Read chunk size, bytes. */
const CHUNK_BYTES = 256 * 1024;

/** An opened input: lines in chunks, with progress in bytes. */
export interface LineSource {
  /** `text`, `gzip` or `zip`. */
  kind: "text" | "gzip" | "zip";
  /** For a ZIP: the entry being read. */
  entry: string | null;
  /** Progress denominator, bytes (file size; for a ZIP the entry's uncompressed size). */
  totalBytes: number;
  /** Bytes consumed so far, same unit as {@link totalBytes}. */
  bytesRead(): number;
  /**
   * The file's lines, in order, a chunk at a time (line terminators `\n` and `\r\n` removed). The
   * stream is pulled only as the consumer iterates, so a slow consumer never buffers the file.
   * @throws {SourceError} on a line longer than {@link MAX_LINE_CHARS}
   */
  chunks(): AsyncGenerator<string[]>;
  /** Releases the file (also done when {@link chunks} completes). */
  close(): void;
}

async function magic(file: string): Promise<Buffer> {
  let fh: Awaited<ReturnType<typeof open>> | null = null;
  try {
    fh = await open(file, "r");
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } catch (e) {
    throw new SourceError(
      `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  } finally {
    await fh?.close();
  }
}

/**
 * Opens `file` for line-by-line reading (text, gzip, or the single CSV entry of a ZIP).
 * @throws {SourceError} when the file cannot be read, or a ZIP holds no single CSV entry
 */
export async function openLineSource(file: string): Promise<LineSource> {
  const head = await magic(file);
  const size = (await stat(file)).size;
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) {
    return openZipEntry(file);
  }
  const fileStream = createReadStream(file, { highWaterMark: CHUNK_BYTES });
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip();
    fileStream.on("error", (e) => gunzip.destroy(e));
    fileStream.pipe(gunzip);
    return streamSource("gzip", null, gunzip, size, () => fileStream.bytesRead, fileStream);
  }
  return streamSource("text", null, fileStream, size, () => fileStream.bytesRead, fileStream);
}

/**
 * @param bytesRead progress in the unit of `totalBytes`; null counts the bytes `stream` delivers
 */
function streamSource(
  kind: LineSource["kind"],
  entry: string | null,
  stream: Readable,
  totalBytes: number,
  bytesRead: (() => number) | null,
  underlying: ReadStream | null,
): LineSource {
  const close = () => {
    stream.destroy();
    underlying?.destroy();
  };
  const counted = { bytes: 0 };
  return {
    kind,
    entry,
    totalBytes,
    bytesRead: bytesRead ?? (() => counted.bytes),
    close,
    chunks: () => splitLines(stream, close, counted),
  };
}

async function* splitLines(
  stream: Readable,
  close: () => void,
  counted: { bytes: number },
): AsyncGenerator<string[]> {
  const decoder = new StringDecoder("utf8");
  let rest = "";
  try {
    for await (const chunk of stream) {
      counted.bytes += (chunk as Buffer).length;
      const text = rest + decoder.write(chunk as Buffer);
      const lines = text.split("\n");
      rest = lines.pop()!;
      if (rest.length > MAX_LINE_CHARS) {
        throw new SourceError(`a line longer than ${MAX_LINE_CHARS} characters: not a line-oriented file`);
      }
      for (let i = 0; i < lines.length; i++) {
        const l = lines[i];
        if (l.length > 0 && l.charCodeAt(l.length - 1) === 13) lines[i] = l.slice(0, -1);
      }
      if (lines.length > 0) yield lines;
    }
    rest += decoder.end();
    if (rest.length > 0) yield [rest.endsWith("\r") ? rest.slice(0, -1) : rest];
  } finally {
    close();
  }
}

function openZipEntry(file: string): Promise<LineSource> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false }, (err, zip) => {
      if (err || !zip) {
        reject(new SourceError(`cannot read ZIP ${file}: ${err?.message ?? "no archive"}`));
        return;
      }
      const files: yauzl.Entry[] = [];
      zip.on("error", (e: Error) => {
        zip.close();
        reject(new SourceError(`cannot read ZIP ${file}: ${e.message}`));
      });
      zip.on("entry", (entry: yauzl.Entry) => {
        if (!entry.fileName.endsWith("/")) files.push(entry);
        zip.readEntry();
      });
      zip.on("end", () => {
        const csv = files.filter((e) => /\.csv$/i.test(e.fileName));
        const chosen = csv.length === 1 ? csv[0] : files.length === 1 ? files[0] : null;
        if (!chosen) {
          zip.close();
          reject(
            new SourceError(
              `ZIP ${file} must hold exactly one CSV entry, found ${files.length} entries (${files
                .slice(0, 5)
                .map((e) => e.fileName)
                .join(", ")})`,
            ),
          );
          return;
        }
        zip.openReadStream(chosen, (e, stream) => {
          if (e || !stream) {
            zip.close();
            reject(new SourceError(`cannot read ${chosen.fileName} in ZIP ${file}: ${e?.message}`));
            return;
          }
          const source = streamSource("zip", chosen.fileName, stream, chosen.uncompressedSize, null, null);
          const closeStream = source.close;
          source.close = () => {
            closeStream();
            zip.close();
          };
          const chunks = source.chunks;
          source.chunks = async function* () {
            try {
              yield* chunks();
            } finally {
              zip.close();
            }
          };
          resolve(source);
        });
      });
      zip.readEntry();
    });
  });
}
