/**
 * Candles over PostgreSQL, end to end with real processes on loopback: `btcusdt_20240808.gz` is replayed
 * by `k2 run --exit-at-end` once into a PostgreSQL database and once into a DuckDB file; then a
 * `k2 serve` over each store answers `GET /api/v1/candles`. For every interval (1s … 1d), over the whole
 * capture (`k2 serve` tails a private nats-server on which nothing is published):
 * - the SQL candles (`source=trades`) of PostgreSQL equal DuckDB's field by field (exact strings), also
 *   page by page through cursors in both orders and for a widened from/to range;
 * - the closed candles the live aggregator stored in PostgreSQL's candles_v2 (`source=live`, and the
 *   rows read directly) equal the SQL candles.
 * Needs the loopback PostgreSQL server (`K2_TEST_PG_URL`) and a build (`dist/`).
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CANDLE_INTERVALS, type CandleV2 } from "../../src/schema/candles.js";
import { toUnits, unitsToString, vwapFromSums } from "../../src/schema/decimal.js";
import { createStore } from "../../src/store/index.js";
import type { Store } from "../../src/store/store.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, type RunningCli, runCli, startCli, tempDir } from "../helpers/cli.js";
import { expectedFigures } from "../helpers/expected.js";
import { freePort, hasNatsServer, startNatsServer } from "../helpers/servers.js";
import { storedCandles } from "../store/contract.js";
import { createTestDatabase, type TestDatabase } from "../store/pg.js";
import { getJson } from "./k2-process.js";

const FILE = "btcusdt_20240808.gz";
const CAPTURE = sharedData(`binance-spot/${FILE}`);

interface CandlePage {
  data: CandleV2[];
  next_cursor: string | null;
  open?: CandleV2[];
}

/** Replays the capture into `db` with `k2 run --exit-at-end`; returns the summary line. */
async function replayInto(db: string): Promise<Record<string, number | string>> {
  const r = await runCli(
    [
      ["run", "--replay", CAPTURE, "--speed", "max", "--exit-at-end", "--http-port", "0"],
      ["--symbols", "BTCUSDT", "--streams", "trade,bookTicker", "--db", db],
    ].flat(),
    { env: { K2_LOG_LEVEL: "warn" }, timeoutMs: 180_000 },
  );
  if (r.code !== 0) throw new Error(`k2 run --db ${db} exited ${r.code}:\n${r.stderr.slice(-2000)}`);
  return lastJsonLine(r.stdout);
}

/**
 * `k2 serve` over `db`, tailing a quiet bus (nothing is published on `prefix`: the store is all it
 * serves); resolves with its API base URL.
 */
async function serve(db: string, bus: string, children: RunningCli[]): Promise<string> {
  const c = startCli(["serve", "--bus", bus, "--http-port", "0", "--db", db]);
  children.push(c);
  return `http://127.0.0.1:${await c.httpPort}/api/v1`;
}

/** Every page of `/candles?params` through next_cursor. */
async function allPages(api: string, params: Record<string, string>): Promise<CandleV2[]> {
  const rows: CandleV2[] = [];
  let cursor: string | null = null;
  for (let pages = 0; ; pages++) {
    expect(pages).toBeLessThan(1000);
    const q: URLSearchParams = new URLSearchParams(cursor ? { ...params, cursor } : params);
    const { status, body }: { status: number; body: CandlePage } = await getJson<CandlePage>(
      `${api}/candles?${q}`,
    );
    expect(status).toBe(200);
    rows.push(...body.data);
    cursor = body.next_cursor;
    if (!cursor) return rows;
  }
}

describe.skipIf(!existsSync(CAPTURE) || !hasNatsServer)(
  "candles over PostgreSQL equal DuckDB's (btcusdt_20240808.gz)",
  () => {
    const expected = expectedFigures().find((f) => f.file === FILE)!;
    const dir = tempDir("k2-pg-candles-");
    const duckPath = join(dir, "k2.duckdb");
    const children: RunningCli[] = [];
    let pgDb: TestDatabase;
    let pgApi: string;
    let duckApi: string;
    let pgStore: Store;
    let nats: ChildProcess | undefined;

    beforeAll(async () => {
      pgDb = await createTestDatabase();
      const [pgSummary, duckSummary] = await Promise.all([replayInto(pgDb.url), replayInto(duckPath)]);
      for (const s of [pgSummary, duckSummary]) {
        expect(s).toMatchObject({ trades: expected.trades, quotes: expected.quotes, rejected: 0 });
      }
      const natsPort = await freePort();
      nats = await startNatsServer(natsPort, join(dir, "nats"));
      const bus = (prefix: string) => `nats://127.0.0.1:${natsPort}?prefix=${prefix}`;
      [pgApi, duckApi] = await Promise.all([
        serve(pgDb.url, bus("pgcandles"), children),
        serve(duckPath, bus("duckcandles"), children),
      ]);
      pgStore = createStore(pgDb.url, { readOnly: true });
      await pgStore.init();
    }, 240_000);

    afterAll(async () => {
      for (const c of children) {
        if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGTERM");
      }
      await Promise.all(children.map((c) => c.exited));
      nats?.kill("SIGTERM");
      await pgStore?.close();
      await pgDb?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("computes the same candles from PostgreSQL as from DuckDB, field by field, in every interval", async () => {
      for (const interval of CANDLE_INTERVALS) {
        const url = `/candles?symbol=BTCUSDT&interval=${interval}&limit=5000`;
        const t0 = performance.now();
        const pg = await getJson<CandlePage>(`${pgApi}${url}`);
        const t1 = performance.now();
        const duck = await getJson<CandlePage>(`${duckApi}${url}`);
        const t2 = performance.now();
        console.log(
          `candles ${interval}: ${pg.body.data?.length} (PostgreSQL ${(t1 - t0).toFixed(0)} ms, DuckDB ${(t2 - t1).toFixed(0)} ms)`,
        );
        expect(pg.status).toBe(200);
        expect(duck.status).toBe(200);
        expect(pg.body.next_cursor).toBeNull();
        expect(pg.body.data.length).toBeGreaterThan(0);
        expect(pg.body.data).toEqual(duck.body.data);
        // and they hold the capture: every trade once, its volume and VWAP exactly
        const volume = pg.body.data.reduce((s, c) => s + toUnits(c.volume), 0n);
        const notional = pg.body.data.reduce((s, c) => s + BigInt(c.quote_volume.replace(".", "")), 0n);
        expect(pg.body.data.reduce((s, c) => s + c.trade_count, 0)).toBe(expected.trades);
        expect(unitsToString(volume)).toBe(expected.volume);
        expect(vwapFromSums(unitsToString(notional, 16), unitsToString(volume))).toBe(expected.vwap);
        for (const c of pg.body.data) expect(c.quote_volume).toMatch(/^\d+\.\d{16}$/);
      }
    });

    it("stores the live aggregator's closed candles in PostgreSQL's candles_v2, equal to the SQL candles", async () => {
      const stored = await storedCandles(pgStore);
      for (const interval of CANDLE_INTERVALS) {
        const sql = await getJson<CandlePage>(
          `${pgApi}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000`,
        );
        const live = await getJson<CandlePage>(
          `${pgApi}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000&source=live`,
        );
        expect(live.status).toBe(200);
        expect(live.body.open).toEqual([]);
        expect(live.body.data).toEqual(sql.body.data);
        // the rows themselves, as PostgreSQL returns them (exact NUMERIC strings)
        expect(stored.filter((c) => c.interval === interval)).toEqual(sql.body.data);
        // and DuckDB's candles_v2 holds the same
        const duckLive = await getJson<CandlePage>(
          `${duckApi}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000&source=live`,
        );
        expect(duckLive.body.data).toEqual(live.body.data);
      }
    });

    it("pages candles with cursors (asc and desc) and widens from/to alike on both stores", async () => {
      const { body: all } = await getJson<CandlePage>(
        `${pgApi}/candles?symbol=BTCUSDT&interval=1s&limit=5000`,
      );
      for (const source of ["trades", "live"]) {
        for (const api of [pgApi, duckApi]) {
          const params = { symbol: "BTCUSDT", interval: "1s", source };
          expect(await allPages(api, { ...params, limit: "37" })).toEqual(all.data);
          expect(await allPages(api, { ...params, limit: "50", order: "desc" })).toEqual(
            [...all.data].reverse(),
          );
        }
      }
      const range =
        "/candles?symbol=BTCUSDT&interval=1m&from=2024-08-08T23:56:30.5Z&to=2024-08-08T23:57:10.2Z";
      const [pg, duck] = await Promise.all([
        getJson<CandlePage>(pgApi + range),
        getJson<CandlePage>(duckApi + range),
      ]);
      expect(pg.body.data.map((c) => c.interval_start)).toEqual([1723161360000000, 1723161420000000]);
      expect(pg.body.data).toEqual(duck.body.data);
    });

    it("pages the same trades from both stores (venue fields; receipt times differ per replay)", async () => {
      const venue = (rows: Record<string, unknown>[]) =>
        rows.map(({ ingestion_timestamp: _i, platform_sequence: _p, ...r }) => r);
      for (const order of ["asc", "desc"]) {
        const url = `/trades?symbol=BTCUSDT&limit=1000&order=${order}&from=2024-08-08T23:56:00Z`;
        const [pg, duck] = await Promise.all([
          getJson<{ data: Record<string, unknown>[]; next_cursor: string | null }>(pgApi + url),
          getJson<{ data: Record<string, unknown>[]; next_cursor: string | null }>(duckApi + url),
        ]);
        expect(pg.status).toBe(200);
        expect(pg.body.data).toHaveLength(1000);
        expect(venue(pg.body.data)).toEqual(venue(duck.body.data));
        const next = `${url}&cursor=${encodeURIComponent(String(pg.body.next_cursor))}`;
        const [pg2, duck2] = await Promise.all([
          getJson<{ data: Record<string, unknown>[] }>(pgApi + next),
          getJson<{ data: Record<string, unknown>[] }>(
            `${duckApi}${url}&cursor=${encodeURIComponent(String(duck.body.next_cursor))}`,
          ),
        ]);
        expect(venue(pg2.body.data)).toEqual(venue(duck2.body.data));
      }
    });

    it("lists the same symbols with counts and venue time span from both stores", async () => {
      const [pg, duck] = await Promise.all([
        getJson<{ data: Record<string, unknown>[] }>(`${pgApi}/symbols`),
        getJson<{ data: Record<string, unknown>[] }>(`${duckApi}/symbols`),
      ]);
      expect(pg.status).toBe(200);
      // venue times only (the bookTicker quotes' receipt times do not count): equal across replays
      expect(pg.body.data).toEqual(duck.body.data);
      const last = await getJson<{ data: { timestamp: number }[] }>(`${duckApi}/trades?limit=1`);
      expect(pg.body.data).toMatchObject([
        {
          symbol: "BTCUSDT",
          trades: expected.trades,
          quotes: expected.quotes,
          first_timestamp: 1723161255342000,
          last_timestamp: last.body.data[0].timestamp,
        },
      ]);
    });
  },
);
