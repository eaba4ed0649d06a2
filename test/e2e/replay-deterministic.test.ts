/**
 * Issue #16, deterministic replay: with `--replay` (the recorded clock, the default) records carry the
 * recording's receive times as `ingestion_timestamp` and a platform_sequence that depends only on the
 * recording, so two replays of one capture into two empty stores give identical rows; `--replay-clock
 * wall` stamps this process's clock instead.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readCapture } from "../../src/replay/capture.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, query, runCli, tempDir } from "../helpers/cli.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");

/** `k2 run --replay FILE --speed max --exit-at-end` into a fresh DuckDB file; resolves with its path. */
async function replayInto(...extra: string[]): Promise<string> {
  const db = join(tempDir(), "k2.duckdb");
  const r = await runCli(
    ["run", "--replay", FILE, "--speed", "max", "--exit-at-end", "--db", db, "--http-port", "0", ...extra],
    { timeoutMs: 180_000 },
  );
  expect(r.code, r.stderr.slice(-2000)).toBe(0);
  const summary = lastJsonLine(r.stdout);
  expect(summary.trades).toBe(9757);
  expect(summary.quotes).toBe(28040);
  return db;
}

/** Every row of `table` as text, in a total order (message_id is unique per table). */
function allRows(db: string, table: string) {
  return query(db, `SELECT * FROM ${table} ORDER BY message_id`);
}

describe("deterministic replay (--replay-clock recorded, the default)", () => {
  it("gives identical trades_v2 and quotes_v2 rows on two replays, stamped with the recorded receive times", async () => {
    const [a, b] = await Promise.all([replayInto(), replayInto()]);
    for (const table of ["trades_v2", "quotes_v2"]) {
      const [ra, rb] = await Promise.all([allRows(a, table), allRows(b, table)]);
      expect(ra.length).toBe(table === "trades_v2" ? 9757 : 28040);
      expect(rb.length).toBe(ra.length);
      for (let i = 0; i < ra.length; i++) expect(rb[i], `${table} row ${i}`).toEqual(ra[i]);
    }

    // the first trade: ingestion_timestamp − timestamp is the capture's receive time − trade time
    let first: { ns: string; raw: string } | null = null;
    for await (const f of readCapture(FILE)) {
      if (f.raw.startsWith('{"stream":"btcusdt@trade"')) {
        first = f;
        break;
      }
    }
    if (!first) throw new Error("no trade frame in the capture");
    const data = JSON.parse(first.raw).data as { t: number; T: number };
    const [row] = await query(
      a,
      `SELECT timestamp, ingestion_timestamp, platform_sequence FROM trades_v2 WHERE source_sequence = ${data.t}`,
    );
    const receivedUs = BigInt(first.ns) / 1000n;
    expect(BigInt(row.ingestion_timestamp!) - BigInt(row.timestamp!)).toBe(
      receivedUs - BigInt(data.T) * 1000n,
    );
    expect(BigInt(row.ingestion_timestamp!)).toBe(receivedUs);
    // platform_sequence starts at the recording's first receive time (before the first trade's)
    const [seq] = await query(a, "SELECT min(platform_sequence) AS first FROM trades_v2");
    expect(BigInt(seq.first!)).toBeLessThanOrEqual(receivedUs);
    expect(BigInt(seq.first!)).toBeGreaterThan(receivedUs - 60_000_000n);
  });

  it("--replay-clock wall stamps this process's receipt time instead", async () => {
    const startedUs = BigInt(Date.now()) * 1000n;
    const db = await replayInto("--replay-clock", "wall");
    const [row] = await query(db, "SELECT min(ingestion_timestamp) AS first FROM trades_v2");
    expect(BigInt(row.first!)).toBeGreaterThanOrEqual(startedUs);
  });

  it("refuses a --replay-clock other than recorded or wall, and one without --replay (exit 2)", async () => {
    const bad = await runCli(["run", "--replay", FILE, "--replay-clock", "sim", "--http-port", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--replay-clock: expected recorded or wall, got "sim"');
    const live = await runCli(["run", "--replay-clock", "wall", "--http-port", "0"]);
    expect(live.code).toBe(2);
    expect(live.stderr).toContain("--replay-clock: only meaningful with --replay FILE");
    const help = await runCli(["run", "--help"]);
    expect(help.stdout).toContain("--replay-clock <clock>");
  });
});
