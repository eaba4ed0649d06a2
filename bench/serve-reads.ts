/**
 * Do API reads wait behind batch writes? Measures the latency of the REST API's trades page query
 * (`StoreMarketDataSource.trades`, newest 100 trades of a symbol) while large batches are written to
 * the same DuckDB store, with reads on a second connection of the same instance (the default) and on
 * the writer's own connection (`separateReadConnection: false`).
 *
 * Data: the real trades of `../shared/data/binance-spot/*.gz` normalized by the Binance normalizer,
 * written in batches of 50,000 (copies with fresh trade ids and message ids, so every row is new).
 *
 *   npm run build && node dist/bench/serve-reads.js [copies=12]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { readCapture } from "../src/replay/capture.js";
import type { TradeV2 } from "../src/schema/records.js";
import { LiveFeed } from "../src/serve/live/feed.js";
import { StoreMarketDataSource } from "../src/serve/rest/store-source.js";
import { DuckDBStore } from "../src/store/duckdb.js";
import { emptyBatch } from "../src/store/store.js";
import { binance } from "../src/venues/binance.js";

const DATA = resolve(import.meta.dirname, "../../../shared/data/binance-spot");
const BATCH = 50_000;

async function loadTrades(): Promise<TradeV2[]> {
  const trades: TradeV2[] = [];
  for (const file of ["btcusdt_20240808.gz", "btcusdt_20240809.gz", "ethusdt_20240808.gz"]) {
    const symbol = file.split("_")[0].toUpperCase();
    const normalizer = binance.createNormalizer(
      {
        trade: (t, type) => {
          if (type === "trades") trades.push(t);
        },
        quote: () => undefined,
        deadLetter: () => undefined,
        gap: () => undefined,
        control: () => undefined,
      },
      { symbols: [symbol], streams: ["trade"] },
    );
    for await (const f of readCapture(join(DATA, file))) {
      normalizer.normalize(f.raw, f.ns ? Number(f.ns.slice(0, -3)) : 0);
    }
  }
  return trades;
}

function copy(t: TradeV2, n: number): TradeV2 {
  const hex = n.toString(16).padStart(4, "0");
  return { ...t, trade_id: `${t.trade_id}-${n}`, message_id: `${t.message_id.slice(0, -4)}${hex}` };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function run(separate: boolean, trades: TradeV2[], copies: number) {
  const dir = mkdtempSync(join(tmpdir(), "k2-bench-reads-"));
  const store = new DuckDBStore({ path: join(dir, "b.duckdb"), separateReadConnection: separate });
  await store.init();
  const source = new StoreMarketDataSource({ store, live: new LiveFeed() });
  // seed one copy so reads have data from the start
  await store.write({ ...emptyBatch(), trades: trades.map((t) => copy(t, 0)) });
  const all: TradeV2[] = [];
  for (let n = 1; n <= copies; n++) for (const t of trades) all.push(copy(t, n));
  let writing = true;
  const latencies: number[] = [];
  const reader = (async () => {
    while (writing) {
      const t0 = performance.now();
      const page = await source.trades({ symbol: "BTCUSDT", limit: 100, order: "desc" });
      latencies.push(performance.now() - t0);
      if (page.data.length !== 100) throw new Error("short page");
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  const w0 = performance.now();
  for (let i = 0; i < all.length; i += BATCH) {
    await store.write({ ...emptyBatch(), trades: all.slice(i, i + BATCH) });
  }
  const writeMs = performance.now() - w0;
  writing = false;
  await reader;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    reads: separate ? "second connection" : "writer's connection",
    rows_written: all.length,
    write_rows_per_s: Math.round((all.length * 1000) / writeMs),
    read_queries: latencies.length,
    read_p50_ms: +pct(latencies, 50).toFixed(2),
    read_p99_ms: +pct(latencies, 99).toFixed(2),
    read_max_ms: +Math.max(...latencies).toFixed(2),
  };
}

const copies = Number(process.argv[2] ?? 12);
const trades = await loadTrades();
console.log(`${trades.length} real trades × ${copies} copies, batches of ${BATCH}`);
const results = [];
for (const separate of [false, true, false, true]) results.push(await run(separate, trades, copies));
console.table(results);
