/**
 * Issue #13, Binance local order books end to end with the built CLI: the replay server plays the
 * capture's `@depth@100ms` diffs and answers `GET /api/v3/depth` from its recorded snapshot; the feed
 * keeps the book by Binance's procedure and cross-checks it against every `@bookTicker` whose `u` is
 * the final `u` of an applied diff (reference figures: ../shared/data/README.md).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { readCapture } from "../../src/replay/capture.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, runCli, tempDir } from "../helpers/cli.js";

function args(file: string, symbol: string): string[] {
  return [
    "run",
    "--replay",
    file,
    "--speed",
    "max",
    "--exit-at-end",
    "--db",
    join(tempDir(), "k2.duckdb"),
    "--http-port",
    "0",
    "--symbols",
    symbol,
    "--streams",
    "trade,bookTicker,depth",
  ];
}

describe("Binance local order book, replayed with --streams trade,bookTicker,depth", () => {
  it.each([
    ["btcusdt_20240808.gz", "BTCUSDT", 564],
    ["ethusdt_20240808.gz", "ETHUSDT", 577],
  ])(
    "%s: the book agrees with every cross-checked @bookTicker, without a resync",
    async (file, symbol, checks) => {
      const r = await runCli(args(sharedData(`binance-spot/${file}`), symbol));
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      const s = lastJsonLine(r.stdout);
      expect(s).toMatchObject({ book_checks: checks, book_mismatches: 0, resyncs: 0, rejected: 0 });
      expect(s.book_changes).toBeGreaterThan(3000);
    },
  );

  it("a copy missing one depth diff after the snapshot: the break is found, reported and the book discarded", async () => {
    const copy = join(tempDir(), "btcusdt_dropped.gz");
    const lines: string[] = [];
    let diffsAfterSnapshot = -1;
    let dropped = "";
    for await (const f of readCapture(sharedData("binance-spot/btcusdt_20240808.gz"))) {
      if (f.raw.startsWith('{"lastUpdateId"')) diffsAfterSnapshot = 0;
      else if (diffsAfterSnapshot >= 0 && f.raw.includes("@depth@100ms") && ++diffsAfterSnapshot === 1000) {
        dropped = f.raw;
        continue;
      }
      lines.push(`${f.ns} ${f.raw}`);
    }
    expect(dropped).not.toBe("");
    writeFileSync(copy, gzipSync(`${lines.join("\n")}\n`));
    const r = await runCli(args(copy, "BTCUSDT"));
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    expect(s).toMatchObject({ resyncs: 1, book_mismatches: 0 });
    // checks before the break still count; the capture holds no later snapshot to rebuild from
    expect(Number(s.book_checks)).toBeGreaterThan(0);
    expect(Number(s.book_checks)).toBeLessThan(564);
    expect(r.stderr).toMatch(/book sequence break/);
  });
});
