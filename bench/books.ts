/**
 * Order-book benchmark: level updates applied per second by the exact book core (`src/books/`).
 *
 * - Binance: the recorded `@depth@100ms` diffs and REST snapshots of `../shared/data/binance-spot/`
 *   (three captures, each a session of its own), parsed beforehand, replayed through
 *   `BinanceBookSync` (sequence checks included); and the same with the frame parse (`JSON.parse` +
 *   exact decimal parse) inside the timed window.
 * - Kraken: the ten `book-1000` books of `../shared/data/cryptofeed/KRAKEN.jsonl.gz` through
 *   `KrakenBooks`, CRC32 checksum verified on every update.
 * - `L2Book` alone at 1,000 and 5,000 levels per side: updates at uniformly random prices (the worst
 *   case for the best-last sorted arrays: half the side moves on each insert or removal) and near the
 *   top (where real updates cluster).
 *
 * Frames in memory, one thread, best of `--runs` (default 5). Machines are shared and noisy: compare
 * ratios from one run. Run on the built code:
 *   npx tsc -p tsconfig.build.json && node dist/bench/books.js [--runs N]
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import {
  BinanceBookSync,
  type BinanceDepthDiff,
  type BinanceDepthSnapshot,
  parseBinanceDepthDiff,
  parseBinanceDepthSnapshot,
} from "../src/books/binance.js";
import { type KrakenBookMessage, KrakenBooks, parseKrakenBookMessage } from "../src/books/kraken.js";
import { L2Book, ZERO_QUANTITY } from "../src/books/l2-book.js";

const args = process.argv.slice(2);
const runsArg = args.indexOf("--runs");
const RUNS = runsArg >= 0 ? Number(args[runsArg + 1]) : 5;
const data = (rel: string) => fileURLToPath(new URL(`../../../shared/data/${rel}`, import.meta.url));
const gunzipLines = (rel: string) =>
  gunzipSync(readFileSync(data(rel)))
    .toString("utf8")
    .split("\n")
    .filter((l) => l.length > 0);

/** Best-of-N rate of `fn`, which returns the number of level updates it applied. */
function rate(fn: () => number): { perS: number; levels: number } {
  let best = 0;
  let levels = 0;
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    levels = fn();
    const s = (performance.now() - t0) / 1000;
    best = Math.max(best, levels / s);
  }
  return { perS: best, levels };
}

// --- Binance: recorded diffs ------------------------------------------------------------------
type BinanceItem = { diff: BinanceDepthDiff } | { snapshot: BinanceDepthSnapshot };
const BINANCE_FILES = ["btcusdt_20240808.gz", "btcusdt_20240809.gz", "ethusdt_20240808.gz"];
const binanceRaw: { symbol: string; raws: string[] }[] = BINANCE_FILES.map((f) => ({
  symbol: f.split("_")[0].toUpperCase(),
  raws: gunzipLines(`binance-spot/${f}`)
    .map((l) => l.slice(l.indexOf(" ") + 1))
    .filter((r) => r.includes("@depth@100ms") || r.startsWith('{"lastUpdateId"')),
}));
const parseBinance = (symbol: string, raw: string): BinanceItem => {
  const m = JSON.parse(raw);
  return "stream" in m
    ? { diff: parseBinanceDepthDiff(m.data) }
    : { snapshot: parseBinanceDepthSnapshot(m, symbol) };
};
const binanceParsed = binanceRaw.map(({ symbol, raws }) => raws.map((r) => parseBinance(symbol, r)));

function playBinance(items: BinanceItem[][]): number {
  let levels = 0;
  for (let i = 0; i < items.length; i++) {
    const session = items[i];
    const sync = new BinanceBookSync(binanceRaw[i].symbol);
    for (const it of session) {
      const step = "diff" in it ? sync.onDiff(it.diff) : sync.onSnapshot(it.snapshot);
      for (const d of step.applied) levels += d.bids.length + d.asks.length;
      if (step.resync) throw new Error("unexpected resync");
    }
  }
  return levels;
}

function playBinanceWithParse(): number {
  let levels = 0;
  for (const { symbol, raws } of binanceRaw) {
    const sync = new BinanceBookSync(symbol);
    for (const raw of raws) {
      const it = parseBinance(symbol, raw);
      const step = "diff" in it ? sync.onDiff(it.diff) : sync.onSnapshot(it.snapshot);
      for (const d of step.applied) levels += d.bids.length + d.asks.length;
    }
  }
  return levels;
}

// --- Kraken: recorded book-1000 with checksums ------------------------------------------------
const krakenMessages: KrakenBookMessage[] = [];
for (const line of gunzipLines("cryptofeed/KRAKEN.jsonl.gz")) {
  const l = JSON.parse(line) as { t: string; data?: string };
  if (l.t !== "recv" || l.data === undefined) continue;
  const m = parseKrakenBookMessage(JSON.parse(l.data));
  if (m) krakenMessages.push(m);
}
function playKraken(): number {
  const books = new KrakenBooks();
  let levels = 0;
  for (const m of krakenMessages) {
    const step = books.onMessage(m);
    if (step.checksum === "failed") throw new Error("unexpected checksum failure");
    levels += m.asks.length + m.bids.length; // snapshots' levels too: their load is in the window
  }
  return levels;
}

// --- L2Book alone at a given depth ------------------------------------------------------------
function synthetic(levels: number, nearTop: boolean): () => number {
  // a deterministic LCG, so every run applies the same updates
  let seed = 42;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x80000000;
  };
  const tick = (i: number) => {
    const cents = 6_000_000 + i; // 60,000.00 + i cents
    return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}000000`;
  };
  const bids: [string, string][] = [];
  const asks: [string, string][] = [];
  for (let i = 0; i < levels; i++) {
    bids.push([tick(levels - i), "1.00000000"]);
    asks.push([tick(levels + 1 + i), "1.00000000"]);
  }
  const N = 200_000;
  const ops: { side: "bid" | "ask"; price: string; qty: string }[] = [];
  for (let k = 0; k < N; k++) {
    const side = rnd() < 0.5 ? "bid" : "ask";
    const depthIndex = nearTop ? Math.floor(rnd() * 20) : Math.floor(rnd() * levels);
    const price = side === "bid" ? tick(levels - depthIndex) : tick(levels + 1 + depthIndex);
    // a third removals, a third new quantities, a third re-inserts: depth stays near `levels`
    const r = rnd();
    ops.push({ side, price, qty: r < 0.33 ? ZERO_QUANTITY : r < 0.66 ? "2.50000000" : "1.00000000" });
  }
  return () => {
    const book = new L2Book();
    book.load("bid", bids);
    book.load("ask", asks);
    for (const o of ops) book.apply(o.side, o.price, o.qty);
    return N;
  };
}

const fmt = (x: number) => `${(x / 1e6).toFixed(2)} M/s`;
const results: Record<string, string> = {};
const b1 = rate(() => playBinance(binanceParsed));
results[`binance diffs, parsed beforehand (${b1.levels} level updates)`] = fmt(b1.perS);
const b2 = rate(playBinanceWithParse);
results["binance diffs, JSON.parse + exact parse + apply"] = fmt(b2.perS);
const k = rate(playKraken);
results[`kraken book-1000 snapshots + updates, CRC32 on every update (${k.levels} levels)`] = fmt(k.perS);
for (const levels of [1000, 5000]) {
  results[`L2Book ${levels} levels/side, random prices`] = fmt(rate(synthetic(levels, false)).perS);
  results[`L2Book ${levels} levels/side, top 20 prices`] = fmt(rate(synthetic(levels, true)).perS);
}
console.log(JSON.stringify({ runs: RUNS, level_updates_per_s: results }, null, 2));
