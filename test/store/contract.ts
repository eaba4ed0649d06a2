/**
 * The store contract suite: every backend (DuckDB, PostgreSQL) must pass it. A backend's test file
 * calls `storeContract(name, harness)`; the harness opens stores on fresh, empty databases.
 *
 * The SQL used here is the subset both engines accept (`CAST(x AS DECIMAL(38,8))`, no placeholders).
 * Closed candles (`candles_v2`) are upserted: the candle with more trades wins, within a batch and
 * against the table.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BusMessage } from "../../src/bus/bus.js";
import { MemoryBus } from "../../src/bus/memory.js";
import { createLogger } from "../../src/ops/logger.js";
import { Metrics } from "../../src/ops/metrics.js";
import { startPersist } from "../../src/pipeline.js";
import { type BookChangeV2, type BookSnapshotV2, bookChangeMessageId } from "../../src/schema/books.js";
import type { CandleV2 } from "../../src/schema/candles.js";
import { decimalToScaledUnits, vwapFromSums } from "../../src/schema/decimal.js";
import { deterministicMessageId } from "../../src/schema/message-id.js";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../../src/schema/records.js";
import { type MarketQuery, type Page, QueryParamError, type TextPage } from "../../src/store/page.js";
import {
  batchSize,
  emptyBatch,
  type Store,
  type WriteBatch,
  type WriteResult,
} from "../../src/store/store.js";
import { skipping } from "../helpers/cli.js";

/** A write result without the optional `candles` count (only stores that keep candles report it). */
export function core(r: WriteResult): Omit<WriteResult, "candles"> {
  const { candles: _candles, ...rest } = r;
  return rest;
}

/** A fresh, empty database and a way to open stores on it. */
export interface FreshDatabase {
  /** A new, not yet initialised store on this database. */
  open(): Store;
  /** Drops the database (stores are closed by the suite first). */
  cleanup(): Promise<void>;
}

export interface StoreHarness {
  fresh(): Promise<FreshDatabase>;
  /** Whether several stores (processes) may write one database at once: PostgreSQL yes, DuckDB no. */
  concurrentWriters: boolean;
}

/** 2024-08-08T00:00:00Z in µs (the day of the btcusdt_20240808 capture). */
export const DAY0_US = 1_723_075_200_000_000;
const DAY_US = 86_400_000_000;

/** A Binance-like trade; `i` picks id and time (one ms apart), `over` replaces fields. */
export function trade(i: number, over: Partial<TradeV2> = {}, dataType = "trades"): TradeV2 {
  const symbol = over.symbol ?? "BTCUSDT";
  const id = 3_735_683_259 + i;
  return {
    message_id: deterministicMessageId(`BINANCE/${dataType}/${symbol}/${id}`),
    trade_id: `BINANCE-${id}`,
    symbol,
    exchange: "BINANCE",
    asset_class: "crypto",
    timestamp: DAY0_US + i * 1000,
    price: "61707.68000000",
    quantity: "0.00100000",
    currency: "USDT",
    side: i % 2 ? "SELL" : "BUY",
    trade_conditions: [],
    source_sequence: id,
    ingestion_timestamp: DAY0_US + i * 1000 + 250,
    platform_sequence: i + 1,
    vendor_data: { event_type: "trade", event_time: String(1_723_075_200_000 + i) },
    ...over,
  };
}

/** A bookTicker-like quote; `i` picks update id and time. */
export function quote(i: number, over: Partial<QuoteV2> = {}): QuoteV2 {
  const u = 50_000_000_000 + i;
  return {
    message_id: deterministicMessageId(`BINANCE/quotes/BTCUSDT/${u}`),
    symbol: "BTCUSDT",
    exchange: "BINANCE",
    asset_class: "crypto",
    timestamp: DAY0_US + i * 1000 + 300,
    bid_price: "61707.67000000",
    bid_quantity: "1.25000000",
    ask_price: "61707.68000000",
    ask_quantity: "0.50000000",
    currency: "USDT",
    source_sequence: u,
    ingestion_timestamp: DAY0_US + i * 1000 + 300,
    platform_sequence: i + 1,
    vendor_data: {},
    ...over,
  };
}

export function deadLetter(i: number, over: Partial<DeadLetter> = {}): DeadLetter {
  const raw = over.raw ?? `{"stream":"btcusdt@trade","data":{"e":"trade","p":"1e5","n":${i}}}`;
  return {
    message_id: deterministicMessageId(`BINANCE/dlq/${raw}`),
    exchange: "BINANCE",
    source: "binance:btcusdt@trade",
    reason: "price: not a decimal string",
    raw,
    received_at: DAY0_US + i,
    ...over,
  };
}

export function gap(i: number, over: Partial<SequenceGap> = {}): SequenceGap {
  return {
    exchange: "BINANCE",
    symbol: "BTCUSDT",
    data_type: "trades",
    from_sequence: 3_735_690_000 + i * 10,
    to_sequence: 3_735_690_004 + i * 10,
    detected_at: DAY0_US + i,
    ...over,
  };
}

/** A closed 1m BTCUSDT candle at DAY0 + `minute` minutes of three trades; `over` replaces fields. */
export function candle(minute = 0, over: Partial<CandleV2> = {}): CandleV2 {
  const start = DAY0_US + minute * 60_000_000;
  return {
    exchange: "BINANCE",
    symbol: "BTCUSDT",
    asset_class: "crypto",
    interval: "1m",
    interval_start: start,
    interval_end: start + 60_000_000,
    open: "61707.68000000",
    high: "61710.01000000",
    low: "61700.00000000",
    close: "61705.12000000",
    volume: "0.00300000",
    // 61707.68·0.001 + 61710.01·0.001 + 61700·0.001 (16 places: the product of two DECIMAL(18,8))
    quote_volume: "185.1176900000000000",
    vwap: "61705.89666667",
    trade_count: 3,
    first_trade_id: "BINANCE-3735683259",
    last_trade_id: "BINANCE-3735683261",
    closed: true,
    ...over,
  };
}

/** A Binance-like depth diff (`i` picks U/u and time); `over` replaces fields. */
export function bookChange(i: number, over: Partial<BookChangeV2> = {}): BookChangeV2 {
  const u = 50_093_290_000 + i * 10;
  return {
    message_id: bookChangeMessageId("BINANCE", "BTCUSDT", false, u - 9, u, DAY0_US + i * 100_000),
    exchange: "BINANCE",
    symbol: "BTCUSDT",
    timestamp: DAY0_US + i * 100_000,
    is_snapshot: false,
    bids: [
      ["61759.72000000", "4.62927000"],
      ["61759.71000000", "0.00000000"],
    ],
    asks: [["9999999999.99999999", "0.00000001"]],
    first_source_sequence: u - 9,
    last_source_sequence: u,
    ingestion_timestamp: DAY0_US + i * 100_000 + 250,
    vendor_data: {},
    ...over,
  };
}

/** A top-2 BTCUSDT book snapshot at DAY0 + `s` seconds; `over` replaces fields. */
export function bookSnapshot(s: number, over: Partial<BookSnapshotV2> = {}): BookSnapshotV2 {
  return {
    exchange: "BINANCE",
    symbol: "BTCUSDT",
    timestamp: DAY0_US + s * 1_000_000,
    depth: 2,
    bids: [
      ["61759.72000000", "4.62927000"],
      ["61759.71000000", "0.04550000"],
    ],
    asks: [
      ["61759.73000000", "0.00017000"],
      ["61760.00000000", "12.00000000"],
    ],
    last_source_sequence: 50_093_290_510 + s,
    last_resync_timestamp: s % 2 ? DAY0_US : null,
    ...over,
  };
}

/** The same candle amended after a late trade: one trade more, new close, volume and VWAP. */
export function amended(c: CandleV2): CandleV2 {
  return {
    ...c,
    close: "61711.00000000",
    high: "61711.00000000",
    volume: "1.00300000",
    quote_volume: "61896.1176900000000000",
    vwap: "61710.98473579",
    trade_count: c.trade_count + 1,
    last_trade_id: "BINANCE-3735683262",
  };
}

/** Every candles_v2 row as a CandleV2 (BIGINT columns to numbers), in (interval, interval_start) order. */
export async function storedCandles(store: Store): Promise<CandleV2[]> {
  const rows = await store.query(
    `SELECT exchange, symbol, asset_class, "interval", interval_start, interval_end, open, high, low, close,
       volume, quote_volume, vwap, trade_count, first_trade_id, last_trade_id
     FROM candles_v2 ORDER BY "interval", interval_start`,
  );
  return rows.map((r) => ({
    ...(r as unknown as CandleV2),
    interval_start: Number(r.interval_start),
    interval_end: Number(r.interval_end),
    trade_count: Number(r.trade_count),
    closed: true,
  }));
}

function batch(parts: Partial<WriteBatch>): WriteBatch {
  return { ...emptyBatch(), ...parts };
}

/** Row counts of every table, as numbers. */
export async function tableCounts(store: Store): Promise<Record<string, number>> {
  const [r] = await store.query(`SELECT
    (SELECT count(*) FROM trades_v2) AS trades,
    (SELECT count(*) FROM agg_trades_v2) AS agg_trades,
    (SELECT count(*) FROM quotes_v2) AS quotes,
    (SELECT count(*) FROM dead_letters) AS dead_letters,
    (SELECT count(*) FROM sequence_gaps) AS gaps`);
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)]));
}

const vendor = (v: unknown) => (typeof v === "string" ? JSON.parse(v) : v);

/** Registers the contract tests for one backend. */
export function storeContract(name: string, harness: StoreHarness): void {
  describe(`store contract: ${name}`, () => {
    let db: FreshDatabase;
    let store: Store;
    const opened: Store[] = [];
    const open = () => {
      const s = db.open();
      opened.push(s);
      return s;
    };

    beforeEach(async () => {
      db = await harness.fresh();
      store = open();
      await store.init();
    });

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close().catch(() => undefined);
      await db.cleanup();
    });

    it("reports itself healthy once initialised", async () => {
      expect(await store.check()).toBeNull();
    });

    it("stores a batch once: the same batch again is all duplicates and changes no count", async () => {
      const b = batch({
        // the third trade is on the next UTC day (another partition where the backend partitions)
        trades: [trade(0), trade(1), trade(2, { timestamp: DAY0_US + DAY_US + 5 })],
        aggTrades: [trade(0, {}, "aggtrades"), trade(1, {}, "aggtrades")],
        quotes: [quote(0), quote(1), quote(2)],
        deadLetters: [deadLetter(0)],
        gaps: [gap(0)],
      });
      const first = await store.write(b);
      expect(core(first)).toEqual({
        trades: 3,
        aggTrades: 2,
        quotes: 3,
        deadLetters: 1,
        gaps: 1,
        duplicates: 0,
      });
      const counts = await tableCounts(store);
      expect(counts).toEqual({ trades: 3, agg_trades: 2, quotes: 3, dead_letters: 1, gaps: 1 });
      const second = await store.write(b);
      expect(core(second)).toEqual({
        trades: 0,
        aggTrades: 0,
        quotes: 0,
        deadLetters: 0,
        gaps: 0,
        duplicates: batchSize(b),
      });
      expect(await tableCounts(store)).toEqual(counts);
    });

    it("stores each trade once whatever the order of the batch's trade ids", async () => {
      const result = await store.write(
        batch({
          // out of order, a repeat after other ids, ids of different lengths, two symbols interleaved
          trades: [
            trade(3),
            trade(1),
            trade(2),
            trade(1),
            trade(4, { trade_id: "BINANCE-99" }),
            trade(5, { trade_id: "BINANCE-100" }),
            trade(6, { symbol: "ETHUSDT" }),
            // the same trade again (one trade id comes with one venue time)
            trade(7, { trade_id: "BINANCE-100", timestamp: trade(5).timestamp }),
          ],
        }),
      );
      expect(core(result)).toMatchObject({ trades: 6, duplicates: 2 });
      expect((await tableCounts(store)).trades).toBe(6);
    });

    it("stores a record repeated within one batch once", async () => {
      const q = quote(7);
      const result = await store.write(
        batch({
          trades: [trade(1), trade(1), trade(2)],
          aggTrades: [trade(5, {}, "aggtrades"), trade(5, {}, "aggtrades")],
          // the same venue quote received twice: other receipt time and platform sequence
          quotes: [
            q,
            { ...q, timestamp: q.timestamp + 40_000, ingestion_timestamp: q.ingestion_timestamp + 40_000 },
          ],
          deadLetters: [deadLetter(3), deadLetter(3)],
          gaps: [gap(4), gap(4)],
        }),
      );
      expect(core(result)).toEqual({
        trades: 2,
        aggTrades: 1,
        quotes: 1,
        deadLetters: 1,
        gaps: 1,
        duplicates: 5,
      });
      expect(await tableCounts(store)).toEqual({
        trades: 2,
        agg_trades: 1,
        quotes: 1,
        dead_letters: 1,
        gaps: 1,
      });
    });

    it("stores only the new quotes of batches that overlap what is held, batch after batch", async () => {
      const range = (from: number, to: number) =>
        Array.from({ length: to - from + 1 }, (_, k) => quote(from + k));
      // overlapping, clean, overlapping by one, clean again: each batch stores exactly its new quotes
      const batches: [QuoteV2[], number][] = [
        [range(1, 10), 10],
        [range(5, 15), 5],
        [range(16, 20), 5],
        [range(20, 25), 5],
        [range(26, 30), 5],
        [[...range(31, 33), quote(2), quote(31)], 3],
      ];
      for (const [quotes, stored] of batches) {
        const r = await store.write(batch({ quotes }));
        expect(core(r)).toMatchObject({ quotes: stored, duplicates: quotes.length - stored });
      }
      expect((await tableCounts(store)).quotes).toBe(33);
    });

    it("recognises a trade or quote received again (new receipt time, next day) as a duplicate", async () => {
      const t = trade(3);
      const q = quote(3);
      await store.write(batch({ trades: [t], quotes: [q] }));
      // a second ingestion of the same venue records: the trade keeps its venue time; the quote's
      // timestamp is a receipt time (bookTicker has none), here two days later
      const again = await store.write(
        batch({
          trades: [{ ...t, ingestion_timestamp: t.ingestion_timestamp + 2 * DAY_US, platform_sequence: 99 }],
          quotes: [
            {
              ...q,
              timestamp: q.timestamp + 2 * DAY_US,
              ingestion_timestamp: q.ingestion_timestamp + 2 * DAY_US,
              platform_sequence: 99,
            },
          ],
        }),
      );
      expect(again).toMatchObject({ trades: 0, quotes: 0, duplicates: 2 });
      const [row] = await store.query("SELECT platform_sequence FROM quotes_v2");
      expect(String(row.platform_sequence)).toBe(String(q.platform_sequence));
    });

    it("round-trips DECIMAL(18,8) values and every field exactly", async () => {
      const prices = ["9999999999.99999999", "0.00000001", "61707.68161671", "0.00000000", "1.10000000"];
      const trades = prices.map((p, i) =>
        trade(10 + i, {
          price: p,
          quantity: prices[prices.length - 1 - i],
          trade_conditions: i === 0 ? ["odd lot", 'say "hi"', "back\\slash", "tab\there"] : [],
          source_sequence: i === 1 ? null : 3_735_683_269 + i,
          vendor_data: { note: 'line1\nline2\t"quoted" \\ é ✓', empty: "" },
        }),
      );
      await store.write(
        batch({
          trades,
          quotes: [quote(1, { bid_price: "9999999999.99999999", ask_quantity: "0.00000001" })],
        }),
      );
      const rows = await store.query(
        `SELECT message_id, trade_id, symbol, exchange, asset_class, "timestamp", price, quantity, currency, side,
           trade_conditions, source_sequence, ingestion_timestamp, platform_sequence, vendor_data
         FROM trades_v2 ORDER BY trade_id`,
      );
      expect(rows).toHaveLength(trades.length);
      for (const [i, t] of trades.entries()) {
        const r = rows[i];
        expect(r.price).toBe(t.price);
        expect(r.quantity).toBe(t.quantity);
        expect({
          ...r,
          timestamp: Number(r.timestamp),
          ingestion_timestamp: Number(r.ingestion_timestamp),
          platform_sequence: Number(r.platform_sequence),
          source_sequence: r.source_sequence === null ? null : Number(r.source_sequence),
          vendor_data: vendor(r.vendor_data),
        }).toEqual(t);
      }
      const [q] = await store.query("SELECT bid_price, ask_quantity, bid_quantity FROM quotes_v2");
      expect(q).toEqual({
        bid_price: "9999999999.99999999",
        ask_quantity: "0.00000001",
        bid_quantity: "1.25000000",
      });
    });

    it("computes VWAP from exact SQL sums (DECIMAL(38,8) before multiplying) equal to exact arithmetic", async () => {
      const fills: [string, string][] = [
        ["9999999999.99999999", "9999999999.99999999"],
        ["61707.68161671", "0.00000001"],
        ["61707.68000000", "3.14159265"],
        ["0.00000001", "1234567890.12345678"],
      ];
      // ties at the 9th place: 1.000000025 rounds half-even to 1.00000002 (half-up would give ...03)
      const ties: [string, string][] = [
        ["1.00000002", "1.00000000"],
        ["1.00000003", "1.00000000"],
      ];
      const mk = (symbol: string, xs: [string, string][], from: number) =>
        xs.map(([price, quantity], i) => trade(from + i, { symbol, price, quantity }));
      await store.write(batch({ trades: [...mk("BTCUSDT", fills, 100), ...mk("TIEUSDT", ties, 200)] }));
      const rows = await store.query(
        `SELECT symbol, sum(quantity) AS volume,
           sum(CAST(price AS DECIMAL(38,8)) * CAST(quantity AS DECIMAL(38,8))) AS notional
         FROM trades_v2 GROUP BY symbol ORDER BY symbol`,
      );
      // expected sums and VWAPs worked out independently (exact decimal arithmetic outside the
      // project, rounded half-even to 8 places), as literals
      const expected = [
        {
          notional: 1000000000000001936727402325300507350n, // 100000000000000193672.7402325300507350
          volume: "11234567893.26504943",
          vwap: "8901098907.41313289",
        },
        { notional: 20000000500000000n, volume: "2.00000000", vwap: "1.00000002" }, // 2.0000000500000000
      ];
      for (const [i, row] of rows.entries()) {
        const e = expected[i];
        expect(typeof row.notional).toBe("string");
        expect(decimalToScaledUnits(String(row.notional), 16)).toBe(e.notional);
        expect(row.volume).toBe(e.volume);
        expect(vwapFromSums(String(row.notional), String(row.volume))).toBe(e.vwap);
      }
      expect(rows).toHaveLength(2);
    });

    it("rejects a batch with one record that does not fit the columns, storing nothing of it", async () => {
      // the bad quote is written after trades and agg trades inside the transaction
      const bad = batch({
        trades: [trade(1), trade(2)],
        aggTrades: [trade(1, {}, "aggtrades")],
        quotes: [quote(1), quote(2, { bid_price: "12345678901.00000000" })],
        deadLetters: [deadLetter(1)],
        gaps: [gap(1)],
      });
      await expect(store.write(bad)).rejects.toThrow();
      expect(await tableCounts(store)).toEqual({
        trades: 0,
        agg_trades: 0,
        quotes: 0,
        dead_letters: 0,
        gaps: 0,
      });
      // a bad trade price in the middle of the trades
      await expect(
        store.write(batch({ trades: [trade(3), trade(4, { price: "99999999999.00000000" }), trade(5)] })),
      ).rejects.toThrow();
      expect((await tableCounts(store)).trades).toBe(0);
      // the store is still usable and no key of the failed batches was kept
      const fixed = { ...bad, quotes: [quote(1), quote(2)] };
      expect(core(await store.write(fixed))).toEqual({
        trades: 2,
        aggTrades: 1,
        quotes: 2,
        deadLetters: 1,
        gaps: 1,
        duplicates: 0,
      });
    });

    it("rejects a batch whose bad quote comes after the first 2,048 (a chunk already appended), storing none of it, then writes on", async () => {
      const quotes = Array.from({ length: 3000 }, (_, i) =>
        i === 2500 ? quote(i, { ask_price: "12345678901.00000000" }) : quote(i),
      );
      await expect(store.write(batch({ quotes }))).rejects.toThrow();
      expect((await tableCounts(store)).quotes).toBe(0);
      // the next batch stores its own quotes only: nothing of the failed one comes with it
      expect(core(await store.write(batch({ quotes: [quote(5000), quote(5001)] }))).quotes).toBe(2);
      expect((await tableCounts(store)).quotes).toBe(2);
      quotes[2500] = quote(2500);
      expect(core(await store.write(batch({ quotes }))).quotes).toBe(3000);
    });

    it("isolates a poison record (lone surrogate in vendor_data) among 1,000 good trades: 1,000 stored, 1 dead letter, later batches written", async () => {
      const bus = new MemoryBus();
      const persist = startPersist({
        bus,
        store,
        metrics: new Metrics({ defaultMetrics: false }),
        logger: createLogger("silent"),
        batchSize: 1001,
        batchMaxWaitMs: 50,
      });
      const msg = (t: TradeV2): BusMessage => ({
        topic: "market.crypto.trades.binance",
        key: t.symbol,
        id: t.message_id,
        value: t,
      });
      const bad = trade(500, { vendor_data: { event_type: "trade", note: "a\udc00b" } });
      const first = Array.from({ length: 1001 }, (_, i) => (i === 500 ? bad : trade(i)));
      // the record alone is refused by the store
      await expect(store.write(batch({ trades: [bad] }))).rejects.toThrow();
      await bus.publish(first.map(msg));
      for (let i = 0; i < 400 && persist.counts.batches < 1; i++) await new Promise((r) => setTimeout(r, 25));
      expect(persist.counts.batches).toBe(1);
      expect(persist.counts.poison).toBe(1);
      // a later batch goes through
      await bus.publish(Array.from({ length: 10 }, (_, i) => msg(trade(2000 + i))));
      await persist.consumer.stop({ drain: true });
      await bus.close();
      expect(await tableCounts(store)).toMatchObject({ trades: 1010, dead_letters: 1 });
      const [dl] = await store.query("SELECT exchange, source, reason, raw FROM dead_letters");
      expect(dl.exchange).toBe("BINANCE");
      expect(dl.source).toBe("store:trades_v2");
      expect(String(dl.reason)).toMatch(/^store rejected trades_v2 record: \S/);
      expect(JSON.parse(String(dl.raw))).toEqual(bad);
      const stored = await store.query(
        `SELECT count(*) AS n FROM trades_v2 WHERE trade_id = '${bad.trade_id}'`,
      );
      expect(Number(stored[0].n)).toBe(0);
    });

    it("stores dead letters and sequence gaps with every field", async () => {
      const raw = '{"stream":"btcusdt@trade","data":{"p":"1.123456789"}}\n\ttrailing "text" \\ ✓';
      const d = deadLetter(1, {
        raw,
        reason: "price: more than 8 significant fractional digits for DECIMAL(18,8)",
      });
      const g = gap(1, {
        data_type: "aggtrades",
        from_sequence: 9_007_199_254_740,
        to_sequence: 9_007_199_254_745,
      });
      await store.write(batch({ deadLetters: [d], gaps: [g] }));
      const [dr] = await store.query(
        "SELECT message_id, exchange, source, reason, raw, received_at FROM dead_letters",
      );
      expect({ ...dr, received_at: Number(dr.received_at) }).toEqual(d);
      const [gr] = await store.query(
        "SELECT exchange, symbol, data_type, from_sequence, to_sequence, detected_at FROM sequence_gaps",
      );
      expect(gr).toEqual({
        exchange: g.exchange,
        symbol: g.symbol,
        data_type: "aggtrades",
        from_sequence: String(g.from_sequence),
        to_sequence: String(g.to_sequence),
        detected_at: String(g.detected_at),
      });
    });

    it("reads the highest stored venue sequence per exchange, symbol and trade table", async () => {
      expect(await store.lastSequences()).toEqual([]);
      await store.write(
        batch({
          // out of order, a second symbol, an aggregate stream, a trade without a venue sequence
          trades: [
            trade(5),
            trade(9),
            trade(2),
            trade(3, { symbol: "ETHUSDT", source_sequence: 1_520_538_925 }),
            trade(4, { exchange: "KRAKEN", symbol: "XBT/USD", trade_id: "KRAKEN-x", source_sequence: null }),
          ],
          aggTrades: [trade(1, {}, "aggtrades"), trade(7, {}, "aggtrades")],
          quotes: [quote(1)],
        }),
      );
      const got = await store.lastSequences();
      const order = (a: { data_type: string; symbol: string }, b: { data_type: string; symbol: string }) =>
        `${a.data_type}/${a.symbol}`.localeCompare(`${b.data_type}/${b.symbol}`);
      expect(got.sort(order)).toEqual([
        { exchange: "BINANCE", symbol: "BTCUSDT", data_type: "aggtrades", sequence: 3_735_683_259 + 7 },
        { exchange: "BINANCE", symbol: "BTCUSDT", data_type: "trades", sequence: 3_735_683_259 + 9 },
        { exchange: "BINANCE", symbol: "ETHUSDT", data_type: "trades", sequence: 1_520_538_925 },
      ]);
    });

    it("upserts a gap's backfill outcome: open first, then filled; an open report never undoes it", async () => {
      const statusOf = async () =>
        (
          await store.query(
            "SELECT from_sequence, status, backfilled FROM sequence_gaps ORDER BY from_sequence",
          )
        ).map((r) => ({ from: Number(r.from_sequence), status: r.status, backfilled: Number(r.backfilled) }));
      const g = gap(1);
      const n = g.to_sequence - g.from_sequence + 1;
      expect((await store.write(batch({ gaps: [g] }))).gaps).toBe(1);
      expect(await statusOf()).toEqual([{ from: g.from_sequence, status: "open", backfilled: 0 }]);
      // the outcome replaces the open row
      const filled = { ...g, status: "filled" as const, backfilled: n };
      expect(core(await store.write(batch({ gaps: [filled] })))).toMatchObject({ gaps: 1, duplicates: 0 });
      expect(await statusOf()).toEqual([{ from: g.from_sequence, status: "filled", backfilled: n }]);
      // the same outcome again, or a late open report, is a duplicate
      expect(core(await store.write(batch({ gaps: [filled, g] })))).toMatchObject({ gaps: 0, duplicates: 2 });
      expect(await statusOf()).toEqual([{ from: g.from_sequence, status: "filled", backfilled: n }]);
      // a gap detected and settled within one batch (either order) keeps its outcome
      const h = gap(2);
      const k = gap(3);
      await store.write(
        batch({
          gaps: [h, { ...h, status: "partial", backfilled: 2 }, { ...k, status: "unfillable" }, k],
        }),
      );
      expect(await statusOf()).toEqual([
        { from: g.from_sequence, status: "filled", backfilled: n },
        { from: h.from_sequence, status: "partial", backfilled: 2 },
        { from: k.from_sequence, status: "unfillable", backfilled: 0 },
      ]);
    });

    it("initialises an existing database again without changing it (idempotent migrations)", async () => {
      const b = batch({ trades: [trade(1)], quotes: [quote(1)], gaps: [gap(1)] });
      await store.write(b);
      await store.close();
      const again = open();
      await again.init();
      expect(await tableCounts(again)).toEqual({
        trades: 1,
        agg_trades: 0,
        quotes: 1,
        dead_letters: 0,
        gaps: 1,
      });
      expect((await again.write(b)).duplicates).toBe(3);
    });

    it("stores book changes once (levels exact, JSON of decimal strings) and book snapshots once", async () => {
      const changes = [
        bookChange(0),
        bookChange(1, { is_snapshot: true, first_source_sequence: null, last_source_sequence: null }),
        bookChange(2, { vendor_data: { checksum: "123" }, bids: [], asks: [] }),
      ];
      const snaps = [bookSnapshot(0), bookSnapshot(1), bookSnapshot(2, { bids: [], asks: [] })];
      const first = await store.write(batch({ bookChanges: changes, bookSnapshots: snaps }));
      expect(first).toMatchObject({ bookChanges: 3, bookSnapshots: 3, duplicates: 0 });
      // again: changes are duplicates (source records), snapshots are derived and counted as neither
      const again = await store.write(
        batch({ bookChanges: [changes[0], changes[0]], bookSnapshots: [snaps[1], snaps[1]] }),
      );
      expect(again).toMatchObject({ bookChanges: 0, bookSnapshots: 0, duplicates: 2 });
      const rows = await store.query(
        `SELECT message_id::VARCHAR AS message_id, is_snapshot, bids::VARCHAR AS bids, asks::VARCHAR AS asks,
           first_source_sequence, vendor_data::VARCHAR AS vendor_data
         FROM book_changes_v2 ORDER BY "timestamp"`,
      );
      expect(
        rows.map((r) => ({
          message_id: r.message_id,
          is_snapshot: r.is_snapshot,
          bids: JSON.parse(String(r.bids)),
          asks: JSON.parse(String(r.asks)),
          first: r.first_source_sequence === null ? null : Number(r.first_source_sequence),
          vendor_data: vendor(r.vendor_data),
        })),
      ).toEqual(
        changes.map((c) => ({
          message_id: c.message_id,
          is_snapshot: c.is_snapshot,
          bids: c.bids,
          asks: c.asks,
          first: c.first_source_sequence,
          vendor_data: c.vendor_data,
        })),
      );
      const page = await store.bookSnapshots({ limit: 10, order: "asc" });
      expect(page).toEqual({ data: snaps, next_cursor: null });
      // a failing batch stores no book record: a level that is not a DECIMAL(18,8) pair is never
      // written by the feed, so the failure here is a snapshot in a batch with a quote that does not fit
      await expect(
        store.write(
          batch({
            bookSnapshots: [bookSnapshot(9)],
            bookChanges: [bookChange(9)],
            quotes: [quote(1, { bid_price: "12345678901.00000000" })],
          }),
        ),
      ).rejects.toThrow();
      expect((await store.bookSnapshots({ limit: 10, order: "asc" })).data).toHaveLength(3);
      const [n] = await store.query("SELECT count(*) AS n FROM book_changes_v2");
      expect(Number(n.n)).toBe(3);
    });

    it("upserts closed candles: the same candle again changes nothing, more trades replace, fewer do not", async () => {
      const m0 = candle(0);
      // a zero-volume candle (no VWAP) and the largest exact values the columns hold
      const s0 = candle(0, {
        interval: "1s",
        interval_end: DAY0_US + 1_000_000,
        open: "9999999999.99999999",
        high: "9999999999.99999999",
        low: "0.00000001",
        close: "0.00000001",
        volume: "0.00000000",
        quote_volume: "0.0000000000000000",
        vwap: null,
        trade_count: 2,
      });
      const first = await store.write(batch({ candles: [m0, s0], trades: [trade(0)] }));
      expect(first).toMatchObject({ candles: 2, trades: 1, duplicates: 0 });
      expect(await storedCandles(store)).toEqual([m0, s0]);

      // the same candles again: nothing changes, and candles are not counted as duplicates
      const again = await store.write(batch({ candles: [m0, s0] }));
      expect(again).toMatchObject({ candles: 0, duplicates: 0 });
      expect(await storedCandles(store)).toEqual([m0, s0]);

      // amended after a late trade (4 trades > 3): replaces the stored candle
      const m1 = amended(m0);
      expect(await store.write(batch({ candles: [m1] }))).toMatchObject({ candles: 1 });
      expect(await storedCandles(store)).toEqual([m1, s0]);

      // an older version (3 trades < 4), or another with as many trades: the stored one stays
      expect(await store.write(batch({ candles: [m0] }))).toMatchObject({ candles: 0 });
      expect(await store.write(batch({ candles: [{ ...m1, close: "1.00000000" }] }))).toMatchObject({
        candles: 0,
      });
      expect(await storedCandles(store)).toEqual([m1, s0]);

      // survives re-initialisation (idempotent migrations keep candles_v2)
      await store.close();
      const reopened = open();
      await reopened.init();
      expect(await storedCandles(reopened)).toEqual([m1, s0]);
    });

    it("keeps the candle with the most trades when one batch holds a candle and its amendment", async () => {
      const [a, b] = [candle(1), candle(2)];
      const r = await store.write(batch({ candles: [amended(a), a, b, amended(b)] }));
      expect(r.candles).toBe(2);
      expect(await storedCandles(store)).toEqual([amended(a), amended(b)]);
    });

    it("writes candles in the batch's transaction: a failing batch stores no candle", async () => {
      // a bad quote in the batch
      await expect(
        store.write(
          batch({ candles: [candle(3)], quotes: [quote(1, { bid_price: "12345678901.00000000" })] }),
        ),
      ).rejects.toThrow();
      // a candle that does not fit its columns, after good trades
      await expect(
        store.write(
          batch({ trades: [trade(1)], candles: [candle(4), candle(5, { high: "12345678901.00000000" })] }),
        ),
      ).rejects.toThrow();
      expect(await storedCandles(store)).toEqual([]);
      expect((await tableCounts(store)).trades).toBe(0);
      expect(await store.write(batch({ trades: [trade(1)], candles: [candle(4)] }))).toMatchObject({
        trades: 1,
        candles: 1,
      });
    });

    describe("typed reads", () => {
      /** Every page of a keyset read, following next_cursor. */
      async function allPages<T>(read: (cursor?: string) => Promise<Page<T>>): Promise<T[][]> {
        const pages: T[][] = [];
        let cursor: string | undefined;
        for (;;) {
          const p = await read(cursor);
          pages.push(p.data);
          if (p.next_cursor === null) return pages;
          cursor = p.next_cursor;
        }
      }

      it("pages trades and quotes by keyset in both orders, within a time range, every field exact", async () => {
        const trades = Array.from({ length: 25 }, (_, i) =>
          trade(i, { timestamp: DAY0_US + Math.floor(i / 3) * 1000 }),
        );
        trades[4] = { ...trades[4], source_sequence: null, trade_conditions: ["a", "b c"] };
        await store.write(batch({ trades, quotes: Array.from({ length: 7 }, (_, i) => quote(i)) }));
        const asc = await allPages((cursor) =>
          store.trades({ symbol: "BTCUSDT", limit: 4, order: "asc", cursor }),
        );
        expect(asc.map((p) => p.length)).toEqual([4, 4, 4, 4, 4, 4, 1]);
        expect(asc.flat()).toEqual(trades);
        const desc = await allPages((cursor) =>
          store.trades({ exchange: "BINANCE", limit: 10, order: "desc", cursor }),
        );
        expect(desc.flat()).toEqual([...trades].reverse());
        const ranged = await store.trades({
          from: DAY0_US + 2000,
          to: DAY0_US + 4000,
          limit: 100,
          order: "asc",
        });
        expect(ranged.data).toEqual(trades.slice(6, 12));
        expect(ranged.next_cursor).toBeNull();
        const quotes = await allPages((cursor) =>
          store.quotes({ symbol: "BTCUSDT", limit: 3, order: "asc", cursor }),
        );
        expect(quotes.flat()).toEqual(Array.from({ length: 7 }, (_, i) => quote(i)));
        // a cursor of another read is a parameter error
        const first = await store.trades({ limit: 1, order: "asc" });
        await expect(
          store.quotes({ limit: 1, order: "asc", cursor: first.next_cursor as string }),
        ).rejects.toBeInstanceOf(QueryParamError);
      });

      it("gives trades and quotes pages as JSON text equal to the typed pages, byte for byte once parsed", async () => {
        const odd = {
          event_type: "trade",
          note: 'quote " backslash \\ newline \n tab \t \u0001 é € 😀 \u2028',
          "0": "integer-like key",
        };
        const trades = Array.from({ length: 13 }, (_, i) =>
          trade(i, { timestamp: DAY0_US + Math.floor(i / 3) * 1000 }),
        );
        trades[2] = {
          ...trades[2],
          source_sequence: null,
          trade_conditions: ["a", 'b "c"'],
          vendor_data: odd,
        };
        trades[5] = { ...trades[5], price: "0.00000001", quantity: "9999999999.99999999", vendor_data: {} };
        trades[7] = { ...trades[7], trade_id: 'BINANCE-x"\\y', symbol: "BTCUSDT" };
        const quotes = Array.from({ length: 9 }, (_, i) => quote(i));
        quotes[3] = { ...quotes[3], source_sequence: null, bid_price: "0.50000000", vendor_data: odd };
        await store.write(batch({ trades, quotes }));
        for (const [kind, limit, order] of [
          ["trades", 4, "asc"],
          ["trades", 5, "desc"],
          ["quotes", 2, "asc"],
          ["quotes", 100, "desc"],
        ] as const) {
          const typed = (q: MarketQuery) => (kind === "trades" ? store.trades(q) : store.quotes(q));
          const text = (kind === "trades" ? store.tradesText : store.quotesText)?.bind(store);
          expect(text, `${store.name} has ${kind}Text`).toBeDefined();
          let cursor: string | undefined;
          let pages = 0;
          for (;;) {
            const q: MarketQuery = { symbol: "BTCUSDT", from: DAY0_US, limit, order, cursor };
            const want = await typed(q);
            const got = await (text as (q: MarketQuery) => Promise<TextPage>)(q);
            // the records a replay sends are JSON.stringify of the parsed text: the same bytes
            expect(JSON.stringify(JSON.parse(got.json))).toBe(JSON.stringify(want.data));
            expect(JSON.parse(got.json)).toEqual(want.data);
            expect(got.next_cursor).toBe(want.next_cursor);
            pages++;
            if (want.next_cursor === null) break;
            cursor = want.next_cursor;
          }
          expect(pages).toBe(Math.ceil((kind === "trades" ? 13 : 9) / limit));
        }
      });

      it("pages stored book snapshots by keyset in both orders, per symbol and time range", async () => {
        const snaps = [
          ...Array.from({ length: 7 }, (_, s) => bookSnapshot(s)),
          ...Array.from({ length: 3 }, (_, s) => bookSnapshot(s, { symbol: "ETHUSDT" })),
          bookSnapshot(3, { depth: 10 }),
        ];
        await store.write(batch({ bookSnapshots: snaps }));
        const btc = snaps.filter((s) => s.symbol === "BTCUSDT");
        const order = (a: BookSnapshotV2, b: BookSnapshotV2) =>
          a.timestamp - b.timestamp || a.depth - b.depth;
        const asc = await allPages((cursor) =>
          store.bookSnapshots({ symbol: "BTCUSDT", limit: 3, order: "asc", cursor }),
        );
        expect(asc.map((p) => p.length)).toEqual([3, 3, 2]);
        expect(asc.flat()).toEqual([...btc].sort(order));
        const desc = await allPages((cursor) =>
          store.bookSnapshots({ exchange: "BINANCE", limit: 4, order: "desc", cursor }),
        );
        expect(desc.flat()).toHaveLength(snaps.length);
        expect(desc.flat()[0]).toEqual(snaps[6]);
        const ranged = await store.bookSnapshots({
          symbol: "ETHUSDT",
          from: DAY0_US + 1_000_000,
          to: DAY0_US + 2_000_000,
          limit: 10,
          order: "asc",
        });
        expect(ranged).toEqual({ data: [snaps[8]], next_cursor: null });
        const t = await store.trades({ limit: 1, order: "asc" });
        expect(t.next_cursor).toBeNull();
        const first = await store.bookSnapshots({ limit: 1, order: "asc" });
        await expect(
          store.trades({ limit: 1, order: "asc", cursor: first.next_cursor as string }),
        ).rejects.toBeInstanceOf(QueryParamError);
      });

      it("stops a page at its byte budget and continues from there", async () => {
        const trades = Array.from({ length: 10 }, (_, i) => trade(i));
        await store.write(batch({ trades }));
        const size = (ts: TradeV2[]) => ts.reduce((n, t) => n + Buffer.byteLength(JSON.stringify(t)) + 1, 0);
        const budget = size(trades.slice(0, 3));
        const pages = await allPages((cursor) =>
          store.trades({ limit: 100, order: "asc", cursor, maxBytes: budget }),
        );
        expect(pages[0]).toHaveLength(3);
        for (const p of pages) expect(size(p)).toBeLessThanOrEqual(budget);
        expect(pages.length).toBeGreaterThan(3);
        expect(pages.flat()).toEqual(trades);
      });

      it("reads gaps and dead letters (list cut to 4,096 characters, one in full by chunks)", async () => {
        const big = deadLetter(2, { raw: `{"x":"${"é".repeat(5000)}"}` });
        await store.write(
          batch({
            gaps: [gap(0), gap(1, { status: "filled", backfilled: 5 })],
            deadLetters: [deadLetter(1), big],
          }),
        );
        const gaps = await store.gaps({ limit: 10, order: "asc" });
        // the gap list keeps its shape: no backfill columns
        expect(gaps.data).toEqual([gap(0), gap(1)]);
        const letters = await store.deadLetters({ exchange: "BINANCE", limit: 10, order: "desc" });
        expect(letters.data.map((d) => d.message_id)).toEqual([big.message_id, deadLetter(1).message_id]);
        expect(letters.data[0]).toMatchObject({
          raw: big.raw.slice(0, 4096),
          raw_truncated: true,
          raw_bytes: Buffer.byteLength(big.raw),
          raw_url: `/api/v1/dead-letters/${big.message_id}`,
          received_at: big.received_at,
        });
        expect(letters.data[1]).toMatchObject({ ...deadLetter(1), raw_truncated: false });
        const full = await store.deadLetter(big.message_id);
        let raw = "";
        for await (const part of full?.rawChunks() ?? []) raw += part;
        expect(raw).toBe(big.raw);
        expect(full).toMatchObject({ raw_chars: [...big.raw].length, raw_bytes: Buffer.byteLength(big.raw) });
        expect(await store.deadLetter("00000000-0000-8000-8000-000000000000")).toBeNull();
      });

      it("computes candles from trades and reads stored candles, paged by (interval_start, exchange)", async () => {
        const trades = [0, 1, 2, 60_000, 60_001].map((ms, i) =>
          trade(i, { timestamp: DAY0_US + ms * 1000, price: `6170${i}.00000000` }),
        );
        await store.write(batch({ trades, candles: [candle(0), candle(1)] }));
        const computed = await allPages((cursor) =>
          store.tradeCandles({ symbol: "BTCUSDT", interval: "1m", limit: 1, order: "asc", cursor }),
        );
        expect(computed.flat().map((c) => [c.interval_start, c.open, c.close, c.trade_count])).toEqual([
          [DAY0_US, "61700.00000000", "61702.00000000", 3],
          [DAY0_US + 60_000_000, "61703.00000000", "61704.00000000", 2],
        ]);
        const stored = await store.storedCandles({
          symbol: "BTCUSDT",
          interval: "1m",
          limit: 10,
          order: "desc",
        });
        expect(stored.data).toEqual([candle(1), candle(0)]);
      });

      it("lists the stored instruments with counts and first/last venue times", async () => {
        // quote(7), the latest, carries only its receipt time (a bookTicker): it does not count;
        // quote(6) is stamped by the venue (before its receipt) and is the latest venue time
        const venueStamped = quote(6, { ingestion_timestamp: quote(6).timestamp + 2_000_000_000 });
        await store.write(batch({ trades: [trade(0), trade(1)], quotes: [venueStamped, quote(7)] }));
        expect(await store.symbols(10)).toEqual([
          {
            exchange: "BINANCE",
            symbol: "BTCUSDT",
            asset_class: "crypto",
            currency: "USDT",
            trades: 2,
            quotes: 2,
            first_timestamp: DAY0_US,
            last_timestamp: venueStamped.timestamp,
          },
        ]);
      });
    });

    it.skipIf(
      skipping(
        !harness.concurrentWriters,
        `store contract ${name}: "two stores write one database at once" needs a store that allows several writer processes (DuckDB allows one per file)`,
      ),
    )("lets two stores initialise and write one database at once, storing each record once", async () => {
      await store.close();
      const [a, b] = [open(), open()];
      await Promise.all([a.init(), b.init()]);
      const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
      // overlapping batches: 0..299 and 200..499, spread over two days
      const mk = (xs: number[]) =>
        batch({
          trades: xs.map((i) => trade(i, { timestamp: DAY0_US + (i % 2) * DAY_US + i })),
          quotes: xs.map((i) => quote(i)),
        });
      const [ra, rb] = await Promise.all([a.write(mk(ids(0, 300))), b.write(mk(ids(200, 300)))]);
      expect(ra.trades + rb.trades).toBe(500);
      expect(ra.quotes + rb.quotes).toBe(500);
      expect(ra.duplicates + rb.duplicates).toBe(200);
      expect(await tableCounts(a)).toMatchObject({ trades: 500, quotes: 500 });
    });
  });
}
