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
import { getJson, startK2Run, waitFor } from "../serve/k2-process.js";

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

  it("GET /api/v1/book serves each pair's kept book: equal to the recording's messages applied in order", async () => {
    const reference = krakenReference();
    expect(reference.size).toBe(10);
    // serving after the replay's end: no --exit-at-end (startK2Run adds --http-port 0 and a --db)
    const k2 = await startK2Run([
      "--exchange",
      "kraken",
      "--streams",
      "trade,ticker,book",
      "--replay",
      RECORDING,
      "--speed",
      "max",
    ]);
    try {
      await waitFor("the replay's end", async () => k2.stderr().includes("replay finished"), 120_000);
      for (const [pair, ref] of reference) {
        const url = `${k2.baseUrl}/api/v1/book?exchange=KRAKEN&symbol=${encodeURIComponent(pair)}&depth=10`;
        const { status, body } = await getJson<{ state: string; bids: Level[]; asks: Level[] }>(url);
        expect(status, pair).toBe(200);
        expect(body.state, pair).toBe("live");
        expect({ pair, bids: body.bids, asks: body.asks }).toEqual({
          pair,
          bids: ref.top("bid", 10),
          asks: ref.top("ask", 10),
        });
        expect(Number(body.bids[0][0])).toBeLessThan(Number(body.asks[0][0]));
      }
    } finally {
      await k2.stop();
    }
  }, 180_000);
});

type Level = [string, string];

/** DECIMAL(18,8) text of a Kraken decimal string (`"0.1"` → `"0.10000000"`, `"0.000022800"` → `"0.00002280"`). */
function canonical(v: string): string {
  const [i, f = ""] = v.split(".");
  const digits = f.replace(/0+$/, "");
  expect(digits.length).toBeLessThanOrEqual(8);
  return `${String(BigInt(i))}.${digits.padEnd(8, "0")}`;
}

/** Each pair's book from the recording's `book-1000` messages applied in order (volume 0 removes). */
function krakenReference(): Map<string, { top(side: "bid" | "ask", n: number): Level[] }> {
  const books = new Map<string, { bid: Map<string, string>; ask: Map<string, string> }>();
  for (const line of gunzipSync(readFileSync(RECORDING)).toString("utf8").split("\n")) {
    if (!line.startsWith('{"t":"recv"')) continue;
    const m = JSON.parse(JSON.parse(line).data);
    if (!Array.isArray(m) || typeof m[m.length - 2] !== "string" || !m[m.length - 2].startsWith("book-"))
      continue;
    const pair = m[m.length - 1] as string;
    for (const part of m.slice(1, -2) as Record<string, string[][]>[]) {
      if (part.as || part.bs) books.set(pair, { bid: new Map(), ask: new Map() });
      const b = books.get(pair);
      if (!b) continue;
      for (const [key, side] of [
        ["as", "ask"],
        ["bs", "bid"],
        ["a", "ask"],
        ["b", "bid"],
      ] as const) {
        for (const [price, volume] of part[key] ?? []) {
          const p = canonical(price);
          if (/^0*\.?0*$/.test(volume)) b[side].delete(p);
          else b[side].set(p, canonical(volume));
        }
      }
    }
  }
  const out = new Map<string, { top(side: "bid" | "ask", n: number): Level[] }>();
  for (const [pair, b] of books) {
    out.set(pair, {
      top: (side, n) =>
        [...b[side].entries()]
          .sort((x, y) => (side === "bid" ? 1 : -1) * (Number(y[0]) - Number(x[0])))
          .slice(0, n),
    });
  }
  return out;
}
