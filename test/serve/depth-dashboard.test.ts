/// <reference lib="dom" />
/**
 * The dashboard's order-book panel (`public/depth.js`, issue #13) in Debian's headless chromium: a real
 * `k2 run --replay btcusdt_20240808.gz --streams trade,depth,bookTicker` in process, the page opened
 * while the replay runs. Once the replay has ended, the ladder shows exactly `GET /api/v1/book`'s top 20
 * (bids highest first, asks lowest first, exact strings, cumulative quantities summed exactly) and the
 * depth chart has both areas; a replay without depth streams keeps the panel hidden. Saves
 * `test-artifacts/depth.png`. Skipped when /usr/bin/chromium is missing.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { type RunningPipeline, startRun } from "../../src/run.js";
import { CAPTURE, ROOT, startReplayRun, tempDir } from "./helpers.js";

const CHROMIUM = process.env.K2_CHROMIUM ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);

let tmp: ReturnType<typeof tempDir> | null = null;
let browser: BrowserContext | null = null;
let profile: string | null = null;
const runs: RunningPipeline[] = [];

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  profile = mkdtempSync(join(tmpdir(), "k2-chromium-"));
  tmp = tempDir();
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    viewport: { width: 1400, height: 1200 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  for (const r of runs) await r.stop("test done");
  tmp?.cleanup();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** Sum of DECIMAL(18,8) strings, exact (scaled BigInt), as a DECIMAL(18,8) string. */
function sum(values: string[]): string {
  const u = values
    .reduce((s, v) => s + BigInt(v.replace(".", "")), 0n)
    .toString()
    .padStart(9, "0");
  return `${u.slice(0, -8)}.${u.slice(-8)}`;
}

describe.skipIf(!HAVE_CHROMIUM)("dashboard order book panel in headless chromium", () => {
  it("shows the maintained book's top 20 as a ladder and a depth chart", async () => {
    if (!browser || !tmp) throw new Error("browser not started");
    const config = resolveRunConfig(
      {
        replay: CAPTURE,
        speed: "20",
        httpPort: "0",
        db: `${tmp.dir}/book.duckdb`,
        symbols: "BTCUSDT",
        streams: "trade,depth,bookTicker",
        wsWorkers: "0",
      },
      {},
    );
    const run = await startRun(config, createLogger("warn"));
    runs.push(run);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    await page.goto(`http://127.0.0.1:${run.httpPort}/`);
    await page.waitForSelector("#depth-panel:not([hidden]) #depth-ladder tbody tr", { timeout: 60_000 });
    await run.replayDone;
    const base = `http://127.0.0.1:${run.httpPort}`;
    const book = (await (
      await fetch(`${base}/api/v1/book?exchange=binance&symbol=BTCUSDT&depth=20`)
    ).json()) as {
      bids: [string, string][];
      asks: [string, string][];
      last_source_sequence: number;
    };
    // the page has drawn the final book (the last update it got)
    await page.waitForFunction(
      (seq) => document.querySelector("#depth-state")?.textContent === `sequence ${seq}`,
      book.last_source_sequence,
      { timeout: 15_000 },
    );
    const ladder = await page.$$eval("#depth-ladder tbody tr", (rows) =>
      rows.map((r) => ({
        side: r.className,
        price: (r as HTMLElement).dataset.price,
        quantity: (r as HTMLElement).dataset.quantity,
        cells: Array.from(r.querySelectorAll("td"), (td) => td.textContent),
      })),
    );
    const asks = ladder.filter((r) => r.side === "ask");
    const bids = ladder.filter((r) => r.side === "bid");
    expect(asks.length).toBe(20);
    expect(bids.length).toBe(20);
    // asks shown highest first (best ask right above the best bid), bids best first
    expect(asks.map((r) => [r.price, r.quantity]).reverse()).toEqual(book.asks);
    expect(bids.map((r) => [r.price, r.quantity])).toEqual(book.bids);
    // cumulative columns: exact sums, trimmed to the shown places
    const trimmed = (s: string) => s.replace(/0+$/, "").replace(/\.$/, "");
    for (let i = 0; i < 20; i++) {
      expect(trimmed(bids[i].cells[1] ?? "")).toBe(trimmed(sum(book.bids.slice(0, i + 1).map((l) => l[1]))));
      expect(trimmed(asks[19 - i].cells[4] ?? "")).toBe(
        trimmed(sum(book.asks.slice(0, i + 1).map((l) => l[1]))),
      );
    }
    const paths = await page.$$eval("#depth-chart path", (ps) => ps.map((p) => p.getAttribute("d") ?? ""));
    expect(paths).toHaveLength(2);
    for (const d of paths) expect(d.split(" L").length).toBeGreaterThan(40);
    mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "test-artifacts", "depth.png"), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  }, 180_000);

  it("keeps the panel hidden when no book is kept", async () => {
    if (!browser || !tmp) throw new Error("browser not started");
    const run = await startReplayRun({ db: `${tmp.dir}/nobook.duckdb`, speed: "max" });
    runs.push(run);
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${run.httpPort}/`);
    await page.waitForSelector("#symbols tbody tr.selected", { timeout: 60_000 });
    // depth.js has subscribed for the selected symbol; the gateway has no book to send
    await page.waitForSelector('#depth-panel[data-state="none"]', { state: "attached", timeout: 15_000 });
    await run.replayDone;
    expect(await page.$eval("#depth-panel", (p) => (p as HTMLElement).hidden)).toBe(true);
    expect(await page.$$eval("#depth-ladder tbody tr", (rows) => rows.length)).toBe(0);
    await page.close();
  }, 120_000);
});
