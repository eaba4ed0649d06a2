/**
 * Issue #13, Kraken v1 books through the built CLI: `k2 run --exchange kraken --streams …,book
 * --replay KRAKEN.jsonl.gz` keeps each pair's book and verifies Kraken's CRC32 checksum on every update
 * that carries `c` (reference: 4,269 updates over ten pairs, 0 failures); a copy with one level altered
 * fails that pair's checksum once, resubscribes that pair only, and the other pairs verify.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, runCli, tempDir } from "../helpers/cli.js";

const RECORDING = sharedData("cryptofeed/KRAKEN.jsonl.gz");

function args(file: string): string[] {
  return [
    "run",
    "--exchange",
    "kraken",
    "--streams",
    "trade,ticker,book",
    "--replay",
    file,
    "--speed",
    "max",
    "--exit-at-end",
    "--db",
    join(tempDir(), "k2.duckdb"),
    "--http-port",
    "0",
  ];
}

/** A copy of the recording with the volume of the first level of XBT/CHF's 100th update changed. */
function alteredCopy(): { file: string; updatesAfter: number } {
  const lines = gunzipSync(readFileSync(RECORDING)).toString("utf8").split("\n");
  let seen = 0;
  let updatesAfter = 0;
  const out = lines.map((line) => {
    if (!line.includes("XBT/CHF") || !line.startsWith('{"t":"recv"')) return line;
    const l = JSON.parse(line) as { data: string };
    const o = JSON.parse(l.data);
    if (!Array.isArray(o) || o[o.length - 1] !== "XBT/CHF" || !o.some((x) => x && (x.a || x.b))) return line;
    seen++;
    if (seen > 100) updatesAfter++;
    if (seen !== 100) return line;
    const side = o[1].a ? o[1].a : o[1].b;
    const v: string = side[0][1];
    side[0][1] = v.slice(0, -1) + (v.endsWith("1") ? "2" : "1");
    l.data = JSON.stringify(o);
    return JSON.stringify(l);
  });
  expect(seen).toBeGreaterThan(100);
  const file = join(tempDir(), "KRAKEN_altered.jsonl.gz");
  writeFileSync(file, gzipSync(out.join("\n")));
  return { file, updatesAfter };
}

describe("Kraken v1 books with CRC32 checksums, replayed with --streams trade,ticker,book", () => {
  it("KRAKEN.jsonl.gz: 4,269 checksummed updates verify over ten pairs, 0 failures, 0 resyncs", async () => {
    const r = await runCli(args(RECORDING));
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    expect(s).toMatchObject({
      checksums_verified: 4269,
      checksum_failures: 0,
      resyncs: 0,
      rejected: 0,
      // ten snapshots and the 4,269 updates
      book_changes: 4279,
    });
    expect(Number(s.book_snapshots)).toBeGreaterThan(0);
    expect(s.book_snapshots_stored).toBe(s.book_snapshots);
  });

  it("a copy with one altered level: one failure, one resync of that pair only, the other pairs verify", async () => {
    const { file, updatesAfter } = alteredCopy();
    const r = await runCli(args(file));
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    expect(s).toMatchObject({ checksum_failures: 1, resyncs: 1, rejected: 0 });
    // XBT/CHF's updates after the failure wait for a new snapshot; every other update verifies
    expect(Number(s.checksums_verified)).toBeGreaterThanOrEqual(4269 - 1 - updatesAfter);
    expect(Number(s.checksums_verified)).toBeLessThan(4269);
    const mismatches = r.stderr.split("\n").filter((l) => l.includes("book checksum mismatch"));
    expect(mismatches).toHaveLength(1);
    expect(JSON.parse(mismatches[0])).toMatchObject({ exchange: "KRAKEN", symbol: "XBT/CHF" });
  });
});
