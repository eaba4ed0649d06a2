/**
 * Venue contract, for every registered venue (a venue added to the registry without a recording here
 * fails this test): through `venue.createNormalizer` it normalizes its recorded frames (records, no
 * dead letters but the venue's own errors, an outcome for every frame), never throws on garbage, and
 * dead-letters garbage with a reason and the raw text.
 */
import { describe, expect, it } from "vitest";
import { MAX_DEAD_LETTER_RAW_CHARS } from "../../src/venues/mapping.js";
import { getVenue, venueNames } from "../../src/venues/registry.js";
import type { Subscription } from "../../src/venues/venue.js";
import { framesWhere, sharedData } from "../helpers/capture.js";
import { BINANCE_FILE, COINBASE_FILE, collectingSink, KRAKEN_FILE, recvFrames } from "./recording.js";

const binanceFrames = [
  ...(await framesWhere(
    sharedData("binance-spot/ethusdt_20240808.gz"),
    (r) => r.includes("@trade") || r.includes("@bookTicker"),
    3000,
  )),
  ...recvFrames(BINANCE_FILE).filter((f) => /@(aggTrade|bookTicker)"/.test(f)),
];
const krakenFrames = recvFrames(KRAKEN_FILE);
const streamSymbols = (frames: string[]) => [
  ...new Set(frames.map((f) => (JSON.parse(f) as { stream: string }).stream.split("@")[0].toUpperCase())),
];

/** Each venue's recording and the subscription it was recorded with. */
const RECORDED: Record<string, { frames: string[]; sub: Subscription }> = {
  binance: {
    frames: binanceFrames,
    sub: { symbols: streamSymbols(binanceFrames), streams: ["trade", "aggTrade", "bookTicker"] },
  },
  coinbase: {
    frames: recvFrames(COINBASE_FILE),
    sub: { symbols: ["BTC-USD", "ETH-USD"], streams: ["market_trades", "ticker", "heartbeats"] },
  },
  kraken: {
    frames: krakenFrames,
    sub: {
      symbols: [
        ...new Set(
          krakenFrames.flatMap((f) => {
            const o = JSON.parse(f);
            return Array.isArray(o) ? [o[o.length - 1] as string] : [];
          }),
        ),
      ],
      streams: ["trade", "ticker"],
    },
  },
};

const GARBAGE = [
  "",
  "not json",
  "{",
  "null",
  "[]",
  "[1,2,3,4,5]",
  '"a string"',
  "123",
  "{}",
  '{"stream":42}',
  `{"a":${"[".repeat(10_000)}${"]".repeat(10_000)}}`,
  '{"x":"\\ud800"}',
  "\ud800",
  `{"e":"${"x".repeat(100_000)}"}`,
];

describe.each(venueNames())("venue contract: %s", (name) => {
  const venue = getVenue(name)!;

  it("has a recording here", () => {
    expect(RECORDED[name], `add ${name}'s recording to RECORDED`).toBeDefined();
  });

  it("normalizes its recorded frames: records, an outcome per frame, only venue errors dead-lettered", () => {
    const { frames, sub } = RECORDED[name];
    venue.validate(sub);
    const { sink, out } = collectingSink();
    const n = venue.createNormalizer(sink, sub);
    let silent = 0;
    for (const raw of frames) {
      const before = out.trades.length + out.quotes.length + out.deadLetters.length + out.control.length;
      n.normalize(raw, 1_795_000_000_000_000);
      if (out.trades.length + out.quotes.length + out.deadLetters.length + out.control.length === before)
        silent++;
    }
    expect(silent).toBe(0);
    expect(out.trades.length + out.quotes.length).toBeGreaterThan(0);
    expect(out.deadLetters.filter((d) => !d.reason.startsWith("venue error"))).toEqual([]);
  });

  it("never throws on garbage and dead-letters each piece with a reason", () => {
    const { sub } = RECORDED[name];
    const { sink, out } = collectingSink();
    const n = venue.createNormalizer(sink, sub);
    for (const raw of GARBAGE) {
      const before = out.deadLetters.length;
      expect(() => n.normalize(raw, 1)).not.toThrow();
      const letters = out.deadLetters.slice(before);
      expect(letters.length, `dead letter for ${raw.slice(0, 40)}`).toBeGreaterThan(0);
      for (const d of letters) {
        expect(d.reason.length).toBeGreaterThan(0);
        expect(d.exchange).toBe(venue.exchange);
        expect(d.raw.length).toBeLessThanOrEqual(MAX_DEAD_LETTER_RAW_CHARS);
      }
    }
    expect(out.trades).toEqual([]);
    expect(out.quotes).toEqual([]);
  });
});
