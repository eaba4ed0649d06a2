/**
 * Store write throughput: records/s of trade batches written into PostgreSQL (unnest arrays and COPY
 * into a staging table) and into DuckDB for comparison, at several batch sizes, each into a fresh
 * database, batches written one after another as `k2 persist` does (each one transaction with
 * `ON CONFLICT DO NOTHING`).
 *
 * The records are the real trades of `../shared/data/binance-spot/*.gz` (normalized by the Binance
 * venue), repeated with new trade ids and times until there are `--records` of them.
 *
 *   npm run build && node dist/bench/store.js [--records 200000] [--batch 500,5000]
 *     [--stores pg-unnest,pg-copy,duckdb] [--pg postgres://postgres@127.0.0.1:5432/postgres]
 *
 * `--pg` is an admin connection used to `CREATE DATABASE k2_bench_<random>` (dropped afterwards).
 * Prints one line per run and a JSON summary as the last line.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { readCapture } from "../src/replay/capture.js";
import { deterministicMessageId } from "../src/schema/message-id.js";
import type { TradeV2 } from "../src/schema/records.js";
import { DuckDBStore } from "../src/store/duckdb.js";
import { PostgresStore } from "../src/store/postgres.js";
import { emptyBatch, type Store } from "../src/store/store.js";
import { binance } from "../src/venues/binance.js";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "200000" },
    batch: { type: "string", default: "500,5000" },
    stores: { type: "string", default: "pg-unnest,pg-copy,duckdb" },
    pg: {
      type: "string",
      default: process.env.K2_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    },
    data: { type: "string" },
  },
});
const N = Number(values.records);
const batchSizes = values.batch.split(",").map(Number);
const stores = values.stores.split(",");
const here = dirname(fileURLToPath(import.meta.url));
// dist/bench/store.js or bench/store.ts → the repo root is two or one levels up
const root = here.includes(`${join("dist", "bench")}`) ? join(here, "../..") : join(here, "..");
const dataDir = values.data ?? join(root, "../shared/data/binance-spot");

/** The real trades of the captures. */
async function loadTrades(): Promise<TradeV2[]> {
  const trades: TradeV2[] = [];
  const sink = {
    trade: (t: TradeV2, type: string) => {
      if (type === "trades") trades.push(t);
    },
    quote() {},
    deadLetter() {},
    gap() {},
    control() {},
  };
  for (const f of readdirSync(dataDir)
    .filter((x) => x.endsWith(".gz"))
    .sort()) {
    const symbol = f.split("_")[0].toUpperCase();
    const normalizer = binance.createNormalizer(sink, { symbols: [symbol], streams: ["trade"] });
    for await (const frame of readCapture(join(dataDir, f))) {
      normalizer.normalize(frame.raw, Number(frame.ns.slice(0, -3) || "0"));
    }
  }
  return trades;
}

/** `n` distinct trades: the real ones, repeated with new ids, one hour later per round. */
function expand(real: TradeV2[], n: number): TradeV2[] {
  const out: TradeV2[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const t = real[i % real.length];
    const round = Math.floor(i / real.length);
    const id = 10_000_000_000 + i;
    out[i] = {
      ...t,
      trade_id: `BINANCE-${id}`,
      message_id: deterministicMessageId(`BINANCE/trades/${t.symbol}/${id}`),
      source_sequence: id,
      timestamp: t.timestamp + round * 3_600_000_000,
      platform_sequence: i + 1,
    };
  }
  return out;
}

async function timeWrites(store: Store, trades: TradeV2[], size: number): Promise<number> {
  const t0 = performance.now();
  let stored = 0;
  for (let i = 0; i < trades.length; i += size) {
    const b = emptyBatch();
    b.trades = trades.slice(i, i + size);
    stored += (await store.write(b)).trades;
  }
  const s = (performance.now() - t0) / 1000;
  if (stored !== trades.length) throw new Error(`stored ${stored} of ${trades.length}`);
  return Math.round(trades.length / s);
}

async function withPgDatabase<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const name = `k2_bench_${randomBytes(5).toString("hex")}`;
  const admin = postgres(values.pg, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(values.pg);
  url.pathname = `/${name}`;
  try {
    return await fn(url.toString());
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  const real = await loadTrades();
  const trades = expand(real, N);
  console.log(`${real.length} real trades from ${dataDir}, expanded to ${trades.length}`);
  const results: { store: string; batch: number; records: number; records_per_s: number }[] = [];
  for (const size of batchSizes) {
    for (const name of stores) {
      let rate: number;
      if (name.startsWith("pg-")) {
        const insertMethod = name === "pg-copy" ? "copy" : "unnest";
        rate = await withPgDatabase(async (url) => {
          const store = new PostgresStore({ url, insertMethod });
          await store.init();
          try {
            return await timeWrites(store, trades, size);
          } finally {
            await store.close();
          }
        });
      } else if (name === "duckdb") {
        const dir = mkdtempSync(join(tmpdir(), "k2-bench-"));
        const store = new DuckDBStore({ path: join(dir, "bench.duckdb") });
        await store.init();
        try {
          rate = await timeWrites(store, trades, size);
        } finally {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        }
      } else {
        throw new Error(`--stores: unknown store ${name} (pg-unnest, pg-copy, duckdb)`);
      }
      results.push({ store: name, batch: size, records: N, records_per_s: rate });
      console.log(
        `${name.padEnd(10)} batch ${String(size).padStart(6)}: ${String(rate).padStart(8)} records/s`,
      );
    }
  }
  console.log(JSON.stringify({ bench: "store", results }));
}

await main();
