/// <reference lib="dom" />
/**
 * The dashboard end to end in Debian's headless chromium (playwright-core): a real `k2 run --replay
 * btcusdt_20240808.gz --speed 20` in process, the page loaded while the replay runs; afterwards the
 * trade tape must show the capture's last trades exactly as stored, the chart's 1-minute candles and
 * volumes must match the stored trades (and the 5-minute ones after the interval switch), and the
 * symbol row (exchange column, data age), the tape (dates, aligned exact decimals) and feed health must
 * show the run; a page opened after a `k2 run --replay … --speed max` replay ended opens on the stored
 * history (every candle of /api/v1/candles for the range it loaded, in 1m and 5m, and the last 100
 * trades, each once after its `from` subscription went live); three venues side by side get a row
 * each and feed health for every feed; a feed that cannot connect is named with its cause. Saves
 * `test-artifacts/dashboard.png`. Skipped (with the reason in its title) when /usr/bin/chromium is
 * missing: `apt-get install -y chromium`.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveRunConfig } from "../../src/config.js";
import { type RunningPipeline, startRun } from "../../src/run.js";
import type { CandleV2 } from "../../src/schema/candles.js";
import { silentLogger, testConfig } from "../helpers/run.js";
import {
  CAPTURE,
  LAST_TRADE_ID,
  ROOT,
  sleep,
  startReplayRun,
  TRADES_IN_CAPTURE,
  tempDir,
} from "./helpers.js";
import { getJson, startK2Run, waitFor } from "./k2-process.js";

const CHROMIUM = process.env.K2_CHROMIUM ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const title = HAVE_CHROMIUM
  ? "dashboard in headless chromium"
  : `dashboard in headless chromium — SKIPPED: ${CHROMIUM} not found (apt-get install -y chromium)`;

if (!HAVE_CHROMIUM)
  console.warn(`dashboard test skipped: ${CHROMIUM} not found (apt-get install -y chromium)`);

let tmp: ReturnType<typeof tempDir> | null = null;
let browser: BrowserContext | null = null;
let run: RunningPipeline | null = null;
let profile: string | null = null;

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  profile = mkdtempSync(join(tmpdir(), "k2-chromium-"));
  tmp = tempDir();
  // a fresh profile directory (--user-data-dir) per run
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1400, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await run?.stop("test done");
  tmp?.cleanup();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Trimmed display form of a DECIMAL(18,8) string, as the dashboard shows it (at least 2 places). */
function display(decimal: string): string {
  const [i, f] = decimal.split(".");
  let frac = (f ?? "").replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return `${i}.${frac}`;
}

describe.skipIf(!HAVE_CHROMIUM)(title, () => {
  it("shows the replayed trades on the tape and the chart, the symbol and the feed health", async () => {
    if (!browser || !tmp) throw new Error("browser not started");
    run = await startReplayRun({ db: `${tmp.dir}/k2.duckdb`, speed: "20" });
    const page: Page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${run.httpPort}/`);
    await page.waitForFunction(() => document.querySelector("#ws-state")?.textContent === "open");

    await run.replayDone;
    // the end of the replay is shown (the connection to the replay server stays open)
    const status = (await (await fetch(`http://127.0.0.1:${run.httpPort}/api/v1/status`)).json()) as {
      feeds: { state: string; replay: string | null }[];
    };
    expect(status.feeds[0]).toMatchObject({ state: "CONNECTED", replay: "ended" });
    await page.waitForFunction(
      () => document.querySelector("#feed-state")?.textContent === "binance replay ended",
      undefined,
      { timeout: 5000 },
    );
    // the tape catches up with the last trade of the capture
    await page.waitForSelector(`#tape tbody tr[data-trade-id="BINANCE-${LAST_TRADE_ID}"]`, {
      timeout: 15_000,
    });
    const store = run.store;
    for (let i = 0; ; i++) {
      const [{ n }] = await store.query("SELECT count(*)::INTEGER AS n FROM trades_v2");
      if (Number(n) === TRADES_IN_CAPTURE) break;
      if (i > 100) throw new Error(`store holds ${n} trades`);
      await sleep(100);
    }

    // tape: the newest 100 trades, exactly as stored, newest first
    const tape = await page.$$eval("#tape tbody tr", (rows) =>
      rows.map((r) => ({
        trade_id: (r as HTMLElement).dataset.tradeId,
        price: (r as HTMLElement).dataset.price,
        quantity: (r as HTMLElement).dataset.quantity,
        shown: r.querySelector(".price")?.textContent,
        side: r.querySelector(".side")?.textContent,
      })),
    );
    const stored = await store.query(
      "SELECT trade_id, price::VARCHAR AS price, quantity::VARCHAR AS quantity, side FROM trades_v2 ORDER BY source_sequence DESC LIMIT 100",
    );
    expect(tape.length).toBe(100);
    expect(tape.map(({ trade_id, price, quantity }) => ({ trade_id, price, quantity }))).toEqual(
      stored.map((r) => ({ trade_id: r.trade_id, price: r.price, quantity: r.quantity })),
    );
    for (const [i, row] of tape.entries()) {
      expect(row.shown).toBe(display(String(stored[i].price)));
      expect(row.side).toBe(String(stored[i].side).toLowerCase());
    }

    // chart: 1-minute candles and volumes from the trades the page saw (its first bar may be partial)
    const chart = await page.evaluate(() => {
      interface Series {
        data(): { time: number; value: number; open: number; high: number; low: number; close: number }[];
      }
      const d = (
        window as unknown as {
          k2dash: {
            candleSeries: Series;
            volumeSeries: Series;
            state: { firstTrade: { timestamp: number } };
          };
        }
      ).k2dash;
      return {
        candles: d.candleSeries.data(),
        volumes: d.volumeSeries.data(),
        firstTradeTs: d.state.firstTrade.timestamp,
        title: document.querySelector("#chart-title")?.textContent,
      };
    });
    expect(chart.title).toContain("BTCUSDT");
    const bars = await store.query(
      `SELECT (timestamp // 60000000 * 60)::INTEGER AS t, arg_min(price, source_sequence)::VARCHAR AS open,
              max(price)::VARCHAR AS high, min(price)::VARCHAR AS low, arg_max(price, source_sequence)::VARCHAR AS close,
              sum(quantity)::VARCHAR AS volume
         FROM trades_v2 GROUP BY 1 ORDER BY 1`,
    );
    const firstMinute = Math.floor(chart.firstTradeTs / 60e6) * 60;
    const complete = bars.filter((b) => Number(b.t) > firstMinute);
    expect(complete.length).toBeGreaterThanOrEqual(3);
    const byTime = new Map(chart.candles.map((c) => [c.time, c]));
    const volByTime = new Map(chart.volumes.map((v) => [v.time, v]));
    for (const b of complete) {
      const c = byTime.get(Number(b.t));
      expect(c, `candle ${b.t}`).toBeDefined();
      expect([c?.open, c?.high, c?.low, c?.close]).toEqual([
        Number(b.open),
        Number(b.high),
        Number(b.low),
        Number(b.close),
      ]);
      const v = volByTime.get(Number(b.t));
      expect(v?.value).toBeCloseTo(Number(b.volume), 6);
    }
    expect(chart.candles.at(-1)?.time).toBe(Number(bars.at(-1)?.t));

    // symbol row: last price = the last stored trade, spread = ask − bid of the latest quote, exactly
    const [lastQuote] = await store.query(
      "SELECT bid_price::VARCHAR AS bid, ask_price::VARCHAR AS ask FROM quotes_v2 ORDER BY ingestion_timestamp DESC, source_sequence DESC LIMIT 1",
    );
    // (cells by their class: symbol, last, bid, ask, spread, feed)
    const row = await page.$eval('#symbols tbody tr[data-symbol="BTCUSDT"]', (r) =>
      ["symbol", "last", "bid", "ask", "spread", "feed"].map((c) => r.querySelector(`td.${c}`)?.textContent),
    );
    expect(row[0]).toBe("BTCUSDT");
    expect(row[1]).toBe(display(String(stored[0].price)));
    expect(row[2]).toBe(display(String(lastQuote.bid)));
    expect(row[3]).toBe(display(String(lastQuote.ask)));
    const spreadUnits =
      BigInt(String(lastQuote.ask).replace(".", "")) - BigInt(String(lastQuote.bid).replace(".", ""));
    const spread = `${spreadUnits / 100000000n}.${(spreadUnits % 100000000n).toString().padStart(8, "0")}`;
    expect(row[4]?.startsWith(`${display(spread)} (`)).toBe(true);
    expect(row[5]).toBe("replay ended");

    // feed health from /api/v1/status
    await page.waitForFunction(
      (n) => document.querySelector('#health dd[data-k="trades"]')?.textContent === String(n),
      TRADES_IN_CAPTURE,
      { timeout: 5000 },
    );
    const health = await page.$$eval("#health dd", (dds) =>
      Object.fromEntries(dds.map((d) => [(d as HTMLElement).dataset.k, d.textContent])),
    );
    expect(health.gaps).toBe("0");
    expect(health.dead_letters).toBe("0");
    expect(health.reconnects).toBe("0");
    expect(Number(health.frames)).toBe(run.feed.counts.frames);
    expect(await page.textContent("#feed-state")).toBe("binance replay ended");

    // every feed has its row in the health table (here the one, with the same figures)
    const feedRow = await page.$$eval("#feeds tbody tr[data-exchange]", (rows) =>
      rows.map((r) => ({
        exchange: (r as HTMLElement).dataset.exchange,
        trades: r.querySelector('td[data-k="trades"]')?.textContent,
        state: r.querySelector(".badge")?.textContent,
      })),
    );
    expect(feedRow).toEqual([
      { exchange: "BINANCE", trades: String(TRADES_IN_CAPTURE), state: "replay ended" },
    ]);

    // the exchange column; the data's age from the last trade's own time (2024: days, not seconds)
    const cells = await page.$eval('#symbols tbody tr[data-symbol="BTCUSDT"]', (r) => ({
      exchange: r.querySelector("td.exchange")?.textContent,
      age: r.querySelector("td.age")?.textContent,
    }));
    expect(cells.exchange).toBe("binance");
    const [last] = await store.query(
      'SELECT "timestamp"::BIGINT AS ts FROM trades_v2 ORDER BY source_sequence DESC LIMIT 1',
    );
    const days = Math.floor((Date.now() - Number(last.ts) / 1000) / 86_400_000);
    expect([`${days} d`, `${days + 1} d`]).toContain(cells.age);

    // the tape's times carry their date (the trades are not from today), from the trade's own time
    const times = await page.$$eval("#tape tbody td.time", (tds) => tds.map((td) => td.textContent));
    const tsOf = await store.query(
      'SELECT "timestamp"::BIGINT AS ts FROM trades_v2 ORDER BY source_sequence DESC LIMIT 100',
    );
    expect(times).toEqual(
      tsOf.map((r) => new Date(Math.floor(Number(r.ts) / 1000)).toISOString().slice(0, 23).replace("T", " ")),
    );
    // exact decimals line up: one number of places per column, each value exact (only zeros added)
    const quantities = await page.$$eval("#tape tbody tr", (rows) =>
      rows.map((r) => ({
        raw: (r as HTMLElement).dataset.quantity ?? "",
        shown: r.querySelector("td.quantity")?.textContent ?? "",
      })),
    );
    const places = new Set(quantities.map((q) => q.shown.split(".")[1]?.length));
    expect(places.size).toBe(1);
    expect([...places][0]).toBeGreaterThanOrEqual(2);
    for (const q of quantities) expect(q.raw.startsWith(q.shown) || q.shown.startsWith(q.raw)).toBe(true);
    expect(quantities.some((q) => q.shown.replace(/0+$/, "") !== q.shown)).toBe(true); // some padded

    // the price axis leaves out a tick label the last-price marker would cover (within 14 px of it)
    const axis = await page.evaluate(() => {
      interface Chart {
        options(): { localization: { tickmarksPriceFormatter(prices: number[]): string[] } };
      }
      interface Series {
        data(): { close: number }[];
        priceToCoordinate(p: number): number | null;
        coordinateToPrice(y: number): number | null;
      }
      const d = (window as unknown as { k2dash: { chart: Chart; candleSeries: Series } }).k2dash;
      const last = d.candleSeries.data().at(-1)!.close;
      const y = d.candleSeries.priceToCoordinate(last)!;
      const near = d.candleSeries.coordinateToPrice(y + 5)!;
      const far = d.candleSeries.coordinateToPrice(y + 60)!;
      return d.chart.options().localization.tickmarksPriceFormatter([near, far, last]);
    });
    expect(axis[0]).toBe("");
    expect(axis[1]).toMatch(/^\d+\.\d\d$/);
    expect(axis[2]).toBe("");

    mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "test-artifacts", "dashboard.png") });

    // the interval switch: 5-minute candles equal the stored trades' 5-minute bars (but the first)
    await page.click('#intervals button[data-interval="5m"]');
    await page.waitForFunction(() =>
      document.querySelector("#chart-title")?.textContent?.includes("candles 5m"),
    );
    const five = await page.evaluate(() => {
      const d = (
        window as unknown as {
          k2dash: {
            candleSeries: {
              data(): { time: number; open: number; high: number; low: number; close: number }[];
            };
          };
        }
      ).k2dash;
      return d.candleSeries.data();
    });
    const bars5 = await store.query(
      `SELECT (timestamp // 300000000 * 300)::INTEGER AS t, arg_min(price, source_sequence)::VARCHAR AS open,
              max(price)::VARCHAR AS high, min(price)::VARCHAR AS low, arg_max(price, source_sequence)::VARCHAR AS close
         FROM trades_v2 GROUP BY 1 ORDER BY 1`,
    );
    expect(five.every((c) => c.time % 300 === 0)).toBe(true);
    const first5 = Math.floor(chart.firstTradeTs / 300e6) * 300;
    const complete5 = bars5.filter((b) => Number(b.t) > first5);
    expect(complete5.length).toBeGreaterThanOrEqual(1);
    const by5 = new Map(five.map((c) => [c.time, c]));
    for (const b of complete5) {
      const c = by5.get(Number(b.t));
      expect([c?.open, c?.high, c?.low, c?.close], `5m candle ${b.t}`).toEqual([
        Number(b.open),
        Number(b.high),
        Number(b.low),
        Number(b.close),
      ]);
    }
    expect(problems).toEqual([]);
    await page.close();
  });

  it.each([
    ["", {}, []],
    // the gateway refuses the trades' `from` (2024 is further back than an hour: 416); the page still
    // opens on the stored history from REST and subscribes live
    [" (from refused by K2_REPLAY_MAX_RANGE: live only)", { K2_REPLAY_MAX_RANGE: "3600" }, [/gateway error/]],
  ] as [string, NodeJS.ProcessEnv, RegExp[]][])(
    "opened after a replay ended: the stored candles and the last 100 trades, then live%s",
    async (_label, env, expectedProblems) => {
      if (!browser) throw new Error("browser not started");
      // `k2 run --replay btcusdt_20240808.gz --speed max` (no --exit-at-end): it keeps serving after the end
      const k2 = await startK2Run(["--replay", CAPTURE, "--speed", "max", "--symbols", "BTCUSDT"], env);
      try {
        const api = `${k2.baseUrl}/api/v1`;
        await waitFor("the replay ended and every trade stored", async () => {
          const status = await getJson<{ feeds: { replay: string | null }[] }>(`${api}/status`);
          const symbols = await getJson<{ data: { trades: number }[] }>(`${api}/symbols`);
          return (
            status.body.feeds[0]?.replay === "ended" && symbols.body.data[0]?.trades === TRADES_IN_CAPTURE
          );
        });
        const page: Page = await browser.newPage();
        const problems: string[] = [];
        page.on("console", (m) => {
          if (m.type() === "error" || m.type() === "warning")
            problems.push(`console ${m.type()}: ${m.text()}`);
        });
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
        await page.goto(`${k2.baseUrl}/`);
        interface Dash {
          k2dash: {
            state: {
              history: Map<string, { count: number; from: number; to: number } | null>;
              tradesResumed: boolean;
            };
            candleSeries: {
              data(): { time: number; open: number; high: number; low: number; close: number }[];
            };
            volumeSeries: { data(): { time: number; value: number }[] };
          };
        }
        const shown = (interval: string) =>
          page.evaluate((k) => {
            const d = (window as unknown as Dash).k2dash;
            return {
              history: d.state.history.get(k) ?? null,
              candles: d.candleSeries.data(),
              volumes: d.volumeSeries.data(),
              title: document.querySelector("#chart-title")?.textContent ?? "",
            };
          }, `BINANCE:BTCUSDT|${interval}`);
        // the trades' `from` subscription switched to live (nothing more will come: the replay ended)
        await page.waitForFunction(() => (window as unknown as Dash).k2dash.state.tradesResumed, undefined, {
          timeout: 20_000,
        });

        for (const interval of ["1m", "5m"]) {
          if (interval !== "1m") await page.click(`#intervals button[data-interval="${interval}"]`);
          await page.waitForFunction(
            (i) => {
              const d = (window as unknown as Dash).k2dash;
              const h = d.state.history.get(`BINANCE:BTCUSDT|${i}`);
              return (
                h != null &&
                d.candleSeries.data().length === h.count &&
                document.querySelector("#chart-title")?.textContent?.includes(`candles ${i}`)
              );
            },
            interval,
            { timeout: 10_000 },
          );
          const chart = await shown(interval);
          expect(chart.title).toContain("BTCUSDT (binance)");
          // the page's range asked of the API gives the same candles: the capture's, every one
          const h = chart.history as { count: number; from: number; to: number };
          const ranged = await getJson<{ data: CandleV2[] }>(
            `${api}/candles?symbol=BTCUSDT&interval=${interval}&from=${h.from}&to=${h.to}&limit=5000`,
          );
          const all = await getJson<{ data: CandleV2[] }>(
            `${api}/candles?symbol=BTCUSDT&interval=${interval}&limit=5000`,
          );
          expect(ranged.body.data.length).toBe(chart.candles.length);
          expect(all.body.data.length).toBe(chart.candles.length);
          expect(all.body.data.reduce((n, c) => n + c.trade_count, 0)).toBe(TRADES_IN_CAPTURE);
          expect(chart.candles).toEqual(
            all.body.data.map((c) => ({
              time: c.interval_start / 1e6,
              open: Number(c.open),
              high: Number(c.high),
              low: Number(c.low),
              close: Number(c.close),
            })),
          );
          expect(chart.volumes.map((v) => v.time)).toEqual(all.body.data.map((c) => c.interval_start / 1e6));
          for (const [i, v] of chart.volumes.entries())
            expect(v.value).toBeCloseTo(Number(all.body.data[i].volume), 6);
        }

        // the tape: the capture's last 100 trades, newest first, each once (the `from` subscription's
        // trades the page already had are dropped)
        const stored = await getJson<{ data: { trade_id: string; price: string }[] }>(
          `${api}/trades?limit=100`,
        );
        const tape = await page.$$eval("#tape tbody tr", (rows) =>
          rows.map((r) => ({
            trade_id: (r as HTMLElement).dataset.tradeId,
            price: (r as HTMLElement).dataset.price,
          })),
        );
        expect(tape).toEqual(stored.body.data.map(({ trade_id, price }) => ({ trade_id, price })));
        expect(tape[0].trade_id).toBe(`BINANCE-${LAST_TRADE_ID}`);
        expect(new Set(tape.map((t) => t.trade_id)).size).toBe(100);

        // the symbol row: the stored instrument with its last price
        const row = await page.$eval('#symbols tbody tr[data-symbol="BTCUSDT"]', (r) => ({
          exchange: r.querySelector("td.exchange")?.textContent,
          last: (r as HTMLElement).querySelector("td.last")?.textContent,
        }));
        expect(row).toEqual({ exchange: "binance", last: display(stored.body.data[0].price) });
        expect(problems).toHaveLength(expectedProblems.length);
        for (const [i, re] of expectedProblems.entries()) expect(problems[i]).toMatch(re);
        await page.close();
      } finally {
        await k2.stop();
      }
    },
  );

  it("three venues side by side: a row per (exchange, symbol) and feed health for every feed", async () => {
    if (!browser || !tmp) throw new Error("browser not started");
    const data = join(ROOT, "../shared/data/cryptofeed");
    const config = resolveRunConfig(
      {
        exchange: "binance,coinbase,kraken",
        replay: ["BINANCE", "COINBASE", "KRAKEN"].map((x) => join(data, `${x}.jsonl.gz`)).join(","),
        speed: "max",
        db: `${tmp.dir}/venues.duckdb`,
        httpPort: "0",
      },
      {},
    );
    const venues = await startRun(config, silentLogger());
    try {
      await venues.replayDone;
      const page: Page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${venues.httpPort}/`);
      // every feed's figures, as the run counted them (Binance's recording has aggTrade, no trade)
      const expected = venues.feeds.map((f) => ({
        exchange: f.venue.exchange,
        trades: String(f.counts.trades),
        quotes: String(f.counts.quotes),
      }));
      expect(venues.feeds.every((f) => f.counts.frames > 0)).toBe(true);
      await page.waitForFunction(
        (n) => document.querySelectorAll('#feeds tbody tr[data-exchange] td[data-k="trades"]').length === n,
        expected.length,
      );
      const shown = await page.$$eval("#feeds tbody tr[data-exchange]", (rows) =>
        rows.map((r) => ({
          exchange: (r as HTMLElement).dataset.exchange,
          trades: r.querySelector('td[data-k="trades"]')?.textContent,
          quotes: r.querySelector('td[data-k="quotes"]')?.textContent,
        })),
      );
      expect(shown).toEqual(expected);
      const total = venues.feeds.reduce((n, f) => n + f.counts.trades, 0);
      await page.waitForFunction(
        (n) => document.querySelector('#health dd[data-k="trades"]')?.textContent === String(n),
        total,
      );
      // the symbols table: one row per (exchange, symbol) of every venue (each subscription starts with
      // the current tick), the exchange in its own column
      await page.waitForFunction(
        () =>
          new Set(
            Array.from(document.querySelectorAll<HTMLElement>("#symbols tbody tr")).map(
              (r) => r.dataset.exchange,
            ),
          ).size === 3,
      );
      const rows = await page.$$eval("#symbols tbody tr", (trs) =>
        trs.map((r) => ({
          key: (r as HTMLElement).dataset.key,
          exchange: r.querySelector("td.exchange")?.textContent,
          symbol: r.querySelector("td.symbol")?.textContent,
        })),
      );
      for (const r of rows) expect(r.key).toBe(`${r.exchange?.toUpperCase()}:${r.symbol}`);
      expect(new Set(rows.map((r) => r.exchange))).toEqual(new Set(["binance", "coinbase", "kraken"]));
      await page.close();
    } finally {
      await venues.stop("test done");
    }
  });

  it("names why a feed cannot connect, with the offline hint, as /health does", async () => {
    if (!browser || !tmp) throw new Error("browser not started");
    const offline = await startRun(
      testConfig({ wsUrl: "wss://nonexistent.invalid/ws", db: `${tmp.dir}/offline.duckdb` }),
      silentLogger(),
    );
    try {
      const page: Page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${offline.httpPort}/`);
      await page.waitForSelector("#feeds tbody tr.feed-error", { timeout: 30_000 });
      const error = await page.textContent("#feeds tbody tr.feed-error");
      expect(error).toMatch(
        /^DNS lookup failed for nonexistent\.invalid \(getaddrinfo (ENOTFOUND|EAI_AGAIN)\)$/,
      );
      const health = await (await fetch(`http://127.0.0.1:${offline.httpPort}/health`)).text();
      const shown = await page.$$eval("#problems li", (lis) => lis.map((li) => li.textContent));
      // read during a retry, the state is "connecting", still with the last attempt's cause
      const said = (state: string) => `feed BINANCE ${state}: ${error}`;
      expect(shown.join("\n"), "the problems list").toMatch(
        new RegExp(
          `(?:${["error", "connecting"].map((s) => escapeRegExp(said(s))).join("|")}); no network\\? try: npm start -- --replay`,
        ),
      );
      expect(
        [said("error"), said("connecting")].some((x) => health.includes(x)),
        health,
      ).toBe(true);
      // between attempts the feed is in error (connecting only for the moment of an attempt)
      await page.waitForFunction(
        () => document.querySelector<HTMLElement>("#feed-state")?.dataset.state === "error",
      );
      await page.close();
    } finally {
      await offline.stop("test done");
    }
  });
});

/** `text` as a RegExp source matching it literally. */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
