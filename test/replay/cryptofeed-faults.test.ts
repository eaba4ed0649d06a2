/**
 * Fault injection in the cryptofeed replay server (Coinbase recording): drops with lost frames, garbage
 * and a close reach the feed as they would from a live venue, the replay still ends, and the counts
 * the server reports match what the store holds.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { startRun } from "../../src/run.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { COINBASE_FILE } from "../venues/recording.js";

const dir = mkdtempSync(join(tmpdir(), "k2-cf-faults-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function replay(faults: string | undefined, n: number) {
  const db = join(dir, `db${n}.duckdb`);
  const config = resolveRunConfig(
    {
      exchange: "coinbase",
      replay: COINBASE_FILE,
      db,
      httpPort: "0",
      exitAtEnd: true,
      batchMaxWaitMs: "50",
      backoffMaxMs: "200",
      ...(faults ? { faults } : {}),
    },
    {},
  );
  const running = await startRun(config, createLogger("silent"), { replayInProcess: true });
  await running.replayDone;
  const summary = await running.stop("test");
  const store = new DuckDBStore({ path: db, readOnly: true });
  await store.init();
  const [dead] = await store.query("SELECT count(*) AS n FROM dead_letters");
  await store.close();
  return { summary, dead: Number(dead.n) };
}

describe("cryptofeed replay server faults", () => {
  it("drop-every with lost frames, garbage and close: the replay ends and the counts add up", async () => {
    const clean = await replay(undefined, 1);
    expect(clean.summary.faults).toBeNull();
    const { summary, dead } = await replay("drop-every=300:lost=20,garbage=0.01,close=1000@700", 2);
    const f = summary.faults!;
    expect(f.drops).toBeGreaterThanOrEqual(2);
    expect(f.frames_lost).toBe(f.drops * 20);
    expect(f.closes).toBe(1);
    expect(summary.reconnects).toBe(f.drops + f.closes);
    expect(f.garbage_frames).toBeGreaterThan(0);
    expect(dead).toBe(f.garbage_frames);
    expect(summary.rejected).toBe(f.garbage_frames);
    // the lost frames carried trades: fewer stored than in the clean replay, never more
    expect(summary.trades).toBeLessThan(clean.summary.trades);
    expect(summary.trades).toBeGreaterThan(clean.summary.trades / 2);
  });

  it("garbage and close alone lose nothing", async () => {
    const clean = await replay(undefined, 3);
    const { summary, dead } = await replay("garbage=0.05,close=4001@100", 4);
    expect(summary.faults).toMatchObject({ drops: 0, frames_lost: 0, closes: 1 });
    expect(summary.trades).toBe(clean.summary.trades);
    expect(summary.quotes).toBe(clean.summary.quotes);
    expect(dead).toBe(summary.faults!.garbage_frames);
  });
});
