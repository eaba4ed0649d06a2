/**
 * Looped captures for the soak (`bench/soak.ts`): consecutive Binance captures (`<ns> <frame>` lines,
 * gzip; see src/replay/capture.ts) played as one continuous market, repeated `loops` times. So that a
 * repeated loop is new data and not duplicates, loop k shifts, in the frame text only, every
 *
 * - trade id (`t`, and `f`, `l` where present) by k × the trade id span (last − first + 1),
 * - aggregate trade id `a` (numeric `a` only: a bookTicker's `"a":"61837.64"` is a price string) by
 *   k × the aggregate id span,
 * - order book update id (`u`, `U`, `pu`) by k × the update id span,
 * - event and trade time (`E`, `T`, ms) and the receive time `<ns>` by k × the time span (ms, see
 *   {@link LoopSpans.timeMs}),
 *
 * and leaves every other byte of the frame as recorded. Only frames of `streams` are kept (by default
 * the trade and bookTicker streams k2 subscribes to in the soak): the recorder's REST depth snapshot
 * lines and the `@depth` diffs, which the replay server would never send to that subscription, are
 * dropped.
 */
import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { readCapture } from "../src/replay/capture.js";

/** How far loop 1 is shifted from loop 0 (loop k: k times as far). */
export interface LoopSpans {
  /** Trade ids `t`, `f`, `l`: last − first + 1 over the input (0 when none). */
  tradeIds: number;
  /** Aggregate trade ids `a` (numeric): last − first + 1 (0 when none). */
  aggIds: number;
  /** Order book update ids `u`, `U`, `pu`: last − first + 1 (0 when none). */
  updateIds: number;
  /**
   * Time, ms: the larger of the receive times' span (ns, rounded up to ms) and the event/trade times'
   * span (`E`, `T`), plus 1 ms, so loop k + 1 starts after loop k ends on every clock.
   */
  timeMs: number;
}

/** What {@link writeLoopedCapture} wrote. */
export interface LoopedCaptureInfo {
  path: string;
  loops: number;
  spans: LoopSpans;
  /** Frames per loop (lines of the kept streams in the inputs). */
  framesPerLoop: number;
  /** Frames per loop by venue stream (`btcusdt@trade`: trades). */
  framesByStream: Record<string, number>;
  /** First and last trade id `t` of loop 0 (null without trades). */
  firstTradeId: number | null;
  lastTradeId: number | null;
  /** Earliest receive time of loop 0, ns since epoch (decimal string). */
  firstNs: string;
}

/** Numeric fields rewritten in the frame text, by key. */
const SHIFTED = /"(t|f|l|a|u|U|pu|E|T)":(\d+)/g;

type Group = "trade" | "agg" | "update" | "time";
const GROUP: Record<string, Group> = {
  t: "trade",
  f: "trade",
  l: "trade",
  a: "agg",
  u: "update",
  U: "update",
  pu: "update",
  E: "time",
  T: "time",
};

/** The venue stream of a combined-stream frame (`btcusdt@trade`), or null (REST snapshot line). */
export function streamOf(raw: string): string | null {
  if (!raw.startsWith('{"stream":"')) return null;
  const q = raw.indexOf('"', 11);
  return q > 11 ? raw.slice(11, q) : null;
}

/**
 * The frame text of loop `k`: every numeric field of {@link SHIFTED} moved by `k` × its span (ids and
 * ms), nothing else changed. Loop 0 returns `raw` itself.
 */
export function shiftFrame(raw: string, k: number, spans: LoopSpans): string {
  if (k === 0) return raw;
  const by: Record<Group, number> = {
    trade: k * spans.tradeIds,
    agg: k * spans.aggIds,
    update: k * spans.updateIds,
    time: k * spans.timeMs,
  };
  return raw.replace(SHIFTED, (_, key: string, digits: string) => {
    const v = Number(digits) + by[GROUP[key]];
    if (!Number.isSafeInteger(v)) throw new RangeError(`shifted "${key}" beyond 2^53: ${digits}`);
    return `"${key}":${v}`;
  });
}

/** Receive time `ns` (decimal string) of loop `k`. */
export function shiftNs(ns: string, k: number, spans: LoopSpans): string {
  return k === 0 ? ns : (BigInt(ns) + BigInt(k) * BigInt(spans.timeMs) * 1_000_000n).toString();
}

/**
 * Reads `inputs` (in order, one continuous session), keeps the frames of `streams`, measures the
 * spans and writes `loops` shifted copies to `out` (gzip, `<ns> <frame>` lines). `loops` may be a
 * function of the spans (e.g. enough loops for a duration: `(s) => Math.ceil(ms / s.timeMs)`).
 * @throws {RangeError} when `loops` is not an integer ≥ 1, or a shifted number leaves the safe range
 * @throws {Error} when an input has no frame of `streams`
 */
export async function writeLoopedCapture(
  inputs: string[],
  out: string,
  loopsOf: number | ((spans: LoopSpans) => number),
  streams: string[] = ["btcusdt@trade", "btcusdt@bookTicker"],
): Promise<LoopedCaptureInfo> {
  const keep = new Set(streams);
  const ns: string[] = [];
  const raws: string[] = [];
  const byStream: Record<string, number> = {};
  const min: Record<Group, number> = { trade: Infinity, agg: Infinity, update: Infinity, time: Infinity };
  const max: Record<Group, number> = { trade: -Infinity, agg: -Infinity, update: -Infinity, time: -Infinity };
  let minNs: bigint | null = null;
  let maxNs: bigint | null = null;
  let firstTradeId: number | null = null;
  let lastTradeId: number | null = null;
  const tradeId = /"t":(\d+)/;
  for (const input of inputs) {
    let kept = 0;
    for await (const f of readCapture(input)) {
      const stream = streamOf(f.raw);
      if (stream === null || !keep.has(stream) || f.ns === "") continue;
      kept++;
      ns.push(f.ns);
      raws.push(f.raw);
      byStream[stream] = (byStream[stream] ?? 0) + 1;
      const n = BigInt(f.ns);
      if (minNs === null || n < minNs) minNs = n;
      if (maxNs === null || n > maxNs) maxNs = n;
      for (const m of f.raw.matchAll(SHIFTED)) {
        const g = GROUP[m[1]];
        const v = Number(m[2]);
        if (v < min[g]) min[g] = v;
        if (v > max[g]) max[g] = v;
      }
      const t = tradeId.exec(f.raw);
      if (t && f.raw.includes('"e":"trade"')) {
        const id = Number(t[1]);
        if (firstTradeId === null || id < firstTradeId) firstTradeId = id;
        if (lastTradeId === null || id > lastTradeId) lastTradeId = id;
      }
    }
    if (kept === 0) throw new Error(`${input}: no frame of ${streams.join(", ")}`);
  }
  const span = (g: Group) => (max[g] >= min[g] ? max[g] - min[g] + 1 : 0);
  const nsSpanMs = minNs !== null && maxNs !== null ? Number((maxNs - minNs + 999_999n) / 1_000_000n) : 0;
  const spans: LoopSpans = {
    tradeIds: span("trade"),
    aggIds: span("agg"),
    updateIds: span("update"),
    timeMs: Math.max(nsSpanMs, max.time >= min.time ? max.time - min.time : 0) + 1,
  };
  const loops = typeof loopsOf === "function" ? loopsOf(spans) : loopsOf;
  if (!Number.isInteger(loops) || loops < 1) throw new RangeError(`loops: expected ≥ 1, got ${loops}`);
  async function* lines(): AsyncGenerator<string> {
    const CHUNK = 2000;
    for (let k = 0; k < loops; k++) {
      for (let i = 0; i < raws.length; i += CHUNK) {
        let text = "";
        const end = Math.min(raws.length, i + CHUNK);
        for (let j = i; j < end; j++)
          text += `${shiftNs(ns[j], k, spans)} ${shiftFrame(raws[j], k, spans)}\n`;
        yield text;
      }
    }
  }
  await pipeline(Readable.from(lines()), createGzip({ level: 1 }), createWriteStream(out));
  return {
    path: out,
    loops,
    spans,
    framesPerLoop: raws.length,
    framesByStream: byStream,
    firstTradeId,
    lastTradeId,
    firstNs: minNs?.toString() ?? "",
  };
}
