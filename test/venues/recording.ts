/**
 * Test helpers: the cryptofeed recordings in ../shared/data/cryptofeed read with a plain, independent
 * parse (gunzip, split lines, JSON.parse), and a sink collecting what a normalizer reports.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../../src/schema/records.js";
import type { NormalizedSink } from "../../src/venues/venue.js";

export const DATA = fileURLToPath(new URL("../../../shared/data/cryptofeed/", import.meta.url));
export const COINBASE_FILE = `${DATA}COINBASE.jsonl.gz`;
export const KRAKEN_FILE = `${DATA}KRAKEN.jsonl.gz`;
export const BINANCE_FILE = `${DATA}BINANCE.jsonl.gz`;

export interface Line {
  t: string;
  conn?: string;
  ts?: number;
  data?: string;
  exchange?: string;
}

const cache = new Map<string, Line[]>();

/** Every line of a recording, parsed. */
export function lines(file: string): Line[] {
  let l = cache.get(file);
  if (!l) {
    l = gunzipSync(readFileSync(file))
      .toString("utf8")
      .split("\n")
      .filter((s) => s.length > 0)
      .map((s) => JSON.parse(s) as Line);
    cache.set(file, l);
  }
  return l;
}

/** The raw text of every `recv` frame, in recorded order. */
export function recvFrames(file: string): string[] {
  return lines(file)
    .filter((l) => l.t === "recv")
    .map((l) => l.data!);
}

/** Canonical DECIMAL(18,8) of a plain venue decimal string, by string padding (independent of src/). */
export function dec8(s: string): string {
  const [i, f = ""] = s.split(".");
  const int = i.replace(/^0+(?=\d)/, "");
  if (f.length > 8 && /[1-9]/.test(f.slice(8))) throw new Error(`test data ${s} has more than 8 decimals`);
  return `${int}.${(`${f}00000000`).slice(0, 8)}`;
}

/** µs since epoch of an RFC 3339 UTC time with up to 9 fractional digits (independent of src/). */
export function isoUs(s: string): number {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(s)!;
  return Date.parse(`${m[1]}Z`) * 1000 + Number(`${m[2] ?? ""}000000`.slice(0, 6));
}

/** A sink that keeps everything. */
export function collectingSink() {
  const out = {
    trades: [] as TradeV2[],
    quotes: [] as QuoteV2[],
    deadLetters: [] as DeadLetter[],
    gaps: [] as SequenceGap[],
    control: [] as string[],
  };
  const sink: NormalizedSink = {
    trade: (r) => out.trades.push(r),
    quote: (r) => out.quotes.push(r),
    deadLetter: (d) => out.deadLetters.push(d),
    gap: (g) => out.gaps.push(g),
    control: (kind) => out.control.push(kind),
  };
  return { sink, out };
}
