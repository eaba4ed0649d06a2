/**
 * Issue #16, `from` on `book.{N}` (the stored top-N snapshots of issue #13): against `k2 run --replay
 * btcusdt_20240808.gz --streams trade,bookTicker,depth --speed 10` (gateway in its worker processes, so
 * the snapshot pages reach them over IPC), a client subscribing `book.10` from the file's first trade
 * once some snapshots are stored gets:
 *   - the stored snapshots in time order, each equal to `GET /api/v1/book/snapshots`' row (levels cut to
 *     10, `state` live, the boundary as `timestamp`); as many as the store held between the subscribe
 *     and `replay_done`;
 *   - then, before `replay_done`, at most one current book; after it, live books; sequences rise
 *     strictly over the whole stream (no book older than one sent), and live books arrive after the
 *     switch (inside the run).
 * A client asking `book.20` from a store holding 10 levels gets an error frame (code 400) naming the
 * depth stored; one asking more than `K2_REPLAY_MAX_RECORDS` snapshots gets 413 after that many.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BookSnapshotV2 } from "../../src/schema/books.js";
import type { LiveBookTop } from "../../src/schema/live-book.js";
import type { TradeV2 } from "../../src/schema/records.js";
import { type K2Process, sleep, spawnReplayForHistory, stopSpawned, TestClient, tempDir } from "./helpers.js";

const TOKEN = "book-token-1";
const CAPPED = "book-capped-2";
const CAP = 5;
const auth = { Authorization: `Bearer ${TOKEN}` };
const tmp = tempDir();
let k2: K2Process;
let base: string;

beforeAll(async () => {
  k2 = await spawnReplayForHistory(tmp.dir, "trade,bookTicker,depth", {
    K2_API_TOKENS: `${TOKEN},${CAPPED}`,
    K2_WS_WORKERS: "2",
    K2_REPLAY_MAX_RECORDS: `0,${CAPPED}=${CAP}`,
  });
  base = `http://127.0.0.1:${k2.port}`;
}, 60_000);

afterAll(async () => {
  await stopSpawned(k2);
  tmp.cleanup();
});

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(`${base}${path}`, { headers: auth });
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

/** The BTCUSDT top-N snapshots stored so far from `from` on (GET /api/v1/book/snapshots, every page). */
async function storedSnapshots(from: number): Promise<BookSnapshotV2[]> {
  const out: BookSnapshotV2[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ symbol: "BTCUSDT", from: String(from), order: "asc", limit: "1000" });
    if (cursor) q.set("cursor", cursor);
    const page: { data: BookSnapshotV2[]; next_cursor: string | null } = await getJson(
      `/api/v1/book/snapshots?${q}`,
    );
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

/** Waits until `check` returns a value (polling every 200 ms). */
async function until<T>(what: string, check: () => Promise<T | null>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`${what} within ${ms / 1000} s`);
    await sleep(200);
  }
}

let firstTrade: TradeV2;

describe("book.{N} subscribed from a point in time", () => {
  it("sends the stored snapshots in order, then live books, sequences rising across the switch", async () => {
    firstTrade = await until("no trade stored", async () => {
      const page: { data: TradeV2[] } = await getJson("/api/v1/trades?symbol=BTCUSDT&order=asc&limit=1");
      return page.data[0] ?? null;
    });
    const from = firstTrade.timestamp;
    const atSubscribe = await until("20 book snapshots were not stored", async () => {
      const s = await storedSnapshots(from);
      return s.length >= 20 ? s : null;
    });
    const c = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, { headers: auth });
    const sub = await c.request({
      op: "subscribe",
      channel: "book.10",
      symbols: ["BTCUSDT"],
      from,
      id: "b1",
    });
    expect(sub).toMatchObject({ type: "subscribed", id: "b1", channel: "book.10", from });
    const done = await c.next((m) => m.type === "replay_done", 60_000);
    const atDone = await storedSnapshots(from);
    expect(done).toMatchObject({ event: "replay_done", id: "b1", channel: "book.10" });
    const doneAt = c.messages.indexOf(done);
    const before = c.messages.slice(0, doneAt).filter((m) => m.type === "book");
    const replayed = before.map((m) => m.data as LiveBookTop);
    expect(Number(done.replayed)).toBe(replayed.length);

    // the stored ones: a prefix of the store's rows, as many as it held between subscribe and switch
    let k = 0;
    while (k < replayed.length && k < atDone.length && replayed[k].timestamp === atDone[k].timestamp) {
      const s = atDone[k];
      expect(replayed[k]).toEqual({
        exchange: s.exchange,
        symbol: s.symbol,
        state: "live",
        timestamp: s.timestamp,
        depth: 10,
        bids: s.bids.slice(0, 10),
        asks: s.asks.slice(0, 10),
        last_source_sequence: s.last_source_sequence,
        last_resync_timestamp: s.last_resync_timestamp,
      });
      k++;
    }
    expect(k).toBeGreaterThanOrEqual(atSubscribe.length);
    expect(k).toBeLessThanOrEqual(atDone.length);
    // then at most the current book at the switch
    expect(replayed.length - k).toBeLessThanOrEqual(1);

    // live books after the switch, inside the run
    await until("no live book after replay_done", async () =>
      c.messages.slice(doneAt + 1).filter((m) => m.type === "book").length >= 20 ? true : null,
    );
    const all = c.messages.filter((m) => m.type === "book").map((m) => m.data as LiveBookTop);
    let prev = -1;
    for (const [i, b] of all.entries()) {
      expect(b).toMatchObject({ exchange: "BINANCE", symbol: "BTCUSDT", depth: 10, state: "live" });
      expect(b.bids.length).toBeLessThanOrEqual(10);
      expect(b.asks.length).toBeLessThanOrEqual(10);
      const seq = b.last_source_sequence as number;
      expect(seq, `book ${i} of ${all.length} (replayed ${replayed.length})`).toBeGreaterThan(prev);
      prev = seq;
    }
    const live = all.length - replayed.length;
    console.log(
      `book.10 from the first trade: ${atSubscribe.length} snapshots stored at subscribe, ${atDone.length} at replay_done; ` +
        `${k} stored snapshots + ${replayed.length - k} current book before replay_done, ${live} live books after (so far)`,
    );
    c.close();
  }, 180_000);

  it("book.N deeper than the depth stored: an error frame (400) naming it", async () => {
    const c = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, { headers: auth });
    await c.request({
      op: "subscribe",
      channel: "book.20",
      symbols: ["BTCUSDT"],
      from: firstTrade.timestamp,
      id: "deep",
    });
    const err = await c.next((m) => m.type === "error" && m.id === "deep", 30_000);
    expect(err).toMatchObject({ field: "from", code: 400 });
    expect(String(err.error)).toContain("hold 10 levels per side (--book-depth 10), fewer than 20");
    expect(c.messages.filter((m) => m.type === "book")).toEqual([]);
    expect(c.messages.some((m) => m.type === "replay_done")).toBe(false);
    c.close();
  });

  it(`a token limited by K2_REPLAY_MAX_RECORDS gets ${CAP} stored snapshots, then a 413 error frame`, async () => {
    const c = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, {
      headers: { Authorization: `Bearer ${CAPPED}` },
    });
    await c.request({ op: "subscribe", channel: "book.5", symbols: ["BTCUSDT"], from: 0, id: "cap" });
    const err = await c.next((m) => m.type === "error" && m.id === "cap", 30_000);
    expect(err).toMatchObject({ field: "from", code: 413 });
    const books = c.messages.filter((m) => m.type === "book").map((m) => m.data as LiveBookTop);
    expect(books.length).toBe(CAP);
    for (const b of books) expect(b.bids.length).toBeLessThanOrEqual(5);
    c.close();
  });
});
