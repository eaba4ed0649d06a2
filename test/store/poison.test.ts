/**
 * Poison isolation on a real DuckDB store: several poison records spread over a batch are found by
 * bisecting (each dead-lettered once, with its table and the store's error), and errors are classified
 * transient (retry, never dead-letter) or not.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { isTransientStoreError, writeIsolatingPoison } from "../../src/store/poison.js";
import { emptyBatch } from "../../src/store/store.js";
import { tempDir } from "../helpers/cli.js";
import { quote, trade } from "./contract.js";

type Item = { kind: "trade"; t: ReturnType<typeof trade> } | { kind: "quote"; q: ReturnType<typeof quote> };
const opts = {
  toBatch(items: Item[]) {
    const b = emptyBatch();
    for (const i of items) {
      if (i.kind === "trade") b.trades.push(i.t);
      else b.quotes.push(i.q);
    }
    return b;
  },
  describe: (i: Item) =>
    i.kind === "trade"
      ? { table: "trades_v2", exchange: i.t.exchange, record: i.t }
      : { table: "quotes_v2", exchange: i.q.exchange, record: i.q },
};

const stores: DuckDBStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});

describe("poison isolation", () => {
  it("finds every poison record of a mixed batch by bisecting and commits the rest", async () => {
    const store = new DuckDBStore({ path: join(tempDir(), "k2.duckdb") });
    stores.push(store);
    await store.init();
    const items: Item[] = [];
    for (let i = 0; i < 300; i++) {
      const bad = i === 7 || i === 150 || i === 299;
      items.push({ kind: "trade", t: trade(i, bad ? { vendor_data: { x: `bad\udc00${i}` } } : {}) });
      items.push({ kind: "quote", q: quote(i, i === 42 ? { vendor_data: { y: "\ud800" } } : {}) });
    }
    const r = await writeIsolatingPoison(store, items, opts);
    expect(
      r.poison.map((p) => `${p.item.table}:${(p.item.record as { trade_id?: string }).trade_id ?? "q"}`),
    ).toEqual([
      "trades_v2:BINANCE-3735683266",
      "quotes_v2:q",
      "trades_v2:BINANCE-3735683409",
      "trades_v2:BINANCE-3735683558",
    ]);
    expect(r.result).toMatchObject({ trades: 297, quotes: 299, deadLetters: 4, duplicates: 0 });
    expect(r.writes).toBeLessThan(100); // bisecting, not one write per record
    const rows = await store.query("SELECT source, reason FROM dead_letters ORDER BY source, reason");
    expect(rows.map((x) => x.source)).toEqual([
      "store:quotes_v2",
      "store:trades_v2",
      "store:trades_v2",
      "store:trades_v2",
    ]);
    for (const x of rows)
      expect(String(x.reason)).toMatch(/^store rejected (trades|quotes)_v2 record: Conversion Error/);
    // the same batch again: the good records are duplicates, the poison dead letters are not stored twice
    const again = await writeIsolatingPoison(store, items, opts);
    expect(again.result).toMatchObject({ trades: 0, quotes: 0, deadLetters: 0, duplicates: 600 });
  });

  it.each([
    [Object.assign(new Error("could not extend file"), { code: "53100" }), true],
    [Object.assign(new Error("connection terminated"), { code: "08006" }), true],
    [Object.assign(new Error("canceling statement due to lock timeout"), { code: "55P03" }), true],
    [Object.assign(new Error("invalid input syntax for type json"), { code: "22P02" }), false],
    [Object.assign(new Error("numeric field overflow"), { code: "22003" }), false],
    [new Error("IO Error: No space left on device"), true],
    [new Error('Conversion Error: Malformed JSON ... Input: "connection lost"'), false],
    [new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), true],
  ])("classifies %s as transient: %s", (err, transient) => {
    expect(isTransientStoreError(err)).toBe(transient);
  });
});
