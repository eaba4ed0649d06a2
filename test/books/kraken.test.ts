import { describe, expect, it } from "vitest";
import { KrakenBooks, parseKrakenBookMessage } from "../../src/books/kraken.js";
import { recvFrames } from "./data.js";

const frames = recvFrames("cryptofeed/KRAKEN.jsonl.gz").map((f) => f.data);

function play(raws: string[]) {
  const books = new KrakenBooks();
  const failures: string[] = [];
  const resubscribe: string[] = [];
  let verified = 0;
  let updates = 0;
  let skipped = 0;
  for (const raw of raws) {
    const m = parseKrakenBookMessage(JSON.parse(raw));
    if (!m) continue;
    if (m.kind === "update") updates++;
    const step = books.onMessage(m);
    if (step.checksum === "verified") verified++;
    if (step.checksum === "failed") failures.push(m.pair);
    if (step.checksum === "skipped") skipped++;
    if (step.resubscribe) resubscribe.push(m.pair);
  }
  return { books, verified, failures, resubscribe, updates, skipped };
}

describe("Kraken v1 book with CRC32 checksum, on the recording", () => {
  it("4,269 checksummed updates over ten pairs, all verify", () => {
    const r = play(frames);
    expect(r.updates).toBe(4269);
    expect(r.books.byPair.size).toBe(10);
    expect(r.failures).toEqual([]);
    expect(r.verified).toBe(4269);
  });

  it("a flipped volume fails the checksum of that pair once, asks to resubscribe it only, the nine others verify", () => {
    // alter one level's volume in a copy: the 100th XBT/CHF update, first level, last digit changed
    let seen = 0;
    let altered = "";
    const copy = frames.map((raw) => {
      const o = JSON.parse(raw);
      if (!Array.isArray(o) || o[o.length - 1] !== "XBT/CHF" || !o.some((x) => x && (x.a || x.b))) return raw;
      if (++seen !== 100) return raw;
      const side = o[1].a ? o[1].a : o[1].b;
      const v: string = side[0][1];
      side[0][1] = v.slice(0, -1) + (v.endsWith("1") ? "2" : "1");
      altered = `${side[0][0]} ${v} -> ${side[0][1]}`;
      return JSON.stringify(o);
    });
    expect(altered).not.toBe("");
    const r = play(copy);
    expect(r.failures).toEqual(["XBT/CHF"]);
    expect(r.resubscribe).toEqual(["XBT/CHF"]);
    const xbt = r.books.byPair.get("XBT/CHF")!;
    expect([xbt.checksumFailures, xbt.resyncs, xbt.state]).toEqual([1, 1, "awaiting-snapshot"]);
    // the recording has no second snapshot: the pair's later updates are skipped, not verified
    let others = 0;
    for (const [pair, b] of r.books.byPair) {
      if (pair === "XBT/CHF") continue;
      expect([pair, b.checksumFailures, b.resyncs, b.state]).toEqual([pair, 0, 0, "live"]);
      others += b.checksumsVerified;
    }
    expect(others + xbt.checksumsVerified + 1 + r.skipped).toBe(4269);
    expect(r.skipped).toBeGreaterThan(0);
  });
});
