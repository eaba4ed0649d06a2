/**
 * The recent window and its two readers, without processes: REST pages merged with the records not
 * stored yet (`mergeRecent`), and a `from` replay's switch (held live records, window, store pages
 * de-duplicated by trade id), against an in-memory "store" that holds a prefix of the trades.
 */
import { describe, expect, it } from "vitest";
import type { TradeV2 } from "../../src/schema/records.js";
import { mergeRecent, RecentWindow, tradeKey } from "../../src/serve/live/recent.js";
import { Replay } from "../../src/serve/ws/replay.js";
import { encodeCursor } from "../../src/store/cursor.js";
import type { MarketQuery, Page } from "../../src/store/page.js";

const trade = (i: number): TradeV2 =>
  ({
    exchange: "BINANCE",
    symbol: "BTCUSDT",
    trade_id: `BINANCE-${1000 + i}`,
    timestamp: 1_723_075_200_000_000 + i * 1000,
  }) as TradeV2;

/** A store holding `stored` trades, read in keyset pages as `Store.trades` does (asc only). */
function fakeStore(stored: TradeV2[]) {
  const cmp = (a: TradeV2, b: TradeV2) => (tradeKey(a) < tradeKey(b) ? -1 : 1);
  return {
    async trades(q: MarketQuery): Promise<Page<TradeV2>> {
      const after = q.cursor ? JSON.parse(Buffer.from(q.cursor, "base64url").toString()).v[4] : null;
      const rows = [...stored]
        .sort(cmp)
        .filter(
          (t) => (q.from === undefined || t.timestamp >= q.from) && (after === null || t.trade_id > after),
        );
      const data = rows.slice(0, q.limit);
      const more = rows.length > q.limit;
      return {
        data,
        next_cursor: more ? encodeCursor("trades", "asc", tradeKey(data[data.length - 1])) : null,
      };
    },
    async quotes(): Promise<Page<never>> {
      return { data: [], next_cursor: null };
    },
  };
}

describe("mergeRecent", () => {
  it("adds the received trades the store does not hold yet, once, in order, across pages", async () => {
    const all = Array.from({ length: 50 }, (_, i) => trade(i));
    const store = fakeStore(all.slice(0, 30));
    const recent = all.slice(20); // 20..49 received lately, 20..29 also stored
    const got: TradeV2[] = [];
    let cursor: string | undefined;
    do {
      const q: MarketQuery = { order: "asc", limit: 7, cursor };
      const page = mergeRecent("trades", await store.trades(q), q, recent);
      got.push(...page.data);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    expect(got.map((t) => t.trade_id)).toEqual(all.map((t) => t.trade_id));
  });
});

describe("Replay", () => {
  it("sends the stored trades, then the window and the held ones, each once, then goes live", async () => {
    const all = Array.from({ length: 100 }, (_, i) => trade(i));
    const rows = all.slice(0, 60);
    const store = fakeStore(rows);
    const window = new RecentWindow(30);
    for (const t of all.slice(40, 70)) window.add("trades", t); // 40..69 received, 60..69 not stored
    let hold: ((t: TradeV2) => void) | null = null;
    const sent: TradeV2[] = [];
    let live = false;
    const replay = new Replay({
      kind: "trades",
      symbols: ["BTCUSDT"],
      all: false,
      fromUs: all[0].timestamp,
      history: store,
      recent: window,
      pageSize: 16,
      listen: (h) => {
        hold = h;
        return () => {
          hold = null;
        };
      },
      send: (t) => {
        sent.push(t);
        // live trades 70..99 arrive while the history is being sent; the store writes 60..79 meanwhile
        if (sent.length === 20) {
          for (const x of all.slice(70, 100)) hold?.(x);
          rows.push(...all.slice(60, 80));
        }
      },
      ready: () => Promise.resolve(),
      goLive: () => {
        live = true;
      },
    });
    const n = await replay.run();
    expect(live).toBe(true);
    expect(hold).toBeNull();
    expect(n).toBe(100);
    expect(sent.map((t) => t.trade_id)).toEqual(all.map((t) => t.trade_id));
  });
});
