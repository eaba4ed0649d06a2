/**
 * Order-book benchmark: level updates applied per second by the exact book core (`src/books/`).
 *
 * - Binance, K2 beside tardis-dev 13.35's `OrderBook` (issue #13: target ≥ 1.0×): the recorded
 *   `@depth@100ms` diffs and REST snapshots of `../shared/data/binance-spot/` (btcusdt_20240808 then
 *   btcusdt_20240809 as one session, ethusdt_20240808 as another), parsed beforehand into the input
 *   each side's own parser makes: for K2, `parseBinanceDepthDiff` / `parseBinanceDepthSnapshot`
 *   (canonical DECIMAL(18,8) strings, update ids), replayed through `BinanceBookSync` (the buffering,
 *   the snapshot straddle and the `U` = previous `u` + 1 check on every diff included); for tardis-dev,
 *   the `book_change` messages of its own Binance mapper (`normalizeBookChanges`, float prices and
 *   amounts, snapshot merged with the diffs buffered before it), replayed through `OrderBook.update`.
 *   Both in the same process, one warm-up round each, then alternating rounds; both rates over the
 *   same count (the level updates of the diffs K2's procedure applies). At the end both books must
 *   hold the same levels, every one of both sides (else the bench fails).
 * - The same with the frame parse inside the timed window: K2 `JSON.parse` + its exact frame parsers +
 *   `BinanceBookSync`, beside tardis-dev `JSON.parse` + its Binance mapper + `OrderBook` (no target:
 *   `JSON.parse` of the frames is most of both).
 * - Kraken: the ten `book-1000` books of `../shared/data/cryptofeed/KRAKEN.jsonl.gz` through
 *   `KrakenBooks`, CRC32 checksum verified on every update.
 * - `L2Book` alone at 1,000 and 5,000 levels per side: updates at uniformly random prices (the worst
 *   case for the best-last sorted arrays: half the side moves on each insert or removal) and near the
 *   top (where real updates cluster).
 *
 * Frames in memory, one thread, best of `--runs` rounds (default 5) for each figure. Machines are shared and noisy: compare
 * ratios from one run. Run on the built code:
 *   npx tsc -p tsconfig.build.json && node dist/bench/books.js [--runs N]
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { type BookChange, normalizeBookChanges, OrderBook } from "tardis-dev";
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

// --- Binance: recorded diffs, K2 beside tardis-dev ---------------------------------------------
type BinanceItem = { diff: BinanceDepthDiff } | { snapshot: BinanceDepthSnapshot };
/**
 * Sessions as `k2 run --replay` plays them: the two BTCUSDT captures are consecutive (one session, the
 * second has no snapshot of its own), ETHUSDT is a session of its own.
 */
const BINANCE_SESSIONS = [["btcusdt_20240808.gz", "btcusdt_20240809.gz"], ["ethusdt_20240808.gz"]];
interface BinanceSession {
  symbol: string;
  /** `[local receive time in ns, raw frame]` of each depth diff and REST snapshot, in file order. */
  raws: [string, string][];
}
const binanceRaw: BinanceSession[] = BINANCE_SESSIONS.map((files) => ({
  symbol: files[0].split("_")[0].toUpperCase(),
  raws: files.flatMap((f) =>
    gunzipLines(`binance-spot/${f}`)
      .map((l): [string, string] => [l.slice(0, l.indexOf(" ")), l.slice(l.indexOf(" ") + 1)])
      .filter(([, r]) => r.includes("@depth@100ms") || r.startsWith('{"lastUpdateId"')),
  ),
}));
const parseBinance = (symbol: string, raw: string): BinanceItem => {
  const m = JSON.parse(raw);
  return "stream" in m
    ? { diff: parseBinanceDepthDiff(m.data) }
    : { snapshot: parseBinanceDepthSnapshot(m, symbol) };
};
/** K2's input: what its frame parsers produce (exact canonical DECIMAL(18,8) strings, update ids). */
const binanceParsed = binanceRaw.map(({ symbol, raws }) => raws.map(([, r]) => parseBinance(symbol, r)));

/**
 * tardis-dev's input: the `book_change` messages its own Binance mapper (`normalizeBookChanges`,
 * run here offline, outside the timed window) makes of the same frames, prices and amounts as
 * numbers. A REST snapshot goes in as tardis-dev records it (`<symbol>@depthSnapshot`); the mapper
 * applies Binance's first-diff rule itself (diffs with `u` ≤ `lastUpdateId` dropped, the diffs
 * buffered before the snapshot merged into it), so `OrderBook` gets only what it must apply.
 */
const tardisChanges: BookChange[][] = binanceRaw.map(({ symbol, raws }) => {
  const mapper = normalizeBookChanges("binance", new Date());
  const out: BookChange[] = [];
  for (const [ns, raw] of raws) {
    const m = JSON.parse(raw);
    const msg =
      "stream" in m ? m : { stream: `${symbol.toLowerCase()}@depthSnapshot`, generated: true, data: m };
    const at = new Date(Number(BigInt(ns) / 1_000_000n));
    for (const bc of mapper.map(msg, at) ?? []) out.push(bc);
  }
  return out;
});

/** K2: every session through `BinanceBookSync` (sequence checks included); level updates applied. */
function playBinance(items: BinanceItem[][], keep?: BinanceBookSync[]): number {
  let levels = 0;
  for (let i = 0; i < items.length; i++) {
    const session = items[i];
    const sync = new BinanceBookSync(binanceRaw[i].symbol);
    for (const it of session) {
      const step = "diff" in it ? sync.onDiff(it.diff) : sync.onSnapshot(it.snapshot);
      for (const d of step.applied) levels += d.bids.length + d.asks.length;
      if (step.resync) throw new Error("unexpected resync");
    }
    keep?.push(sync);
  }
  return levels;
}

/** tardis-dev: every session's `book_change` messages through one `OrderBook`; levels handed over. */
function playTardis(changes: BookChange[][], keep?: OrderBook[]): number {
  let levels = 0;
  for (const session of changes) {
    const book = new OrderBook();
    for (const bc of session) {
      book.update(bc);
      if (!bc.isSnapshot) levels += bc.bids.length + bc.asks.length;
    }
    keep?.push(book);
  }
  return levels;
}

/**
 * Sanity: after the same diffs, K2's book and tardis-dev's hold the same levels (every level of both
 * sides, prices and quantities compared as numbers). Throws on the first difference.
 */
function checkBooksAgree(): { bids: number; asks: number } {
  const k2: BinanceBookSync[] = [];
  const td: OrderBook[] = [];
  playBinance(binanceParsed, k2);
  playTardis(tardisChanges, td);
  let bids = 0;
  let asks = 0;
  for (let i = 0; i < k2.length; i++) {
    const book = k2[i].book;
    for (const side of ["bid", "ask"] as const) {
      const theirs = [...(side === "bid" ? td[i].bids() : td[i].asks())];
      const ours = book.top(side, book.depth(side));
      const where = `${binanceRaw[i].symbol} ${side}s`;
      if (ours.length !== theirs.length)
        throw new Error(`${where}: K2 ${ours.length} levels, tardis-dev ${theirs.length}`);
      for (let k = 0; k < ours.length; k++) {
        if (Number(ours[k][0]) !== theirs[k].price || Number(ours[k][1]) !== theirs[k].amount) {
          throw new Error(
            `${where}[${k}]: K2 ${ours[k].join(" ")}, tardis-dev ${theirs[k].price} ${theirs[k].amount}`,
          );
        }
      }
      if (side === "bid") bids += ours.length;
      else asks += ours.length;
    }
  }
  return { bids, asks };
}

/**
 * Two contenders on the same diffs, alternating (`RUNS` timed rounds, the order swapped every round,
 * after one warm-up round each): the best rate of each over the same count of level updates.
 */
function paired(levels: number, k2Fn: () => number, tardisFn: () => number): { k2: number; tardis: number } {
  k2Fn();
  tardisFn();
  let k2 = 0;
  let tardis = 0;
  const time = (fn: () => number) => {
    const t0 = performance.now();
    fn();
    return levels / ((performance.now() - t0) / 1000);
  };
  for (let r = 0; r < RUNS; r++) {
    if (r % 2 === 0) {
      k2 = Math.max(k2, time(k2Fn));
      tardis = Math.max(tardis, time(tardisFn));
    } else {
      tardis = Math.max(tardis, time(tardisFn));
      k2 = Math.max(k2, time(k2Fn));
    }
  }
  return { k2, tardis };
}

/** K2 with the frame parse in the window: `JSON.parse`, K2's exact frame parsers, the procedure. */
function playBinanceWithParse(): number {
  let levels = 0;
  for (const { symbol, raws } of binanceRaw) {
    const sync = new BinanceBookSync(symbol);
    for (const [, raw] of raws) {
      const it = parseBinance(symbol, raw);
      const step = "diff" in it ? sync.onDiff(it.diff) : sync.onSnapshot(it.snapshot);
      for (const d of step.applied) levels += d.bids.length + d.asks.length;
    }
  }
  return levels;
}

/** Receive times as Dates, made once (tardis-dev's mapper takes one per message). */
const binanceDates = binanceRaw.map(({ raws }) =>
  raws.map(([ns]) => new Date(Number(BigInt(ns) / 1_000_000n))),
);

/** tardis-dev with the frame parse in the window: `JSON.parse`, its Binance mapper, `OrderBook`. */
function playTardisWithParse(): number {
  let levels = 0;
  for (let i = 0; i < binanceRaw.length; i++) {
    const { symbol, raws } = binanceRaw[i];
    const snapshotStream = `${symbol.toLowerCase()}@depthSnapshot`;
    const mapper = normalizeBookChanges("binance", binanceDates[i][0]);
    const book = new OrderBook();
    for (let k = 0; k < raws.length; k++) {
      const m = JSON.parse(raws[k][1]);
      const msg = "stream" in m ? m : { stream: snapshotStream, generated: true, data: m };
      for (const bc of mapper.map(msg, binanceDates[i][k]) ?? []) {
        book.update(bc);
        if (!bc.isSnapshot) levels += bc.bids.length + bc.asks.length;
      }
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
const agree = checkBooksAgree();
const levels = playBinance(binanceParsed);
const tardisLevels = playTardis(tardisChanges);
const vs = paired(
  levels,
  () => playBinance(binanceParsed),
  () => playTardis(tardisChanges),
);
const vsParse = paired(levels, playBinanceWithParse, playTardisWithParse);
const k = rate(playKraken);
results[`kraken book-1000 snapshots + updates, CRC32 on every update (${k.levels} levels)`] = fmt(k.perS);
for (const levels of [1000, 5000]) {
  results[`L2Book ${levels} levels/side, random prices`] = fmt(rate(synthetic(levels, false)).perS);
  results[`L2Book ${levels} levels/side, top 20 prices`] = fmt(rate(synthetic(levels, true)).perS);
}
console.log(
  JSON.stringify(
    {
      runs: RUNS,
      level_updates_per_s: results,
      binance_vs_tardis: {
        level_updates: levels,
        tardis_level_updates_handed_over: tardisLevels,
        k2_per_s: Math.round(vs.k2),
        tardis_per_s: Math.round(vs.tardis),
        with_parse: { k2_per_s: Math.round(vsParse.k2), tardis_per_s: Math.round(vsParse.tardis) },
        books_agree_at_end: { bid_levels: agree.bids, ask_levels: agree.asks },
      },
    },
    null,
    2,
  ),
);
