/**
 * The scenario with the CLI: `k2 run` is SIGKILLed mid-replay (records received and not yet
 * committed are lost with it), the venue trades 500 more while k2 is down, and k2 comes back on the
 * same DuckDB file. The second run replays the rest of the capture (a temporary copy starting 500
 * trades after the last one stored) and backfills with `--rest-url` from a replay server's REST
 * emulation over the whole capture: one gap row, `filled`; every trade of the file stored once with its
 * exact volume; the `--exit-at-end` summary reports the gap filled and nothing missing.
 *
 * The venue's REST answers reach k2 through a proxy that holds each for 3 s, so the backfill ends after
 * the replay: its records and the gap's outcome are published while k2 is shutting down (a loaded CI
 * run once saw that order, and the 500 backfilled trades were lost while the summary said filled).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, runCli, startCli, tempDir } from "../helpers/cli.js";
import { waitFor } from "../helpers/run.js";
import { startSlowProxy } from "../helpers/servers.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");

async function storedTrades(port: number): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = /k2_records_stored_total\{table="trades_v2"\} (\d+)/.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

describe("SIGKILL, downtime, restart: the gap is detected across the restart and backfilled", () => {
  it("ends with every trade of the capture once, the gap row filled", async () => {
    const dir = tempDir();
    const db = join(dir, "k2.duckdb");
    const common = ["--db", db, "--http-port", "0", "--symbols", "BTCUSDT", "--streams", "trade,bookTicker"];

    // run 1: killed mid-replay
    const run1 = startCli(["run", "--replay", FILE, "--speed", "20", ...common]);
    const port = await run1.httpPort;
    await waitFor(async () => (await storedTrades(port)) >= 2000, 60_000, "run 1 to store 2000 trades");
    run1.child.kill("SIGKILL");
    const killed = await run1.exited;
    expect(killed.signal).toBe("SIGKILL");

    // what survived the kill (opening read-write replays DuckDB's WAL)
    const s1 = new DuckDBStore({ path: db });
    await s1.init();
    const [last] = await s1.lastSequences();
    await s1.close();
    expect(last).toMatchObject({ exchange: "BINANCE", symbol: "BTCUSDT", data_type: "trades" });
    const lastStored = last.sequence;

    // the venue traded 500 more while k2 was down: run 2 replays from the 501st trade after the last one
    // stored (a temporary copy of the rest of the capture)
    const lines = gunzipSync(readFileSync(FILE)).toString("utf8").split("\n");
    const resumeId = lastStored + 501;
    const at = lines.findIndex(
      (l) => l.includes('"stream":"btcusdt@trade"') && l.includes(`"t":${resumeId},`),
    );
    expect(at).toBeGreaterThan(0);
    const rest = join(dir, "rest-of-capture.gz");
    writeFileSync(rest, gzipSync(lines.slice(at).join("\n")));

    // the venue's REST API: a replay server over the whole capture (its REST emulation)
    const venue = new BinanceReplayServer({ file: FILE });
    await venue.start();
    const slowRest = await startSlowProxy(venue.restUrl, 3000);
    let summary: Record<string, number | string>;
    try {
      const run2 = await runCli(
        ["run", "--replay", rest, "--rest-url", slowRest.url, "--exit-at-end", ...common],
        { timeoutMs: 180_000 },
      );
      expect(run2.code, run2.stderr.slice(-3000)).toBe(0);
      summary = lastJsonLine(run2.stdout);
      expect(run2.stderr).toContain("gap detection resumes from the last stored venue sequences");
    } finally {
      await slowRest.close();
      await venue.stop();
    }
    expect(summary).toMatchObject({ gaps: 1, gaps_detected: 1, gaps_filled: 1, missing: 0 });
    expect(summary.trades).toBe(3_735_693_015 - resumeId + 1);

    const s2 = new DuckDBStore({ path: db, readOnly: true });
    await s2.init();
    try {
      const [t] = await s2.query(
        `SELECT count(*) AS n, count(DISTINCT trade_id) AS ids, sum(quantity)::VARCHAR AS volume,
           count(*) FILTER (WHERE vendor_data->>'source' = 'rest_backfill') AS backfilled
         FROM trades_v2`,
      );
      expect(t).toEqual({ n: "9757", ids: "9757", volume: "212.03315000", backfilled: "500" });
      expect(
        await s2.query("SELECT data_type, from_sequence, to_sequence, status, backfilled FROM sequence_gaps"),
      ).toEqual([
        {
          data_type: "trades",
          from_sequence: String(lastStored + 1),
          to_sequence: String(resumeId - 1),
          status: "filled",
          backfilled: "500",
        },
      ]);
    } finally {
      await s2.close();
    }
  }, 240_000);
});
