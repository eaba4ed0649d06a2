/**
 * DuckDB idempotent-write micro-benchmark: the move of staged trade rows into a trade table, batch by
 * batch into one growing table, for each way of keeping the writes idempotent.
 *
 * - `pk`: the table with its primary key (exchange, symbol, trade_id), `INSERT … ON CONFLICT DO NOTHING`
 *   (the store's move before the unkeyed trade tables; still that of files created with the key);
 * - `unkeyed`: no primary key; the first staged row per key, anti-joined against the table's rows of the
 *   batch's time range given as constants (what the store does now, `moveUnkeyedTrades`);
 * - `anti-all`: no primary key; the same anti-join against the whole table (no time range);
 * - `plain`: no primary key and no check at all (not idempotent: the ceiling).
 *
 * Rows are generated in SQL (Binance-like trade ids and times, 1 ms apart), staged into a temporary
 * table, then moved in a transaction; only the move is timed. After the last batch, the last batch is
 * moved again: every variant but `plain` must store none of it (checked; the run fails otherwise).
 * Each variant runs in a child process on a fresh file with one DuckDB thread.
 *
 *   npm run build && node dist/bench/duckdb-keys.js [--rows 1000000] [--batch 10000] [--variants pk,unkeyed]
 *
 * Prints one JSON line per variant: rows/s of the moves, ms per batch over the last 10 batches, the
 * repeated batch's ms and peak RSS (MiB).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const VARIANTS = ["pk", "unkeyed", "anti-all", "plain"] as const;
type Variant = (typeof VARIANTS)[number];

const { values } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    batch: { type: "string", default: "10000" },
    variants: { type: "string", default: VARIANTS.join(",") },
    child: { type: "string" },
  },
});

const COLS = `message_id UUID NOT NULL, trade_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL,
  exchange VARCHAR NOT NULL, asset_class VARCHAR NOT NULL, "timestamp" BIGINT NOT NULL,
  price DECIMAL(18,8) NOT NULL, quantity DECIMAL(18,8) NOT NULL, currency VARCHAR NOT NULL,
  side VARCHAR NOT NULL, trade_conditions VARCHAR[] NOT NULL, source_sequence BIGINT,
  ingestion_timestamp BIGINT NOT NULL, platform_sequence BIGINT NOT NULL, vendor_data JSON NOT NULL`;
const KEY = "exchange, symbol, trade_id";
const T0 = 1_723_161_600_000_000;

/** Staged rows `from..from+n-1` (trade id and time follow from the row number). */
function stage(from: number, n: number): string {
  return `INSERT INTO s SELECT uuid(), 'BINANCE-' || (3735693016 + i), 'BTCUSDT', 'BINANCE', 'crypto',
    ${T0} + i * 1000, 61000 + (i % 1000) / 100, (i % 777) / 1000, 'USDT', 'BUY', [], 3735693016 + i,
    ${T0} + i * 1000 + 5, i, '{}' FROM range(${from}, ${from + n}) r(i)`;
}

function move(variant: Variant, from: number, n: number): string {
  const on = KEY.split(", ")
    .map((k) => `t.${k} = s.${k}`)
    .join(" AND ");
  const firsts = `(SELECT * FROM s QUALIFY row_number() OVER (PARTITION BY ${KEY} ORDER BY rowid) = 1) s`;
  switch (variant) {
    case "pk":
      return "INSERT INTO t SELECT * FROM s ON CONFLICT DO NOTHING";
    case "plain":
      return "INSERT INTO t SELECT * FROM s";
    case "anti-all":
      return `INSERT INTO t SELECT s.* FROM ${firsts} ANTI JOIN (SELECT ${KEY} FROM t) t ON ${on}`;
    case "unkeyed": {
      const lo = T0 + from * 1000;
      const hi = T0 + (from + n - 1) * 1000;
      return `INSERT INTO t SELECT s.* FROM ${firsts}
        ANTI JOIN (SELECT ${KEY} FROM t WHERE "timestamp" BETWEEN ${lo} AND ${hi}) t ON ${on}`;
    }
  }
}

async function child(variant: Variant, rows: number, batch: number): Promise<void> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const dir = mkdtempSync(join(tmpdir(), "k2-bench-keys-"));
  try {
    const instance = await DuckDBInstance.create(join(dir, "b.duckdb"), { threads: "1" });
    const c = await instance.connect();
    await c.run(`CREATE TABLE t (${COLS}${variant === "pk" ? `, PRIMARY KEY (${KEY})` : ""})`);
    await c.run(`CREATE TEMP TABLE s (${COLS})`);
    const batches = Math.ceil(rows / batch);
    let total = 0;
    let last10 = 0;
    const timed = async (from: number): Promise<[number, number]> => {
      const n = Math.min(batch, rows - from);
      await c.run(stage(from, n));
      const t0 = performance.now();
      const r = await c.run(`BEGIN; ${move(variant, from, n)}; COMMIT`);
      const ms = performance.now() - t0;
      await c.run("DELETE FROM s");
      return [ms, Number(r.rowsChanged)];
    };
    for (let b = 0; b < batches; b++) {
      const [ms] = await timed(b * batch);
      total += ms;
      if (b >= batches - 10) last10 += ms;
    }
    const [againMs, againStored] = await timed((batches - 1) * batch);
    if (variant !== "plain" && againStored !== 0)
      throw new Error(`${variant}: a batch moved again stored ${againStored}`);
    c.closeSync();
    instance.closeSync();
    process.stdout.write(
      `${JSON.stringify({
        bench: "duckdb_keys",
        variant,
        rows,
        batch,
        rows_per_s: Math.round((rows * 1000) / total),
        last10_ms_per_batch: Math.round((last10 / Math.min(10, batches)) * 10) / 10,
        again_ms: Math.round(againMs),
        max_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
      })}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows = Number(values.rows);
const batch = Number(values.batch);
if (!Number.isSafeInteger(rows) || rows <= 0 || !Number.isSafeInteger(batch) || batch <= 0) {
  throw new Error("--rows and --batch: expected positive integers");
}
if (values.child) {
  await child(values.child as Variant, rows, batch);
} else {
  for (const v of values.variants.split(",")) {
    if (!(VARIANTS as readonly string[]).includes(v)) throw new Error(`--variants: unknown ${v}`);
    const r = spawnSync(
      process.execPath,
      [fileURLToPath(import.meta.url), "--child", v, "--rows", String(rows), "--batch", String(batch)],
      { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" },
    );
    if (r.status !== 0) throw new Error(`variant ${v} exited ${r.status}`);
    process.stdout.write(r.stdout);
  }
}
