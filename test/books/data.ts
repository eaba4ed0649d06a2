/** Test helpers: the shared recordings (../shared/data, never copied) read whole, line by line. */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

/** Absolute path of a file under ../shared/data. */
export function sharedData(rel: string): string {
  return fileURLToPath(new URL(`../../../shared/data/${rel}`, import.meta.url));
}

/** The raw frames of a Binance capture (`<ns> <frame>` lines), in recorded order. */
export function captureFrames(rel: string): { ns: string; raw: string }[] {
  const text = gunzipSync(readFileSync(sharedData(rel))).toString("utf8");
  const out: { ns: string; raw: string }[] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0) continue;
    const sp = line.indexOf(" ");
    out.push({ ns: line.slice(0, sp), raw: line.slice(sp + 1) });
  }
  return out;
}

/** The `recv` frames of a cryptofeed recording, in recorded order, with their connection. */
export function recvFrames(rel: string): { conn: string; data: string }[] {
  const text = gunzipSync(readFileSync(sharedData(rel))).toString("utf8");
  const out: { conn: string; data: string }[] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0) continue;
    const l = JSON.parse(line) as { t: string; conn?: string; data?: string };
    if (l.t === "recv" && l.data !== undefined) out.push({ conn: l.conn ?? "", data: l.data });
  }
  return out;
}
