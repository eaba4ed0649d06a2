/**
 * `k2 load csv --mapping`: an ASX-like equities trade file (date, time, symbol, price, volume,
 * condition codes, broker columns) → trades_v2 with asset_class equities, extra columns in
 * vendor_data, condition codes in trade_conditions, bad rows in dead_letters with line numbers.
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  compileFormat,
  epochToMicros,
  MappedCsvParser,
  type Mapping,
  parseMapping,
} from "../../src/loaders/csv.js";
import { loadTrades, RowRejected, splitCsvLine } from "../../src/loaders/load.js";
import { openLineSource } from "../../src/loaders/source.js";
import { TradeV2Schema } from "../../src/schema/validators.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { ensureBuilt, runCli, summaryOf, tempDir } from "./helpers.js";

let dir: string;

const ASX_HEADER = "Date,Time,Symbol,Price,Volume,Value,Side,Cond,BuyBroker,SellBroker,TradeNo";
const ASX_ROWS = [
  "20240808,10:00:00.123,BHP,41.2300,100,4123.00,B,XT,01,02,1001",
  '20240808,10:00:00.123,cba,130.5,25,"3,262.50",S,"XT LT",03,04,1002',
  "20240808,10:00:01.000,BHP,41.2x,50,2061.50,B,,01,02,1003", // bad price
  "20240808,10:00:02.000,BHP,41.25,70,2887.50,,,01,02,1004",
  "20240115,16:10:00.000,BHP,45.10,1000,45100.00,S,  ,05,06,1005", // AEDT (+11:00), blank conditions
  "20240808,10:00:03.000,BHP,41.25,60,2475.00,B,XT,01,02", // one field short
  "20240230,10:00:03.000,BHP,41.25,60,2475.00,B,XT,01,02,1006", // no 30 February
];

const ASX_MAPPING = {
  exchange: "ASX",
  currency: "AUD",
  columns: {
    symbol: "Symbol",
    price: "Price",
    quantity: "Volume",
    timestamp: { date: "Date", time: "Time", format: "yyyyMMdd HH:mm:ss.SSS", timezone: "Australia/Sydney" },
    side: { column: "Side", buy: ["B"], sell: ["S"] },
    trade_id: "TradeNo",
    conditions: "Cond",
  },
};

async function write(name: string, text: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

async function loadInProcess(file: string, mapping: unknown, db: string) {
  const m = parseMapping(mapping);
  const store = new DuckDBStore({ path: db });
  await store.init();
  try {
    const summary = await loadTrades({
      file,
      source: await openLineSource(file),
      parser: new MappedCsvParser(m, file),
      store,
      target: "trades",
      exchange: m.exchange,
      batchSize: 2,
    });
    const trades = await store.query(
      `SELECT trade_id, symbol, exchange, asset_class, "timestamp"::VARCHAR AS ts, price::VARCHAR AS price,
         quantity::VARCHAR AS quantity, currency, side, trade_conditions, source_sequence::VARCHAR AS seq,
         vendor_data::VARCHAR AS vendor FROM trades_v2 ORDER BY trade_id`,
    );
    const letters = await store.query(
      "SELECT exchange, source, reason, raw FROM dead_letters ORDER BY source",
    );
    return { summary, trades, letters };
  } finally {
    await store.close();
  }
}

beforeAll(async () => {
  dir = await tempDir("csv");
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("k2 load csv: an ASX-like trade file", () => {
  it("maps every field, keeps extra columns in vendor_data and dead-letters bad rows with line numbers", async () => {
    const file = await write("asx.csv", `${ASX_HEADER}\r\n${ASX_ROWS.join("\r\n")}\r\n`);
    const db = join(dir, "asx.duckdb");
    const { summary, trades, letters } = await loadInProcess(file, ASX_MAPPING, db);
    expect(summary).toMatchObject({ rows: 7, loaded: 4, duplicates: 0, rejected: 3, table: "trades_v2" });

    expect(trades.map((t) => t.trade_id)).toEqual(["ASX-1001", "ASX-1002", "ASX-1004", "ASX-1005"]);
    const byId = Object.fromEntries(trades.map((t) => [t.trade_id as string, t]));
    // 2024-08-08 is winter in Sydney: AEST, UTC+10
    expect(byId["ASX-1001"]).toMatchObject({
      symbol: "BHP",
      exchange: "ASX",
      asset_class: "equities",
      ts: String(Date.UTC(2024, 7, 8, 0, 0, 0, 123) * 1000),
      price: "41.23000000",
      quantity: "100.00000000",
      currency: "AUD",
      side: "BUY",
      trade_conditions: ["XT"],
      seq: "1001",
    });
    expect(JSON.parse(byId["ASX-1001"].vendor as string)).toEqual({
      Value: "4123.00",
      BuyBroker: "01",
      SellBroker: "02",
    });
    // quoted fields: a delimiter inside quotes; two condition codes; symbol upper-cased
    expect(byId["ASX-1002"]).toMatchObject({
      symbol: "CBA",
      side: "SELL",
      trade_conditions: ["XT", "LT"],
      price: "130.50000000",
    });
    expect(JSON.parse(byId["ASX-1002"].vendor as string).Value).toBe("3,262.50");
    expect(byId["ASX-1004"]).toMatchObject({ side: "UNKNOWN", trade_conditions: [] });
    // 2024-01-15 is summer: AEDT, UTC+11 → 05:10 UTC
    expect(byId["ASX-1005"]).toMatchObject({
      ts: String(Date.UTC(2024, 0, 15, 5, 10, 0, 0) * 1000),
      trade_conditions: [],
      side: "SELL",
    });

    expect(letters.map((l) => l.source)).toEqual([`${file}:4`, `${file}:7`, `${file}:8`]);
    expect(letters.every((l) => l.exchange === "ASX")).toBe(true);
    expect(letters[0].reason).toMatch(/^price: not a decimal string: "41\.2x"/);
    expect(letters[0].raw).toBe(ASX_ROWS[2]);
    expect(letters[1].reason).toMatch(/expected 11 fields \(as the header\), got 10/);
    expect(letters[1].raw).toBe(ASX_ROWS[5]);
    expect(letters[2].reason).toMatch(/timestamp: invalid date/);

    // reload: nothing new, every good row a duplicate, dead letters stored once
    const again = await loadInProcess(file, ASX_MAPPING, db);
    expect(again.summary).toMatchObject({ rows: 7, loaded: 0, duplicates: 4, rejected: 3 });
    expect(again.trades).toHaveLength(4);
    expect(again.letters).toHaveLength(3);
  });

  it("reads a gzip file the same way", async () => {
    const file = join(dir, "asx.csv.gz");
    await writeFile(file, gzipSync(`${ASX_HEADER}\n${ASX_ROWS.join("\n")}\n`));
    const { summary, letters } = await loadInProcess(file, ASX_MAPPING, join(dir, "asx-gz.duckdb"));
    expect(summary).toMatchObject({ rows: 7, loaded: 4, duplicates: 0, rejected: 3 });
    expect(letters.map((l) => l.source)).toEqual([`${file}:4`, `${file}:7`, `${file}:8`]);
  });

  it("without a trade id column: ids from the row's content, distinct for identical trades, stable on reload", async () => {
    const rows = [
      "20240808,10:00:00.123,BHP,41.23,100,x,B,XT,01,02,",
      "20240808,10:00:00.123,BHP,41.23,100,x,B,XT,01,02,", // the same trade printed twice: two executions
      "20240808,10:00:00.123,BHP,41.24,100,x,B,XT,01,02,",
      "20240808,10:00:00.456,BHP,41.23,100,x,B,XT,01,02,",
    ];
    const file = await write("asx-noid.csv", `${ASX_HEADER}\n${rows.join("\n")}`); // no final newline
    const mapping = { ...ASX_MAPPING, columns: { ...ASX_MAPPING.columns, trade_id: undefined } };
    const db = join(dir, "asx-noid.duckdb");
    const first = await loadInProcess(file, mapping, db);
    expect(first.summary).toMatchObject({ rows: 4, loaded: 4, duplicates: 0, rejected: 0 });
    const ids = first.trades.map((t) => t.trade_id as string);
    expect(new Set(ids).size).toBe(4);
    for (const id of ids) expect(id).toMatch(/^ASX-h[0-9a-f]{32}$/);
    expect(first.trades.every((t) => t.seq === null)).toBe(true);
    // the unmapped (empty) TradeNo column lands in vendor_data
    expect(JSON.parse(first.trades[0].vendor as string)).toHaveProperty("TradeNo", "");

    const again = await loadInProcess(file, mapping, db);
    expect(again.summary).toMatchObject({ rows: 4, loaded: 0, duplicates: 4 });
    expect(again.trades.map((t) => t.trade_id)).toEqual(ids);
  });

  it("header false with 0-based indexes and epoch ns: sub-µs digits truncated, raw kept in vendor_data", async () => {
    const file = await write(
      "epoch.csv",
      "BHP;41.23;100;1723075200123456789;XT;extra\nBHP;41.24;5;1723075200123457000;;more\n",
    );
    const mapping = {
      exchange: "ASX",
      currency: "AUD",
      header: false,
      delimiter: ";",
      columns: {
        symbol: 0,
        price: 1,
        quantity: 2,
        timestamp: { epoch: 3, unit: "ns" },
        conditions: 4,
      },
    };
    const { summary, trades } = await loadInProcess(file, mapping, join(dir, "epoch.duckdb"));
    expect(summary).toMatchObject({ rows: 2, loaded: 2, rejected: 0 });
    const byPrice = Object.fromEntries(trades.map((t) => [t.price as string, t]));
    expect(byPrice["41.23000000"].ts).toBe("1723075200123456");
    expect(JSON.parse(byPrice["41.23000000"].vendor as string)).toEqual({
      column_3: "1723075200123456789",
      column_5: "extra",
    });
    expect(byPrice["41.24000000"].ts).toBe("1723075200123457");
    expect(JSON.parse(byPrice["41.24000000"].vendor as string)).toEqual({ column_5: "more" });
  });

  it("records are valid trades_v2", async () => {
    const parser = new MappedCsvParser(parseMapping(ASX_MAPPING), "x.csv");
    expect(parser.parse(ASX_HEADER, 1, 1)).toBeNull();
    const t = parser.parse(ASX_ROWS[0], 2, 1_723_075_200_000_000);
    expect(TradeV2Schema.safeParse(t).success).toBe(true);
  });

  it("the CLI prints the summary line, and a bad mapping exits 2 naming the field", async () => {
    ensureBuilt();
    const file = await write("cli.csv", `${ASX_HEADER}\n${ASX_ROWS.join("\n")}\n`);
    const mappingFile = await write("mapping.json", JSON.stringify(ASX_MAPPING));
    const db = join(dir, "cli.duckdb");
    const ok = await runCli(["load", "csv", file, "--mapping", mappingFile, "--db", db]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(summaryOf(ok)).toMatchObject({ rows: 7, loaded: 4, duplicates: 0, rejected: 3 });
    // the first rejected rows say why on stderr, with their line numbers (header = line 1)
    const rejects = ok.stderr.split("\n").filter((l) => l.startsWith(`k2: ${file}:`));
    expect(rejects.map((l) => Number(l.slice(`k2: ${file}:`.length).split(":")[0]))).toEqual([4, 7, 8]);
    expect(rejects[0]).toMatch(/: rejected: .*price/);
    expect(ok.stderr).toContain("k2: 3 rows rejected; every one is in dead_letters with its line and reason");

    const noPrice = await write(
      "no-price.json",
      JSON.stringify({ ...ASX_MAPPING, columns: { ...ASX_MAPPING.columns, price: undefined } }),
    );
    const r1 = await runCli(["load", "csv", file, "--mapping", noPrice, "--db", db]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/--mapping: columns\.price: /);

    const wrongColumn = await write(
      "wrong-column.json",
      JSON.stringify({ ...ASX_MAPPING, columns: { ...ASX_MAPPING.columns, price: "Prce" } }),
    );
    const r2 = await runCli(["load", "csv", file, "--mapping", wrongColumn, "--db", db]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/--mapping: columns\.price: column "Prce" is not in the header/);
  });
});

describe("mapping validation names the field", () => {
  const withTimestamp = (timestamp: unknown) => ({
    ...ASX_MAPPING,
    columns: { ...ASX_MAPPING.columns, timestamp },
  });
  it.each([
    [{ ...ASX_MAPPING, exchange: "asx" }, /^--mapping: exchange: /],
    [{ ...ASX_MAPPING, currency: undefined }, /^--mapping: currency: /],
    [{ ...ASX_MAPPING, asset_class: "bonds" }, /^--mapping: asset_class: /],
    [{ ...ASX_MAPPING, extra: 1 }, /^--mapping: \(mapping\): .*extra/],
    [
      withTimestamp({ date: "Date", format: "yyyyMMdd", timezone: "Mars/Base" }),
      /columns\.timestamp\.timezone: unknown IANA time zone "Mars\/Base"/,
    ],
    [
      withTimestamp({ date: "Date", format: "yyyyMMdd QQ", timezone: "UTC" }),
      /columns\.timestamp\.format: unknown token "QQ"/,
    ],
    [withTimestamp({ date: "Date", timezone: "UTC" }), /columns\.timestamp\.format: required with date/],
    [withTimestamp({ epoch: "E" }), /columns\.timestamp\.unit: required with epoch/],
    [withTimestamp({ epoch: "E", unit: "minutes" }), /columns\.timestamp\.unit: /],
    [{ ...ASX_MAPPING, header: false }, /columns\.symbol: "header" is false/],
    [{ ...ASX_MAPPING, delimiter: "||" }, /^--mapping: delimiter: /],
  ])("%#: %s", (mapping, message) => {
    expect(() => parseMapping(mapping)).toThrow(message);
  });

  it("accepts the ASX mapping with defaults filled in", () => {
    const m: Mapping = parseMapping(ASX_MAPPING);
    expect(m).toMatchObject({ asset_class: "equities", delimiter: ",", header: true });
    expect(m.columns.conditions).toEqual({ column: "Cond", separator: " " });
  });
});

describe("helpers", () => {
  it("splits CSV lines with quotes", () => {
    expect(splitCsvLine('a,"b,c",,"say ""hi""",')).toEqual(["a", "b,c", "", 'say "hi"', ""]);
    expect(splitCsvLine("a;b", ";")).toEqual(["a", "b"]);
    expect(() => splitCsvLine('a,"b')).toThrow(RowRejected);
    expect(() => splitCsvLine('a,"b"c')).toThrow(/after the closing quote/);
  });

  it("compiles date formats", () => {
    const f = compileFormat("yyyy-MM-dd'T'HH:mm:ss.SSSSSS");
    expect(f.regex.exec("2024-08-08T10:00:00.123456")).not.toBeNull();
    expect(f.regex.exec("2024-08-08 10:00:00.123456")).toBeNull();
    expect(() => compileFormat("HH:mm")).toThrow(/no year/);
  });

  it("converts epochs exactly", () => {
    expect(epochToMicros("1723075200.5", 6)).toEqual({ us: 1723075200500000, truncated: false });
    expect(epochToMicros("1723075200123.4567", 3)).toEqual({ us: 1723075200123456, truncated: true });
    expect(epochToMicros("1723075200123456", 0)).toEqual({ us: 1723075200123456, truncated: false });
    expect(() => epochToMicros("1723075200123456.5", 0)).toThrow(RowRejected);
    expect(() => epochToMicros("-5", 6)).toThrow(RowRejected);
  });
});
