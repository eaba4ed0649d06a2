/** Helpers of the serving tests: a real `k2 run --replay` (in process or as a child process) and ws clients. */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import WebSocket from "ws";
import { resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { type RunningPipeline, startRun } from "../../src/run.js";
import type { TradeV2 } from "../../src/schema/records.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CAPTURE = resolve(ROOT, "../shared/data/binance-spot/btcusdt_20240808.gz");
/** Trade ids of the capture (../shared/data/README.md): 9,757 trades, no gaps. */
export const FIRST_TRADE_ID = 3735683259;
export const LAST_TRADE_ID = 3735693015;
export const TRADES_IN_CAPTURE = 9757;

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "k2-serve-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts `k2 run --replay CAPTURE` in this process on a free port. */
export async function startReplayRun(opts: {
  speed?: string;
  env?: NodeJS.ProcessEnv;
  httpPort?: number;
  db: string;
  /** `--replay-clock` (default recorded). */
  replayClock?: string;
}): Promise<RunningPipeline> {
  const config = resolveRunConfig(
    {
      replay: CAPTURE,
      speed: opts.speed ?? "10",
      httpPort: String(opts.httpPort ?? 0),
      db: opts.db,
      symbols: "BTCUSDT",
      streams: "trade,bookTicker",
      replayClock: opts.replayClock,
    },
    { ...(opts.env ?? {}) },
  );
  return startRun(config, createLogger(process.env.K2_TEST_LOG_LEVEL ?? "warn"));
}

/** Compiles `dist/` once when it is missing (the child-process tests run `dist/src/cli.js`). */
export function ensureBuilt(): void {
  if (existsSync(join(ROOT, "dist/src/cli.js")) && existsSync(join(ROOT, "dist/src/client.js"))) return;
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: ROOT, stdio: "inherit" });
}

/** A `k2 run` child process. */
export interface K2Process {
  child: ChildProcess;
  port: number;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/**
 * Spawns `node dist/src/cli.js run ...args` and resolves once the pino line
 * `"msg":"http listening on http://127.0.0.1:PORT"` has been logged.
 */
export function spawnK2Run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<K2Process> {
  const child = spawn(process.execPath, [join(ROOT, "dist/src/cli.js"), "run", ...args], {
    cwd: ROOT,
    env: { ...process.env, K2_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  return new Promise((res, rej) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      rej(new Error(`k2 run did not log "http listening" (K2_LOG_LEVEL must be info or lower):\n${err}`));
    }, 30_000);
    child.stderr?.on("data", (d) => {
      err += d;
      const m = /"msg":"http listening on http:\/\/127\.0\.0\.1:(\d+)"/.exec(err);
      if (m && timer) {
        clearTimeout(timer);
        res({ child, port: Number(m[1]), stdout: () => out, stderr: () => err, exited });
      }
    });
    exited.then((code) => rej(new Error(`k2 run exited with ${code}:\n${err}`)));
  });
}

/** A WebSocket client that records every JSON message it receives. */
export class TestClient {
  readonly messages: Record<string, unknown>[] = [];
  closeCode: number | null = null;
  closeReason = "";
  readonly closed: Promise<void>;
  private waiters: {
    pred: (m: Record<string, unknown>) => boolean;
    resolve: (m: Record<string, unknown>) => void;
  }[] = [];

  constructor(
    readonly ws: WebSocket,
    private readonly keep: (m: Record<string, unknown>) => boolean = () => true,
  ) {
    ws.on("message", (d) => {
      const m = JSON.parse(d.toString()) as Record<string, unknown>;
      if (this.keep(m)) this.messages.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(m)) return true;
        w.resolve(m);
        return false;
      });
    });
    ws.on("error", () => {});
    this.closed = new Promise((res) =>
      ws.on("close", (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        res();
      }),
    );
  }

  static async open(
    url: string,
    opts: WebSocket.ClientOptions = {},
    keep?: (m: Record<string, unknown>) => boolean,
  ): Promise<TestClient> {
    const ws = new WebSocket(url, opts);
    const c = new TestClient(ws, keep);
    await new Promise<void>((res, rej) => {
      ws.once("open", () => res());
      ws.once("error", rej);
      ws.once("close", () => res());
    });
    return c;
  }

  send(m: unknown): void {
    this.ws.send(typeof m === "string" ? m : JSON.stringify(m));
  }

  /** Next message (from now on) matching `pred`. */
  next(pred: (m: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`no matching message within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (m) => {
          clearTimeout(timer);
          res(m);
        },
      });
    });
  }

  /** Sends a request and waits for the reply carrying its id. */
  request(m: Record<string, unknown> & { id: string | number }): Promise<Record<string, unknown>> {
    const reply = this.next((x) => x.id === m.id && typeof x.type === "string");
    this.send(m);
    return reply;
  }

  close(): void {
    this.ws.terminate();
  }
}

/**
 * A client subscribed to BTCUSDT trades on `url` that keeps no messages but collects each trade's
 * `source_sequence` (the venue trade id) in `ids`, in arrival order; `opts` go to the WebSocket.
 */
export async function tradeClient(
  url: string,
  opts: WebSocket.ClientOptions = {},
): Promise<{ c: TestClient; ids: number[] }> {
  const ids: number[] = [];
  const c = await TestClient.open(url, opts, () => false);
  c.ws.on("message", (d) => {
    const m = JSON.parse(String(d));
    if (m.type === "trade") ids.push(m.data.source_sequence);
  });
  await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
  return { c, ids };
}

/** Reads one metric's value from a Prometheus text exposition. */
export function metricValue(text: string, name: string, labels = ""): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels} `));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : Number.NaN;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `k2 run --replay CAPTURE --speed 10 --symbols BTCUSDT --streams STREAMS` as a child process, on a free
 * port and a fresh DuckDB file in `dir`: the run the history-then-live tests subscribe to mid-replay.
 */
export function spawnReplayForHistory(
  dir: string,
  streams: string,
  env: NodeJS.ProcessEnv,
): Promise<K2Process> {
  ensureBuilt();
  return spawnK2Run(
    ["--replay", CAPTURE, "--speed", "10", "--http-port", "0", "--db", `${dir}/k2.duckdb`].concat([
      "--symbols",
      "BTCUSDT",
      "--streams",
      streams,
    ]),
    env,
  );
}

/** Stops a spawned `k2 run`: SIGINT, then SIGKILL when it has not exited within 10 s. */
export async function stopSpawned(k2: K2Process | undefined): Promise<void> {
  if (!k2 || k2.child.exitCode !== null) return;
  k2.child.kill("SIGINT");
  await Promise.race([k2.exited, sleep(10_000)]);
  if (k2.child.exitCode === null) k2.child.kill("SIGKILL");
}

/**
 * A synthetic BTCUSDT trade for in-process gateway tests: number `id` (its source_sequence and
 * platform_sequence; timestamps T0 + id µs, T0 = 2024-08-09T00:00:53Z), price 61837.63, 0.001, BUY.
 */
export function syntheticTrade(id: number, vendorData: Record<string, string> = {}): TradeV2 {
  const t = 1723161253000000 + id;
  return {
    message_id: `00000000-0000-8000-8000-${String(id).padStart(12, "0")}`,
    trade_id: `BINANCE-${id}`,
    symbol: "BTCUSDT",
    exchange: "BINANCE",
    asset_class: "crypto",
    timestamp: t,
    price: "61837.63000000",
    quantity: "0.00100000",
    currency: "USDT",
    side: "BUY",
    trade_conditions: [],
    source_sequence: id,
    ingestion_timestamp: t,
    platform_sequence: id,
    vendor_data: vendorData,
  };
}
