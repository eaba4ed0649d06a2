/**
 * Replay-load benchmark (`node dist/bench/replay-load.js`, a section of `npm run bench`): does a client
 * replaying history (`from` subscriptions, issue #16) delay a live client?
 *
 *   1. `k2 run --replay btcusdt_20240808.gz --exit-at-end` stores the whole file (37,797 records) in a
 *      fresh DuckDB file.
 *   2. `k2 run --replay btcusdt_20240809.gz --replay-clock wall --speed 1` on that file is the live
 *      feed (the next ~6 minutes of the same session); one live client subscribes to BTCUSDT trades
 *      and quotes and records client receipt − `ingestion_timestamp` (µs, k2's receipt clock: the wall
 *      clock here) for every record.
 *   3. `--rounds` rounds (default 5), each `--seconds` (default 4) without replayers (the same-run
 *      baseline), then as long with `--replayers` clients (default 20, in a worker thread of their
 *      own, so that their parsing does not delay the live client's receipt) each replaying the whole file:
 *      trades and quotes `from` 0, subscribing again as soon as a replay is done, so the load lasts
 *      the whole window. Per round: the live client's p50 and p99 in each half.
 *
 * Prints one JSON line: `{"bench":"replay_load", rounds: [...], replayed_records, ...}`; `bench/run.ts`
 * reports the spread of the per-round p99 with replayers against the spread without (target: ratio of
 * the medians ≤ 1.5, "unchanged within noise" on this shared 2-core host).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import WebSocket from "ws";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const CLI = join(ROOT, "dist/src/cli.js");
const DATA = resolve(ROOT, "../shared/data/binance-spot");

const { values: args } = parseArgs({
  args: isMainThread ? process.argv.slice(2) : [],
  options: {
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "4" },
    replayers: { type: "string", default: "20" },
    warmup: { type: "string", default: "3" },
  },
});
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const REPLAYERS = Number(args.replayers);
const WARMUP = Number(args.warmup);

const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** p-quantile (0..1) of µs samples, ms. */
function quantileMs(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(s.length * p) - 1)] / 1000;
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

/** Starts `k2 run ...args`; resolves with its HTTP port once it listens. */
function startK2(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [CLI, "run", ...args], {
    cwd: ROOT,
    env: { ...process.env, K2_LOG_LEVEL: "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  let err = "";
  return new Promise((res, rej) => {
    child.stderr?.on("data", (d) => {
      err += d;
      if (err.length > 1_000_000) err = err.slice(-100_000);
      const m = /http listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) res({ child, port: Number(m[1]) });
    });
    child.on("exit", (code) => rej(new Error(`k2 exited with ${code}: ${err.slice(-2000)}`)));
  });
}

/** Opens a gateway client; resolves once open. */
async function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on("error", () => undefined);
  await new Promise<void>((res, rej) => {
    ws.once("open", () => res());
    ws.once("error", rej);
  });
  return ws;
}

/** A client replaying trades and quotes of the whole store, again and again, until stopped. */
function replayer(url: string, counts: { records: number; replays: number }): { stop(): void } {
  let stopped = false;
  let ws: WebSocket | null = null;
  (async () => {
    ws = await open(url);
    let pending = 0;
    const subscribe = () => {
      pending = 2;
      for (const channel of ["trades", "quotes"])
        ws?.send(JSON.stringify({ op: "subscribe", channel, symbols: ["BTCUSDT"], from: 0, id: channel }));
    };
    ws.on("message", (d) => {
      const s = d.toString();
      if (s.startsWith('{"type":"replay_done"')) {
        if (--pending > 0) return;
        counts.replays++;
        if (stopped) return;
        // back to history: drop the live subscriptions and replay the file again
        for (const channel of ["trades", "quotes"])
          ws?.send(JSON.stringify({ op: "unsubscribe", channel, symbols: ["BTCUSDT"], id: `u-${channel}` }));
        subscribe();
      } else if (s.startsWith('{"type":"trade"') || s.startsWith('{"type":"quote"')) counts.records++;
    });
    subscribe();
  })().catch(() => undefined);
  return {
    stop() {
      stopped = true;
      ws?.terminate();
    },
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "k2-bench-replay-"));
  const db = join(dir, "k2.duckdb");
  try {
    const fill = spawnSync(
      process.execPath,
      [
        CLI,
        "run",
        "--replay",
        join(DATA, "btcusdt_20240808.gz"),
        "--exit-at-end",
        "--db",
        db,
        "--http-port",
        "0",
      ],
      { cwd: ROOT, env: { ...process.env, K2_LOG_LEVEL: "warn" }, encoding: "utf8" },
    );
    if (fill.status !== 0) throw new Error(`prefill failed: ${fill.stderr.slice(-2000)}`);
    const k2 = await startK2([
      "--replay",
      join(DATA, "btcusdt_20240809.gz"),
      "--replay-clock",
      "wall", // latency is measured from ingestion_timestamp: this host's receipt time
      "--speed",
      "1",
      "--db",
      db,
      "--http-port",
      "0",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
    ]);
    const url = `ws://127.0.0.1:${k2.port}/ws`;
    let samples: number[] = [];
    const live = await open(url);
    const KEY = '"ingestion_timestamp":';
    live.on("message", (d) => {
      const at = nowUs();
      const s = d.toString();
      const i = s.indexOf(KEY);
      if (i >= 0) samples.push(at - Number.parseInt(s.slice(i + KEY.length, i + KEY.length + 20), 10));
    });
    for (const channel of ["trades", "quotes"])
      live.send(JSON.stringify({ op: "subscribe", channel, symbols: ["BTCUSDT"], id: channel }));
    await sleep(WARMUP * 1000);
    const rounds: Record<string, number>[] = [];
    const counts = { records: 0, replays: 0 };
    for (let r = 0; r < ROUNDS; r++) {
      samples = [];
      await sleep(SECONDS * 1000);
      const base = samples;
      samples = [];
      // the replayers run in a worker thread: their parsing does not delay the live client's receipt
      const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { url, n: REPLAYERS } });
      await sleep(SECONDS * 1000);
      const loaded = samples;
      const got = await new Promise<{ records: number; replays: number }>((res) => {
        worker.once("message", res);
        worker.postMessage("stop");
      });
      await worker.terminate();
      counts.records += got.records;
      counts.replays += got.replays;
      rounds.push({
        baseline_p50_ms: quantileMs(base, 0.5),
        baseline_p99_ms: quantileMs(base, 0.99),
        baseline_records: base.length,
        replaying_p50_ms: quantileMs(loaded, 0.5),
        replaying_p99_ms: quantileMs(loaded, 0.99),
        replaying_records: loaded.length,
        replayed_records: got.records,
      });
      await sleep(500); // the replayers' connections close before the next baseline
    }
    live.terminate();
    k2.child.kill("SIGTERM");
    console.log(
      JSON.stringify({
        bench: "replay_load",
        replayers: REPLAYERS,
        seconds: SECONDS,
        rounds,
        replayed_records: counts.records,
        replays_completed: counts.replays,
      }),
    );
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  // a replayers' thread: `n` replaying clients until the main thread says stop, then their counts
  const { url, n } = workerData as { url: string; n: number };
  const counts = { records: 0, replays: 0 };
  const clients = Array.from({ length: n }, () => replayer(url, counts));
  parentPort?.on("message", () => {
    for (const c of clients) c.stop();
    parentPort?.postMessage(counts);
  });
}
