/**
 * Issue #13, Coinbase Advanced Trade `level2` books through the built CLI: `k2 run --exchange coinbase
 * --streams market_trades,ticker,level2 --replay COINBASE.jsonl.gz` keeps each product's book from the
 * `l2_data` snapshot and updates, and cross-checks every `ticker` after the snapshot with it (reference:
 * of 154 tickers, 114 agree at arrival, 28 within the next three `l2_data` messages, 12 never); the
 * served book equals the recording's `l2_data` applied in order; a copy missing one `l2_data` frame
 * shows the `sequence_num` gap: both books discarded and level2 resubscribed, `/health` says so.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, runCli, tempDir } from "../helpers/cli.js";
import { getJson, startK2Run, waitFor } from "../serve/k2-process.js";
import { dec8, recvFrames } from "../venues/recording.js";

const RECORDING = sharedData("cryptofeed/COINBASE.jsonl.gz");
const STREAMS = ["--exchange", "coinbase", "--streams", "market_trades,ticker,level2"];

/** A copy of the recording without the first `l2_data` frame numbered above 100 (after both snapshots). */
function copyWithoutOneL2Frame(): { file: string; lost: number } {
  let lost = -1;
  const out = gunzipSync(readFileSync(RECORDING))
    .toString("utf8")
    .split("\n")
    .filter((line) => {
      if (lost >= 0 || !line.startsWith('{"t":"recv"')) return true;
      const m = JSON.parse(JSON.parse(line).data);
      if (m.channel !== "l2_data" || m.sequence_num <= 100) return true;
      lost = m.sequence_num;
      return false;
    });
  expect(lost).toBeGreaterThan(100);
  const file = join(tempDir(), "COINBASE_lost_frame.jsonl.gz");
  writeFileSync(file, gzipSync(out.join("\n")));
  return { file, lost };
}

describe("Coinbase level2 books, replayed with --streams market_trades,ticker,level2", () => {
  it("COINBASE.jsonl.gz: 154 tickers cross-checked, 28 agreeing only within three l2_data messages, 12 never, 0 resyncs", async () => {
    const r = await runCli([
      "run",
      ...STREAMS,
      "--replay",
      RECORDING,
      "--speed",
      "max",
      "--exit-at-end",
      "--store-book-changes",
      "--db",
      join(tempDir(), "k2.duckdb"),
      "--http-port",
      "0",
    ]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    console.log(
      `Coinbase tickers ${s.book_checks}: at arrival ${Number(s.book_checks) - Number(s.book_checks_late) - Number(s.book_mismatches)}, within three l2_data ${s.book_checks_late}, never ${s.book_mismatches}`,
    );
    expect(s).toMatchObject({
      book_checks: 154,
      book_checks_late: 28,
      book_mismatches: 12,
      resyncs: 0,
      gaps: 0,
      rejected: 0,
      // the two snapshots and 773 updates, one per l2_data message
      book_changes: 775,
      book_changes_stored: 775,
    });
    expect(Number(s.book_snapshots)).toBeGreaterThan(0);
    expect(s.book_snapshots_stored).toBe(s.book_snapshots);
  });

  it("a copy missing one l2_data frame: one gap, both books discarded and level2 resubscribed, /health names them", async () => {
    const { file, lost } = copyWithoutOneL2Frame();
    const r = await runCli([
      "run",
      ...STREAMS,
      "--replay",
      file,
      "--speed",
      "max",
      "--exit-at-end",
      "--db",
      join(tempDir(), "k2.duckdb"),
      "--http-port",
      "0",
    ]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const s = lastJsonLine(r.stdout);
    expect(s).toMatchObject({ gaps: 1, resyncs: 1, rejected: 0 });
    // tickers are checked only while the books are live: fewer than the 154 of the whole session
    expect(Number(s.book_checks)).toBeLessThan(154);
    const warned = r.stderr.split("\n").filter((l) => l.includes("sequence_num gap"));
    expect(warned).toHaveLength(1);
    expect(JSON.parse(warned[0])).toMatchObject({
      exchange: "COINBASE",
      products: ["BTC-USD", "ETH-USD"],
      from: lost,
      to: lost,
    });

    // serving: the replay sends no new snapshot, so both books stay in resync and /health says so
    const k2 = await startK2Run([...STREAMS, "--replay", file, "--speed", "max"]);
    try {
      await waitFor("the replay's end", async () => k2.stderr().includes("replay finished"), 120_000);
      const health = await fetch(`${k2.baseUrl}/health`);
      expect(health.status).toBe(503);
      const text = await health.text();
      for (const product of ["BTC-USD", "ETH-USD"]) {
        expect(text).toContain(`book COINBASE ${product} resyncing (waiting for a level2 snapshot)`);
        const book = await fetch(`${k2.baseUrl}/api/v1/book?exchange=COINBASE&symbol=${product}&depth=5`);
        expect(book.status, product).toBe(503);
      }
    } finally {
      await k2.stop();
    }
    // longer than its own bounds (a batch run's 120 s, a served run's 120 s wait): a test timed out by
    // vitest never reaches its finally, and left the served k2 running after the suite (seen under load)
  }, 300_000);

  it("GET /api/v1/book serves each product's kept book: equal to the recording's l2_data applied in order", async () => {
    const reference = coinbaseReference();
    expect([...reference.keys()].sort()).toEqual(["BTC-USD", "ETH-USD"]);
    // serving after the replay's end: no --exit-at-end (startK2Run adds --http-port 0 and a --db)
    const k2 = await startK2Run([...STREAMS, "--replay", RECORDING, "--speed", "max"]);
    try {
      await waitFor("the replay's end", async () => k2.stderr().includes("replay finished"), 120_000);
      for (const [product, ref] of reference) {
        const url = `${k2.baseUrl}/api/v1/book?exchange=COINBASE&symbol=${product}&depth=25`;
        const { status, body } = await getJson<{
          state: string;
          bids: Level[];
          asks: Level[];
          last_source_sequence: number | null;
        }>(url);
        expect(status, product).toBe(200);
        expect(body.state, product).toBe("live");
        expect({ product, bids: body.bids, asks: body.asks, seq: body.last_source_sequence }).toEqual({
          product,
          bids: ref.top("bid", 25),
          asks: ref.top("ask", 25),
          seq: ref.sequence,
        });
        expect(Number(body.bids[0][0])).toBeLessThan(Number(body.asks[0][0]));
      }
    } finally {
      await k2.stop();
    }
    // longer than its own bounds (a batch run's 120 s, a served run's 120 s wait): a test timed out by
    // vitest never reaches its finally, and left the served k2 running after the suite (seen under load)
  }, 300_000);
});

type Level = [string, string];

/**
 * Each product's book from the recording's `l2_data` events applied in order (a snapshot replaces the
 * book, `new_quantity` 0 removes a level), with the `sequence_num` of its last message.
 */
function coinbaseReference(): Map<
  string,
  { sequence: number; top(side: "bid" | "ask", n: number): Level[] }
> {
  const books = new Map<string, { sequence: number; bid: Map<string, string>; ask: Map<string, string> }>();
  for (const raw of recvFrames(RECORDING)) {
    const m = JSON.parse(raw);
    if (m.channel !== "l2_data") continue;
    for (const e of m.events as { type: string; product_id: string; updates: Record<string, string>[] }[]) {
      if (e.type === "snapshot") books.set(e.product_id, { sequence: 0, bid: new Map(), ask: new Map() });
      const b = books.get(e.product_id);
      if (!b) continue;
      b.sequence = m.sequence_num;
      for (const u of e.updates) {
        const side = b[u.side === "bid" ? "bid" : "ask"];
        const p = dec8(u.price_level);
        if (/^0*\.?0*$/.test(u.new_quantity)) side.delete(p);
        else side.set(p, dec8(u.new_quantity));
      }
    }
  }
  const out = new Map<string, { sequence: number; top(side: "bid" | "ask", n: number): Level[] }>();
  for (const [product, b] of books) {
    out.set(product, {
      sequence: b.sequence,
      top: (side, n) =>
        [...b[side].entries()]
          .sort((x, y) => (side === "bid" ? 1 : -1) * (Number(y[0]) - Number(x[0])))
          .slice(0, n),
    });
  }
  return out;
}
