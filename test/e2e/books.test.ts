/**
 * Issue #13, Binance local order books end to end with the built CLI: the replay server plays the
 * capture's `@depth@100ms` diffs and answers `GET /api/v3/depth` from its recorded snapshot; the feed
 * keeps the book by Binance's procedure and cross-checks it against every `@bookTicker` whose `u` is
 * the final `u` of an applied diff (reference figures: ../shared/data/README.md).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { readCapture } from "../../src/replay/capture.js";
import type { BookSnapshotV2 } from "../../src/schema/books.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import type { Page } from "../../src/store/page.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, runCli, tempDir } from "../helpers/cli.js";
import { startSlowProxy } from "../helpers/servers.js";
import { getJson, startK2Run, waitFor } from "../serve/k2-process.js";

function args(file: string, symbol: string, db = join(tempDir(), "k2.duckdb")): string[] {
  return [
    "run",
    "--replay",
    file,
    "--speed",
    "max",
    "--exit-at-end",
    "--db",
    db,
    "--http-port",
    "0",
    "--symbols",
    symbol,
    "--streams",
    "trade,bookTicker,depth",
  ];
}

describe("Binance local order book, replayed with --streams trade,bookTicker,depth", () => {
  it.each([
    ["btcusdt_20240808.gz", "BTCUSDT", 564],
    ["ethusdt_20240808.gz", "ETHUSDT", 577],
  ])(
    "%s: the book agrees with every cross-checked @bookTicker, without a resync",
    async (file, symbol, checks) => {
      const r = await runCli(args(sharedData(`binance-spot/${file}`), symbol));
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      const s = lastJsonLine(r.stdout);
      expect(s).toMatchObject({ book_checks: checks, book_mismatches: 0, resyncs: 0, rejected: 0 });
      expect(s.book_changes).toBeGreaterThan(3000);
    },
  );

  it("btcusdt_20240808.gz with each REST snapshot answered 3 s late (after the replay's end): still 564 checks", async () => {
    // a loaded CI run once ended the replay before the snapshot was answered; shutdown dropped it, and
    // the book's held diffs and best bid/ask frames with it (book_checks 0)
    const file = sharedData("binance-spot/btcusdt_20240808.gz");
    const venue = new BinanceReplayServer({ file });
    await venue.start();
    const slowRest = await startSlowProxy(venue.restUrl, 3000);
    try {
      const r = await runCli([...args(file, "BTCUSDT"), "--rest-url", slowRest.url]);
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      const s = lastJsonLine(r.stdout);
      expect(s).toMatchObject({ book_checks: 564, book_mismatches: 0, resyncs: 0, rejected: 0 });
      expect(s.book_changes).toBeGreaterThan(3000);
    } finally {
      await slowRest.close();
      await venue.stop();
    }
  });

  it("btcusdt_20240808.gz,btcusdt_20240809.gz as one session: 1,072 checks, no resync at the file boundary", async () => {
    const files = ["btcusdt_20240808.gz", "btcusdt_20240809.gz"].map((f) => sharedData(`binance-spot/${f}`));
    const r = await runCli(args(files.join(","), "BTCUSDT"), { timeoutMs: 240_000 });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    // the second file has no REST snapshot of its own: the book built from the first file's goes on
    expect(s).toMatchObject({ book_checks: 1072, book_mismatches: 0, resyncs: 0, rejected: 0 });
    // both files' records, in full (../shared/data/README.md: 9,757 + 10,147 trades, 28,040 + 45,134 quotes)
    expect(s).toMatchObject({ trades: 19_904, quotes: 73_174, gaps: 0 });
    expect(r.stderr).not.toMatch(/book sequence break/);
  }, 300_000);

  it("a copy missing one depth diff after the snapshot: the break is found, reported and the book discarded", async () => {
    const copy = join(tempDir(), "btcusdt_dropped.gz");
    const lines: string[] = [];
    let diffsAfterSnapshot = -1;
    let dropped = "";
    for await (const f of readCapture(sharedData("binance-spot/btcusdt_20240808.gz"))) {
      if (f.raw.startsWith('{"lastUpdateId"')) diffsAfterSnapshot = 0;
      else if (diffsAfterSnapshot >= 0 && f.raw.includes("@depth@100ms") && ++diffsAfterSnapshot === 1000) {
        dropped = f.raw;
        continue;
      }
      lines.push(`${f.ns} ${f.raw}`);
    }
    expect(dropped).not.toBe("");
    writeFileSync(copy, gzipSync(`${lines.join("\n")}\n`));
    const r = await runCli(args(copy, "BTCUSDT"));
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    // on a failure, say what the book did (snapshots fetched, checks, the log's book lines)
    const why = `summary ${JSON.stringify(s)}\nbook lines:\n${r.stderr
      .split("\n")
      .filter((l) => /book|snapshot|depth/i.test(l))
      .slice(-20)
      .join("\n")}`;
    expect(s, why).toMatchObject({ resyncs: 1, book_mismatches: 0 });
    // checks before the break still count; the capture holds no later snapshot to rebuild from
    expect(Number(s.book_checks)).toBeGreaterThan(0);
    expect(Number(s.book_checks)).toBeLessThan(564);
    expect(r.stderr).toMatch(/book sequence break/);
  });
});

/** Every stored book snapshot of a DuckDB file, oldest first. */
async function storedSnapshots(db: string): Promise<BookSnapshotV2[]> {
  const store = new DuckDBStore({ path: db, readOnly: true });
  await store.init();
  try {
    const out: BookSnapshotV2[] = [];
    let cursor: string | undefined;
    do {
      const p: Page<BookSnapshotV2> = await store.bookSnapshots({ limit: 1000, order: "asc", cursor });
      out.push(...p.data);
      cursor = p.next_cursor ?? undefined;
    } while (cursor);
    return out;
  } finally {
    await store.close();
  }
}

/** A level's price in 10^-8 units (exact). */
const units = (price: string) => BigInt(price.replace(".", ""));

describe("book records on the bus and in the store (book_changes_v2, book_snapshots_v2)", () => {
  const CAPTURE = sharedData("binance-spot/btcusdt_20240808.gz");
  const flags = ["--store-book-changes", "--book-depth", "5", "--book-interval", "2s"];

  it("stores every book change and a top-5 snapshot every 2 s, the same on a second run, served by /api/v1/book/snapshots", async () => {
    const db = join(tempDir(), "k2.duckdb");
    const r = await runCli([...args(CAPTURE, "BTCUSDT", db), ...flags]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    expect(s).toMatchObject({ book_checks: 564, book_mismatches: 0, resyncs: 0 });
    // every diff, plus the REST snapshot the book was built from
    expect(s.book_changes_stored).toBe(Number(s.book_changes) + 1);
    expect(s.book_snapshots_stored).toBe(s.book_snapshots);
    const snaps = await storedSnapshots(db);
    expect(snaps).toHaveLength(Number(s.book_snapshots));
    // one per 2 s boundary from the REST snapshot on (the diffs come every 100 ms)
    expect(snaps.length).toBeGreaterThan(150);
    for (const [i, x] of snaps.entries()) {
      expect(x.timestamp % 2_000_000).toBe(0);
      if (i > 0) expect(x.timestamp).toBeGreaterThan(snaps[i - 1].timestamp);
      expect(x).toMatchObject({
        exchange: "BINANCE",
        symbol: "BTCUSDT",
        depth: 5,
        last_resync_timestamp: null,
      });
      expect(x.bids).toHaveLength(5);
      expect(x.asks).toHaveLength(5);
      // best first, exact, not crossed
      for (let k = 1; k < 5; k++) {
        expect(units(x.bids[k][0]) < units(x.bids[k - 1][0])).toBe(true);
        expect(units(x.asks[k][0]) > units(x.asks[k - 1][0])).toBe(true);
      }
      expect(units(x.bids[0][0]) < units(x.asks[0][0])).toBe(true);
    }

    // a live run of the same capture serves the same snapshots (venue clock: any speed, same book)
    const k2 = await startK2Run([
      "--replay",
      CAPTURE,
      "--speed",
      "max",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker,depth",
      ...flags,
    ]);
    try {
      const api = `${k2.baseUrl}/api/v1/book/snapshots`;
      const all = async (order: "asc" | "desc") => {
        const rows: BookSnapshotV2[] = [];
        let cursor: string | null = null;
        do {
          const q: URLSearchParams = new URLSearchParams({
            symbol: "btcusdt",
            limit: "40",
            order,
            ...(cursor ? { cursor } : {}),
          });
          const { status, body }: { status: number; body: Page<BookSnapshotV2> } = await getJson<
            Page<BookSnapshotV2>
          >(`${api}?${q}`);
          expect(status).toBe(200);
          rows.push(...body.data);
          cursor = body.next_cursor;
        } while (cursor);
        return rows;
      };
      // until the run's first trade or quote (stored or live) the symbol is unknown to the API, a 404
      // that says so; from then on every page must be a 200
      await waitFor(
        "the first trade or quote of BTCUSDT",
        async () => (await getJson(`${api}?symbol=btcusdt`)).status !== 404,
        60_000,
      );
      await waitFor("every snapshot stored", async () => (await all("asc")).length === snaps.length, 120_000);
      expect(await all("asc")).toEqual(snaps);
      expect(await all("desc")).toEqual([...snaps].reverse());
      const t = snaps[10].timestamp;
      const ranged = await getJson<Page<BookSnapshotV2>>(
        `${api}?exchange=binance&from=${t}&to=${t + 4_000_000}&order=asc`,
      );
      expect(ranged.body).toEqual({
        data: snaps.filter((x) => x.timestamp >= t && x.timestamp < t + 4_000_000),
        next_cursor: null,
      });
      const bad = await getJson<{ error: string; parameter: string }>(`${api}?limit=0`);
      expect(bad).toMatchObject({ status: 400, body: { error: "bad_request", parameter: "limit" } });
      const doc = await getJson<{ paths: Record<string, unknown> }>(`${k2.baseUrl}/docs/json`);
      expect(Object.keys(doc.body.paths)).toContain("/api/v1/book/snapshots");
    } finally {
      await k2.stop();
    }
  });

  it.each([
    ["--book-depth", "0"],
    ["--book-interval", "10"],
  ])("refuses %s %s with exit 2, naming the flag", async (flag, value) => {
    const r = await runCli([...args(CAPTURE, "BTCUSDT"), flag, value]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^k2: ${flag}: `));
  });
});
