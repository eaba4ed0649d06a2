/**
 * Restart with a gap: a `k2 run` replays part of btcusdt_20240808 and stops; while it is down the
 * venue trades on (the replay server skips 500 trade frames); a second run on the same DuckDB file
 * resumes gap detection from the store's last trade id, records one gap with the missing range, fills
 * it from the replay server's REST emulation (historicalTrades) and marks it `filled`: every trade of
 * the file is stored once, with the file's exact volume.
 */
import { describe, expect, it } from "vitest";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { startRun } from "../../src/run.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { emptyBatch } from "../../src/store/store.js";
import { framesWhere, sharedData } from "../helpers/capture.js";
import { silentLogger, testConfig, waitFor } from "../helpers/run.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");
const SKIPPED_TRADES = 500;

/** Trade id of a combined-stream trade frame, or null for other frames. */
function tradeId(raw: string): number | null {
  if (!raw.startsWith('{"stream":"btcusdt@trade"')) return null;
  return (JSON.parse(raw) as { data: { t: number } }).data.t;
}

describe("restart: sequence state survives, the gap is backfilled", () => {
  it("stores every trade once after a restart that missed 500, the gap row filled", async () => {
    // the frames the server sends for trade + bookTicker, in its order (its cursor indexes them)
    const frames = await framesWhere(
      FILE,
      (r) => r.startsWith('{"stream":"btcusdt@trade"') || r.startsWith('{"stream":"btcusdt@bookTicker"'),
    );
    expect(frames).toHaveLength(37_797);

    // run 1: part of the capture, then stopped
    const server1 = new BinanceReplayServer({ file: FILE, speed: 10, resume: true });
    await server1.start();
    const config = testConfig({ wsUrl: server1.url, batchMaxWaitMs: 200 });
    const run1 = await startRun(config, silentLogger());
    let cursor: number;
    try {
      await waitFor(() => server1.cursor > 8000, 60_000, "run 1 to receive 8000 frames");
    } finally {
      await run1.stop("test: first run stops");
      cursor = server1.cursor;
      await server1.stop();
    }
    const check = new DuckDBStore({ path: config.db, readOnly: true });
    await check.init();
    const [{ last }] = await check.query("SELECT max(source_sequence) AS last FROM trades_v2");
    await check.close();
    const lastStored = Number(last);

    // while k2 is down, 500 trades happen: the server resumes past them
    let startAt = cursor;
    for (let skipped = 0; skipped < SKIPPED_TRADES; startAt++)
      if (tradeId(frames[startAt]) !== null) skipped++;
    let firstNew: number | null = null;
    for (let i = startAt; firstNew === null; i++) firstNew = tradeId(frames[i]);
    const expectedGap = { from: lastStored + 1, to: firstNew - 1 };
    expect(expectedGap.to - expectedGap.from + 1).toBeGreaterThanOrEqual(SKIPPED_TRADES);

    // run 2 on the same file: resumes from the store, fills the gap from the server's REST emulation
    const server2 = new BinanceReplayServer({ file: FILE, speed: "max", resume: true, startAt });
    const ended = new Promise<void>((r) => server2.once("end", () => r()));
    await server2.start();
    const t0 = performance.now();
    const run2 = await startRun(
      testConfig({ db: config.db, wsUrl: server2.url, batchMaxWaitMs: 200, restUrls: [server2.restUrl] }),
      silentLogger(),
    );
    let fillMs = 0;
    try {
      await ended;
      await waitFor(
        async () => {
          const [g] = await run2.store.query(
            "SELECT count(*) AS n FROM sequence_gaps WHERE status = 'filled'",
          );
          if (Number(g.n) > 0 && fillMs === 0) fillMs = performance.now() - t0;
          const [t] = await run2.store.query("SELECT count(*) AS n FROM trades_v2");
          return Number(g.n) === 1 && Number(t.n) === 9757;
        },
        60_000,
        "the gap filled and every trade stored",
      );
    } finally {
      const summary = await run2.stop("test done");
      await server2.stop();
      const b = run2.feed.backfill.counts;
      console.log(
        `restart backfill: gap ${expectedGap.from}..${expectedGap.to} (${expectedGap.to - expectedGap.from + 1} trades), ` +
          `${b.records} records backfilled, ${b.requests} requests, ${b.rateLimited} x 429, ` +
          `backfill ${b.fillMs} ms, gap row filled ${Math.round(fillMs)} ms after the restart`,
      );
      expect(summary).toMatchObject({ gaps_detected: 1, gaps_filled: 1, missing: 0 });
    }

    const s = new DuckDBStore({ path: config.db, readOnly: true });
    await s.init();
    try {
      const [t] = await s.query(
        `SELECT count(*) AS n, count(DISTINCT trade_id) AS ids, sum(quantity)::VARCHAR AS volume,
           min(source_sequence) AS first, max(source_sequence) AS last,
           count(*) FILTER (WHERE vendor_data->>'source' = 'rest_backfill') AS backfilled
         FROM trades_v2`,
      );
      expect(t).toEqual({
        n: "9757",
        ids: "9757",
        volume: "212.03315000",
        first: "3735683259",
        last: "3735693015",
        backfilled: String(expectedGap.to - expectedGap.from + 1),
      });
      const gaps = await s.query(
        "SELECT exchange, symbol, data_type, from_sequence, to_sequence, status, backfilled FROM sequence_gaps",
      );
      expect(gaps).toEqual([
        {
          exchange: "BINANCE",
          symbol: "BTCUSDT",
          data_type: "trades",
          from_sequence: String(expectedGap.from),
          to_sequence: String(expectedGap.to),
          status: "filled",
          backfilled: String(expectedGap.to - expectedGap.from + 1),
        },
      ]);
      // the backfilled trades are exactly the gap's ids
      const [r] = await s.query(
        `SELECT min(source_sequence) AS lo, max(source_sequence) AS hi FROM trades_v2
         WHERE vendor_data->>'source' = 'rest_backfill'`,
      );
      expect(r).toEqual({ lo: String(expectedGap.from), hi: String(expectedGap.to) });
    } finally {
      await s.close();
    }
  }, 120_000);

  it("takes over a gap an earlier run left open (stopped mid-backfill) and fills it", async () => {
    const first = 3_735_683_259;
    const config = testConfig({ batchMaxWaitMs: 200 });
    const seed = new DuckDBStore({ path: config.db });
    await seed.init();
    await seed.write({
      ...emptyBatch(),
      gaps: [
        {
          exchange: "BINANCE",
          symbol: "BTCUSDT",
          data_type: "trades",
          from_sequence: first + 100,
          to_sequence: first + 199,
          detected_at: 1,
        },
      ],
    });
    await seed.close();
    // the stream delivers only the capture's last frames (none of the gap's trades)
    const server = new BinanceReplayServer({ file: FILE, speed: "max", resume: true, startAt: 37_000 });
    await server.start();
    const run = await startRun(
      testConfig({ db: config.db, wsUrl: server.url, batchMaxWaitMs: 200, restUrls: [server.restUrl] }),
      silentLogger(),
    );
    let summary: Awaited<ReturnType<typeof run.stop>>;
    try {
      await waitFor(
        async () => {
          const [g] = await run.store.query("SELECT status FROM sequence_gaps");
          return g.status === "filled";
        },
        30_000,
        "the open gap filled",
      );
    } finally {
      summary = await run.stop("test done");
      await server.stop();
    }
    expect(summary).toMatchObject({ gaps: 0, gaps_detected: 1, gaps_filled: 1, missing: 0 });
    const s = new DuckDBStore({ path: config.db, readOnly: true });
    await s.init();
    try {
      const [t] = await s.query(
        `SELECT count(*) AS n, min(source_sequence) AS lo, max(source_sequence) AS hi FROM trades_v2
         WHERE vendor_data->>'source' = 'rest_backfill'`,
      );
      expect(t).toEqual({ n: "100", lo: String(first + 100), hi: String(first + 199) });
      expect(await s.query("SELECT status, backfilled FROM sequence_gaps")).toEqual([
        { status: "filled", backfilled: "100" },
      ]);
    } finally {
      await s.close();
    }
  }, 60_000);
});
