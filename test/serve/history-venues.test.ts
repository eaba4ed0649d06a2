/**
 * Issue #16, `client.replay` across venues: one `k2 run --exchange binance,coinbase --replay
 * btcusdt_20240808.gz,COINBASE.jsonl.gz` stores both recordings in one DuckDB file; `client.replay` over
 * the Binance symbol and both Coinbase symbols returns every stored trade and quote of each, merged in
 * timestamp order (ties: venue sequence), whatever the order the symbols are named in.
 */
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { K2Client } from "../../src/client.js";
import { CAPTURE, ensureBuilt, type K2Process, ROOT, sleep, spawnK2Run, tempDir } from "./helpers.js";

const COINBASE = resolve(ROOT, "../shared/data/cryptofeed/COINBASE.jsonl.gz");
const SYMBOLS = ["ETH-USD", "BTC-USD", "BTCUSDT"]; // Coinbase's first: the merge, not the naming, orders
const tmp = tempDir();
let k2: K2Process;
let base: string;

beforeAll(async () => {
  ensureBuilt();
  k2 = await spawnK2Run([
    "--exchange",
    "binance,coinbase",
    "--replay",
    `${CAPTURE},${COINBASE}`,
    "--symbols",
    "binance:BTCUSDT,coinbase:BTC-USD,coinbase:ETH-USD",
    "--speed",
    "max",
    "--http-port",
    "0",
    "--db",
    `${tmp.dir}/k2.duckdb`,
  ]);
  base = `http://127.0.0.1:${k2.port}`;
  const end = Date.now() + 120_000;
  while (!k2.stderr().includes("replay finished")) {
    if (Date.now() > end)
      throw new Error(`the replays did not finish within 120 s:\n${k2.stderr().slice(-2000)}`);
    await sleep(200);
  }
}, 150_000);

afterAll(async () => {
  if (k2 && k2.child.exitCode === null) {
    k2.child.kill("SIGINT");
    await Promise.race([k2.exited, sleep(10_000)]);
    if (k2.child.exitCode === null) k2.child.kill("SIGKILL");
  }
  tmp.cleanup();
});

interface SymbolRow {
  exchange: string;
  symbol: string;
  trades: number;
  quotes: number;
}

/** Records received and not yet stored (`/api/v1/status` store lag). */
async function storeLag(): Promise<number> {
  const body = (await (await fetch(`${base}/api/v1/status`)).json()) as { store: { lag: number } };
  return body.store.lag;
}

/**
 * The store's per-instrument counts once nothing waits to be stored and two reads a second apart agree
 * (the last batch written: a tail shorter than a batch waits up to `--batch-max-wait-ms`, 2 s, so two
 * equal reads alone can both come before it).
 */
async function settledCounts(): Promise<SymbolRow[]> {
  let prev = "";
  for (;;) {
    const idle = (await storeLag()) === 0;
    const body = (await (await fetch(`${base}/api/v1/symbols`)).json()) as { data: SymbolRow[] };
    const rows = body.data.filter((r) => SYMBOLS.includes(r.symbol));
    const now = JSON.stringify(rows.map((r) => [r.exchange, r.symbol, r.trades, r.quotes]));
    if (idle && now === prev && (await storeLag()) === 0) return rows;
    prev = idle ? now : "";
    await sleep(1000);
  }
}

describe("client.replay over Binance and Coinbase recordings stored in one DuckDB", () => {
  it("returns every trade and quote of both venues merged in timestamp order", async () => {
    const counts = await settledCounts();
    expect(counts.map((r) => `${r.exchange}:${r.symbol}`).sort()).toEqual([
      "BINANCE:BTCUSDT",
      "COINBASE:BTC-USD",
      "COINBASE:ETH-USD",
    ]);
    const binance = counts.find((r) => r.exchange === "BINANCE") as SymbolRow;
    expect(binance).toMatchObject({ trades: 9757, quotes: 28_040 });
    const client = new K2Client({ url: `ws://127.0.0.1:${k2.port}/ws` });
    const got = new Map<string, { trades: number; quotes: number }>();
    const ids = new Set<string>();
    let prev: { timestamp: number; source_sequence: number | null; exchange: string } | null = null;
    let n = 0;
    let venueChanges = 0;
    let symbolChanges = 0;
    let prevSymbol = "";
    for await (const r of client.replay({ symbols: SYMBOLS, channels: ["trades", "quotes"], from: 0 })) {
      n++;
      const k = `${r.data.exchange}:${r.data.symbol}`;
      const c = got.get(k) ?? { trades: 0, quotes: 0 };
      c[r.channel]++;
      got.set(k, c);
      ids.add(`${r.channel}/${r.data.message_id}`);
      if (prev) {
        const dt = r.data.timestamp - prev.timestamp;
        if (dt < 0 || (dt === 0 && (r.data.source_sequence ?? -1) < (prev.source_sequence ?? -1)))
          expect.fail(`record ${n} (${k} at ${r.data.timestamp}) out of order after ${prev.timestamp}`);
        if (r.data.exchange !== prev.exchange) venueChanges++;
      }
      if (r.data.symbol !== prevSymbol) symbolChanges++;
      prevSymbol = r.data.symbol;
      prev = r.data;
    }
    for (const row of counts)
      expect(got.get(`${row.exchange}:${row.symbol}`)).toEqual({ trades: row.trades, quotes: row.quotes });
    expect(ids.size).toBe(n); // nothing twice
    // the recordings do not overlap in time (2024 and 2026): Binance first, then Coinbase, whose two
    // symbols interleave
    expect(venueChanges).toBe(1);
    expect(symbolChanges).toBeGreaterThan(100);
    console.log(
      `client.replay: ${n} records (${[...got].map(([k, v]) => `${k} ${v.trades} trades ${v.quotes} quotes`).join(", ")}); ${symbolChanges} symbol changes`,
    );
  }, 180_000);
});
