/**
 * REST API and live candles against a real `k2 run --replay btcusdt_20240808.gz --speed max` process
 * (built CLI, loopback, DuckDB file in a temp directory). Expected figures of the capture come from
 * `../shared/data/README.md` (computed there with exact decimal arithmetic) and from the trades read
 * back through the API.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CANDLE_INTERVALS, type CandleV2, INTERVAL_US } from "../../src/schema/candles.js";
import { divRoundHalfEven, toUnits, unitsToString, vwapFromSums } from "../../src/schema/decimal.js";
import type { QuoteV2, TradeV2 } from "../../src/schema/records.js";
import type { Tick } from "../../src/serve/live/feed.js";
import { DATA, getJson, type K2Process, startK2Run, waitFor } from "./k2-process.js";

const CAPTURE = join(DATA, "binance-spot/btcusdt_20240808.gz");
// ../shared/data/README.md, btcusdt_20240808.gz
const TRADES = 9757;
const QUOTES = 28040;
const FIRST_ID = 3735683259;
const LAST_ID = 3735693015;
const VOLUME = "212.03315000";
const VWAP = "61707.68161671";

interface Page<T> {
  data: T[];
  next_cursor: string | null;
}
interface CandlePage extends Page<CandleV2> {
  open?: CandleV2[];
}
interface BadRequest {
  error: string;
  parameter: string;
  reason: string;
}

let k2: K2Process;
let api: string;
/** Every stored trade, read through the API oldest first. */
let trades: TradeV2[] = [];

async function allPages<T>(
  path: string,
  params: Record<string, string>,
): Promise<{ rows: T[]; pages: number }> {
  const rows: T[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const q: URLSearchParams = new URLSearchParams(cursor ? { ...params, cursor } : params);
    const { status, body }: { status: number; body: Page<T> } = await getJson<Page<T>>(`${api}${path}?${q}`);
    expect(status).toBe(200);
    rows.push(...body.data);
    cursor = body.next_cursor;
    pages++;
    expect(pages).toBeLessThan(1000);
  } while (cursor);
  return { rows, pages };
}

const tradeNo = (t: TradeV2) => Number(t.trade_id.slice("BINANCE-".length));

beforeAll(async () => {
  k2 = await startK2Run(["--replay", CAPTURE, "--speed", "max", "--symbols", "BTCUSDT"]);
  api = `${k2.baseUrl}/api/v1`;
  // the replay ends, every open candle is closed, and the store has everything
  await waitFor("the replay stored", async () => {
    const { body } = await getJson<{ data: { trades: number; quotes: number }[] }>(`${api}/symbols`);
    return body.data[0]?.trades === TRADES && body.data[0]?.quotes === QUOTES;
  });
  await waitFor("live candles closed and stored", async () => {
    for (const interval of CANDLE_INTERVALS) {
      const { body } = await getJson<CandlePage>(
        `${api}/candles?symbol=BTCUSDT&interval=${interval}&source=live&limit=5000`,
      );
      const n = body.data.reduce((s, c) => s + c.trade_count, 0);
      if (n !== TRADES || body.open?.length !== 0) return false;
    }
    return true;
  });
  trades = (await allPages<TradeV2>("/trades", { order: "asc", limit: "1000" })).rows;
}, 90_000);

afterAll(async () => {
  await k2?.stop();
});

describe("GET /api/v1/trades", () => {
  it("pages through every trade oldest first: 9,757, no duplicates, no gaps, in trade order", () => {
    expect(trades).toHaveLength(TRADES);
    expect(new Set(trades.map((t) => t.trade_id)).size).toBe(TRADES);
    // ids are consecutive in this capture, and trade order = id order here
    trades.forEach((t, i) => {
      expect(tradeNo(t)).toBe(FIRST_ID + i);
    });
    expect(tradeNo(trades[trades.length - 1])).toBe(LAST_ID);
    for (let i = 1; i < trades.length; i++) {
      expect(trades[i].timestamp).toBeGreaterThanOrEqual(trades[i - 1].timestamp);
    }
    const volume = trades.reduce((s, t) => s + toUnits(t.quantity), 0n);
    expect(unitsToString(volume)).toBe(VOLUME);
    // a full schema-v2 record with exact strings
    expect(trades[0]).toMatchObject({
      trade_id: `BINANCE-${FIRST_ID}`,
      exchange: "BINANCE",
      symbol: "BTCUSDT",
      asset_class: "crypto",
      currency: "USDT",
      price: "61837.63000000",
      quantity: "0.02000000",
      side: "SELL",
      source_sequence: FIRST_ID,
      trade_conditions: [],
    });
    expect(trades[0].timestamp).toBe(1723161255342000);
  });

  it("pages newest first (default order) to exactly the reverse, with a page size of 250", async () => {
    const { rows, pages } = await allPages<TradeV2>("/trades", { limit: "250" });
    expect(pages).toBe(Math.ceil(TRADES / 250));
    expect(rows.map((t) => t.trade_id)).toEqual(trades.map((t) => t.trade_id).reverse());
  });

  it("keeps pages stable across trades sharing one timestamp (keyset on time, then trade id)", async () => {
    // the busiest microsecond of the capture
    const byTs = new Map<number, TradeV2[]>();
    for (const t of trades) byTs.set(t.timestamp, [...(byTs.get(t.timestamp) ?? []), t]);
    const [ts, same] = [...byTs.entries()].sort((a, b) => b[1].length - a[1].length)[0];
    expect(same.length).toBeGreaterThanOrEqual(5);
    const limit = Math.max(2, Math.ceil(same.length / 8)); // several page boundaries inside one µs
    for (const order of ["asc", "desc"] as const) {
      const { rows, pages } = await allPages<TradeV2>("/trades", {
        from: String(ts),
        to: String(ts + 1),
        limit: String(limit),
        order,
      });
      expect(pages).toBe(Math.ceil(same.length / limit));
      const expected = same.map((t) => t.trade_id);
      expect(rows.map((t) => t.trade_id)).toEqual(order === "asc" ? expected : expected.reverse());
    }
  });

  it("accepts times as ISO-8601 or µs, from inclusive and to exclusive", async () => {
    const from = 1723161360000000; // 2024-08-08T23:56:00Z
    const to = 1723161420000000; // 2024-08-08T23:57:00Z
    const expected = trades.filter((t) => t.timestamp >= from && t.timestamp < to).map((t) => t.trade_id);
    expect(expected.length).toBeGreaterThan(100);
    for (const [f, t] of [
      [String(from), String(to)],
      ["2024-08-08T23:56:00Z", "2024-08-08T23:57:00Z"],
      ["2024-08-09T01:56:00.000000+02:00", "2024-08-08T19:57:00-04:00"],
      ["2024-08-08T23:56:00Z", String(to)],
    ]) {
      const { rows } = await allPages<TradeV2>("/trades", { from: f, to: t, order: "asc", limit: "1000" });
      expect(rows.map((r) => r.trade_id)).toEqual(expected);
    }
    // exact boundary: `from` equal to a trade's timestamp includes it, `to` equal to it excludes it
    const t0 = trades[100];
    const { body: incl } = await getJson<Page<TradeV2>>(
      `${api}/trades?from=${t0.timestamp}&order=asc&limit=1`,
    );
    expect(incl.data[0].timestamp).toBe(t0.timestamp);
    const { body: excl } = await getJson<Page<TradeV2>>(`${api}/trades?to=${t0.timestamp}&limit=1`);
    expect(excl.data[0].timestamp).toBeLessThan(t0.timestamp);
  });

  it("filters by exchange and symbol case-insensitively; an unknown symbol is a 404 that says so", async () => {
    const { body } = await getJson<Page<TradeV2>>(`${api}/trades?exchange=binance&symbol=btcusdt&limit=3`);
    expect(body.data.map((t) => t.trade_id)).toEqual(
      trades
        .slice(-3)
        .map((t) => t.trade_id)
        .reverse(),
    );
    for (const [path, where] of [
      ["/trades?symbol=ETHUSDT", "on any exchange"],
      ["/quotes?exchange=binance&symbol=ethusdt", "on BINANCE"],
      ["/gaps?symbol=ETHUSDT", "on any exchange"],
      ["/candles?symbol=ETHUSDT&interval=1m", "on any exchange"],
      ["/trades?exchange=coinbase&symbol=BTCUSDT", "on COINBASE"],
    ]) {
      const { status, body } = await getJson<BadRequest>(`${api}${path}`);
      expect({ path, status, error: body.error, parameter: body.parameter }).toEqual({
        path,
        status: 404,
        error: "not_found",
        parameter: "symbol",
      });
      expect(body.reason).toContain(where);
    }
    // a known instrument with nothing in the range, and a registered venue with nothing stored: empty
    const later = await getJson<Page<TradeV2>>(`${api}/trades?symbol=BTCUSDT&from=2030-01-01`);
    expect(later).toEqual({ status: 200, body: { data: [], next_cursor: null } });
    const coinbase = await getJson<Page<TradeV2>>(`${api}/trades?exchange=coinbase`);
    expect(coinbase).toEqual({ status: 200, body: { data: [], next_cursor: null } });
  });

  it("refuses an unknown exchange with a 400 naming the known ones", async () => {
    for (const path of [
      "/trades?exchange=nyse",
      "/quotes?exchange=NYSE&symbol=BTCUSDT",
      "/dead-letters?exchange=nyse",
    ]) {
      const { status, body } = await getJson<BadRequest>(`${api}${path}`);
      expect({ status, error: body.error, parameter: body.parameter }).toEqual({
        status: 400,
        error: "bad_request",
        parameter: "exchange",
      });
      expect(body.reason).toBe("unknown exchange NYSE (known: BINANCE, COINBASE, KRAKEN)");
    }
  });

  it("takes times with a unit (s, ms, us) and refuses bare seconds or ms, naming the unit it assumed", async () => {
    const asUs = await allPages<TradeV2>("/trades", {
      from: "1723161360000000",
      to: "1723161420000000",
      order: "asc",
      limit: "1000",
    });
    expect(asUs.rows.length).toBeGreaterThan(100);
    for (const [from, to] of [
      ["1723161360s", "1723161420s"],
      ["1723161360000ms", "1723161420000ms"],
      ["1723161360000000us", "1723161420000000µs"],
    ]) {
      const { rows } = await allPages<TradeV2>("/trades", { from, to, order: "asc", limit: "1000" });
      expect(rows).toEqual(asUs.rows);
    }
    for (const [path, unit, fix] of [
      ["/trades?from=1723161360", "seconds", "1723161360s"],
      ["/quotes?to=1723161360000", "milliseconds", "1723161360000ms"],
      ["/candles?symbol=BTCUSDT&interval=1m&from=1723161360", "seconds", "1723161360s"],
    ]) {
      const { status, body } = await getJson<BadRequest>(`${api}${path}`);
      expect(status).toBe(400);
      expect(body.parameter).toBe(path.includes("to=") ? "to" : "from");
      expect(body.reason).toContain("read as µs since the epoch (1970-01-");
      expect(body.reason).toContain(`looks like ${unit}`);
      expect(body.reason).toContain(fix);
    }
    // 0 stays "from the beginning"
    const zero = await getJson<Page<TradeV2>>(`${api}/trades?from=0&order=asc&limit=1`);
    expect(zero.body.data[0].trade_id).toBe(trades[0].trade_id);
  });
});

describe("unknown paths and methods", () => {
  it("answers every unknown path with one not-found body", async () => {
    for (const path of ["/api/v2/trades", "/api/v1/nope", "/nope", "/api/v1/trades/extra"]) {
      const res = await fetch(`${k2.baseUrl}${path}`);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({ error: "not_found", reason: `no such path: ${path} (see /docs)` });
    }
  });

  it("answers a known path asked with another method with 405 and Allow", async () => {
    for (const path of ["/api/v1/trades", "/api/v1/symbols", "/health", "/api/v1/dead-letters/x"]) {
      const res = await fetch(`${k2.baseUrl}${path}`, { method: "POST", body: "{}" });
      expect({ path, status: res.status, allow: res.headers.get("allow") }).toEqual({
        path,
        status: 405,
        allow: "GET, HEAD",
      });
      expect(await res.json()).toMatchObject({ error: "method_not_allowed" });
    }
    const del = await fetch(`${api}/trades`, { method: "DELETE" });
    expect(del.status).toBe(405);
  });
});

describe("GET /api/v1/quotes", () => {
  it("pages through every quote (28,040) without duplicates, in time then platform order", async () => {
    const { rows } = await allPages<QuoteV2>("/quotes", { order: "asc", limit: "1000" });
    expect(rows).toHaveLength(QUOTES);
    expect(new Set(rows.map((q) => q.message_id)).size).toBe(QUOTES);
    for (let i = 1; i < rows.length; i++) {
      const a = rows[i - 1];
      const b = rows[i];
      expect(
        b.timestamp > a.timestamp ||
          (b.timestamp === a.timestamp && b.platform_sequence > a.platform_sequence),
      ).toBe(true);
    }
    expect(rows[0]).toMatchObject({
      symbol: "BTCUSDT",
      bid_price: "61837.63000000",
      bid_quantity: "3.78826000",
      ask_price: "61837.64000000",
      ask_quantity: "1.54698000",
      source_sequence: 50093239212,
    });
  });
});

describe("GET /api/v1/ticks", () => {
  it("gives the latest trade and best bid/ask per symbol, equal to the newest stored rows", async () => {
    const { status, body } = await getJson<{ data: Tick[] }>(`${api}/ticks`);
    expect(status).toBe(200);
    expect(body.data).toHaveLength(1);
    const tick = body.data[0];
    const last = trades[trades.length - 1];
    const { body: q } = await getJson<Page<QuoteV2>>(`${api}/quotes?limit=1`);
    const quote = q.data[0];
    expect(tick).toEqual({
      exchange: "BINANCE",
      symbol: "BTCUSDT",
      asset_class: "crypto",
      currency: "USDT",
      last_price: last.price,
      last_quantity: last.quantity,
      last_side: last.side,
      last_trade_id: last.trade_id,
      last_trade_time: last.timestamp,
      bid_price: quote.bid_price,
      bid_quantity: quote.bid_quantity,
      ask_price: quote.ask_price,
      ask_quantity: quote.ask_quantity,
      quote_time: quote.timestamp,
      spread: unitsToString(toUnits(quote.ask_price) - toUnits(quote.bid_price)),
    });
  });
});

/** Candles recomputed in the test from the trades read through the API (bigint, trade order). */
function candlesFromTrades(interval: keyof typeof INTERVAL_US): Map<number, Partial<CandleV2>> {
  const len = INTERVAL_US[interval];
  const out = new Map<number, Partial<CandleV2>>();
  const sorted = [...trades].sort((a, b) => a.timestamp - b.timestamp || tradeNo(a) - tradeNo(b));
  const acc = new Map<number, { ts: TradeV2[] }>();
  for (const t of sorted) {
    const start = Math.floor(t.timestamp / len) * len;
    const a = acc.get(start) ?? { ts: [] };
    a.ts.push(t);
    acc.set(start, a);
  }
  for (const [start, { ts }] of acc) {
    const prices = ts.map((t) => toUnits(t.price)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const volume = ts.reduce((s, t) => s + toUnits(t.quantity), 0n);
    const quote = ts.reduce((s, t) => s + toUnits(t.price) * toUnits(t.quantity), 0n);
    out.set(start, {
      interval_start: start,
      interval_end: start + len,
      open: ts[0].price,
      close: ts[ts.length - 1].price,
      high: unitsToString(prices[prices.length - 1]),
      low: unitsToString(prices[0]),
      volume: unitsToString(volume, 8),
      quote_volume: unitsToString(quote, 16),
      vwap: unitsToString(divRoundHalfEven(quote, volume)),
      trade_count: ts.length,
      first_trade_id: ts[0].trade_id,
      last_trade_id: ts[ts.length - 1].trade_id,
    });
  }
  return out;
}

describe("GET /api/v1/candles", () => {
  it("computes exact OHLCV per 1s and 1m candle, consistent with the trades", async () => {
    for (const interval of ["1s", "1m"] as const) {
      const { status, body } = await getJson<CandlePage>(
        `${api}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000`,
      );
      expect(status).toBe(200);
      expect(body.next_cursor).toBeNull();
      const expected = candlesFromTrades(interval);
      expect(body.data).toHaveLength(expected.size);
      for (const c of body.data) {
        expect(c).toMatchObject({ ...expected.get(c.interval_start), interval, closed: true });
      }
    }
  });

  it("sums to the capture's volume 212.03315000 and VWAP 61707.68161671 in every interval", async () => {
    for (const interval of CANDLE_INTERVALS) {
      const { body } = await getJson<CandlePage>(
        `${api}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000`,
      );
      const volume = body.data.reduce((s, c) => s + toUnits(c.volume), 0n);
      const notional = body.data.reduce(
        (s, c) => s + BigInt(c.quote_volume.replace(".", "")), // exact 16-place strings
        0n,
      );
      expect(unitsToString(volume)).toBe(VOLUME);
      expect(vwapFromSums(unitsToString(notional, 16), unitsToString(volume))).toBe(VWAP);
      expect(body.data.reduce((s, c) => s + c.trade_count, 0)).toBe(TRADES);
    }
  });

  it("live candles (aggregated as trades arrived, stored in candles_v2) equal the SQL candles field by field", async () => {
    for (const interval of CANDLE_INTERVALS) {
      const sql = await getJson<CandlePage>(`${api}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000`);
      const live = await getJson<CandlePage>(
        `${api}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000&source=live`,
      );
      expect(live.status).toBe(200);
      expect(live.body.open).toEqual([]); // the replay ended: every candle closed
      expect(live.body.data.length).toBeGreaterThan(0);
      expect(live.body.data).toEqual(sql.body.data);
    }
  });

  it("pages candles with a cursor (asc and desc) and widens from/to to whole intervals", async () => {
    const { body: all } = await getJson<CandlePage>(`${api}/candles?symbol=BTCUSDT&interval=1s&limit=5000`);
    for (const source of ["trades", "live"]) {
      const asc = await allPages<CandleV2>("/candles", {
        symbol: "BTCUSDT",
        interval: "1s",
        limit: "37",
        source,
      });
      expect(asc.rows).toEqual(all.data);
      const desc = await allPages<CandleV2>("/candles", {
        symbol: "BTCUSDT",
        interval: "1s",
        limit: "50",
        order: "desc",
        source,
      });
      expect(desc.rows).toEqual([...all.data].reverse());
    }
    // 23:56:30.5 .. 23:57:10.2 → the 1m candles 23:56 and 23:57, whole
    const { body } = await getJson<CandlePage>(
      `${api}/candles?symbol=BTCUSDT&interval=1m&from=2024-08-08T23:56:30.5Z&to=2024-08-08T23:57:10.2Z`,
    );
    const { body: m } = await getJson<CandlePage>(`${api}/candles?symbol=BTCUSDT&interval=1m`);
    expect(body.data).toEqual(m.data.filter((c) => c.interval_start >= 1723161360000000).slice(0, 2));
  });
});

describe("GET /api/v1/symbols, /gaps, /dead-letters, /docs", () => {
  it("lists the symbol with its stored counts, venue time span and last price", async () => {
    const { body } = await getJson<{ data: Record<string, unknown>[] }>(`${api}/symbols`);
    expect(body.data).toEqual([
      {
        exchange: "BINANCE",
        symbol: "BTCUSDT",
        asset_class: "crypto",
        currency: "USDT",
        trades: TRADES,
        quotes: QUOTES,
        // venue times only: the bookTicker quotes carry their receipt time (the replay's, 2026)
        first_timestamp: trades[0].timestamp,
        last_timestamp: trades[trades.length - 1].timestamp,
        last_price: trades[trades.length - 1].price,
      },
    ]);
  });

  it("returns empty pages of gaps and dead letters for this gap-free capture", async () => {
    for (const path of ["/gaps", "/dead-letters?limit=5"]) {
      expect(await getJson(`${api}${path}`)).toEqual({ status: 200, body: { data: [], next_cursor: null } });
    }
  });

  it("serves the OpenAPI document at /docs/json and Swagger UI at /docs", async () => {
    const { status, body } = await getJson<{ openapi: string; paths: Record<string, unknown> }>(
      `${k2.baseUrl}/docs/json`,
    );
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    for (const p of ["ticks", "trades", "quotes", "candles", "symbols", "gaps", "dead-letters"]) {
      expect(body.paths).toHaveProperty(`/api/v1/${p}`);
    }
    const ui = await fetch(`${k2.baseUrl}/docs/`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
  });
});

describe("bad parameters", () => {
  const cursorOf = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const cases: [path: string, parameter: string][] = [
    ["/trades?from=yesterday", "from"],
    ["/trades?to=2024-13-01T00:00:00Z", "to"],
    ["/trades?from=2024-08-08T23:56:00", "from"], // no zone
    ["/trades?from=1723161420000000&to=1723161360000000", "to"],
    ["/trades?limit=0", "limit"],
    ["/trades?limit=1001", "limit"],
    ["/trades?limit=ten", "limit"],
    ["/trades?order=sideways", "order"],
    ["/trades?cursor=not*a*cursor", "cursor"],
    ["/trades?cursor=bm90IGpzb24", "cursor"], // base64url of "not json"
    [`/trades?cursor=${cursorOf({ k: "quotes", o: "desc", v: [1, "a", "b", 1, "c"] })}`, "cursor"],
    [`/trades?order=asc&cursor=${cursorOf({ k: "trades", o: "desc", v: [1, "a", "b", 1, "c"] })}`, "cursor"],
    [`/trades?cursor=${cursorOf({ k: "trades", o: "desc", v: ["1", "a", "b", 1, "c"] })}`, "cursor"],
    ["/trades?symbol=BTC%20USDT", "symbol"],
    ["/trades?exchange=bin-ance", "exchange"],
    ["/trades?symbol=BTCUSDT&symbol=ETHUSDT", "symbol"],
    ["/trades?sym=BTCUSDT", "sym"],
    ["/quotes?from=-5", "from"],
    ["/quotes?limit=100000", "limit"],
    ["/candles?interval=1m", "symbol"],
    ["/candles?symbol=BTCUSDT", "interval"],
    ["/candles?symbol=BTCUSDT&interval=2m", "interval"],
    ["/candles?symbol=BTCUSDT&interval=1m&source=magic", "source"],
    ["/candles?symbol=BTCUSDT&interval=1m&limit=5001", "limit"],
    [
      `/candles?symbol=BTCUSDT&interval=1m&cursor=${cursorOf({ k: "candles", o: "asc", v: [-1, "B"] })}`,
      "cursor",
    ],
    ["/gaps?to=1e15", "to"],
    ["/trades?from=1723161360", "from"], // seconds
    ["/trades?to=1723161360000", "to"], // ms
    ["/trades?from=1723161360000000000", "from"], // ns
    ["/trades?from=12h", "from"],
    ["/trades?exchange=nyse", "exchange"],
    ["/dead-letters?limit=-1", "limit"],
    ["/dead-letters?symbol=BTCUSDT", "symbol"],
    ["/ticks?symbol=BTCUSDT", "symbol"],
    ["/symbols?limit=1", "limit"],
  ];
  it.each(cases)("%s → 400 naming %s", async (path, parameter) => {
    const { status, body } = await getJson<BadRequest>(`${api}${path}`);
    expect(status).toBe(400);
    expect(body.error).toBe("bad_request");
    expect(body.parameter).toBe(parameter);
    expect(typeof body.reason).toBe("string");
    expect(body.reason.length).toBeGreaterThan(3);
  });
});

describe("SQL injection", () => {
  const payloads = [
    "BTCUSDT' OR '1'='1",
    "x'; DROP TABLE trades_v2; --",
    "1) UNION SELECT * FROM dead_letters --",
    "BTCUSDT--",
    "1723161360000000 OR 1=1",
    "asc; DELETE FROM quotes_v2",
  ];
  const endpoints: [path: string, base: Record<string, string>, params: string[]][] = [
    ["/trades", {}, ["exchange", "symbol", "from", "to", "limit", "cursor", "order"]],
    ["/quotes", {}, ["exchange", "symbol", "from", "to", "limit", "cursor", "order"]],
    [
      "/candles",
      { symbol: "BTCUSDT", interval: "1m" },
      ["exchange", "symbol", "interval", "from", "to", "limit", "cursor", "order", "source"],
    ],
    ["/gaps", {}, ["exchange", "symbol", "from", "to", "limit", "cursor", "order"]],
    ["/dead-letters", {}, ["exchange", "from", "to", "limit", "cursor", "order"]],
    ["/ticks", {}, ["symbol"]],
    ["/symbols", {}, ["exchange"]],
  ];

  it("is rejected (400 naming the parameter), inert (no rows) or an unknown symbol (404) everywhere", async () => {
    let attempts = 0;
    for (const [path, base, params] of endpoints) {
      for (const parameter of params) {
        for (const payload of payloads) {
          const q = new URLSearchParams({ ...base, [parameter]: payload });
          const res = await getJson<Page<unknown> & BadRequest>(`${api}${path}?${q}`);
          attempts++;
          if (res.status === 400) {
            expect(res.body.parameter).toBe(parameter);
          } else if (res.status === 404) {
            // a well-formed symbol that is not stored: the value was bound, found nothing
            expect([parameter, res.body.parameter, res.body.error]).toEqual([
              "symbol",
              "symbol",
              "not_found",
            ]);
          } else {
            expect(res.status, `${path} ${parameter}=${payload}`).toBe(200);
            expect(res.body.data, `${path} ${parameter}=${payload}`).toEqual([]);
          }
        }
      }
    }
    expect(attempts).toBeGreaterThan(200);
  });

  it("is inert inside a well-formed cursor: the values are bound, never parsed as SQL", async () => {
    const ts = trades[5000].timestamp;
    for (const evil of ["BINANCE' OR '1'='1", "x'); DROP TABLE trades_v2; --"]) {
      const cursor = Buffer.from(
        JSON.stringify({ k: "trades", o: "asc", v: [ts, evil, evil, 18, evil] }),
      ).toString("base64url");
      const { status, body } = await getJson<Page<TradeV2>>(
        `${api}/trades?order=asc&limit=1000&cursor=${cursor}`,
      );
      expect(status).toBe(200);
      // strictly after (ts, 'BINANCE'...) in key order: exactly the trades with a later timestamp
      // (or the same timestamp when the evil exchange sorts before "BINANCE")
      const later = trades.filter((t) => ("BINANCE" > evil ? t.timestamp >= ts : t.timestamp > ts));
      expect(body.data.map((t) => t.trade_id)).toEqual(later.slice(0, 1000).map((t) => t.trade_id));
    }
  });

  it("left every table intact", async () => {
    const { body } = await getJson<{ data: { trades: number; quotes: number }[] }>(`${api}/symbols`);
    expect(body.data[0]).toMatchObject({ trades: TRADES, quotes: QUOTES });
    const { body: c } = await getJson<CandlePage>(`${api}/candles?symbol=BTCUSDT&interval=1h&source=live`);
    expect(c.data.reduce((s, x) => s + x.trade_count, 0)).toBe(TRADES);
    const { body: d } = await getJson<Page<unknown>>(`${api}/dead-letters`);
    expect(d.data).toEqual([]);
  });
});
