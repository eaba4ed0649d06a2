/**
 * Round trip of the "done when": replay btcusdt_20240808.gz through `k2 run` into a DuckDB
 * file, export its trades as a Binance aggTrades-style CSV (one aggregate trade per trade), load it
 * with `k2 load binance-aggtrades` into an empty DB, and get the same count, volume and exact VWAP —
 * the figures of ../shared/data/README.md.
 */
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BinanceAggTradesParser,
  MICROS_THRESHOLD,
  symbolFromFileName,
  transactTimeToMicros,
} from "../../src/loaders/binance-aggtrades.js";
import { RowRejected } from "../../src/loaders/load.js";
import { vwapFromSums } from "../../src/schema/decimal.js";
import type { TradeV2 } from "../../src/schema/records.js";
import { TradeV2Schema } from "../../src/schema/validators.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { emptyBatch } from "../../src/store/store.js";
import { BinanceNormalizer } from "../../src/venues/binance.js";
import type { NormalizedSink } from "../../src/venues/venue.js";
import { DATA, ensureBuilt, runCli, summaryOf, tempDir, writeZip } from "./helpers.js";

/** ../shared/data/README.md, btcusdt_20240808.gz row. */
const README = { trades: 9757, volume: "212.03315000", vwap: "61707.68161671" };

interface ExportedTrade {
  id: string;
  price: string;
  quantity: string;
  timestampUs: string;
  side: string;
}

let dir: string;
let replayDb: string;
let exported: ExportedTrade[];

async function figures(db: string, table: string) {
  const store = new DuckDBStore({ path: db, readOnly: true });
  await store.init();
  try {
    const [r] = await store.query(
      `SELECT count(*)::VARCHAR AS n, sum(quantity)::VARCHAR AS volume,
        sum(price::DECIMAL(38,8) * quantity::DECIMAL(38,8))::VARCHAR AS notional FROM ${table}`,
    );
    return {
      trades: Number(r.n),
      volume: r.volume as string,
      vwap: r.volume === null ? null : vwapFromSums(r.notional as string, r.volume as string),
    };
  } finally {
    await store.close();
  }
}

/** Rows of `db`'s agg_trades_v2 that differ from the replayed trades_v2 (by venue id). */
async function mismatches(db: string): Promise<number> {
  const store = new DuckDBStore({ path: db });
  await store.init();
  try {
    await store.query(`ATTACH '${replayDb.replace(/'/g, "''")}' AS replay (READ_ONLY)`);
    const [r] = await store.query(
      `SELECT count(*)::VARCHAR AS n FROM replay.trades_v2 t FULL OUTER JOIN agg_trades_v2 a
         ON a.source_sequence = t.source_sequence
       WHERE a.trade_id IS DISTINCT FROM t.trade_id OR a.price IS DISTINCT FROM t.price
         OR a.quantity IS DISTINCT FROM t.quantity OR a."timestamp" IS DISTINCT FROM t."timestamp"
         OR a.side IS DISTINCT FROM t.side OR a.currency IS DISTINCT FROM t.currency
         OR a.symbol IS DISTINCT FROM t.symbol`,
    );
    await store.query("DETACH replay");
    return Number(r.n);
  } finally {
    await store.close();
  }
}

/** One aggTrades CSV line per trade: a, price, quantity, first id, last id, time, buyer is maker, best match. */
function csvLine(t: ExportedTrade, unit: "ms" | "us"): string {
  const time = unit === "us" ? t.timestampUs : String(BigInt(t.timestampUs) / 1000n);
  return [t.id, t.price, t.quantity, t.id, t.id, time, t.side === "SELL" ? "True" : "False", "True"].join(
    ",",
  );
}

async function writeCsv(name: string, lines: string[]): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, `${lines.join("\n")}\n`);
  return file;
}

async function load(file: string, db: string, extra: string[] = []) {
  const r = await runCli(["load", "binance-aggtrades", file, "--symbol", "BTCUSDT", "--db", db, ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return summaryOf(r);
}

beforeAll(async () => {
  ensureBuilt();
  dir = await tempDir("aggtrades");
  replayDb = join(dir, "replay.duckdb");
  const run = await runCli([
    "run",
    "--replay",
    join(DATA, "binance-spot/btcusdt_20240808.gz"),
    "--speed",
    "max",
    "--exit-at-end",
    "--db",
    replayDb,
    "--http-port",
    "0",
    "--symbols",
    "BTCUSDT",
    "--streams",
    "trade,bookTicker",
  ]);
  expect(run.code, run.stderr).toBe(0);
  expect(summaryOf(run).trades).toBe(README.trades);
  const store = new DuckDBStore({ path: replayDb, readOnly: true });
  await store.init();
  const rows = await store.query(
    `SELECT source_sequence::VARCHAR AS id, price::VARCHAR AS price, quantity::VARCHAR AS quantity,
       "timestamp"::VARCHAR AS ts, side FROM trades_v2 ORDER BY source_sequence`,
  );
  await store.close();
  exported = rows.map((r) => ({
    id: r.id as string,
    price: r.price as string,
    quantity: r.quantity as string,
    timestampUs: r.ts as string,
    side: r.side as string,
  }));
}, 120_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("k2 load binance-aggtrades: round trip of btcusdt_20240808.gz", () => {
  it("the replayed store matches the data README (the reference for the round trip)", async () => {
    expect(exported).toHaveLength(README.trades);
    expect(await figures(replayDb, "trades_v2")).toEqual(README);
  });

  it("header row, ms times: same count, volume and VWAP in an empty DB; every trade equal", async () => {
    const file = await writeCsv("header-ms.csv", [
      "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker,is_best_match",
      ...exported.map((t) => csvLine(t, "ms")),
    ]);
    const db = join(dir, "header-ms.duckdb");
    const s = await load(file, db);
    expect(s).toMatchObject({ rows: README.trades, loaded: README.trades, duplicates: 0, rejected: 0 });
    expect(s.table).toBe("agg_trades_v2");
    expect(await figures(db, "agg_trades_v2")).toEqual(README);
    expect(await figures(db, "trades_v2")).toMatchObject({ trades: 0 });
    expect(await mismatches(db)).toBe(0);

    // loading the same file again stores nothing new and reports every row as a duplicate
    const again = await load(file, db);
    expect(again).toMatchObject({ rows: README.trades, loaded: 0, duplicates: README.trades, rejected: 0 });
    expect(await figures(db, "agg_trades_v2")).toEqual(README);
  });

  it("no header, µs times (Binance spot from 2025 on): the same", async () => {
    const file = await writeCsv(
      "nohdr-us.csv",
      exported.map((t) => csvLine(t, "us")),
    );
    const db = join(dir, "nohdr-us.duckdb");
    const s = await load(file, db, ["--batch-size", "1000"]);
    expect(s).toMatchObject({ rows: README.trades, loaded: README.trades, duplicates: 0, rejected: 0 });
    expect(await figures(db, "agg_trades_v2")).toEqual(README);
    expect(await mismatches(db)).toBe(0);
  });

  it("ms and µs mixed row by row: the unit is decided per value", async () => {
    const file = await writeCsv(
      "mixed.csv",
      exported.map((t, i) => csvLine(t, i % 2 === 0 ? "ms" : "us")),
    );
    const db = join(dir, "mixed.duckdb");
    const s = await load(file, db);
    expect(s).toMatchObject({ rows: README.trades, loaded: README.trades, rejected: 0 });
    expect(await mismatches(db)).toBe(0);
  });

  it("a ZIP holding the CSV (as data.binance.vision ships it) loads the same; a reload is all duplicates", async () => {
    const csv = await writeCsv(
      "BTCUSDT-aggTrades-2024-08-08.csv",
      exported.map((t) => csvLine(t, "ms")),
    );
    const zip = join(dir, "BTCUSDT-aggTrades-2024-08-08.zip");
    await writeZip(zip, { "BTCUSDT-aggTrades-2024-08-08.csv": csv });
    expect(readFileSync(zip).length).toBeLessThan(readFileSync(csv).length); // really deflated
    const db = join(dir, "zip.duckdb");
    // no --symbol: taken from the SYMBOL-aggTrades-... file name
    const r = await runCli(["load", "binance-aggtrades", zip, "--db", db]);
    expect(r.code, r.stderr).toBe(0);
    expect(summaryOf(r)).toMatchObject({
      rows: README.trades,
      loaded: README.trades,
      duplicates: 0,
      rejected: 0,
    });
    expect(await figures(db, "agg_trades_v2")).toEqual(README);
    expect(await mismatches(db)).toBe(0);
    // the CSV itself over the same DB: the same records, nothing new
    const again = await load(csv, db);
    expect(again).toMatchObject({ loaded: 0, duplicates: README.trades });
  });

  it("bad rows go to dead_letters with their line numbers, reasons and raw text; the rest load", async () => {
    const good = exported.map((t) => csvLine(t, "ms"));
    const bad: [number, string, RegExp][] = [
      // [insert before this index of good rows, raw line, reason]
      [0, "1,61837.63,0.1,1,1,1723161255342", /expected 8 fields \(7 for futures files\), got 6/],
      [100, "2,61837.123456789,0.1,2,2,1723161255342,True,True", /price: more than 8 significant fractional/],
      [5000, "3,61837.63,-0.1,3,3,1723161255342,True,True", /quantity: negative value/],
      [7000, "4,61837.63,0.1,4,4,2024-08-09 00:00:00,True,True", /transact time is not an integer/],
      [9000, "5,61837.63,0.1,5,5,1723161255342,yes,True", /is buyer maker is not True\/False/],
    ];
    const lines: string[] = [];
    const expectedLines = new Map<number, [string, RegExp]>(); // 1-based line number → [raw, reason]
    let b = 0;
    for (let i = 0; i <= good.length; i++) {
      while (b < bad.length && bad[b][0] === i) {
        lines.push(bad[b][1]);
        expectedLines.set(lines.length, [bad[b][1], bad[b][2]]);
        b++;
      }
      if (i === 3000) lines.push(""); // a blank line: skipped, not a row, but it counts for line numbers
      if (i < good.length) lines.push(good[i]);
    }
    const file = await writeCsv("bad-rows.csv", lines);
    const db = join(dir, "bad-rows.duckdb");
    const s = await load(file, db);
    expect(s).toMatchObject({
      rows: README.trades + bad.length,
      loaded: README.trades,
      duplicates: 0,
      rejected: bad.length,
    });
    expect(await figures(db, "agg_trades_v2")).toEqual(README);

    const store = new DuckDBStore({ path: db, readOnly: true });
    await store.init();
    const letters = await store.query(
      "SELECT exchange, source, reason, raw FROM dead_letters ORDER BY source",
    );
    await store.close();
    expect(letters).toHaveLength(bad.length);
    const seen = new Set<number>();
    for (const l of letters) {
      expect(l.exchange).toBe("BINANCE");
      const m = /^(.*):(\d+)$/.exec(l.source as string);
      expect(m?.[1]).toBe(file);
      const lineNo = Number(m?.[2]);
      const want = expectedLines.get(lineNo);
      expect(want, `dead letter at unexpected line ${lineNo}`).toBeDefined();
      expect(l.raw).toBe(want?.[0]);
      expect(l.raw).toBe(lines[lineNo - 1]);
      expect(l.reason).toMatch(want![1]);
      seen.add(lineNo);
    }
    expect(seen.size).toBe(bad.length);

    // reloading does not store the dead letters twice
    const again = await load(file, db);
    expect(again).toMatchObject({ loaded: 0, duplicates: README.trades, rejected: bad.length });
    const store2 = new DuckDBStore({ path: db, readOnly: true });
    await store2.init();
    const [c] = await store2.query("SELECT count(*)::VARCHAR AS n FROM dead_letters");
    await store2.close();
    expect(c.n).toBe(String(bad.length));
  });

  it("bad flags and unusable files exit 2 naming the flag or file", async () => {
    const file = await writeCsv(
      "small.csv",
      exported.slice(0, 3).map((t) => csvLine(t, "ms")),
    );
    const db = join(dir, "flags.duckdb");
    const noSymbol = await runCli(["load", "binance-aggtrades", file, "--db", db]);
    expect(noSymbol.code).toBe(2);
    expect(noSymbol.stderr).toMatch(/--symbol: required/);
    const badSymbol = await runCli(["load", "binance-aggtrades", file, "--symbol", "BTC!", "--db", db]);
    expect(badSymbol.code).toBe(2);
    expect(badSymbol.stderr).toMatch(/--symbol: "BTC!"/);
    const missing = await runCli([
      "load",
      "binance-aggtrades",
      join(dir, "nope.csv"),
      "--symbol",
      "BTCUSDT",
      "--db",
      db,
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/<file>: cannot read .*nope\.csv/);
    const batch = await runCli([
      "load",
      "binance-aggtrades",
      file,
      "--symbol",
      "BTCUSDT",
      "--batch-size",
      "0",
    ]);
    expect(batch.code).toBe(2);
    expect(batch.stderr).toMatch(/--batch-size/);
    const two = join(dir, "two.zip");
    await writeZip(two, { "a.csv": file, "b.csv": file });
    const twoCsv = await runCli(["load", "binance-aggtrades", two, "--symbol", "BTCUSDT", "--db", db]);
    expect(twoCsv.code).toBe(2);
    expect(twoCsv.stderr).toMatch(/exactly one CSV entry, found 2/);
  });
});

describe("Binance aggTrades rows are the records the live aggTrade stream stores", () => {
  /** The aggTrade frames recorded in cryptofeed/BINANCE.jsonl.gz (Binance Spot, 2021-10-12). */
  function recordedAggTradeFrames(): { raw: string; ts: number }[] {
    const text = gunzipSync(readFileSync(join(DATA, "cryptofeed/BINANCE.jsonl.gz"))).toString("utf8");
    const out: { raw: string; ts: number }[] = [];
    for (const line of text.split("\n")) {
      if (!line) continue;
      const o = JSON.parse(line) as { t: string; data?: string; ts: number };
      if (o.t === "recv" && o.data?.includes('"e":"aggTrade"')) out.push({ raw: o.data, ts: o.ts });
    }
    return out;
  }

  it("same message_id, trade_id, time, price, quantity, side, sequence and vendor_data keys; loading over the streamed rows adds nothing", async () => {
    const frames = recordedAggTradeFrames();
    expect(frames.length).toBeGreaterThan(0);
    const live: TradeV2[] = [];
    const sink: NormalizedSink = {
      trade: (r, dt) => {
        expect(dt).toBe("aggtrades");
        live.push(r);
      },
      quote: () => {},
      deadLetter: (d) => {
        throw new Error(`unexpected dead letter ${d.reason}`);
      },
      gap: () => {},
      control: () => {},
    };
    const streams = frames.map((f) => (JSON.parse(f.raw) as { stream: string }).stream);
    const symbols = [...new Set(streams.map((s) => s.split("@")[0].toUpperCase()))];
    const normalizer = new BinanceNormalizer(sink, { symbols, streams: ["aggTrade"] });
    for (const f of frames) normalizer.normalize(f.raw, Math.round(f.ts * 1e6));
    expect(live).toHaveLength(frames.length);

    const store = new DuckDBStore({ path: ":memory:" });
    await store.init();
    try {
      const batch = emptyBatch();
      batch.aggTrades.push(...live);
      expect((await store.write(batch)).aggTrades).toBe(live.length);

      for (const [i, f] of frames.entries()) {
        const d = (JSON.parse(f.raw) as { data: Record<string, unknown> }).data;
        // the same aggregate trade as a public-data CSV row (Python-style booleans, ms time)
        const row = [d.a, d.p, d.q, d.f, d.l, d.T, d.m ? "True" : "False", d.M ? "True" : "False"].join(",");
        const parser = new BinanceAggTradesParser(d.s as string);
        const loaded = parser.parse(row, 1, 1);
        expect(loaded).not.toBeNull();
        const t = loaded!;
        expect(TradeV2Schema.safeParse(t).success).toBe(true);
        const l = live[i];
        for (const k of [
          "message_id",
          "trade_id",
          "symbol",
          "exchange",
          "asset_class",
          "timestamp",
          "price",
          "quantity",
          "currency",
          "side",
          "trade_conditions",
          "source_sequence",
        ] as const) {
          expect(t[k], k).toEqual(l[k]);
        }
        for (const [k, v] of Object.entries(t.vendor_data)) expect(l.vendor_data[k], k).toBe(v);
        expect(Object.keys(t.vendor_data).sort()).toEqual([
          "first_trade_id",
          "is_best_match",
          "last_trade_id",
        ]);

        const again = emptyBatch();
        again.aggTrades.push(t);
        const r = await store.write(again);
        expect(r).toMatchObject({ aggTrades: 0, duplicates: 1 });
      }
    } finally {
      await store.close();
    }
  });

  it("decides ms or µs per value at 10^14 and rejects what is not a time", () => {
    expect(transactTimeToMicros("1723161255342")).toBe(1723161255342000);
    expect(transactTimeToMicros("1735689600123456")).toBe(1735689600123456);
    expect(transactTimeToMicros(String(MICROS_THRESHOLD))).toBe(MICROS_THRESHOLD);
    // below the threshold a value is ms; one that would be 2^53 µs or more is rejected, not wrapped
    expect(transactTimeToMicros("9007199254740")).toBe(9007199254740000);
    expect(() => transactTimeToMicros(String(MICROS_THRESHOLD - 1))).toThrow(/out of range/);
    expect(() => transactTimeToMicros("9007199254740993")).toThrow(RowRejected);
    expect(() => transactTimeToMicros("1723161255342.5")).toThrow(RowRejected);
  });

  it("treats a first line of names as a header, but a bad first data row as a bad row", () => {
    const p = new BinanceAggTradesParser("BTCUSDT");
    expect(p.parse("a,p,q,f,l,T,m,M", 1, 1)).toBeNull();
    expect(p.parse("7,1.5,2,7,7,1723161255342,false,true", 2, 1)?.side).toBe("BUY");
    const q = new BinanceAggTradesParser("BTCUSDT");
    expect(() => q.parse("x,1.5,2,7,7,1723161255342,false,true", 1, 1)).toThrow(/aggregate trade id/);
    // futures files: 7 columns, no best-match flag
    const futures = new BinanceAggTradesParser("BTCUSDT").parse(
      "26129,0.01633102,4.70443515,27781,27781,1498793709153,true",
      1,
      1,
    );
    expect(futures).toMatchObject({ side: "SELL", price: "0.01633102", timestamp: 1498793709153000 });
    expect(futures?.vendor_data).toEqual({ first_trade_id: "27781", last_trade_id: "27781" });
  });

  it("reads a canonical row in one pass into the same record as the general path gives for other spellings of it", () => {
    const fields = (r: TradeV2 | null) => {
      const { platform_sequence: _p, ...rest } = r as TradeV2;
      return rest;
    };
    const parse = (line: string) => {
      const p = new BinanceAggTradesParser("BTCUSDT");
      p.parse("a,p,q,f,l,T,m,M", 1, 5); // past the first line: rows may take the one-pass path
      return fields(p.parse(line, 2, 5));
    };
    const cases: [string, string[]][] = [
      [
        "3000000001,61686.00000000,0.00016000,3000000001,3000000002,1723161601498,False,True",
        [
          " 3000000001,61686,0.00016,3000000001,3000000002,1723161601498,false,true",
          "03000000001,61686.0000000000,.00016000,03000000001,3000000002,1723161601498,FALSE,TRUE",
          "3000000001, 61686.00000000 ,0.00016000,3000000001,3000000002, 1723161601498,False,True",
        ],
      ],
      [
        "0,0.20000000,50.00000000,0,0,1735689600123456,True,False",
        [
          "0,0.2,50,0,0,1735689600123456,true,false",
          "00,00.20000000,050.0,00,0,01735689600123456,True,False",
        ],
      ],
      ["7,1.50000000,2.00000000,7,7,1498793709153,True", ["7,1.5,2,7,7,1498793709153,true"]],
    ];
    for (const [canonical, others] of cases) {
      const fast = parse(canonical);
      for (const o of others) expect(parse(o), o).toEqual(fast);
    }
    expect(parse(cases[0][0])).toMatchObject({
      trade_id: "BINANCE-3000000001",
      side: "BUY",
      timestamp: 1723161601498000,
      vendor_data: { first_trade_id: "3000000001", last_trade_id: "3000000002", is_best_match: "true" },
    });
    // rows the one-pass reader declines still get the general path's reasons
    const p = new BinanceAggTradesParser("BTCUSDT");
    p.parse("a,p,q,f,l,T,m,M", 1, 5);
    expect(() => p.parse("1,1.123456789,1,1,1,1723161601498,True,True", 2, 5)).toThrow(/fractional digits/);
    expect(() => p.parse("1,1.5,1,1,1,9007199254740993,True,True", 3, 5)).toThrow(/out of range/);
    expect(() => p.parse("1,1.5,1,1,1,1723161601498,True,True,x", 4, 5)).toThrow(/expected 8 fields/);
    expect(() => p.parse("1,1.5,1,1,1,1723161601498,yes,True", 5, 5)).toThrow(/is buyer maker/);
  });

  it("takes the symbol from a Binance public-data file name", () => {
    expect(symbolFromFileName("/x/BTCUSDT-aggTrades-2024-08-08.zip")).toBe("BTCUSDT");
    expect(symbolFromFileName("trades.csv")).toBeNull();
  });
});
