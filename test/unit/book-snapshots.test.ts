/**
 * Periodic top-N book snapshots on the venue's clock (`src/feed/book-snapshots.ts`): the snapshot at
 * boundary T holds exactly the changes stamped before T.
 */
import { describe, expect, it } from "vitest";
import { L2Book } from "../../src/books/l2-book.js";
import { BookSnapshotter } from "../../src/feed/book-snapshots.js";
import type { BookSnapshotV2 } from "../../src/schema/books.js";

const S = 1_000_000;
const T0 = 1_723_161_360 * S;

function keeper(depth = 2) {
  const out: BookSnapshotV2[] = [];
  const snap = new BookSnapshotter({ exchange: "BINANCE", depth, intervalUs: S, emit: (s) => out.push(s) });
  const book = new L2Book();
  book.load("bid", [
    ["100.00000000", "1.00000000"],
    ["99.00000000", "2.00000000"],
    ["98.00000000", "3.00000000"],
  ]);
  book.load("ask", [
    ["101.00000000", "1.50000000"],
    ["102.00000000", "2.50000000"],
  ]);
  book.sequence = 10;
  /** One change stamped `t`: the snapshotter sees the book before it, then the bid at 100 changes. */
  const change = (t: number, qty: string, seq: number) => {
    snap.beforeChange("BTCUSDT", t, book, null);
    book.apply("bid", "100.00000000", qty);
    book.sequence = seq;
  };
  return { out, snap, change };
}

describe("BookSnapshotter", () => {
  it("takes the book at each boundary passed, with the changes stamped before it only", () => {
    const { out, change } = keeper();
    change(T0 + 100_000, "1.10000000", 11); // first change: starts the clock, nothing taken
    change(T0 + 900_000, "1.20000000", 12);
    expect(out).toEqual([]);
    change(T0 + S, "1.30000000", 13); // at the boundary: the book before it (1.2 at 100)
    change(T0 + S + 5, "1.40000000", 14);
    change(T0 + 3 * S + 7, "1.50000000", 15); // two boundaries passed: one snapshot, at the latest
    expect(out).toEqual([
      {
        exchange: "BINANCE",
        symbol: "BTCUSDT",
        timestamp: T0 + S,
        depth: 2,
        bids: [
          ["100.00000000", "1.20000000"],
          ["99.00000000", "2.00000000"],
        ],
        asks: [
          ["101.00000000", "1.50000000"],
          ["102.00000000", "2.50000000"],
        ],
        last_source_sequence: 12,
        last_resync_timestamp: null,
      },
      expect.objectContaining({
        timestamp: T0 + 3 * S,
        bids: [
          ["100.00000000", "1.40000000"],
          ["99.00000000", "2.00000000"],
        ],
        last_source_sequence: 14,
      }),
    ]);
  });

  it("starts a symbol's clock again after a reset (a resync)", () => {
    const { out, snap, change } = keeper(1);
    change(T0, "1.10000000", 11);
    snap.reset("BTCUSDT");
    change(T0 + 2 * S, "1.20000000", 12); // first change after the resync: nothing taken
    change(T0 + 3 * S, "1.30000000", 13);
    expect(out.map((s) => [s.timestamp, s.bids])).toEqual([[T0 + 3 * S, [["100.00000000", "1.20000000"]]]]);
    expect(snap.taken).toBe(1);
  });
});
