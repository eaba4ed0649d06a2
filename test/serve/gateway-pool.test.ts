/**
 * The gateway in worker processes (`serve/ws/pool.ts`, the default `K2_WS_WORKERS=2`) against a real
 * `k2 run --replay btcusdt_20240808.gz --speed 5` in this process: clients are spread over two worker
 * processes and each gets the trades in venue order; a worker killed with SIGKILL takes only its own
 * clients with it (they see 1006), ingest goes on, counters never go back, and the next client starts a
 * worker again and gets live trades; a bad `K2_WS_WORKERS` stops start-up naming it.
 */
import { execFileSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import { resolveRunConfig } from "../../src/config.js";
import type { RunningPipeline } from "../../src/run.js";
import { CAPTURE, sleep, startReplayRun, tempDir, tradeClient } from "./helpers.js";

const tmp = tempDir();
let run: RunningPipeline | null = null;

afterAll(async () => {
  await run?.stop("test done");
  tmp.cleanup();
});

/** Pids of this process's gateway worker processes. */
function workerPids(): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(process.pid), "-f", "serve/ws/worker.js"], {
      encoding: "utf8",
    })
      .trim()
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

describe("gateway worker processes", () => {
  it("spreads clients over the workers; a killed worker drops only its clients and comes back", async () => {
    run = await startReplayRun({ speed: "5", db: `${tmp.dir}/k2.duckdb` });
    const gateway = run.gateway;
    if (!gateway) throw new Error("no gateway");
    const url = `ws://127.0.0.1:${run.httpPort}/ws`;
    const clients = await Promise.all([0, 1, 2, 3].map(() => tradeClient(url)));
    const s1 = await gateway.stats();
    expect(s1.workers).toBe(2);
    expect(s1.clients).toBe(4);
    expect(workerPids()).toHaveLength(2);
    // every client gets trades, consecutive ids in venue order
    const deadline = performance.now() + 20_000;
    while (clients.some((x) => x.ids.length < 20)) {
      if (performance.now() > deadline) throw new Error("clients got no trades within 20 s");
      await sleep(100);
    }
    for (const { ids } of clients) {
      for (let k = 1; k < ids.length; k++) expect(ids[k]).toBe(ids[k - 1] + 1);
    }

    // kill one worker: round-robin put clients 0 and 2 on one process, 1 and 3 on the other
    const sentBefore = s1.messages_sent;
    const [victim] = workerPids();
    process.kill(victim, "SIGKILL");
    await Promise.race([
      Promise.any(clients.map((x) => x.c.closed)),
      sleep(5000).then(() => {
        throw new Error("no client closed within 5 s of killing its worker");
      }),
    ]);
    await sleep(300);
    const gone = clients.filter((x) => x.c.closeCode !== null);
    expect(gone).toHaveLength(2);
    for (const x of gone) expect(x.c.closeCode).toBe(1006);
    const alive = clients.filter((x) => x.c.closeCode === null);
    const seen = alive.map((x) => x.ids.length);
    const frames = run.feed?.counts.frames ?? 0;
    await sleep(1000);
    // the other worker's clients and ingest go on
    for (const [i, x] of alive.entries()) expect(x.ids.length).toBeGreaterThan(seen[i]);
    expect(run.feed?.counts.frames ?? 0).toBeGreaterThan(frames);
    const s2 = await gateway.stats();
    expect(s2.workers).toBe(1);
    expect(s2.clients).toBe(2);
    expect(s2.messages_sent).toBeGreaterThanOrEqual(sentBefore);

    // the next clients start the worker again and get live trades
    const fresh = await Promise.all([tradeClient(url), tradeClient(url)]);
    const s3 = await gateway.stats();
    expect(s3.workers).toBe(2);
    expect(s3.clients).toBe(4);
    expect(workerPids()).toHaveLength(2);
    const until = performance.now() + 10_000;
    while (fresh.some((x) => x.ids.length < 5)) {
      if (performance.now() > until) throw new Error("new clients got no trades within 10 s");
      await sleep(100);
    }
    for (const x of [...alive, ...fresh]) x.c.close();
  }, 60_000);

  it("rejects a bad K2_WS_WORKERS at start-up, naming it", () => {
    expect(() => resolveRunConfig({ replay: CAPTURE }, { K2_WS_WORKERS: "many" })).toThrow(
      /K2_WS_WORKERS: expected an integer from 0 to 64, got "many"/,
    );
  });
});
