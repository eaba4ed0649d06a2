/**
 * `book-replay.ts` on a real DuckDB store and a real book copy (`LiveBookCopy`, as a gateway worker
 * keeps): the stored snapshots from `from` on in (timestamp, exchange, symbol) order across pages and
 * symbols, one per instant (the shallowest holding N levels when several depths are stored), cut to N;
 * at the switch each kept book's current top-N only when newer than the last snapshot sent, the others
 * handed back as floors; N deeper than the depth stored ends with a 400 naming it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BookSnapshotV2 } from "../../src/schema/books.js";
import type { LiveBookTop } from "../../src/schema/live-book.js";
import { LiveBookCopy } from "../../src/serve/live/books.js";
import { type BookFloor, BookReplay, newerBook } from "../../src/serve/ws/book-replay.js";
import { ReplayError } from "../../src/serve/ws/replay.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { emptyBatch } from "../../src/store/store.js";
import { bookSnapshot, DAY0_US } from "../store/contract.js";

const dir = mkdtempSync(join(tmpdir(), "k2-book-replay-"));
const store = new DuckDBStore({ path: join(dir, "k2.duckdb") });
const at = (s: number) => DAY0_US + s * 1_000_000;
const deep: BookSnapshotV2 = bookSnapshot(3, {
  depth: 3,
  bids: [...bookSnapshot(3).bids, ["61759.00000000", "1.00000000"]],
  asks: [...bookSnapshot(3).asks, ["61761.00000000", "2.00000000"]],
});
const eth = (s: number) => bookSnapshot(s, { symbol: "ETHUSDT", last_source_sequence: 900 + s });

beforeAll(async () => {
  await store.init();
  await store.write({
    ...emptyBatch(),
    bookSnapshots: [1, 2, 3, 4, 5].map((s) => bookSnapshot(s)).concat([deep, eth(2), eth(3)]),
  });
});

afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a replay to its end; what it sent, the floors it handed over, and its result or error. */
async function replay(depth: number, symbols: string[], fromUs: number, books?: LiveBookCopy) {
  const sent: LiveBookTop[] = [];
  let floors: Map<string, BookFloor> | null = null;
  const r = new BookReplay({
    depth,
    symbols,
    all: false,
    fromUs,
    history: store,
    books,
    pageSize: 2,
    send: (b) => sent.push(b),
    goLive: (f) => {
      floors = f;
    },
    ready: () => Promise.resolve(),
  });
  const result = await r.run().catch((e: unknown) => e);
  return { sent, floors: floors as Map<string, BookFloor> | null, result };
}

describe("book replay", () => {
  it("sends the stored snapshots in order across symbols and pages, one per instant, cut to N", async () => {
    const books = new LiveBookCopy();
    const top = (s: BookSnapshotV2, sequence: number, timestamp: number): LiveBookTop => ({
      ...s,
      state: "live",
      timestamp,
      last_source_sequence: sequence,
    });
    // BTCUSDT's current book is past its last snapshot; ETHUSDT's copy lags its last one
    books.apply(top(bookSnapshot(5), (bookSnapshot(5).last_source_sequence as number) + 7, at(5) + 300));
    books.apply(top(eth(3), 902, at(3) - 10));
    const { sent, floors, result } = await replay(2, ["BTCUSDT", "ETHUSDT"], at(2), books);
    const ids = sent.map((b) => `${b.symbol}@${(b.timestamp as number) - DAY0_US}`);
    expect(ids).toEqual([
      "BTCUSDT@2000000",
      "ETHUSDT@2000000",
      "BTCUSDT@3000000",
      "ETHUSDT@3000000",
      "BTCUSDT@4000000",
      "BTCUSDT@5000000",
      "BTCUSDT@5000300", // the current book at the switch
    ]);
    expect(result).toBe(7);
    // the instant stored at depths 2 and 3: the depth-2 one
    expect(sent[2].bids).toEqual(bookSnapshot(3).bids);
    expect(sent[2]).toMatchObject({
      depth: 2,
      state: "live",
      last_source_sequence: bookSnapshot(3).last_source_sequence,
    });
    expect(floors).not.toBeNull();
    expect([...(floors ?? new Map()).entries()]).toEqual([
      ["BINANCE|ETHUSDT", { timestamp: at(3), last_source_sequence: 903 }],
    ]);
  });

  it("N above the shallowest depth: the deeper snapshot of that instant, cut to N", async () => {
    const { sent, result } = await replay(3, ["BTCUSDT"], at(3));
    // 3 s holds depth 3; 4 s only depth 2: the replay ends there with a 400
    expect(sent.map((b) => b.bids.length)).toEqual([3]);
    expect(result).toBeInstanceOf(ReplayError);
    expect((result as ReplayError).code).toBe(400);
    expect((result as ReplayError).message).toContain(
      "book.3: the stored book snapshots of BINANCE BTCUSDT hold 2 levels per side (--book-depth 2), fewer than 3",
    );
  });

  it("a book is newer by its sequence when both have one, else by time (a boundary holds what came before)", () => {
    expect(
      newerBook({ timestamp: 1, last_source_sequence: 11 }, { timestamp: 5, last_source_sequence: 10 }),
    ).toBe(true);
    expect(
      newerBook({ timestamp: 9, last_source_sequence: 10 }, { timestamp: 5, last_source_sequence: 10 }),
    ).toBe(false);
    expect(
      newerBook({ timestamp: 4, last_source_sequence: null }, { timestamp: 5, last_source_sequence: 10 }),
    ).toBe(false);
    expect(
      newerBook({ timestamp: 5, last_source_sequence: null }, { timestamp: 5, last_source_sequence: null }),
    ).toBe(true);
    expect(
      newerBook({ timestamp: null, last_source_sequence: null }, { timestamp: 5, last_source_sequence: 3 }),
    ).toBe(true);
  });
});
