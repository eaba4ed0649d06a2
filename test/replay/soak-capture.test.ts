/**
 * The soak's looped capture (bench/soak-capture.ts): btcusdt_20240808 then btcusdt_20240809 looped
 * twice. Loop 1 is new data: its trade ids continue loop 0's without a gap or a duplicate, its update
 * ids and times come after loop 0's, and every byte other than the shifted numbers is as recorded; the
 * replay's REST emulation indexes the shifted trades.
 */
import { rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type LoopSpans, shiftFrame, shiftNs, writeLoopedCapture } from "../../bench/soak-capture.js";
import { indexRestRecords } from "../../src/replay/binance-rest.js";
import { readCapture } from "../../src/replay/capture.js";
import { sharedData } from "../helpers/capture.js";
import { tempDir } from "../helpers/cli.js";

const INPUTS = [
  sharedData("binance-spot/btcusdt_20240808.gz"),
  sharedData("binance-spot/btcusdt_20240809.gz"),
];
const FIRST = 3735683259;
const LAST = 3735703162; // ../shared/data/README.md: the two files' trade ids, no gaps
const TRADES = LAST - FIRST + 1; // 19,904
const FRAMES = 9757 + 28040 + 10147 + 45134; // trade + bookTicker frames of both files

describe("soak looped capture", () => {
  it("shifts only ids and times, by the loop number times their span", () => {
    const spans: LoopSpans = { tradeIds: 100, aggIds: 10, updateIds: 1000, timeMs: 60_000 };
    const trade =
      '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}';
    expect(shiftFrame(trade, 2, spans)).toBe(
      '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161375343,"s":"BTCUSDT","t":3735683459,"p":"61837.63000000","q":"0.02000000","T":1723161375342,"m":true,"M":true}}',
    );
    // bookTicker: `b` and `a` are price strings, not ids
    const ticker =
      '{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}';
    expect(shiftFrame(ticker, 1, spans)).toBe(ticker.replace("50093239212", "50093240212"));
    const agg = '{"e":"aggTrade","E":5,"s":"X","a":7,"p":"1","q":"2","f":20,"l":21,"T":4,"m":false,"M":true}';
    expect(shiftFrame(agg, 3, spans)).toBe(
      '{"e":"aggTrade","E":180005,"s":"X","a":37,"p":"1","q":"2","f":320,"l":321,"T":180004,"m":false,"M":true}',
    );
    expect(shiftFrame(trade, 0, spans)).toBe(trade);
    expect(shiftNs("1723161253937085768", 2, spans)).toBe("1723161373937085768");
  });

  it("two loops of both BTCUSDT files: ids contiguous, loop 1 after loop 0, frames otherwise as recorded", async () => {
    const out = `${tempDir()}/looped.gz`;
    const info = await writeLoopedCapture(INPUTS, out, (s) => (s.tradeIds > 0 ? 2 : 1));
    expect(info.loops).toBe(2);
    expect(info.framesPerLoop).toBe(FRAMES);
    expect(info.framesByStream).toEqual({ "btcusdt@trade": 19904, "btcusdt@bookTicker": 73174 });
    expect(info.spans.tradeIds).toBe(TRADES);
    expect([info.firstTradeId, info.lastTradeId]).toEqual([FIRST, LAST]);
    // the two files span about 650 s of receive time
    expect(info.spans.timeMs).toBeGreaterThan(600_000);
    expect(info.spans.timeMs).toBeLessThan(700_000);

    const frames: { ns: string; raw: string }[] = [];
    for await (const f of readCapture(out)) frames.push({ ns: f.ns, raw: f.raw });
    expect(frames.length).toBe(2 * FRAMES);
    const ids: number[] = [];
    let maxNs0 = 0n;
    let minNs1: bigint | null = null;
    let maxU0 = 0;
    let minU1 = Number.POSITIVE_INFINITY;
    const strip = (raw: string) => raw.replace(/"(t|u|E|T)":\d+/g, '"$1":_');
    for (let i = 0; i < frames.length; i++) {
      const { ns, raw } = frames[i];
      expect(
        raw.startsWith('{"stream":"btcusdt@trade"') || raw.startsWith('{"stream":"btcusdt@bookTicker"'),
      ).toBe(true);
      const t = /"t":(\d+)/.exec(raw);
      if (t) ids.push(Number(t[1]));
      const u = /"u":(\d+)/.exec(raw);
      if (i < FRAMES) {
        if (BigInt(ns) > maxNs0) maxNs0 = BigInt(ns);
        if (u) maxU0 = Math.max(maxU0, Number(u[1]));
      } else {
        if (minNs1 === null || BigInt(ns) < minNs1) minNs1 = BigInt(ns);
        if (u) minU1 = Math.min(minU1, Number(u[1]));
        // same frame as loop 0's but for the shifted numbers; receive time moved by the time span
        const twin = frames[i - FRAMES];
        expect(strip(raw)).toBe(strip(twin.raw));
        expect(BigInt(ns) - BigInt(twin.ns)).toBe(BigInt(info.spans.timeMs) * 1_000_000n);
      }
    }
    expect(ids.length).toBe(2 * TRADES);
    const sorted = [...ids].sort((a, b) => a - b);
    expect(new Set(ids).size).toBe(ids.length);
    expect(sorted[0]).toBe(FIRST);
    expect(sorted.at(-1)).toBe(FIRST + 2 * TRADES - 1);
    expect(minNs1 !== null && minNs1 > maxNs0).toBe(true);
    expect(minU1).toBeGreaterThan(maxU0);

    // the replay's REST emulation (gap backfill) finds the shifted trades
    const index = await indexRestRecords(
      (async function* () {
        for (const f of frames) yield f.raw;
      })(),
    );
    const rest = index.trades.get("BTCUSDT") ?? [];
    expect(rest.length).toBe(2 * TRADES);
    expect(rest[TRADES].id).toBe(LAST + 1);
    rmSync(out);
  });
});
