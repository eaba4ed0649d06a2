/**
 * Normalization benchmark: the 123,261 `@trade` + `@bookTicker` frames of
 * `../shared/data/binance-spot/*.gz`, held in memory as Buffers (as a socket hands them over), one
 * thread. Each round runs every contender over every frame; figures are M frames/s per round.
 *
 * Contenders, in one run:
 * - `floor`: `JSON.parse(buffer.toString())`, what any normalizer must at least read (the baseline);
 * - `json_parse_string`: `JSON.parse` of the decoded string alone (the decode taken out);
 * - `tardis`: tardis-dev's Binance mappers (`normalizeTrades` / `normalizeBookTickers`, parse + map,
 *   float prices), run offline on the parsed messages;
 * - `k2`: `BinanceNormalizer.normalize(buffer.toString())` with its byte scanner for Binance's fixed
 *   shapes (exact DECIMAL(18,8) strings, message ids, vendor_data), what `k2 run` does per frame;
 * - `k2_general`: the same normalizer with the scanner turned off (every frame through `JSON.parse`).
 *
 * Targets (issue #15): `k2` ≥ 1.0 × `floor` and ≥ 1.5 × `tardis`.
 *
 *   npm run build && node dist/bench/normalize.js [--rounds 7] [--only k2] [--json]
 *
 * Prints one line per contender (min / median / max M frames/s over the rounds, ratio of medians to the
 * floor and to tardis-dev) and a JSON summary as the last line.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { normalizeBookTickers, normalizeTrades } from "tardis-dev";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../src/schema/records.js";
import { BinanceNormalizer } from "../src/venues/binance.js";
import type { NormalizedSink } from "../src/venues/venue.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DATA = resolve(ROOT, "../shared/data/binance-spot");

/** Targets of the issue: ratios of the K2 median to the baselines' medians. */
export const TARGET = { floor: 1.0, tardis: 1.5 } as const;

/** The recorded `@trade` and `@bookTicker` frames of every capture in `dir`, as Buffers, in file order. */
export function loadFrames(dir = DATA): { frames: Buffer[]; symbols: string[] } {
  const frames: Buffer[] = [];
  const symbols = new Set<string>();
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith(".gz")) continue;
    const text = gunzipSync(readFileSync(join(dir, f))).toString("utf8");
    for (const line of text.split("\n")) {
      const sp = line.indexOf(" ");
      if (sp < 0) continue;
      const raw = line.slice(sp + 1);
      const m = /^\{"stream":"([a-z0-9]+)@(trade|bookTicker)"/.exec(raw);
      if (!m) continue;
      symbols.add(m[1].toUpperCase());
      frames.push(Buffer.from(raw, "utf8"));
    }
  }
  return { frames, symbols: [...symbols] };
}

/** A sink that keeps only counts (the records are made, then dropped, as a fast consumer would). */
class CountingSink implements NormalizedSink {
  trades = 0;
  quotes = 0;
  dead = 0;
  check = 0;
  trade(r: TradeV2): void {
    this.trades++;
    this.check ^= r.message_id.charCodeAt(0);
  }
  quote(r: QuoteV2): void {
    this.quotes++;
    this.check ^= r.message_id.charCodeAt(0);
  }
  deadLetter(_l: DeadLetter): void {
    this.dead++;
  }
  gap(_g: SequenceGap): void {}
  control(): void {}
}

type Contender = (frames: Buffer[]) => number;

function makeContenders(symbols: string[]): Record<string, Contender> {
  const sub = { symbols, streams: ["trade", "bookTicker"] };
  return {
    floor(frames) {
      let n = 0;
      for (let i = 0; i < frames.length; i++) if (JSON.parse(frames[i].toString()) !== null) n++;
      return n;
    },
    json_parse_string(frames) {
      // strings decoded outside the timed loop would be cheating the others; decode first, time apart
      const strings = STRINGS ?? frames.map((b) => b.toString());
      STRINGS = strings;
      const t0 = performance.now();
      let n = 0;
      for (let i = 0; i < strings.length; i++) if (JSON.parse(strings[i]) !== null) n++;
      PARSE_ONLY_MS = performance.now() - t0;
      return n;
    },
    tardis(frames) {
      const at = new Date();
      const trades = normalizeTrades("binance", at);
      const tickers = normalizeBookTickers("binance", at);
      let n = 0;
      for (let i = 0; i < frames.length; i++) {
        const msg = JSON.parse(frames[i].toString());
        const mapper = trades.canHandle(msg) ? trades : tickers.canHandle(msg) ? tickers : null;
        if (mapper === null) continue;
        for (const out of mapper.map(msg, at) ?? []) if (out !== undefined) n++;
      }
      return n;
    },
    k2(frames) {
      const sink = new CountingSink();
      const normalizer = new BinanceNormalizer(sink, sub);
      const t0 = Date.now() * 1000;
      for (let i = 0; i < frames.length; i++) normalizer.normalize(frames[i].toString(), t0 + i);
      if (sink.dead !== 0) throw new Error(`k2: ${sink.dead} dead letters`);
      return sink.trades + sink.quotes;
    },
    k2_general(frames) {
      const sink = new CountingSink();
      const normalizer = new BinanceNormalizer(sink, sub, { fastPath: false });
      const t0 = Date.now() * 1000;
      for (let i = 0; i < frames.length; i++) normalizer.normalize(frames[i].toString(), t0 + i);
      if (sink.dead !== 0) throw new Error(`k2_general: ${sink.dead} dead letters`);
      return sink.trades + sink.quotes;
    },
  };
}

let STRINGS: string[] | null = null;
let PARSE_ONLY_MS = 0;

/** min / median / max of a list. */
export function spread(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor((s.length - 1) / 2)], max: s[s.length - 1] };
}

/** Result of one contender: M frames/s per round. */
export interface NormalizeFigure {
  name: string;
  mfps: { min: number; median: number; max: number };
}

/** Runs every contender `rounds` times over the frames (interleaved, after one warm-up round each). */
export function runNormalize(rounds: number, only?: string): { frames: number; figures: NormalizeFigure[] } {
  const { frames, symbols } = loadFrames();
  const contenders = makeContenders(symbols);
  const names = Object.keys(contenders).filter((n) => !only || only.split(",").includes(n));
  const samples = new Map<string, number[]>(names.map((n) => [n, []]));
  for (const name of names) contenders[name](frames); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const name of names) {
      const t0 = performance.now();
      const n = contenders[name](frames);
      let ms = performance.now() - t0;
      if (name === "json_parse_string") ms = PARSE_ONLY_MS;
      if (n !== frames.length) throw new Error(`${name}: ${n} outputs for ${frames.length} frames`);
      samples.get(name)?.push(frames.length / ms / 1000);
    }
  }
  return {
    frames: frames.length,
    figures: names.map((name) => ({ name, mfps: spread(samples.get(name) ?? []) })),
  };
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "7" }, only: { type: "string" } },
  });
  const { frames, figures } = runNormalize(Number(values.rounds), values.only);
  const med = (n: string) => figures.find((f) => f.name === n)?.mfps.median ?? Number.NaN;
  for (const f of figures) {
    const { min, median, max } = f.mfps;
    process.stdout.write(
      `${f.name.padEnd(18)} ${min.toFixed(3)} / ${median.toFixed(3)} / ${max.toFixed(3)} M frames/s` +
        `  × floor ${(median / med("floor")).toFixed(2)}  × tardis ${(median / med("tardis")).toFixed(2)}\n`,
    );
  }
  process.stdout.write(`${JSON.stringify({ bench: "normalize", frames, figures })}\n`);
}
