/** Test helpers over the shared recordings (read from ../shared/data, never copied). */
import { fileURLToPath } from "node:url";
import { readCapture } from "../../src/replay/capture.js";

/** Absolute path of a file under ../shared/data. */
export function sharedData(rel: string): string {
  return fileURLToPath(new URL(`../../../shared/data/${rel}`, import.meta.url));
}

/** The first `limit` frames of a capture whose raw text satisfies `pred`. */
export async function framesWhere(
  file: string,
  pred: (raw: string) => boolean,
  limit = Infinity,
): Promise<string[]> {
  const out: string[] = [];
  for await (const f of readCapture(file)) {
    if (pred(f.raw)) out.push(f.raw);
    if (out.length >= limit) break;
  }
  return out;
}
