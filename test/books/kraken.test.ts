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
  for (const raw of raws) {
    const m = parseKrakenBookMessage(JSON.parse(raw));
    if (!m) continue;
    if (m.kind === "update") updates++;
    const step = books.onMessage(m);
    if (step.checksum === "verified") verified++;
    if (step.checksum === "failed") failures.push(m.pair);
    if (step.resubscribe) resubscribe.push(m.pair);
  }
  return { books, verified, failures, resubscribe, updates };
}

describe("Kraken v1 book with CRC32 checksum, on the recording", () => {
  it("4,269 checksummed updates over ten pairs, all verify", () => {
    const r = play(frames);
    console.log(r.verified, r.failures.length, r.updates, r.books.byPair.size);
    expect(r.books.byPair.size).toBe(10);
    expect(r.failures).toEqual([]);
    expect(r.verified).toBe(4269);
  });
});
