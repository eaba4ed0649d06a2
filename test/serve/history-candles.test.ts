/**
 * Issue #16, `from` on `candles.*`: against `k2 run --replay btcusdt_20240808.gz --speed 10` (gateway in
 * its worker processes, history pages over IPC), a client subscribing `candles.1s` from the file's
 * first trade once some candles are stored gets the stored closed candles, then the live ones: at the
 * end of the run every closed candle of the store exactly once, in interval order, with `replay_done`
 * inside the run (closed candles arrive after it). And the "how much" limit: a token limited by
 * `K2_REPLAY_MAX_RECORDS` gets that many stored records, then an error frame with code 413.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CandleV2 } from "../../src/schema/candles.js";
import type { TradeV2 } from "../../src/schema/records.js";
import {
  FIRST_TRADE_ID,
  type K2Process,
  sleep,
  spawnReplayForHistory,
  stopSpawned,
  TestClient,
  tempDir,
} from "./helpers.js";

const TOKEN = "candles-token-1";
const CAPPED = "capped-token-2";
const CAP = 1000;
const auth = { Authorization: `Bearer ${TOKEN}` };
const tmp = tempDir();
let k2: K2Process;
let base: string;

beforeAll(async () => {
  k2 = await spawnReplayForHistory(tmp.dir, "trade,bookTicker", {
    K2_API_TOKENS: `${TOKEN},${CAPPED}`,
    K2_WS_WORKERS: "2",
    K2_REPLAY_MAX_RECORDS: `0,${CAPPED}=${CAP}`,
    // the store writes every 4 s (4 s of batches is 40 s of the recording at --speed 10): when the
    // client subscribes, the candles closed since the last write are not stored yet, and they closed
    // before the gateway worker started (with this first client), so its own memory lacks them too;
    // the switch must take them from the parent's (the last history page's `open`)
    K2_BATCH_SIZE: "100000",
    K2_BATCH_MAX_WAIT_MS: "4000",
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

/** The closed 1 s candles stored so far (candles_v2), from `from` on. */
async function storedCandles(from: number): Promise<CandleV2[]> {
  const out: CandleV2[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ symbol: "BTCUSDT", interval: "1s", source: "live", from: String(from) });
    q.set("limit", "5000");
    if (cursor) q.set("cursor", cursor);
    const page: { data: CandleV2[]; next_cursor: string | null } = await getJson(`/api/v1/candles?${q}`);
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

const key = (c: CandleV2) => `${c.exchange}/${c.symbol}/${c.interval}/${c.interval_start}`;

describe("candles.* subscribed from a point in time", () => {
  it("sends the stored closed candles, then live ones, each closed candle once and in order", async () => {
    const first = await (async () => {
      const end = Date.now() + 60_000;
      for (;;) {
        const page: { data: TradeV2[] } = await getJson("/api/v1/trades?symbol=BTCUSDT&order=asc&limit=1");
        if (page.data.length > 0) return page.data[0];
        if (Date.now() > end) throw new Error("no trade stored within 60 s");
        await sleep(100);
      }
    })();
    // some closed candles stored (a few seconds of the recording)
    const deadline = Date.now() + 60_000;
    let storedAtSubscribe = await storedCandles(first.timestamp);
    while (storedAtSubscribe.length < 20) {
      if (Date.now() > deadline) throw new Error("20 closed candles were not stored within 60 s");
      await sleep(200);
      storedAtSubscribe = await storedCandles(first.timestamp);
    }
    // 2 s after a store write: about 20 candles (of the recording) closed since, none stored yet
    await sleep(2000);
    const c = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, { headers: auth });
    const sub = await c.request({
      op: "subscribe",
      channel: "candles.1s",
      symbols: ["BTCUSDT"],
      from: first.timestamp,
      id: "c1",
    });
    expect(sub).toMatchObject({ type: "subscribed", id: "c1", channel: "candles.1s" });
    const done = await c.next((m) => m.type === "replay_done", 60_000);
    expect(done).toMatchObject({ event: "replay_done", id: "c1", channel: "candles.1s" });
    const doneAt = c.messages.indexOf(done);
    expect(Number(done.replayed)).toBeGreaterThanOrEqual(storedAtSubscribe.length);

    // the run goes on: wait for its end (every trade stored and the last candle closed and stored)
    const candlesOf = () =>
      c.messages.filter((m) => m.type === "candle").map((m) => m.data as CandleV2 & { closed: boolean });
    let stored: CandleV2[] = [];
    const end = Date.now() + 120_000;
    for (;;) {
      stored = await storedCandles(first.timestamp);
      const closed = candlesOf().filter((x) => x.closed);
      const open: { open?: CandleV2[] } = await getJson(
        `/api/v1/candles?symbol=BTCUSDT&interval=1s&source=live&limit=1&order=desc`,
      );
      if ((open.open ?? []).length === 0 && closed.length === stored.length && stored.length > 0) break;
      if (Date.now() > end) {
        // what differs, and whether the client was closed, so that a failure says which it was
        const got = new Set(closed.map(key));
        const held = new Set(stored.map(key));
        throw new Error(
          `client has ${closed.length} closed candles, the store ${stored.length}; ` +
            `open live candles ${(open.open ?? []).length}; ` +
            `missing at the client ${JSON.stringify(
              stored
                .map(key)
                .filter((k) => !got.has(k))
                .slice(0, 5),
            )}, ` +
            `not in the store ${JSON.stringify(
              closed
                .map(key)
                .filter((k) => !held.has(k))
                .slice(0, 5),
            )}; ` +
            `client close ${c.closeCode ?? "none"} ${c.closeReason}; ` +
            `last messages ${JSON.stringify(c.messages.slice(-3)).slice(0, 600)}; ` +
            `k2 stderr ${k2.stderr().slice(-1500)}`,
        );
      }
      await sleep(500);
    }
    await sleep(500); // nothing more (no duplicate) arrives
    const received = candlesOf();
    const closed = received.filter((x) => x.closed);
    expect(closed.map(key)).toEqual(stored.map(key));
    for (const [i, x] of closed.entries()) expect(x).toMatchObject({ ...stored[i], closed: true });
    // the switch is inside the run: closed candles came live after replay_done
    const liveClosed = c.messages
      .slice(doneAt + 1)
      .filter((m) => m.type === "candle" && (m.data as CandleV2).closed);
    expect(liveClosed.length).toBeGreaterThan(0);
    // no open update of a candle after it was sent closed
    const seenClosed = new Set<string>();
    for (const x of received) {
      if (seenClosed.has(key(x))) expect.fail(`${key(x)} sent after it was closed`);
      if (x.closed) seenClosed.add(key(x));
    }
    console.log(
      `candles.1s from the first trade: ${storedAtSubscribe.length} stored at subscribe, replay_done after ${done.replayed} candles, ${liveClosed.length} closed live after it, ${closed.length} closed in all (= store)`,
    );
    c.close();
  }, 240_000);

  it(`a token limited by K2_REPLAY_MAX_RECORDS gets ${CAP} stored trades, then a 413 error frame`, async () => {
    const c = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, {
      headers: { Authorization: `Bearer ${CAPPED}` },
    });
    const sub = await c.request({
      op: "subscribe",
      channel: "trades",
      symbols: ["BTCUSDT"],
      from: 0,
      id: "cap",
    });
    expect(sub).toMatchObject({ type: "subscribed", id: "cap" });
    const err = await c.next((m) => m.type === "error" && m.id === "cap", 60_000);
    expect(err).toMatchObject({ field: "from", code: 413 });
    expect(String(err.error)).toContain(`more than ${CAP} stored records (K2_REPLAY_MAX_RECORDS)`);
    await sleep(500); // nothing after it: no replay_done, no live trades
    const trades = c.messages.filter((m) => m.type === "trade").map((m) => (m.data as TradeV2).trade_id);
    expect(trades.length).toBe(CAP);
    expect(trades[0]).toBe(`BINANCE-${FIRST_TRADE_ID}`);
    expect(trades[CAP - 1]).toBe(`BINANCE-${FIRST_TRADE_ID + CAP - 1}`);
    expect(c.messages.some((m) => m.type === "replay_done")).toBe(false);
    expect(c.messages.indexOf(err)).toBe(c.messages.length - 1);
    // the unlimited token replays past it
    const u = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, { headers: auth });
    await u.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], from: 0, id: "all" });
    const done = await u.next((m) => m.type === "replay_done", 60_000);
    expect(Number(done.replayed)).toBeGreaterThan(CAP);
    c.close();
    u.close();
  });

  it('refuses "*" with from on a candle channel (400)', async () => {
    const c = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, { headers: auth });
    const reply = await c.request({ op: "subscribe", channel: "candles.1m", symbols: ["*"], from: 0, id: 9 });
    expect(reply).toMatchObject({ type: "error", id: 9, field: "symbols", code: 400 });
    c.close();
  });
});
