import { describe, expect, it } from "vitest";
import { BinanceBookSync, type BinanceDepthDiff } from "../../src/books/binance.js";

const diff = (U: number, u: number, bidQty = "1.00000000"): BinanceDepthDiff => ({
  symbol: "BTCUSDT",
  eventTime: 0,
  firstUpdateId: U,
  finalUpdateId: u,
  bids: [["100.00000000", bidQty]],
  asks: [],
});
const snapshot = (lastUpdateId: number) => ({
  symbol: "BTCUSDT",
  lastUpdateId,
  bids: [["99.00000000", "5.00000000"]] as [string, string][],
  asks: [["101.00000000", "5.00000000"]] as [string, string][],
});

describe("Binance local-book procedure, step by step", () => {
  it("buffers until a snapshot, asks for it once, drops what the snapshot holds, applies the straddling diff", () => {
    const s = new BinanceBookSync("BTCUSDT");
    expect(s.onDiff(diff(10, 12)).fetchSnapshot).toBe(true);
    expect(s.onDiff(diff(13, 15)).fetchSnapshot).toBe(false);
    const step = s.onSnapshot(snapshot(13));
    expect(step.dropped).toBe(1);
    expect(step.applied.map((d) => d.finalUpdateId)).toEqual([15]);
    expect(s.state).toBe("live");
    expect(s.book.sequence).toBe(15);
    expect(s.book.top("bid", 2)).toEqual([
      ["100.00000000", "1.00000000"],
      ["99.00000000", "5.00000000"],
    ]);
    expect(s.onDiff(diff(14, 15)).dropped).toBe(1); // already applied
    expect(s.onDiff(diff(16, 16, "0.00000000")).applied).toHaveLength(1);
    expect(s.book.bestBid()).toEqual(["99.00000000", "5.00000000"]);
  });

  it("a snapshot older than the first buffered diff is not used: another is asked for", () => {
    const s = new BinanceBookSync("BTCUSDT");
    s.onDiff(diff(20, 25));
    const step = s.onSnapshot(snapshot(10));
    expect([step.snapshotIgnored, step.fetchSnapshot, s.state]).toEqual([true, true, "awaiting-snapshot"]);
    expect(s.onSnapshot(snapshot(22)).applied.map((d) => d.finalUpdateId)).toEqual([25]);
  });

  it("the first diff after the snapshot must straddle it; then each U is the previous u + 1", () => {
    const s = new BinanceBookSync("BTCUSDT");
    s.onDiff(diff(1, 1));
    s.onSnapshot(snapshot(5));
    let step = s.onDiff(diff(8, 9)); // 6 and 7 never arrived
    expect(step.resync).toMatchObject({ reason: "no-straddle", bookUpdateId: 5, firstUpdateId: 8 });
    expect(step.fetchSnapshot).toBe(true);
    expect(s.book.depth("bid")).toBe(0);
    s.onSnapshot(snapshot(8));
    step = s.onDiff(diff(11, 12));
    expect(step.resync).toMatchObject({ reason: "gap", bookUpdateId: 9, firstUpdateId: 11 });
    s.onSnapshot(snapshot(11));
    expect(s.book.sequence).toBe(12);
    expect(s.onDiff(diff(12, 14)).resync).toMatchObject({ reason: "overlap" });
    expect(s.resyncs).toBe(3);
    // a snapshot handed over while live is ignored
    s.onSnapshot(snapshot(14));
    expect(s.onSnapshot(snapshot(20)).snapshotIgnored).toBe(true);
  });
});
