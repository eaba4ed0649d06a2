/**
 * The replay server is killed mid-stream: the feed goes to ERROR, reconnects with full-jitter
 * exponential backoff (a delay in [0, base·2^(n−1)], the count reset once a connection stayed up for
 * stableAfterMs), resubscribes, and the store ends with every frame the server sent (the test server
 * resumes where the connection broke).
 */
import { describe, expect, it } from "vitest";
import type { ConnectionState } from "../../src/feed/connection.js";
import { seededRandom } from "../../src/feed/liveness.js";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { startRun } from "../../src/run.js";
import { sharedData } from "../helpers/capture.js";
import { silentLogger, testConfig, waitFor } from "../helpers/run.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");

async function storedCount(run: Awaited<ReturnType<typeof startRun>>): Promise<number> {
  const [r] = await run.store.query(
    "SELECT (SELECT count(*) FROM trades_v2) + (SELECT count(*) FROM quotes_v2) + (SELECT count(*) FROM dead_letters) AS n",
  );
  return Number(r.n);
}

describe("reconnect with backoff after the venue dies", () => {
  it("loses nothing the server sent", async () => {
    let server = new BinanceReplayServer({ file: FILE, speed: 40, resume: true });
    const port = await server.start();
    const config = testConfig({ wsUrl: server.url, batchMaxWaitMs: 200 });
    const BASE = 200;
    const run = await startRun(config, silentLogger(), {
      liveness: { backoffInitialMs: BASE, stableAfterMs: 300, random: seededRandom(11) },
    });
    const states: ConnectionState[] = [run.feed.connection.state];
    const attempts: { n: number; delay: number }[] = [];
    run.feed.connection.on("state", (s) => states.push(s));
    run.feed.connection.on("reconnect", (n, delay) => attempts.push({ n, delay }));
    try {
      let ended: Promise<void> = Promise.resolve();
      for (let kill = 1; kill <= 2; kill++) {
        // let some frames through, then kill the server (listener and connections)
        const from = server.cursor;
        await waitFor(() => server.cursor > from + 2000, 30_000, "frames before the kill");
        await server.stop();
        const cursor = server.cursor;
        // down until at least one attempt was refused (a second reconnect scheduled), then back
        const before = attempts.length;
        await waitFor(() => attempts.length >= before + 2, 15_000, "a refused attempt");
        server = new BinanceReplayServer({
          file: FILE,
          port,
          speed: kill === 2 ? "max" : 40,
          resume: true,
          startAt: cursor,
        });
        // listen before it can finish (the last one replays at max speed)
        const s = server;
        ended = new Promise<void>((r) => s.once("end", () => r()));
        await server.start();
        await waitFor(() => run.feed.connection.state === "CONNECTED", 10_000, "reconnect");
        // stays up past stableAfterMs: the backoff count resets before the next kill
        await waitFor(() => run.feed.connection.backoffAttempt === 0, 10_000, "backoff reset");
      }
      await ended;
      const total = server.cursor;
      await waitFor(async () => (await storedCount(run)) >= total, 20_000, "store to catch up");
      const summary = await run.stop("test done");
      const [g] = await (async () => {
        const { DuckDBStore } = await import("../../src/store/duckdb.js");
        const s = new DuckDBStore({ path: config.db, readOnly: true });
        await s.init();
        const rows = await s.query(
          "SELECT (SELECT count(*) FROM trades_v2) AS trades, (SELECT count(*) FROM quotes_v2) AS quotes, (SELECT count(*) FROM sequence_gaps) AS gaps, (SELECT count(*) FROM dead_letters) AS dead",
        );
        await s.close();
        return rows;
      })();
      // every frame of the subscribed streams, each stored once, no sequence gap
      expect(Number(g.trades) + Number(g.quotes)).toBe(total);
      expect(total).toBe(37797);
      expect(Number(g.gaps)).toBe(0);
      expect(Number(g.dead)).toBe(0);
      expect(summary.reconnects).toBeGreaterThanOrEqual(4);
      // backoff: attempts 1, 2, ... while the server is down, each delay jittered in
      // [0, BASE·2^(n−1)] (the seeded source gives exactly these); back to 1 after the recovery
      const expected = seededRandom(11);
      for (const a of attempts) {
        const ceiling = BASE * 2 ** (a.n - 1);
        expect(a.delay).toBe(Math.floor(expected() * (ceiling + 1)));
        expect(a.delay).toBeLessThanOrEqual(ceiling);
      }
      const ns = attempts.map((a) => a.n);
      expect(ns.slice(0, 2)).toEqual([1, 2]);
      const second = ns.indexOf(1, 1); // the second outage starts again at attempt 1
      expect(second).toBeGreaterThanOrEqual(2);
      expect(ns.slice(second, second + 2)).toEqual([1, 2]);
      // state machine: CONNECTED → ERROR → CONNECTING → ... → CONNECTED
      const i = states.indexOf("ERROR");
      expect(i).toBeGreaterThan(0);
      expect(states[i - 1]).toBe("CONNECTED");
      expect(states[i + 1]).toBe("CONNECTING");
      expect(states.lastIndexOf("CONNECTED")).toBeGreaterThan(i);
    } finally {
      await run.stop("cleanup");
      await server.stop();
    }
  });
});
