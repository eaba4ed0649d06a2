import { describe, expect, it } from "vitest";
import {
  BinanceBooks,
  type BinanceDepthDiff,
  type BinanceDepthSnapshot,
  type BinanceResync,
  BookTickerCrossCheck,
  parseBinanceBookTicker,
  parseBinanceDepthDiff,
  parseBinanceDepthSnapshot,
} from "../../src/books/binance.js";
import { captureFrames } from "./data.js";

interface Frame {
  file: string;
  ns: string;
  raw: string;
}

interface Session {
  checks: Map<string, BookTickerCrossCheck>;
  resyncs: BinanceResync[];
  snapshotsAsked: string[];
  /** Cross-check outcomes per symbol after its last resync. */
  afterResync: Map<string, { match: number; mismatch: number }>;
}

/** The capture's symbol, from its file name (a REST snapshot line does not name it). */
const symbolOfFile = (file: string) => file.split("_")[0].toUpperCase();

/**
 * Plays frames as one session through the procedure: diffs, the recorded REST snapshots, and every
 * `@bookTicker` cross-checked against the book. `answer` provides the REST snapshot the procedure asks
 * for after a resync (the recorder fetched none then): it is called on each later diff of that symbol
 * until it returns one.
 */
function play(
  frames: Frame[],
  answer: (symbol: string) => BinanceDepthSnapshot | null = () => null,
  skip: (diff: BinanceDepthDiff) => boolean = () => false,
): Session {
  const books = new BinanceBooks();
  const out: Session = { checks: new Map(), resyncs: [], snapshotsAsked: [], afterResync: new Map() };
  const check = (s: string) => {
    let c = out.checks.get(s);
    if (!c) {
      c = new BookTickerCrossCheck();
      out.checks.set(s, c);
    }
    return c;
  };
  const waiting = new Set<string>();
  const afterApplied = (applied: BinanceDepthDiff[]) => {
    for (const d of applied) {
      const r = check(d.symbol).onApplied(d.finalUpdateId, books.get(d.symbol).book);
      if (r) count(d.symbol, r);
    }
  };
  const count = (symbol: string, r: "match" | "mismatch") => {
    const a = out.afterResync.get(symbol);
    if (a) a[r]++;
  };
  for (const { file, raw } of frames) {
    const msg = JSON.parse(raw);
    if (!("stream" in msg)) {
      afterApplied(books.onSnapshot(parseBinanceDepthSnapshot(msg, symbolOfFile(file))).applied);
      continue;
    }
    const stream: string = msg.stream;
    if (stream.endsWith("@depth@100ms")) {
      const diff = parseBinanceDepthDiff(msg.data);
      if (skip(diff)) continue;
      const step = books.onDiff(diff);
      if (step.fetchSnapshot) out.snapshotsAsked.push(diff.symbol);
      if (step.resync) {
        out.resyncs.push(step.resync);
        check(diff.symbol).reset();
        out.afterResync.set(diff.symbol, { match: 0, mismatch: 0 });
        waiting.add(diff.symbol);
      }
      afterApplied(step.applied);
      if (waiting.has(diff.symbol)) {
        const snap = answer(diff.symbol);
        if (snap) {
          waiting.delete(diff.symbol);
          const s2 = books.onSnapshot(snap);
          expect(s2.snapshotIgnored).toBe(false);
          afterApplied(s2.applied);
        }
      }
    } else if (stream.endsWith("@bookTicker")) {
      const r = check(msg.data.s).onBookTicker(parseBinanceBookTicker(msg.data));
      if (r) count(msg.data.s, r);
    }
  }
  return out;
}

const totals = (s: Session) => {
  let checks = 0;
  let mismatches = 0;
  for (const c of s.checks.values()) {
    checks += c.matches + c.mismatches;
    mismatches += c.mismatches;
  }
  return { checks, mismatches, resyncs: s.resyncs.length };
};

const load = (...files: string[]): Frame[] =>
  files.flatMap((f) => captureFrames(`binance-spot/${f}`).map((x) => ({ file: f, ns: x.ns, raw: x.raw })));

/** Frames of several captures merged by receive time, as one connection would deliver them. */
const merged = (...files: string[]): Frame[] =>
  load(...files).sort((a, b) => a.ns.length - b.ns.length || (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : 0));

describe("Binance local book on the recordings, cross-checked with @bookTicker", () => {
  it("btcusdt_20240808: 564 checks, 0 mismatches, 0 resyncs", () => {
    const s = play(load("btcusdt_20240808.gz"));
    expect(totals(s)).toEqual({ checks: 564, mismatches: 0, resyncs: 0 });
    expect(s.snapshotsAsked).toEqual(["BTCUSDT"]); // once, at start
  });

  it("ethusdt_20240808: 577 checks, 0 mismatches, 0 resyncs", () => {
    expect(totals(play(load("ethusdt_20240808.gz")))).toEqual({ checks: 577, mismatches: 0, resyncs: 0 });
  });

  it("btcusdt_20240808 then btcusdt_20240809 as one session: 1,072 checks, no resync at the boundary", () => {
    const s = play(load("btcusdt_20240808.gz", "btcusdt_20240809.gz"));
    expect(totals(s)).toEqual({ checks: 1072, mismatches: 0, resyncs: 0 });
  });
});

/**
 * An independent reference book (a Map per side, sorted on demand) kept from the recorded snapshot
 * and every diff — what the venue would answer to `GET /api/v3/depth` at any moment.
 */
class VenueBook {
  bids = new Map<string, string>();
  asks = new Map<string, string>();
  lastUpdateId = 0;

  apply(levels: readonly (readonly [string, string])[], side: Map<string, string>): void {
    for (const [p, q] of levels) {
      if (Number(q) === 0) side.delete(p);
      else side.set(p, q);
    }
  }

  snapshot(symbol: string): BinanceDepthSnapshot {
    const sorted = (m: Map<string, string>, desc: boolean) =>
      [...m].sort((a, b) => (desc ? Number(b[0]) - Number(a[0]) : Number(a[0]) - Number(b[0])));
    return {
      symbol,
      lastUpdateId: this.lastUpdateId,
      bids: sorted(this.bids, true),
      asks: sorted(this.asks, false),
    };
  }
}

describe("a lost Binance diff", () => {
  it("resyncs that symbol only, reports it, and agrees with @bookTicker again after the new snapshot", () => {
    const frames = merged("btcusdt_20240808.gz", "ethusdt_20240808.gz");
    // the venue's book of BTCUSDT, kept from the recorded snapshot and every diff (none lost)
    const venue = new VenueBook();
    const venueAt: BinanceDepthSnapshot[] = [];
    const early: BinanceDepthDiff[] = []; // diffs received before the recorded snapshot
    let btcDiffs = 0;
    const venueApply = (d: BinanceDepthDiff) => {
      if (d.finalUpdateId <= venue.lastUpdateId) return;
      venue.apply(d.bids, venue.bids);
      venue.apply(d.asks, venue.asks);
      venue.lastUpdateId = d.finalUpdateId;
      // the REST answer for the moment the procedure asks (diff 1,000 is lost, 1,001 shows the break)
      if (++btcDiffs === 1002) venueAt.push(venue.snapshot("BTCUSDT"));
    };
    for (const { file, raw } of frames) {
      const msg = JSON.parse(raw);
      if (!("stream" in msg) && symbolOfFile(file) === "BTCUSDT") {
        const s = parseBinanceDepthSnapshot(msg, "BTCUSDT");
        venue.apply(s.bids, venue.bids);
        venue.apply(s.asks, venue.asks);
        venue.lastUpdateId = s.lastUpdateId;
        for (const d of early) venueApply(d);
      } else if (msg.stream === "btcusdt@depth@100ms") {
        const d = parseBinanceDepthDiff(msg.data);
        if (venue.lastUpdateId === 0) early.push(d);
        else venueApply(d);
      }
    }
    expect(venueAt).toHaveLength(1);

    let seen = 0;
    let lost: BinanceDepthDiff | null = null;
    // the REST snapshot reaches the procedure a few diffs after it asked (it is older than the last diff)
    let asked = 0;
    const s = play(
      frames,
      (symbol) => (symbol === "BTCUSDT" && ++asked === 3 ? venueAt[0] : null),
      (d) => {
        if (d.symbol !== "BTCUSDT") return false;
        if (++seen !== 1000) return false;
        lost = d;
        return true;
      },
    );
    expect(lost).not.toBeNull();
    expect(s.resyncs).toHaveLength(1);
    const r = s.resyncs[0];
    expect(r.symbol).toBe("BTCUSDT");
    expect(r.reason).toBe("gap");
    expect(r.firstUpdateId).toBe(lost!.finalUpdateId + 1);
    expect(r.bookUpdateId).toBe(lost!.firstUpdateId - 1);
    // a new snapshot asked for BTCUSDT only; ETHUSDT untouched: all its 577 checks, no mismatch
    expect(s.snapshotsAsked.filter((x) => x === "BTCUSDT")).toHaveLength(2);
    expect(s.snapshotsAsked.filter((x) => x === "ETHUSDT")).toHaveLength(1);
    const eth = s.checks.get("ETHUSDT")!;
    expect([eth.matches, eth.mismatches]).toEqual([577, 0]);
    // back in agreement with @bookTicker after the resync
    const after = s.afterResync.get("BTCUSDT")!;
    expect(after.mismatch).toBe(0);
    expect(after.match).toBeGreaterThan(50);
    expect(s.checks.get("BTCUSDT")!.mismatches).toBe(0);
  });
});
