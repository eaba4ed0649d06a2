/**
 * Nothing lost when the store cannot write: `k2 run` replays btcusdt_20240808.gz (trade stream) into a
 * PostgreSQL database that refuses or blocks every trade write, so nothing of it is stored:
 *
 * - writes failing (a trigger raising SQLSTATE 53100 disk_full): `/health` answers 503 with
 *   `store: writes failing for N s: ...; N records waiting` and the finished replay, `/api/v1/status`
 *   lists the same reasons, `k2_store_write_failing` is 1, nothing is dead-lettered (transient);
 * - writes blocked (trades_v2 locked by another session): `/health` says `store: a batch write has not
 *   finished for N s; ...` (K2_STORE_STALL_MS shrunk to 500 ms).
 *
 * Either way SIGTERM ends the process within `--shutdown-timeout` plus a few seconds, exit 1, with the
 * count of records journaled; a restart on a writable database stores every one of them and empties
 * the journal.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { afterEach, describe, expect, it } from "vitest";
import { PostgresStore } from "../../src/store/postgres.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, startCli, tempDir } from "../helpers/cli.js";
import { waitFor } from "../helpers/run.js";
import { freePort } from "../helpers/servers.js";
import { createTestDatabase, type TestDatabase } from "../store/pg.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");
/** The capture's trades (its README). */
const TRADES = 9_757;
const TIMEOUT_S = 3;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Journaled messages by kind of topic (`trades`, `gaps`, `candles`, ...). */
function journalTopics(dir: string): Record<string, number> {
  const n: Record<string, number> = {};
  for (const f of readdirSync(dir)) {
    for (const line of readFileSync(join(dir, f), "utf8").split("\n")) {
      if (line.length === 0) continue;
      const parts = (JSON.parse(line) as { t: string }).t.split(".");
      const kind = parts[1] === "gaps" || parts[1] === "dlq" ? parts[1] : parts[2];
      n[kind] = (n[kind] ?? 0) + 1;
    }
  }
  return n;
}

/** Makes the database unwritable for trades; returns how to make it writable again. */
type Breaker = (db: TestDatabase) => Promise<() => Promise<void>>;

/** Every trade insert fails with SQLSTATE 53100 (disk_full). */
const failingWrites: Breaker = async (db) => {
  const sql = postgres(db.url, { max: 1, onnotice: () => undefined });
  await sql.unsafe(`CREATE FUNCTION k2_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'could not extend file: No space left on device (test)' USING ERRCODE = '53100'; END $$`);
  await sql.unsafe(
    "CREATE TRIGGER k2_test_disk_full BEFORE INSERT ON trades_v2 FOR EACH ROW EXECUTE FUNCTION k2_test_disk_full()",
  );
  return async () => {
    await sql.unsafe("DROP TRIGGER k2_test_disk_full ON trades_v2");
    await sql.end();
  };
};

/** trades_v2 locked by another session: every trade insert waits. */
const lockedTables: Breaker = async (db) => {
  const sql = postgres(db.url, { max: 1, onnotice: () => undefined });
  const session = await sql.reserve();
  await session`BEGIN`;
  await session`LOCK TABLE trades_v2 IN ACCESS EXCLUSIVE MODE`;
  return async () => {
    await session`ROLLBACK`;
    session.release();
    await sql.end();
  };
};

describe.each([
  ["failing (SQLSTATE 53100 disk full)", failingWrites, true],
  ["blocked (trades_v2 locked)", lockedTables, false],
] as const)("SIGTERM while the store's trade writes are %s", (_name, breaker, failing) => {
  it("exits within the shutdown timeout, non-zero, journaling every unstored record; the next start stores them", async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const store = new PostgresStore({ url: db.url });
    await store.init(); // tables exist before they are broken
    cleanups.push(() => store.close());
    const repair = await breaker(db);
    let repaired = false;
    cleanups.push(async () => {
      if (!repaired) await repair();
    });
    const journalDir = join(tempDir(), "journal");
    const args = ["--db", db.url, "--http-port", "0", "--journal-dir", journalDir, "--ws-workers", "0"];
    const k2 = startCli(
      [
        "run",
        "--replay",
        FILE,
        "--speed",
        "max",
        "--symbols",
        "BTCUSDT",
        "--streams",
        "trade",
        "--shutdown-timeout",
        String(TIMEOUT_S),
        ...args,
      ],
      { env: { K2_STORE_STALL_MS: "500" } },
    );
    cleanups.push(async () => {
      if (k2.child.exitCode === null) k2.child.kill("SIGKILL");
    });
    const base = `http://127.0.0.1:${await k2.httpPort}`;
    let health = "";
    await waitFor(
      async () => {
        const r = await fetch(`${base}/health`);
        health = await r.text();
        return (
          r.status === 503 &&
          health.includes(`replay of ${FILE} finished at`) &&
          (failing ? /store: writes failing/ : /store: a batch write has not finished/).test(health)
        );
      },
      30_000,
      "the replay received and (failing) the store's failure on /health",
    );
    expect(health).toMatch(
      /^replay of .+ finished at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z; no live data$/m,
    );
    if (!failing) {
      expect(health).toMatch(/^store: a batch write has not finished for \d+ s; [\d,]+ records waiting$/m);
    }
    if (failing) {
      expect(health).toMatch(
        /^store: writes failing for \d+ s: could not extend file: No space left on device \(test\); [\d,]+ records waiting$/m,
      );
      const status = (await (await fetch(`${base}/api/v1/status`)).json()) as {
        status: string;
        problems: string[];
      };
      expect(status.status).toBe("degraded");
      expect(status.problems.some((p) => p.startsWith("store: writes failing for "))).toBe(true);
      const m = await (await fetch(`${base}/metrics`)).text();
      expect(m).toMatch(/^k2_store_write_failing 1$/m);
    }
    const t0 = performance.now();
    k2.child.kill("SIGTERM");
    const exit = await k2.exited;
    const shutdownMs = performance.now() - t0;
    expect(exit.code, exit.stderr.slice(-2000)).toBe(1);
    expect(shutdownMs).toBeLessThan(TIMEOUT_S * 1000 + 5000);
    const summary = lastJsonLine(exit.stdout);
    expect(summary.trades).toBe(TRADES);
    const journaled = Number(summary.journaled);
    // every trade, plus what shared the trades' batches: sequence gaps and the closed candles of the
    // serving layer (published on the bus at the end of the replay)
    const topics = journalTopics(journalDir);
    expect(topics.trades).toBe(TRADES);
    expect(topics.gaps ?? 0).toBe(Number(summary.gaps));
    expect(Object.values(topics).reduce((a, b) => a + b, 0)).toBe(journaled);
    expect(exit.stderr).toContain(
      `k2: shutdown: ${journaled.toLocaleString("en-US")} records not stored are in the journal ${journalDir}`,
    );
    expect(exit.stderr).toMatch(/the next start replays them/);
    const [dl] = await store.query("SELECT count(*) AS n FROM dead_letters");
    expect(Number(dl.n)).toBe(0); // transient: never dead-lettered

    await repair();
    repaired = true;
    // the next start (no venue to reach) replays the journal into the store
    const closed = await freePort();
    const k2b = startCli(["run", "--ws-url", `ws://127.0.0.1:${closed}`, ...args]);
    cleanups.push(async () => {
      if (k2b.child.exitCode === null) k2b.child.kill("SIGKILL");
    });
    await k2b.httpPort;
    await waitFor(
      async () => Number((await store.query("SELECT count(*) AS n FROM trades_v2"))[0].n) === TRADES,
      60_000,
      "every journaled trade stored",
    );
    await waitFor(() => readdirSync(journalDir).length === 0, 30_000, "journal segments deleted");
    k2b.child.kill("SIGTERM");
    const exitB = await k2b.exited;
    expect(exitB.code, exitB.stderr.slice(-2000)).toBe(0);
    expect(exitB.stderr).toMatch(/the spill journal holds records from an earlier run/);
    const [c] = await store.query(
      "SELECT count(*) AS n, count(DISTINCT trade_id) AS d, sum(quantity) AS qty FROM trades_v2",
    );
    expect(Number(c.n)).toBe(TRADES);
    expect(Number(c.d)).toBe(TRADES);
    expect(c.qty).toBe("212.03315000");
    console.log(
      `shutdown with the store's writes ${_name}: exit ${exit.code} after ${Math.round(shutdownMs)} ms (timeout ${TIMEOUT_S} s), ${journaled} records journaled; restart stored ${c.n} trades, journal read back ${lastJsonLine(exitB.stdout).journal_read_back}`,
    );
  }, 120_000);
});
