/**
 * Gap backfill against the Binance replay server's REST emulation (real HTTP on loopback): pages of
 * historicalTrades fill a trade gap with the records the stream would have given (same message ids and
 * columns), the request-weight budget forces 429s that are honoured (Retry-After) and the gap is still
 * filled, a gap past the venue's history is partial, and quote / frame gaps are reported as not
 * backfillable without a request.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackfillWorker, backfillProblems, retryAfterMs } from "../../src/feed/backfill.js";
import { createLogger } from "../../src/ops/logger.js";
import { Metrics } from "../../src/ops/metrics.js";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { readCryptofeed } from "../../src/replay/cryptofeed.js";
import { CryptofeedReplayServer } from "../../src/replay/cryptofeed-replay-server.js";
import { toUnits, unitsToString } from "../../src/schema/decimal.js";
import type { SequenceGap, TradeV2 } from "../../src/schema/records.js";
import { BinanceNormalizer, binance } from "../../src/venues/binance.js";
import { coinbase } from "../../src/venues/coinbase.js";
import type { Venue } from "../../src/venues/venue.js";
import { framesWhere, sharedData } from "../helpers/capture.js";
import { waitFor } from "../helpers/run.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");
const FIRST_ID = 3_735_683_259;
const LAST_ID = 3_735_693_015;

/** The streamed trades of the capture, normalized by the feed's own normalizer, by trade id. */
async function streamedTrades(): Promise<Map<number, TradeV2>> {
  const out = new Map<number, TradeV2>();
  const n = new BinanceNormalizer(
    {
      trade: (r) => out.set(r.source_sequence!, r),
      quote: () => undefined,
      deadLetter: () => undefined,
      gap: () => undefined,
      control: () => undefined,
    },
    { symbols: ["BTCUSDT"], streams: ["trade"] },
  );
  for (const raw of await framesWhere(FILE, (r) => r.startsWith('{"stream":"btcusdt@trade"'))) {
    n.normalize(raw, 1);
  }
  return out;
}

function gap(from: number, to: number, data_type: SequenceGap["data_type"] = "trades"): SequenceGap {
  return {
    exchange: "BINANCE",
    symbol: "BTCUSDT",
    data_type,
    from_sequence: from,
    to_sequence: to,
    detected_at: 1,
  };
}

/** A worker on `venue` publishing into arrays. */
function worker(venue: Venue, baseUrl: string) {
  const records: TradeV2[] = [];
  const reports: SequenceGap[] = [];
  const metrics = new Metrics({ defaultMetrics: false });
  let seq = 0;
  const w = new BackfillWorker({
    venue,
    baseUrl,
    publish: (r) => records.push(r),
    report: (g) => reports.push(g),
    platformSequence: () => ++seq,
    metrics,
    logger: createLogger("silent"),
    retryDelayMs: 50,
  });
  return { w, records, reports, metrics };
}

describe("gap backfill from the Binance REST emulation", () => {
  let server: BinanceReplayServer;
  let streamed: Map<number, TradeV2>;

  beforeAll(async () => {
    // one historicalTrades request (weight 25) per 1 s window: the next one in the window gets a 429.
    // The venue's clock moves to the next window with each 429 (while the client waits its Retry-After),
    // not with the machine's pace: a loaded machine spacing the pages over 1 s saw no 429 at all
    server = new BinanceReplayServer({
      file: FILE,
      rest: { weightPerWindow: 30, windowMs: 1000, clock: () => 1000 * server.rest.stats.rateLimited },
    });
    await server.start();
    streamed = await streamedTrades();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("fills a 2,500-trade gap page by page through 429s, with the stream's exact records", async () => {
    const from = FIRST_ID + 100;
    const to = from + 2499;
    const { w, records, reports, metrics } = worker(binance, server.restUrl);
    const t0 = performance.now();
    w.enqueue(gap(from, to));
    expect(await w.waitIdle(20_000)).toBe(true);
    const ms = performance.now() - t0;

    expect(reports).toEqual([{ ...gap(from, to), status: "filled", backfilled: 2500 }]);
    expect(records.map((r) => r.source_sequence)).toEqual(Array.from({ length: 2500 }, (_, i) => from + i));
    // the records the stream gives, except receipt time, platform sequence and the REST vendor fields
    for (const r of records) {
      const s = streamed.get(r.source_sequence!)!;
      const strip = ({ ingestion_timestamp: _i, platform_sequence: _p, vendor_data: _v, ...rest }: TradeV2) =>
        rest;
      expect(strip(r)).toEqual(strip(s));
      expect(r.vendor_data.source).toBe("rest_backfill");
      expect(r.vendor_data.is_best_match).toBe(s.vendor_data.is_best_match);
    }
    const sum = (xs: TradeV2[]) => unitsToString(xs.reduce((a, r) => a + toUnits(r.quantity), 0n));
    const expected = [...streamed.values()].filter(
      (s) => s.source_sequence! >= from && s.source_sequence! <= to,
    );
    expect(sum(records)).toBe(sum(expected));

    // three pages of at most 1000, each but the first refused once (429) and retried after Retry-After
    expect(w.counts.rateLimited).toBe(2);
    expect(w.counts.requests).toBe(3 + w.counts.rateLimited);
    expect(server.rest.stats.rateLimited).toBe(w.counts.rateLimited);
    expect(server.rest.stats.banned).toBe(0);
    const text = await metrics.registry.metrics();
    expect(text).toContain('k2_backfill_records_total{exchange="BINANCE"} 2500');
    expect(text).toContain(
      `k2_backfill_requests_total{exchange="BINANCE",result="rate_limited"} ${w.counts.rateLimited}`,
    );
    expect(text).toContain('k2_backfill_requests_total{exchange="BINANCE",result="ok"} 3');
    expect(text).toContain('k2_gaps_unfilled{exchange="BINANCE"} 0');
    expect(w.missing).toBe(0);
    console.log(
      `backfill 2500 trades: ${w.counts.requests} requests, ${w.counts.rateLimited} x 429, ${Math.round(ms)} ms`,
    );
  }, 30_000);

  it("reports a gap reaching past the venue's history as partial, with what was recovered", async () => {
    const { w, records, reports } = worker(binance, server.restUrl);
    w.enqueue(gap(LAST_ID - 9, LAST_ID + 10));
    expect(await w.waitIdle(20_000)).toBe(true);
    expect(records).toHaveLength(10);
    expect(reports).toEqual([{ ...gap(LAST_ID - 9, LAST_ID + 10), status: "partial", backfilled: 10 }]);
    expect(w.missing).toBe(10);
  }, 30_000);

  it("reports quote and frame gaps as not backfillable, without a request", async () => {
    const before = server.rest.stats.requests;
    const b = worker(binance, server.restUrl);
    b.w.enqueue(gap(10, 20, "quotes"));
    const c = worker(coinbase, server.restUrl);
    c.w.enqueue({ ...gap(5, 6, "frames"), exchange: "COINBASE", symbol: "BTC-USD,ETH-USD" });
    await b.w.waitIdle(1000);
    await c.w.waitIdle(1000);
    expect(b.reports).toEqual([{ ...gap(10, 20, "quotes"), status: "unfillable", backfilled: 0 }]);
    expect(c.reports.map((g) => [g.data_type, g.status, g.backfilled])).toEqual([
      ["frames", "unfillable", 0],
    ]);
    expect(b.w.missing).toBe(11);
    expect(server.rest.stats.requests).toBe(before);
    expect(await b.metrics.registry.metrics()).toContain('k2_gaps_unfilled{exchange="BINANCE"} 1');
  });

  it("answers 418 with Retry-After to a client that ignores 429s, and the worker waits out the ban", async () => {
    const banned = new BinanceReplayServer({
      file: FILE,
      rest: { weightPerWindow: 30, windowMs: 60_000, banAfter: 2, banMs: 1000 },
    });
    await banned.start();
    try {
      const url = `${banned.restUrl}/api/v3/historicalTrades?symbol=BTCUSDT&fromId=${FIRST_ID}&limit=5`;
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await fetch(url);
        await r.text();
        statuses.push(r.status);
        if (r.status !== 200) expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
      }
      expect(statuses).toEqual([200, 429, 429, 418, 418]);
      // the worker meets the ban, waits its Retry-After (1 s), then the minute's budget is spent: 429
      // with Retry-After up to the minute's end, capped here by maxWaitMs
      const { w, reports } = worker(binance, banned.restUrl);
      (w as unknown as { opts: { maxWaitMs: number } }).opts.maxWaitMs = 200;
      w.enqueue(gap(FIRST_ID, FIRST_ID + 4));
      await waitFor(() => w.counts.banned > 0, 10_000, "a 418");
      await w.stop();
      expect(reports).toEqual([]); // stopped before the outcome: the gap stays open
    } finally {
      await banned.stop();
    }
  }, 30_000);

  it("fills an aggTrade gap from aggTrades of a cryptofeed Binance recording, as the stream maps it", async () => {
    const rec = sharedData("cryptofeed/BINANCE.jsonl.gz");
    const cf = new CryptofeedReplayServer({ file: rec });
    await cf.start();
    try {
      const streamedAgg: TradeV2[] = [];
      const n = new BinanceNormalizer(
        {
          trade: (r) => streamedAgg.push(r),
          quote: () => undefined,
          deadLetter: () => undefined,
          gap: () => undefined,
          control: () => undefined,
        },
        { symbols: ["NKNUSDT"], streams: ["aggTrade"] },
      );
      for await (const l of readCryptofeed(rec, (x) => x.includes('nknusdt@aggTrade\\",\\"data'))) {
        if (l.data) n.normalize(l.data, 1);
      }
      expect(streamedAgg).toHaveLength(1);
      const id = streamedAgg[0].source_sequence!;
      const { w, records, reports } = worker(binance, cf.restUrl);
      const g = { ...gap(id, id, "aggtrades"), symbol: "NKNUSDT" };
      w.enqueue(g);
      expect(await w.waitIdle(10_000)).toBe(true);
      expect(reports).toEqual([{ ...g, status: "filled", backfilled: 1 }]);
      const { ingestion_timestamp: _a, platform_sequence: _b, vendor_data: v, ...rest } = records[0];
      const { ingestion_timestamp: _c, platform_sequence: _d, vendor_data: sv, ...srest } = streamedAgg[0];
      expect(rest).toEqual(srest);
      expect(v).toEqual({
        first_trade_id: sv.first_trade_id,
        last_trade_id: sv.last_trade_id,
        is_best_match: sv.is_best_match,
        source: "rest_backfill",
      });
    } finally {
      await cf.stop();
    }
  });

  it("counts a gap it is told not to fill (--no-backfill) as missing, without a request or an outcome", () => {
    const before = server.rest.stats.requests;
    const { w, reports } = worker(binance, server.restUrl);
    w.skip(gap(FIRST_ID, FIRST_ID + 9));
    expect([w.missing, w.counts.gaps, w.pending, reports.length]).toEqual([10, 1, 0, 0]);
    expect(server.rest.stats.requests).toBe(before);
  });

  it("names a ban in /health with the time left and the gaps waiting", () => {
    const { w } = worker(binance, server.restUrl);
    expect(backfillProblems([w])).toEqual([]);
    w.bannedUntil = 1_000_000 + 90_500;
    expect(backfillProblems([w], 1_000_000)).toEqual([
      "backfill of BINANCE banned by the venue (HTTP 418) for 91 s more; 0 gaps waiting",
    ]);
  });

  it("reads Retry-After as seconds or an HTTP date", () => {
    expect(retryAfterMs("3", 1000)).toBe(3000);
    expect(retryAfterMs(null, 1000)).toBe(1000);
    expect(retryAfterMs("Thu, 01 Jan 1970 00:00:10 GMT", 1000, 4000)).toBe(6000);
    expect(retryAfterMs("soon", 1000)).toBe(1000);
  });
});
