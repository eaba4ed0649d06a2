/**
 * The interest filter between `k2 run` and its gateway worker processes (`serve/ws/interest.ts`): a
 * worker is sent only what its clients need, and a subscription that makes a worker need records it
 * was not sent misses nothing. Against a real `k2 run --replay btcusdt_20240808.gz --speed 10
 * --exit-at-end` child process with two gateway workers and real WebSocket clients on loopback, each
 * worker first needing BTCUSDT quotes only, then subscribing while records flow: every live subscription gets every trade after its reply
 * (the captures' trade ids have no gaps, so the ids received must be consecutive up to the last one),
 * a subscribe-unsubscribe-subscribe burst is answered in order and ends subscribed with nothing
 * missed, a `from` subscription gets the 9,757 trades of the BTCUSDT capture once each, in order,
 * and a `ticks` subscription on a worker that never had a trade starts from the parent's tick.
 * The routing itself (which worker gets what, the marker's confirmation) is checked on the classes.
 */
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  InterestTracker,
  type InterestUpdate,
  interestKey,
  WorkerRoutes,
} from "../../src/serve/ws/interest.js";
import {
  CAPTURE,
  ensureBuilt,
  FIRST_TRADE_ID,
  type K2Process,
  LAST_TRADE_ID,
  spawnK2Run,
  stopSpawned,
  TestClient,
  TRADES_IN_CAPTURE,
  tempDir,
} from "./helpers.js";

describe("interest: the parent's routes and the worker's tracker", () => {
  it("routes each record kind to the workers whose keys need it; ticks need trades and quotes", () => {
    const r = new WorkerRoutes();
    const added = r.apply({
      id: 1,
      add: [
        ["trades", "BTCUSDT"],
        ["ticks", "ETHUSDT"],
        ["candles.1m", "*"],
        ["book.5", "BTCUSDT"],
        ["book.20", "SOLUSDT"],
      ],
      remove: [],
    });
    expect(added).toEqual({ ticks: ["ETHUSDT"], books: ["BTCUSDT", "SOLUSDT"] });
    expect([r.wantsTrade("BTCUSDT"), r.wantsQuote("BTCUSDT")]).toEqual([true, false]);
    expect([r.wantsTrade("ETHUSDT"), r.wantsQuote("ETHUSDT")]).toEqual([true, true]);
    expect([r.wantsCandle("1m", "XRPUSDT"), r.wantsCandle("1s", "BTCUSDT")]).toEqual([true, false]);
    expect([r.wantsBook("BTCUSDT"), r.wantsBook("ETHUSDT"), r.bookDepth]).toEqual([true, false, 20]);
    r.apply({
      id: 2,
      add: [],
      remove: [
        ["book.20", "SOLUSDT"],
        ["trades", "BTCUSDT"],
      ],
    });
    expect([r.wantsTrade("BTCUSDT"), r.wantsBook("SOLUSDT"), r.bookDepth]).toEqual([false, false, 5]);
    r.clear();
    expect([r.wantsTrade("ETHUSDT"), r.bookDepth]).toEqual([false, 0]);
  });

  it("tells the parent only of first holds and last releases; a subscribe waits for its update's marker", () => {
    const sent: InterestUpdate[] = [];
    let dropped = 0;
    const t = new InterestTracker(
      (u) => sent.push(u),
      () => dropped++,
    );
    const btc = interestKey("trades", "BTCUSDT");
    const book = interestKey("book.10", "BTCUSDT");
    t.change([btc, book], []);
    t.change([btc], []); // a second holder: nothing to tell
    expect(sent).toEqual([
      {
        id: 1,
        add: [
          ["trades", "BTCUSDT"],
          ["book.10", "BTCUSDT"],
        ],
        remove: [],
      },
    ]);
    const ran: string[] = [];
    t.whenReady([btc], () => ran.push("a"));
    t.change([interestKey("quotes", "BTCUSDT")], []);
    t.whenReady([btc, interestKey("quotes", "BTCUSDT")], () => ran.push("b"));
    expect(ran).toEqual([]);
    t.confirm(1);
    expect(ran).toEqual(["a"]);
    t.whenReady([btc], () => ran.push("c")); // confirmed: runs now
    expect(ran).toEqual(["a", "c"]);
    t.confirm(2);
    expect(ran).toEqual(["a", "c", "b"]);
    expect(t.wantsBook("BTCUSDT")).toBe(true);
    t.change([], [book, btc]);
    expect([t.wantsBook("BTCUSDT"), dropped]).toEqual([false, 1]);
    t.change([], [btc]); // the last holder
    expect(sent.at(-1)).toEqual({ id: 4, add: [], remove: [["trades", "BTCUSDT"]] });
    // added again after a release: a new update, and a subscribe waits for its marker
    t.change([btc], []);
    t.whenReady([btc], () => ran.push("d"));
    expect(ran).toHaveLength(3);
    t.confirm(5);
    expect(ran.at(-1)).toBe("d");
  });
});

/** Trade ids (`source_sequence`) of `symbol` in the client's messages from index `from` on. */
function tradeIds(c: TestClient, symbol: string, from = 0): number[] {
  return c.messages
    .slice(from)
    .filter((m) => m.type === "trade" && (m.data as { symbol: string }).symbol === symbol)
    .map((m) => (m.data as { source_sequence: number }).source_sequence);
}

/** Index in the client's messages of the reply with `id`. */
function replyAt(c: TestClient, id: number): number {
  return c.messages.findIndex((m) => m.id === id && typeof m.type === "string" && m.type !== "trade");
}

/** Whether `ids` are consecutive integers. */
function consecutive(ids: number[]): boolean {
  return ids.every((id, i) => i === 0 || id === ids[i - 1] + 1);
}

describe("interest filter against a real k2 run with two gateway workers", () => {
  const tmp = tempDir();
  let k2: K2Process | undefined;

  afterAll(async () => {
    await stopSpawned(k2);
    tmp.cleanup();
  });

  it("subscriptions made while records flow miss nothing; from switches with no gap", async () => {
    ensureBuilt();
    k2 = await spawnK2Run(
      [
        "--replay",
        CAPTURE,
        "--symbols",
        "BTCUSDT",
        "--streams",
        "trade,bookTicker",
        "--speed",
        "10",
        "--exit-at-end",
        "--http-port",
        "0",
        "--db",
        join(tmp.dir, "k2.duckdb"),
      ],
      { K2_WS_WORKERS: "2" },
    );
    const url = `ws://127.0.0.1:${k2.port}/ws`;
    // connections go to the workers in turn: a and c to one, b and d to the other
    const a = await TestClient.open(url);
    const b = await TestClient.open(url);
    const c = await TestClient.open(url);
    const d = await TestClient.open(url);
    // each worker needs quotes only
    await a.request({ op: "subscribe", channel: "quotes", symbols: ["BTCUSDT"], id: 1 });
    await b.request({ op: "subscribe", channel: "quotes", symbols: ["BTCUSDT"], id: 1 });
    const flowing = performance.now() + 60_000;
    while (a.messages.filter((m) => m.type === "quote").length < 1000) {
      if (performance.now() > flowing) throw new Error("not 1,000 quotes within 60 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    // now ticks and trades, which neither worker was sent so far, while they flow
    await c.request({ op: "subscribe", channel: "ticks", symbols: ["BTCUSDT"], id: 1 });
    await a.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 2 });
    await b.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], from: 0, id: 2 });
    // a burst answered in order, ending subscribed
    d.send({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
    d.send({ op: "unsubscribe", channel: "trades", symbols: ["BTCUSDT"], id: 2 });
    d.send({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 3 });
    // the run ends at the end of the capture and closes every client after what it was due
    await Promise.all([a.closed, b.closed, c.closed, d.closed]);
    expect(await k2.exited).toBe(0);
    expect([a.closeCode, b.closeCode, c.closeCode, d.closeCode]).toEqual([1001, 1001, 1001, 1001]);

    const aAt = replyAt(a, 2);
    expect(tradeIds(a, "BTCUSDT").length).toBe(tradeIds(a, "BTCUSDT", aAt).length); // none before the reply
    const aIds = tradeIds(a, "BTCUSDT", aAt);
    expect(aIds[0]).toBeGreaterThan(FIRST_TRADE_ID); // subscribed mid-stream
    expect(consecutive(aIds)).toBe(true);
    expect(aIds.at(-1)).toBe(LAST_TRADE_ID);

    // nothing missed between the reply and its first trade: records reach a worker in the feed's order
    // (trades and quotes interleaved as received), so the trade before it came before the first quote
    // after the reply (the trade record of each id from the from subscription)
    const received = new Map<number, number>();
    for (const m of b.messages) {
      const t = m.data as { source_sequence: number; ingestion_timestamp: number };
      if (m.type === "trade") received.set(t.source_sequence, t.ingestion_timestamp);
    }
    const firstQuote = a.messages.slice(aAt).find((m) => m.type === "quote")?.data as {
      ingestion_timestamp: number;
    };
    expect(received.get(aIds[0] - 1)).toBeLessThanOrEqual(firstQuote.ingestion_timestamp);

    const bIds = tradeIds(b, "BTCUSDT");
    expect(bIds).toHaveLength(TRADES_IN_CAPTURE);
    expect(bIds[0]).toBe(FIRST_TRADE_ID);
    expect(consecutive(bIds)).toBe(true);
    expect(b.messages.some((m) => m.type === "replay_done" && m.id === 2)).toBe(true);

    const ticks = c.messages
      .filter((m) => m.type === "tick")
      .map((m) => m.data as { last_trade_id: string | null });
    // the first is the snapshot: the parent's tick, trade included, though its worker had had no trade
    expect(ticks[0]?.last_trade_id).not.toBeNull();
    const lastTrade = a.messages.filter((m) => m.type === "trade").at(-1)?.data as { trade_id: string };
    expect(ticks.at(-1)?.last_trade_id).toBe(lastTrade.trade_id);

    const replies = d.messages
      .filter((m) => m.type === "subscribed" || m.type === "unsubscribed")
      .map((m) => [m.type, m.id]);
    expect(replies).toEqual([
      ["subscribed", 1],
      ["unsubscribed", 2],
      ["subscribed", 3],
    ]);
    const dIds = tradeIds(d, "BTCUSDT", replyAt(d, 3));
    expect(consecutive(dIds)).toBe(true);
    expect(dIds.at(-1)).toBe(LAST_TRADE_ID);
  }, 180_000);
});
