/**
 * One run over three venues: `k2 run --exchange binance,coinbase,kraken --replay B,C,K --exit-at-end`
 * (the built CLI, spawned), then one SQL query across venues.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { startRun } from "../../src/run.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { BINANCE_FILE, COINBASE_FILE, KRAKEN_FILE, lines } from "../venues/recording.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const cli = join(root, "dist/src/cli.js");
const dir = mkdtempSync(join(tmpdir(), "k2-multi-"));

beforeAll(() => {
  // the CLI is spawned from dist/ (`npm test` builds first); build once when it is missing
  if (!existsSync(cli)) execFileSync("npm", ["run", "build"], { cwd: root, stdio: "ignore" });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function k2(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { cwd: root, timeout: 60_000, env: { ...process.env, K2_LOG_LEVEL: "warn" } },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Independent counts from the raw recordings. */
function expectedCounts() {
  const coinbase = new Set<string>();
  let coinbaseTickers = 0;
  for (const l of lines(COINBASE_FILE)) {
    if (l.t !== "recv") continue;
    const o = JSON.parse(l.data!);
    for (const e of o.events ?? []) {
      if (o.channel === "market_trades")
        for (const t of e.trades) coinbase.add(`${t.product_id}/${t.trade_id}`);
      if (o.channel === "ticker") coinbaseTickers += e.tickers.length;
    }
  }
  let kraken = 0;
  let krakenTickers = 0;
  for (const l of lines(KRAKEN_FILE)) {
    if (l.t !== "recv" || !l.data!.startsWith("[")) continue;
    const a = JSON.parse(l.data!);
    if (a[a.length - 2] === "trade") kraken += a[1].length;
    if (a[a.length - 2] === "ticker") krakenTickers++;
  }
  const binanceAgg = new Set<number>();
  const binanceBook = new Set<string>();
  for (const l of lines(BINANCE_FILE)) {
    if (l.t !== "recv") continue;
    const o = JSON.parse(l.data!);
    if (o.stream.endsWith("@aggTrade")) binanceAgg.add(o.data.a);
    if (o.stream.endsWith("@bookTicker")) binanceBook.add(`${o.data.s}/${o.data.u}`);
  }
  return {
    trades: { COINBASE: coinbase.size, KRAKEN: kraken, BINANCE: binanceAgg.size },
    quotes: coinbaseTickers + krakenTickers + binanceBook.size,
  };
}

describe("multi-venue run", () => {
  it("stores all three venues in one DuckDB, and one query returns their trades in time order", async () => {
    const db = join(dir, "multi.duckdb");
    const exp = expectedCounts();
    const r = await k2([
      "run",
      "--exchange",
      "binance,coinbase,kraken",
      "--replay",
      `${BINANCE_FILE},${COINBASE_FILE},${KRAKEN_FILE}`,
      "--exit-at-end",
      "--db",
      db,
      "--http-port",
      "0",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split("\n").pop()!);
    expect(summary).toMatchObject({
      trades: exp.trades.COINBASE + exp.trades.KRAKEN,
      aggTrades: exp.trades.BINANCE,
      quotes: exp.quotes,
      rejected: 0,
      gaps: 0,
    });

    const store = new DuckDBStore({ path: db, readOnly: true });
    await store.init();
    try {
      // Binance's recording holds aggregate trades (agg_trades_v2); Coinbase's and Kraken's trades
      const rows = await store.query(
        `SELECT exchange, symbol, "timestamp", price, quantity, side FROM trades_v2
         UNION ALL
         SELECT exchange, symbol, "timestamp", price, quantity, side FROM agg_trades_v2
         ORDER BY "timestamp", exchange, symbol`,
      );
      const byExchange: Record<string, number> = {};
      for (const row of rows)
        byExchange[row.exchange as string] = (byExchange[row.exchange as string] ?? 0) + 1;
      expect(byExchange).toEqual(exp.trades);
      const times = rows.map((row) => BigInt(row.timestamp as string));
      for (let i = 1; i < times.length; i++) expect(times[i] >= times[i - 1]).toBe(true);
      // the recordings are from 2021 (Binance, Kraken) and 2026 (Coinbase): time order interleaves venues
      expect(rows[0].exchange).not.toBe("COINBASE");
      expect(rows[rows.length - 1].exchange).toBe("COINBASE");
      const [q] = await store.query("SELECT count(*) AS n, count(DISTINCT exchange) AS e FROM quotes_v2");
      expect([Number(q.n), Number(q.e)]).toEqual([exp.quotes, 3]);
    } finally {
      await store.close();
    }
  });

  it("exits 2 with a message naming the flag when the replay files do not fit the exchanges", async () => {
    const r = await k2([
      "run",
      "--exchange",
      "binance,coinbase,kraken",
      "--replay",
      `${BINANCE_FILE},${KRAKEN_FILE},${COINBASE_FILE}`,
      "--exit-at-end",
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^k2: --replay: ".*KRAKEN.jsonl.gz" holds KRAKEN data, not COINBASE/);
  });

  it("is healthy only while every venue's feed is connected", async () => {
    const config = resolveRunConfig(
      {
        exchange: "binance,coinbase,kraken",
        replay: `${BINANCE_FILE},${COINBASE_FILE},${KRAKEN_FILE}`,
        db: join(dir, "health.duckdb"),
        httpPort: "0",
      },
      {},
    );
    const running = await startRun(config, createLogger("silent"), { replayInProcess: true });
    try {
      expect(running.feeds.map((f) => f.venue.exchange)).toEqual(["BINANCE", "COINBASE", "KRAKEN"]);
      const health = async () => {
        const res = await fetch(`http://127.0.0.1:${running.httpPort}/health`);
        return [res.status, await res.text()];
      };
      for (let i = 0; i < 200 && running.feeds.some((f) => f.connection.state !== "CONNECTED"); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await health()).toEqual([200, "ok\n"]);
      await running.feeds[2].connection.stop();
      expect(await health()).toEqual([503, "feed KRAKEN disconnected\n"]);
    } finally {
      await running.stop("test");
    }
  });
});
