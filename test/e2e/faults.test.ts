/**
 * Fault injection drills through the CLI, as a user runs them: `k2 run --replay FILE --faults SPEC
 * --exit-at-end` (replay server in its worker thread) ends, and its summary reports what was injected.
 * Drops with lost frames, backfill off: trades stored + trades in the lost frames == 9,757, one sequence
 * gap per drop covering exactly the lost trades. The same with backfill (the default): every gap filled
 * from the replay server's REST emulation, all 9,757 trades stored. Faults without loss (stall, no-pong, garbage, close): all 9,757
 * trades stored, the garbage in dead_letters.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, resolveRunConfig } from "../../src/config.js";
import { parseFaults } from "../../src/replay/faults.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, query, runCli, tempDir } from "../helpers/cli.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");
const TRADES = 9757;

async function replayWithFaults(faults: string, extra: string[] = []) {
  const db = `${tempDir()}/k2.duckdb`;
  const r = await runCli(
    [
      "run",
      "--replay",
      FILE,
      "--faults",
      faults,
      "--exit-at-end",
      "--db",
      db,
      "--http-port",
      "0",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
      "--backoff-max-ms",
      "200",
      ...extra,
    ],
    { timeoutMs: 60_000 },
  );
  expect(r.code, r.stderr.slice(-3000)).toBe(0);
  const summary = lastJsonLine(r.stdout) as unknown as {
    trades: number;
    reconnects: number;
    rejected: number;
    gaps: number;
    faults: {
      drops: number;
      frames_lost: number;
      lost_by_stream: Record<string, number>;
      stalls: number;
      garbage_frames: number;
      closes: number;
      pings_unanswered: number;
    };
  };
  return { db, summary, stderr: r.stderr };
}

describe("k2 run --replay --faults", () => {
  it("drop-every=N:lost=M with --no-backfill: every trade is stored or counted lost, one gap per drop", async () => {
    const { db, summary } = await replayWithFaults("drop-every=5000:lost=300", ["--no-backfill"]);
    const f = summary.faults;
    expect(f.drops).toBe(7); // 37,797 frames: a cut after every 5,000 sent, 300 lost each time
    expect(f.frames_lost).toBe(7 * 300);
    expect(summary.reconnects).toBe(7);
    const lostTrades = f.lost_by_stream["btcusdt@trade"] ?? 0;
    expect(lostTrades).toBeGreaterThan(0);
    const [r] = await query(
      db,
      "SELECT (SELECT count(*) FROM trades_v2) AS trades, count(*) AS gaps, sum(to_sequence - from_sequence + 1) AS missing FROM sequence_gaps WHERE data_type = 'trades'",
    );
    expect(Number(r.trades) + lostTrades).toBe(TRADES);
    expect(summary.trades + lostTrades).toBe(TRADES);
    expect(Number(r.gaps)).toBe(7);
    expect(Number(r.missing)).toBe(lostTrades);
  });

  it("the drill of the issue: drops with loss, garbage and a 90 s stall — every trade stored, the gaps backfilled", async () => {
    // deadlines shrunk (the stall is detected in about 1.2 s instead of 20 s), with a pong deadline a loaded
    // machine still meets (a 200 ms one was missed under load: a spurious reconnect lost frames no fault
    // injected, and the backfill count no longer matched the injected loss); the fault SPEC as given
    const { db, summary } = await replayWithFaults("drop-every=5000:lost=300,garbage=0.001,stall=90s@20000", [
      "--ping-interval-ms",
      "200",
      "--pong-timeout-ms",
      "1000",
    ]);
    const s = summary as typeof summary & { gaps_detected: number; gaps_filled: number; missing: number };
    const f = summary.faults;
    expect(f.drops).toBeGreaterThanOrEqual(3);
    expect(f.frames_lost).toBe(f.drops * 300);
    expect(f.stalls).toBe(1);
    expect(f.lost_by_stream["btcusdt@trade"]).toBeGreaterThan(0);
    expect(s.reconnects).toBeGreaterThanOrEqual(3);
    expect(s.gaps_filled).toBeGreaterThanOrEqual(2);
    expect(s.gaps_filled).toBe(s.gaps_detected);
    expect(s.missing).toBe(0);
    const [t] = await query(
      db,
      `SELECT count(*) AS n, count(DISTINCT trade_id) AS ids, sum(quantity) AS qty,
         min(source_sequence) AS first, max(source_sequence) AS last,
         (SELECT count(*) FROM trades_v2 WHERE vendor_data->>'source' = 'rest_backfill') AS backfilled,
         (SELECT count(*) FROM dead_letters WHERE reason = 'malformed JSON') AS garbage,
         (SELECT count(*) FROM sequence_gaps WHERE data_type = 'trades' AND status = 'filled') AS filled,
         (SELECT count(*) FROM sequence_gaps WHERE data_type = 'trades' AND status <> 'filled') AS unfilled
       FROM trades_v2`,
    );
    expect(Number(t.n)).toBe(TRADES);
    expect(Number(t.ids)).toBe(TRADES);
    expect(t.qty).toBe("212.03315000");
    expect(t.first).toBe("3735683259");
    expect(t.last).toBe("3735693015");
    expect(Number(t.backfilled)).toBe(f.lost_by_stream["btcusdt@trade"]);
    expect(Number(t.garbage)).toBe(f.garbage_frames);
    expect(Number(t.filled)).toBe(s.gaps_filled);
    expect(Number(t.unfilled)).toBe(0);
  });

  it("stall, no-pong, garbage and close lose nothing: every trade stored, the garbage dead-lettered", async () => {
    // the stall outlasts the pong deadline by far, so that it is detected (not waited out) however slow the
    // machine (a 2 s stall against a 200 ms deadline was waited out once under load)
    const { db, summary } = await replayWithFaults("stall=8s@8000,no-pong,garbage=0.002,close=1001@20000", [
      "--ping-interval-ms",
      "200",
      "--pong-timeout-ms",
      "1000",
      "--faults-seed",
      "7",
    ]);
    const f = summary.faults;
    expect(f).toMatchObject({ drops: 0, frames_lost: 0, stalls: 1, closes: 1 });
    expect(f.pings_unanswered).toBeGreaterThanOrEqual(1);
    expect(f.garbage_frames).toBeGreaterThan(20); // ~0.2 % of 37,797
    // the stall was detected (not waited out) and the close reconnected
    expect(summary.reconnects).toBeGreaterThanOrEqual(2);
    const [t] = await query(
      db,
      "SELECT count(*) AS n, sum(quantity) AS qty, (SELECT count(*) FROM dead_letters WHERE reason = 'malformed JSON') AS garbage, (SELECT count(*) FROM sequence_gaps) AS gaps FROM trades_v2",
    );
    expect(Number(t.n)).toBe(TRADES);
    expect(String(t.qty)).toMatch(/^212\.03315/);
    expect(Number(t.garbage)).toBe(f.garbage_frames);
    expect(summary.rejected).toBe(f.garbage_frames);
    expect(Number(t.gaps)).toBe(0);
  });

  it("rejects an invalid SPEC naming --faults (exit 2)", async () => {
    const r = await runCli([
      "run",
      "--replay",
      FILE,
      "--faults",
      "stall=90@5",
      "--db",
      `${tempDir()}/x.duckdb`,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--faults: "stall=90@5": expected DUR@FRAME, DUR like 90s/);
    for (const [spec, why] of [
      ["drop-every=0", /"drop-every=0": N must be a positive integer/],
      ["garbage=2", /RATE must be from 0 to 1/],
      ["close=1006@3", /sendable close code/],
      ["no-pong,no-pong", /given twice/],
      ["explode", /"explode": unknown fault/],
    ] as const) {
      expect(() => resolveRunConfig({ replay: FILE, faults: spec })).toThrow(ConfigError);
      expect(() => resolveRunConfig({ replay: FILE, faults: spec })).toThrow(why);
    }
    expect(() => resolveRunConfig({ faults: "no-pong" })).toThrow(/--faults: only meaningful with --replay/);
    expect(
      parseFaults("drop-every=5000:lost=300,garbage=0.001,stall=90s@20000,close=4000@7,no-pong", 3),
    ).toEqual({
      dropEvery: { n: 5000, lost: 300 },
      garbageRate: 0.001,
      stall: { durationMs: 90_000, atFrame: 20000 },
      close: { code: 4000, atFrame: 7 },
      noPong: true,
      seed: 3,
    });
  });
});
