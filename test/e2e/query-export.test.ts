/** `k2 query` (json, csv, table; read-only), `k2 export` to Parquet, and gap detection end to end. */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { readCapture } from "../../src/replay/capture.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, query, runCli, tempDir } from "../helpers/cli.js";

const dir = tempDir();
const db = join(dir, "k2.duckdb");

beforeAll(async () => {
  const r = await runCli([
    "run",
    "--replay",
    sharedData("binance-spot/ethusdt_20240808.gz"),
    "--exit-at-end",
    "--db",
    db,
    "--http-port",
    "0",
    "--symbols",
    "ETHUSDT",
    "--streams",
    "trade,bookTicker",
  ]);
  if (r.code !== 0) throw new Error(r.stderr);
});

describe("k2 query", () => {
  it("prints JSON rows with exact decimals and BIGINTs as strings", async () => {
    const rows = await query(
      db,
      "SELECT price, quantity, timestamp, side FROM trades_v2 ORDER BY trade_id LIMIT 2",
    );
    expect(rows[0]).toEqual({
      price: "2683.80000000",
      quantity: "0.00200000",
      timestamp: "1723161255611000",
      side: "SELL",
    });
  });

  it("prints CSV with a header and table output with a row count", async () => {
    const csv = await runCli([
      "query",
      "--db",
      db,
      "--format",
      "csv",
      "SELECT trade_id, price FROM trades_v2 ORDER BY trade_id LIMIT 2",
    ]);
    expect(csv.stdout.split("\n").slice(0, 2)).toEqual([
      "trade_id,price",
      "BINANCE-1520538925,2683.80000000",
    ]);
    const table = await runCli(["query", "--db", db, "SELECT count(*) AS n FROM trades_v2"]);
    expect(table.stdout).toMatch(/^n\s*\n-+\n6106\n\(1 rows\)\n$/);
  });

  it("is read-only", async () => {
    const r = await runCli(["query", "--db", db, "DELETE FROM trades_v2"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/read-only/);
    expect((await query(db, "SELECT count(*) AS n FROM trades_v2"))[0].n).toBe("6106");
  });
});

describe("k2 export", () => {
  it("writes a table to Parquet with exact decimals", async () => {
    const out = join(dir, "trades.parquet");
    const r = await runCli(["export", "--db", db, "--table", "trades_v2", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJsonLine(r.stdout)).toEqual({ out, rows: 6106 });
    const [p] = await query(
      db,
      `SELECT sum(quantity) AS v, typeof(first(price)) AS t FROM read_parquet('${out}')`,
    );
    expect(p).toEqual({ v: "2261.31490000", t: "DECIMAL(18,8)" });
  });

  it("exports candles_v2 too", async () => {
    const out = join(dir, "candles.parquet");
    const r = await runCli(["export", "--db", db, "--table", "candles_v2", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const [c] = await query(db, "SELECT count(*) AS n FROM candles_v2");
    expect(Number(c.n)).toBeGreaterThan(0);
    expect(lastJsonLine(r.stdout)).toEqual({ out, rows: Number(c.n) });
  });

  it("says a PostgreSQL URL is not a file instead of opening it as one", async () => {
    const out = join(dir, "pg.parquet");
    const r = await runCli([
      "export",
      "--db",
      "postgres://k2@127.0.0.1:5432/k2",
      "--table",
      "trades_v2",
      "--out",
      out,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^k2: --db: k2 export reads a DuckDB file, not a PostgreSQL URL/);
    expect(existsSync("postgres:")).toBe(false);
  });

  it("rejects an unknown table, naming the flag", async () => {
    const r = await runCli(["export", "--db", db, "--table", "users", "--out", join(dir, "x.parquet")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--table: unknown table "users"/);
  });
});

describe("sequence gaps", () => {
  it("reports trades missing from a capture as a gap with the missing range", async () => {
    const lines: string[] = [];
    const removed: number[] = [];
    let tradeNo = 0;
    for await (const f of readCapture(sharedData("binance-spot/ethusdt_20240808.gz"))) {
      if (f.raw.startsWith('{"stream":"ethusdt@trade"')) {
        tradeNo++;
        if (tradeNo >= 100 && tradeNo < 103) {
          removed.push(JSON.parse(f.raw).data.t);
          continue;
        }
      }
      lines.push(`${f.ns} ${f.raw}`);
      if (tradeNo > 200) break;
    }
    const file = join(dir, "gappy.gz");
    writeFileSync(file, gzipSync(`${lines.join("\n")}\n`));
    const gdb = join(dir, "gaps.duckdb");
    const r = await runCli([
      "run",
      "--replay",
      file,
      "--exit-at-end",
      "--db",
      gdb,
      "--http-port",
      "0",
      "--symbols",
      "ETHUSDT",
      "--streams",
      "trade,bookTicker",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(lastJsonLine(r.stdout).gaps).toBe(1);
    expect(r.stderr).toMatch(/"from":1520539024,"to":1520539026,"msg":"sequence gap: 3 missing"/);
    expect(removed).toEqual([1520539024, 1520539025, 1520539026]);
    const rows = await query(gdb, "SELECT symbol, data_type, from_sequence, to_sequence FROM sequence_gaps");
    expect(rows).toEqual([
      { symbol: "ETHUSDT", data_type: "trades", from_sequence: "1520539024", to_sequence: "1520539026" },
    ]);
  });
});
