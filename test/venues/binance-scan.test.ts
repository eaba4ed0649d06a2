/**
 * The Binance fast path (`src/venues/binance-scan.ts`) against the general path (`JSON.parse` and the
 * readers of mapping.ts) on every recorded frame: the same records, field by field and in the same key
 * order, the same dead letters, gaps and control frames; and the fast path takes every trade and
 * bookTicker frame, each as Binance's own layout (without its scanner).
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { BinanceNormalizer } from "../../src/venues/binance.js";
import { BINANCE_FILE, collectingSink, recvFrames } from "./recording.js";

const SPOT = fileURLToPath(new URL("../../../shared/data/binance-spot/", import.meta.url));

/** Every frame of a binance-spot capture (`<ns> <frame>` lines), in order, with its receipt time in µs. */
function spotFrames(file: string): { raw: string; us: number }[] {
  const out: { raw: string; us: number }[] = [];
  for (const line of gunzipSync(readFileSync(`${SPOT}${file}`))
    .toString("utf8")
    .split("\n")) {
    const sp = line.indexOf(" ");
    if (sp > 0) out.push({ raw: line.slice(sp + 1), us: Math.floor(Number(line.slice(0, sp)) / 1000) });
  }
  return out;
}

/** Both paths over the same frames; what each reported, and the fast path's hit count. */
function bothPaths(frames: { raw: string; us: number }[], symbols: string[], streams: string[]) {
  const fast = collectingSink();
  const general = collectingSink();
  const f = new BinanceNormalizer(fast.sink, { symbols, streams });
  const g = new BinanceNormalizer(general.sink, { symbols, streams }, { fastPath: false });
  for (const { raw, us } of frames) {
    f.normalize(raw, us);
    g.normalize(raw, us);
  }
  return { fast: fast.out, general: general.out, hits: f.fast?.hits ?? 0, exact: f.fast?.exactHits ?? 0 };
}

describe("Binance fast path on the recordings", () => {
  const files = readdirSync(SPOT).filter((f) => f.endsWith(".gz"));

  it("finds the three binance-spot captures", () => {
    expect(files.sort()).toEqual(["btcusdt_20240808.gz", "btcusdt_20240809.gz", "ethusdt_20240808.gz"]);
  });

  for (const file of files) {
    it(`gives the general path's records for every frame of ${file}`, () => {
      const frames = spotFrames(file);
      const symbol = file.split("_")[0].toUpperCase();
      const { fast, general, hits, exact } = bothPaths(frames, [symbol], ["trade", "aggTrade", "bookTicker"]);
      // same records, field by field and in the same key order (what the bus serialises)
      expect(fast).toEqual(general);
      expect(JSON.stringify(fast)).toBe(JSON.stringify(general));
      const tradeAndTicker = frames.filter((f) => /^\{"stream":"[a-z]+@(trade|bookTicker)"/.test(f.raw));
      expect(hits).toBe(tradeAndTicker.length);
      // Binance sends its own layout (compact, documented key order): all matched whole by their layout pattern
      expect(exact).toBe(tradeAndTicker.length);
      expect(fast.trades.length + fast.quotes.length).toBe(tradeAndTicker.length);
      // depth diffs and snapshots are not subscribed: dead letters, by the general path
      expect(fast.deadLetters.length).toBe(frames.length - tradeAndTicker.length);
    });
  }

  it("gives the general path's records for the cryptofeed Binance session (aggTrade, bookTicker)", () => {
    const raws = recvFrames(BINANCE_FILE);
    const names = new Set<string>();
    for (const raw of raws) {
      const m = /^\{"stream":"([a-z0-9]+)@(aggTrade|bookTicker|trade)"/.exec(raw);
      if (m) names.add(m[1].toUpperCase());
    }
    const frames = raws.map((raw, i) => ({ raw, us: 1_634_000_000_000_000 + i }));
    const { fast, general, hits } = bothPaths(frames, [...names], ["trade", "aggTrade", "bookTicker"]);
    expect(JSON.stringify(fast)).toBe(JSON.stringify(general));
    expect(fast.trades.length).toBeGreaterThan(0);
    expect(hits).toBe(fast.trades.length + fast.quotes.length);
  });
});
