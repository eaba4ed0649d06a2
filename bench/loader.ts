/**
 * Loader benchmark: throughput and peak memory of `k2 load` on large generated files.
 *
 *   npm run build && node dist/bench/loader.js [--rows 3000000] [--small 300000] [--batch 20000] [--keep]
 *   node dist/bench/loader.js --compare [--rows 200000] [--file-mib N] [--batch 20000]
 *
 * `--compare` (what `npm run bench` runs): an aggTrades CSV made from the recorded trades of
 * `../shared/data/binance-spot/btcusdt_20240809.gz` (looped, ids and times shifted per loop) of `--rows`
 * rows, or of about `--file-mib` MiB, loaded once by `k2 load binance-aggtrades` and once by DuckDB's own
 * `read_csv` into `agg_trades_v2` (with its former primary key, `ON CONFLICT DO NOTHING`, the same
 * columns computed in SQL; message ids random there), each into a fresh DuckDB file in a child process:
 * one JSON line with both rates and peak RSS. DuckDB's load keeps the primary key that `agg_trades_v2`
 * had before k2 created the trade tables without it: the floor of the old keyed insert path.
 *
 * Generates, in a temp dir, a Binance aggTrades CSV of `--small` rows and one of `--rows` rows, plus a
 * mapped equities CSV of `--rows` rows; loads each in a child process (`k2 load ...` through the
 * compiled CLI, into an empty DuckDB file) and reports rows/s, the child's peak RSS
 * (`process.resourceUsage().maxRSS`) and its peak JS heap (sampled every 50 ms), both read by a
 * preload module. The loader's own memory (the JS heap: one batch of records) does not grow with the
 * file; RSS also holds DuckDB's native memory, whose primary-key index (the idempotency key) grows
 * with the rows in the table, whatever loads them.
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
const CLI = resolve(here, "../src/cli.js");

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const n = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer`);
  return n;
}

async function writeLines(file: string, rows: number, header: string | null, line: (i: number) => string) {
  const out = createWriteStream(file, { highWaterMark: 1 << 20 });
  const write = (s: string) =>
    out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once("drain", () => r()));
  if (header) await write(`${header}\n`);
  const chunk: string[] = [];
  for (let i = 0; i < rows; i++) {
    chunk.push(line(i));
    if (chunk.length === 10_000) {
      await write(`${chunk.join("\n")}\n`);
      chunk.length = 0;
    }
  }
  if (chunk.length) await write(`${chunk.join("\n")}\n`);
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
}

/** Deterministic pseudo-random prices and quantities (xorshift), as exact decimal strings. */
function generator() {
  let x = 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  let cents = 6_170_000;
  return {
    price() {
      cents += (next() % 5) - 2;
      return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}000000`;
    },
    quantity() {
      return `0.${String(next() % 10_000_000).padStart(8, "0")}`;
    },
    bit() {
      return (next() & 1) === 1;
    },
  };
}

async function aggTradesFile(file: string, rows: number): Promise<void> {
  const g = generator();
  const t0 = 1_723_161_255_342;
  await writeLines(file, rows, null, (i) => {
    const id = 3_000_000_000 + i;
    return `${id},${g.price()},${g.quantity()},${id},${id},${t0 + Math.floor(i / 4)},${g.bit() ? "True" : "False"},True`;
  });
}

async function equitiesFile(file: string, rows: number): Promise<void> {
  const g = generator();
  const symbols = ["BHP", "CBA", "CSL", "NAB", "WBC", "ANZ", "WES", "MQG"];
  await writeLines(file, rows, "Date,Time,Symbol,Price,Volume,Cond,BuyBroker,SellBroker,TradeNo", (i) => {
    const s = 36_000 + Math.floor(i / 200);
    const hh = String(Math.floor(s / 3600) % 24).padStart(2, "0");
    const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
    const ss = String(s % 60).padStart(2, "0");
    const ms = String(i % 1000).padStart(3, "0");
    return `20240808,${hh}:${mm}:${ss}.${ms},${symbols[i % symbols.length]},${g.price()},${(i % 997) + 1},${
      g.bit() ? "XT" : "XT LT"
    },${i % 90},${(i * 7) % 90},${i + 1}`;
  });
}

/**
 * Writes an aggTrades CSV from the capture's `@trade` frames, looped with ids and times shifted per loop,
 * until `rows` rows or `bytes` bytes.
 */
async function aggTradesFromCapture(file: string, rows: number, bytes: number): Promise<number> {
  const capture = fileURLToPath(
    new URL("../../../shared/data/binance-spot/btcusdt_20240809.gz", import.meta.url),
  );
  const { readCapture } = await import("../src/replay/capture.js");
  const trades: { p: string; q: string; T: number; m: boolean }[] = [];
  for await (const f of readCapture(capture)) {
    if (!f.raw.includes("@trade")) continue;
    const d = JSON.parse(f.raw).data as { p: string; q: string; T: number; m: boolean };
    trades.push({ p: d.p, q: d.q, T: d.T, m: d.m });
  }
  const t0 = trades[0].T;
  const span = trades[trades.length - 1].T - t0 + 1;
  const out = createWriteStream(file, { highWaterMark: 1 << 20 });
  let written = 0;
  let n = 0;
  for (let loop = 0; n < rows && written < bytes; loop++) {
    let chunk = "";
    for (const t of trades) {
      const id = 3_000_000_000 + n;
      chunk += `${id},${t.p},${t.q},${id},${id},${t.T + loop * span},${t.m ? "True" : "False"},True\n`;
      if (++n >= rows) break;
    }
    written += chunk.length;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
  return n;
}

/** DuckDB's own load of an aggTrades CSV into agg_trades_v2 (run in a child: `--duckdb-floor file db`). */
async function duckdbFloor(file: string, db: string): Promise<void> {
  const { DuckDBStore } = await import("../src/store/duckdb.js");
  const store = new DuckDBStore({ path: db });
  await store.init(); // creates the tables as k2 does
  await store.close();
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(db);
  const conn = await instance.connect();
  // with the primary key, as earlier versions created it (k2 now creates the trade tables unkeyed):
  // the figure stays comparable with those measured before
  const { createTableSql } = await import("../src/store/sql.js");
  const { TABLES } = await import("../src/schema/tables.js");
  await conn.run(`DROP TABLE agg_trades_v2; ${createTableSql(TABLES.agg_trades_v2, "duckdb")}`);
  const started = performance.now();
  const r = await conn.run(
    `INSERT INTO agg_trades_v2 SELECT uuid(), 'BINANCE-' || a, 'BTCUSDT', 'BINANCE', 'crypto',
       CASE WHEN t < 100000000000000 THEN t * 1000 ELSE t END, p, q, 'USDT',
       CASE WHEN m THEN 'SELL' ELSE 'BUY' END, [], a, epoch_us(now()), row_number() OVER (),
       json_object('first_trade_id', f::VARCHAR, 'last_trade_id', l::VARCHAR, 'is_best_match', lower(b::VARCHAR))
     FROM read_csv('${file.replace(/'/g, "''")}', header = false, columns = {'a': 'BIGINT', 'p': 'DECIMAL(18,8)',
       'q': 'DECIMAL(18,8)', 'f': 'BIGINT', 'l': 'BIGINT', 't': 'BIGINT', 'm': 'BOOLEAN', 'b': 'BOOLEAN'})
     ON CONFLICT DO NOTHING`,
  );
  const loaded = Number(r.rowsChanged);
  const elapsed = performance.now() - started;
  conn.closeSync();
  instance.closeSync();
  process.stdout.write(`${JSON.stringify({ rows: loaded, loaded, elapsed_ms: Math.round(elapsed) })}\n`);
}

/** `--compare`: k2 load against DuckDB's read_csv on the same capture-made file; one JSON line. */
async function compare(dir: string, preload: string): Promise<void> {
  const rows = arg("rows", 200_000);
  const fileMib = arg("file-mib", 1 << 20);
  const batch = arg("batch", 20_000);
  const file = join(dir, "aggtrades.csv");
  const n = await aggTradesFromCapture(
    file,
    process.argv.includes("--file-mib") ? Infinity : rows,
    fileMib * 1048576,
  );
  const bytes = (await stat(file)).size;
  const self = fileURLToPath(import.meta.url);
  const measure = async (label: string, args: string[], script: string): Promise<Record<string, number>> => {
    const db = join(dir, `${label}.duckdb`);
    const m = await runLoad([...args, db], preload, script);
    await rm(db, { force: true });
    await rm(`${db}.wal`, { force: true });
    if (m.summary.loaded !== n) throw new Error(`${label}: loaded ${m.summary.loaded} of ${n}`);
    return {
      rows_per_s: Math.round((n * 1000) / Number(m.summary.elapsed_ms)),
      peak_rss_mb: m.peak_rss_mb,
      peak_heap_mb: m.peak_heap_mb,
    };
  };
  const k2 = await measure(
    "k2",
    ["load", "binance-aggtrades", file, "--symbol", "BTCUSDT", "--batch-size", String(batch), "--db"],
    CLI,
  );
  const duck = await measure("duckdb", ["--duckdb-floor", file], self);
  process.stdout.write(
    `${JSON.stringify({ bench: "loader_compare", rows: n, file_mib: Math.round(bytes / 1048576), batch, k2, duckdb_read_csv: duck })}\n`,
  );
}

interface Measured {
  summary: Record<string, unknown>;
  wall_ms: number;
  peak_rss_mb: number;
  peak_heap_mb: number;
}

/** Runs the CLI with a preload that prints the peak RSS (KiB) on stderr at exit. */
async function runLoad(args: string[], preload: string, script = CLI): Promise<Measured> {
  const started = performance.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--import", preload, script, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, K2_LOG_LEVEL: "warn" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new Error(`k2 ${args.join(" ")} exited ${code}: ${stderr}`));
        return;
      }
      const m = /K2_BENCH_MAXRSS_KB=(\d+) K2_BENCH_HEAP_B=(\d+)/.exec(stderr);
      const lines = stdout.trim().split("\n");
      resolvePromise({
        summary: JSON.parse(lines[lines.length - 1]),
        wall_ms: Math.round(performance.now() - started),
        peak_rss_mb: m ? Math.round(Number(m[1]) / 1024) : -1,
        peak_heap_mb: m ? Math.round(Number(m[2]) / 1048576) : -1,
      });
    });
  });
}

async function main() {
  const floorAt = process.argv.indexOf("--duckdb-floor");
  if (floorAt >= 0) {
    await duckdbFloor(process.argv[floorAt + 1], process.argv[floorAt + 2]);
    return;
  }
  const rows = arg("rows", 3_000_000);
  const small = arg("small", 300_000);
  const batch = arg("batch", 20_000);
  const dir = await mkdtemp(join(tmpdir(), "k2-bench-loader-"));
  const preload = join(dir, "maxrss.mjs");
  await writeFile(
    preload,
    [
      "let heap = 0;",
      "setInterval(() => { heap = Math.max(heap, process.memoryUsage().heapUsed); }, 50).unref();",
      "process.on('exit', () => process.stderr.write(",
      "  'K2_BENCH_MAXRSS_KB=' + process.resourceUsage().maxRSS + ' K2_BENCH_HEAP_B=' + heap + '\\n'));",
      "",
    ].join("\n"),
  );
  const mapping = join(dir, "mapping.json");
  await writeFile(
    mapping,
    JSON.stringify({
      exchange: "ASX",
      currency: "AUD",
      columns: {
        symbol: "Symbol",
        price: "Price",
        quantity: "Volume",
        timestamp: {
          date: "Date",
          time: "Time",
          format: "yyyyMMdd HH:mm:ss.SSS",
          timezone: "Australia/Sydney",
        },
        trade_id: "TradeNo",
        conditions: "Cond",
      },
    }),
  );
  const results: Record<string, unknown>[] = [];
  if (process.argv.includes("--compare")) {
    try {
      await compare(dir, preload);
    } finally {
      if (!process.argv.includes("--keep")) await rm(dir, { recursive: true, force: true });
    }
    return;
  }
  try {
    const cases: [string, number, (f: string, n: number) => Promise<void>, string[]][] = [
      ["binance-aggtrades", small, aggTradesFile, ["--symbol", "BTCUSDT"]],
      ["binance-aggtrades", rows, aggTradesFile, ["--symbol", "BTCUSDT"]],
      ["csv", rows, equitiesFile, ["--mapping", mapping]],
    ];
    for (const [kind, n, make, extra] of cases) {
      const file = join(dir, `${kind}-${n}.csv`);
      process.stderr.write(`generating ${n} rows for ${kind}...\n`);
      await make(file, n);
      const bytes = (await stat(file)).size;
      const db = join(dir, `${kind}-${n}.duckdb`);
      process.stderr.write(`loading ${file} (${Math.round(bytes / 1048576)} MiB)...\n`);
      const m = await runLoad(
        ["load", kind, file, ...extra, "--db", db, "--batch-size", String(batch)],
        preload,
      );
      if (m.summary.loaded !== n) throw new Error(`${kind}: loaded ${m.summary.loaded} of ${n}`);
      const r = {
        loader: kind,
        rows: n,
        file_mib: Math.round(bytes / 1048576),
        batch,
        load_ms: m.summary.elapsed_ms,
        rows_per_s: Math.round((n * 1000) / Number(m.summary.elapsed_ms)),
        process_wall_ms: m.wall_ms,
        peak_rss_mb: m.peak_rss_mb,
        peak_heap_mb: m.peak_heap_mb,
      };
      results.push(r);
      process.stdout.write(`${JSON.stringify(r)}\n`);
      await rm(file, { force: true });
      await rm(db, { force: true });
      await rm(`${db}.wal`, { force: true });
    }
  } finally {
    if (!process.argv.includes("--keep")) await rm(dir, { recursive: true, force: true });
  }
}

await main();
