/**
 * End to end into PostgreSQL: the btcusdt_20240808 capture replayed through `k2 run` reproduces the
 * table of `../shared/data/README.md` exactly, and a second replay (through the CLI, `--db postgres://`)
 * stores nothing new and reports every record as a duplicate.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { startRun } from "../../src/run.js";
import { vwapFromSums } from "../../src/schema/decimal.js";
import { createStore } from "../../src/store/index.js";
import { createTestDatabase, type TestDatabase } from "./pg.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const capture = join(root, "../shared/data/binance-spot/btcusdt_20240808.gz");
const run = promisify(execFile);

/** Runs the CLI from source (tsx), returning stdout; throws with stderr on a non-zero exit. */
async function k2(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", join(root, "src/cli.ts"), ...args], {
    cwd: root,
    env: { ...process.env, K2_LOG_LEVEL: "warn" },
    maxBuffer: 16 << 20,
  });
  return stdout;
}

const STATS = `SELECT count(*) AS trades, count(DISTINCT trade_id) AS ids,
  min(source_sequence) AS first_id, max(source_sequence) AS last_id, sum(quantity) AS volume,
  sum(CAST(price AS DECIMAL(38,8)) * CAST(quantity AS DECIMAL(38,8))) AS notional
  FROM trades_v2 WHERE symbol = 'BTCUSDT'`;
const COUNTS = `SELECT (SELECT count(*) FROM trades_v2) AS trades, (SELECT count(*) FROM quotes_v2) AS quotes,
  (SELECT count(*) FROM agg_trades_v2) AS agg_trades, (SELECT count(*) FROM dead_letters) AS dead_letters,
  (SELECT count(*) FROM sequence_gaps) AS gaps`;

describe.skipIf(!existsSync(capture))("replay of btcusdt_20240808.gz into PostgreSQL", () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("reproduces the README table exactly, and a second replay changes no count", async () => {
    const config = resolveRunConfig(
      { replay: capture, speed: "max", exitAtEnd: true, db: db.url, httpPort: "0" },
      {},
    );
    const running = await startRun(config, createLogger("warn"));
    expect(running.store.name).toBe("postgres");
    await running.replayDone;
    const first = await running.stop("replay finished");
    expect(first).toMatchObject({ trades: 9757, quotes: 28040, rejected: 0, stored: 37797, duplicates: 0 });

    const store = createStore(db.url, { readOnly: true });
    await store.init();
    try {
      const [s] = await store.query(STATS);
      expect(s).toMatchObject({
        trades: "9757",
        ids: "9757",
        first_id: "3735683259",
        last_id: "3735693015",
        volume: "212.03315000",
      });
      // no gaps: the ids are exactly the range
      expect(BigInt(String(s.last_id)) - BigInt(String(s.first_id)) + 1n).toBe(9757n);
      expect(vwapFromSums(String(s.notional), String(s.volume))).toBe("61707.68161671");
      const [before] = await store.query(COUNTS);
      expect(before).toEqual({
        trades: "9757",
        quotes: "28040",
        agg_trades: "0",
        dead_letters: "0",
        gaps: "0",
      });

      // the same capture again, through the CLI with --db postgres://
      const out = await k2([
        "run",
        "--replay",
        capture,
        "--speed",
        "max",
        "--exit-at-end",
        "--http-port",
        "0",
        "--db",
        db.url,
      ]);
      const second = JSON.parse(out.trim().split("\n").pop() ?? "{}");
      expect(second).toMatchObject({ trades: 9757, quotes: 28040, stored: 0, duplicates: 37797 });
      const [after] = await store.query(COUNTS);
      expect(after).toEqual(before);

      // k2 query reads the same figures from PostgreSQL
      const json = JSON.parse(await k2(["query", "--db", db.url, "--format", "json", STATS]));
      expect(json[0]).toMatchObject({ trades: "9757", volume: "212.03315000" });
    } finally {
      await store.close();
    }
  });
});
