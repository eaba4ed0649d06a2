/**
 * Gateway benchmark (`npm run bench:gateway`): 1,000 WebSocket clients subscribed to trades and quotes
 * of BTCUSDT on a real `k2 run` child process fed by `../shared/data/binance-spot/btcusdt_20240808.gz`.
 *
 *   1. latency: `k2 run --replay ... --speed 1`, measured for `--seconds` (default 60) once every client
 *      is subscribed: p50/p99/max of client receipt time − the record's `ingestion_timestamp` (µs, the
 *      frame's receipt time in k2), i.e. normalize → bus → live feed → fan-out → socket → client.
 *      Target p99 ≤ 10 ms.
 *   2. throughput: `k2 run --ws-url` to a `k2 replay-server --speed max` started only after every client
 *      has subscribed (the feed connects on its next backoff attempt); messages delivered per second
 *      in total (all clients, first to last message), plus ingest frames/s with and without the clients.
 *
 * Clients live in 2 worker threads (500 each) of this process; receipt times use
 * `performance.timeOrigin + performance.now()` in µs, like k2's receipt stamps (same host clock).
 * Options: `--clients N` (1000), `--seconds S` (60), `--workers W` (2), `--channels trades,quotes`,
 * `--phases latency,throughput`, `--nice` (client threads at nice 19 in the latency phase too). The throughput phase runs a third time with the client threads at
 * nice 19, so that what the gateway costs ingest shows apart from the clients' own CPU use on this host. Prints one JSON line with the figures at the end; CPU figures are % of
 * one core (k2 process; client workers = this process).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { setPriority, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import WebSocket from "ws";

const BUCKET_US = 10;
const BUCKETS = 200_000; // 10 µs buckets up to 2 s; slower goes to the last bucket

interface WorkerInit {
  url: string;
  clients: number;
  channels: string[];
  /** Run the client thread at the lowest CPU priority (Linux: per thread). */
  nice: boolean;
}

type ToWorker = { type: "reset" } | { type: "report" } | { type: "close" };
type FromWorker =
  | { type: "ready" }
  | {
      type: "report";
      histogram: Uint32Array;
      received: number;
      firstAtUs: number;
      lastAtUs: number;
      closed: number;
      closeCodes: Record<string, number>;
    };

const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;

/** Worker: `clients` connections, each subscribed to trades and quotes; records latencies. */
async function workerMain(init: WorkerInit): Promise<void> {
  const port = parentPort;
  if (!port) return;
  if (init.nice) setPriority(19); // on Linux, pid 0 is this thread only
  let histogram = new Uint32Array(BUCKETS);
  let received = 0;
  let firstAtUs = 0;
  let lastAtUs = 0;
  let closed = 0;
  const closeCodes: Record<string, number> = {};
  const KEY = '"ingestion_timestamp":';
  const sockets: WebSocket[] = [];
  const onMessage = (data: WebSocket.RawData) => {
    const at = nowUs();
    const s = data.toString();
    const i = s.indexOf(KEY);
    if (i < 0) return;
    const ingested = Number.parseInt(s.slice(i + KEY.length, i + KEY.length + 20), 10);
    received++;
    if (firstAtUs === 0) firstAtUs = at;
    lastAtUs = at;
    const b = Math.min(BUCKETS - 1, Math.max(0, Math.floor((at - ingested) / BUCKET_US)));
    histogram[b]++;
  };
  await Promise.all(
    Array.from({ length: init.clients }, (_, n) =>
      (async () => {
        await new Promise((r) => setTimeout(r, n * 2)); // spread the handshakes
        const ws = new WebSocket(init.url, { perMessageDeflate: false });
        sockets.push(ws);
        ws.on("error", () => {});
        ws.on("close", (code) => {
          closed++;
          closeCodes[code] = (closeCodes[code] ?? 0) + 1;
        });
        await new Promise<void>((res, rej) => {
          ws.once("open", () => res());
          ws.once("error", rej);
        });
        let pending = init.channels.length;
        await new Promise<void>((res) => {
          const onReply = (d: WebSocket.RawData) => {
            if (String(d).startsWith('{"type":"subscribed"') && --pending === 0) {
              ws.off("message", onReply);
              ws.on("message", onMessage);
              res();
            }
          };
          ws.on("message", onReply);
          for (const [id, channel] of init.channels.entries()) {
            ws.send(JSON.stringify({ op: "subscribe", channel, symbols: ["BTCUSDT"], id }));
          }
        });
      })(),
    ),
  );
  port.postMessage({ type: "ready" } satisfies FromWorker);
  port.on("message", (m: ToWorker) => {
    if (m.type === "reset") {
      histogram = new Uint32Array(BUCKETS);
      received = 0;
      firstAtUs = 0;
      lastAtUs = 0;
    } else if (m.type === "report") {
      port.postMessage({
        type: "report",
        histogram,
        received,
        firstAtUs,
        lastAtUs,
        closed,
        closeCodes,
      } satisfies FromWorker);
    } else {
      for (const ws of sockets) ws.terminate();
      setTimeout(() => process.exit(0), 50);
    }
  });
}

/** The client side: W workers sharing N clients. */
class ClientFleet {
  private readonly workers: Worker[] = [];

  private constructor() {}

  static async start(
    url: string,
    clients: number,
    workers: number,
    channels: string[],
    nice = false,
  ): Promise<ClientFleet> {
    const fleet = new ClientFleet();
    const per = Math.ceil(clients / workers);
    const ready: Promise<void>[] = [];
    for (let i = 0; i < workers; i++) {
      const n = Math.min(per, clients - i * per);
      if (n <= 0) break;
      const w = new Worker(fileURLToPath(import.meta.url), {
        workerData: { url, clients: n, channels, nice } satisfies WorkerInit,
      });
      fleet.workers.push(w);
      ready.push(
        new Promise((res, rej) => {
          w.once("error", rej);
          w.on("message", (m: FromWorker) => {
            if (m.type === "ready") res();
          });
        }),
      );
    }
    await Promise.all(ready);
    return fleet;
  }

  reset(): void {
    for (const w of this.workers) w.postMessage({ type: "reset" } satisfies ToWorker);
  }

  async report(): Promise<{
    histogram: Uint32Array;
    received: number;
    firstAtUs: number;
    lastAtUs: number;
    closeCodes: Record<string, number>;
  }> {
    const reports = await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<Extract<FromWorker, { type: "report" }>>((res) => {
            const on = (m: FromWorker) => {
              if (m.type === "report") {
                w.off("message", on);
                res(m);
              }
            };
            w.on("message", on);
            w.postMessage({ type: "report" } satisfies ToWorker);
          }),
      ),
    );
    const histogram = new Uint32Array(BUCKETS);
    const closeCodes: Record<string, number> = {};
    for (const r of reports) {
      for (let i = 0; i < BUCKETS; i++) histogram[i] += r.histogram[i];
      for (const [k, v] of Object.entries(r.closeCodes)) closeCodes[k] = (closeCodes[k] ?? 0) + v;
    }
    const firsts = reports.map((r) => r.firstAtUs).filter((t) => t > 0);
    return {
      histogram,
      received: reports.reduce((a, r) => a + r.received, 0),
      firstAtUs: firsts.length ? Math.min(...firsts) : 0,
      lastAtUs: Math.max(...reports.map((r) => r.lastAtUs)),
      closeCodes,
    };
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((res) => {
            w.once("exit", () => res());
            w.postMessage({ type: "close" } satisfies ToWorker);
          }),
      ),
    );
  }
}

/** Percentile (0..1) of a bucket histogram, in ms. */
function percentileMs(h: Uint32Array, p: number): number {
  let total = 0;
  for (const c of h) total += c;
  if (total === 0) return Number.NaN;
  const rank = Math.ceil(total * p);
  let seen = 0;
  for (let i = 0; i < h.length; i++) {
    seen += h[i];
    if (seen >= rank) return ((i + 1) * BUCKET_US) / 1000;
  }
  return Number.NaN;
}

function maxMs(h: Uint32Array): number {
  for (let i = h.length - 1; i >= 0; i--) if (h[i] > 0) return ((i + 1) * BUCKET_US) / 1000;
  return Number.NaN;
}

// ------------------------------------------------------------------ k2 processes

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const CLI = join(ROOT, "dist/src/cli.js");
const CAPTURE = resolve(ROOT, "../shared/data/binance-spot/btcusdt_20240808.gz");

interface K2 {
  child: ChildProcess;
  port: number;
  stdout: () => string;
  exited: Promise<number | null>;
}

/** Child processes still running, killed when the bench exits (also on failure). */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

function spawnK2(args: string[], env: NodeJS.ProcessEnv = {}): Promise<K2> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, K2_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d) => {
    out += d;
  });
  children.add(child);
  const exited = new Promise<number | null>((r) =>
    child.on("exit", (c) => {
      children.delete(child);
      r(c);
    }),
  );
  return new Promise((res, rej) => {
    child.stderr?.on("data", (d) => {
      err += d;
      if (err.length > 1_000_000) err = err.slice(-100_000);
      const m = /http listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(err);
      if (m) res({ child, port: Number(m[1]), stdout: () => out, exited });
    });
    exited.then((code) => rej(new Error(`k2 exited with ${code}: ${err.slice(-2000)}`)));
  });
}

function spawnReplayServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [CLI, "replay-server", CAPTURE, "--port", String(port), "--speed", "max"],
    {
      cwd: ROOT,
      env: { ...process.env, K2_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  return new Promise((res) => child.stdout?.once("data", () => res(child)));
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const addr = srv.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  await new Promise((r) => srv.close(r));
  return port;
}

interface Status {
  feeds: { state: string; frames: number }[];
  gateway: { clients: number; messages_sent: number; conflated: number; disconnected_slow: number };
}

async function status(port: number): Promise<Status> {
  return (await (await fetch(`http://127.0.0.1:${port}/api/v1/status`)).json()) as Status;
}

/** CPU time (user + system) of a process so far, ms (Linux /proc). */
function cpuMs(pid: number | undefined): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime in 1/100 s
  } catch {
    return Number.NaN;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stopK2(k2: K2): Promise<Record<string, number>> {
  k2.child.kill("SIGTERM");
  await k2.exited;
  return JSON.parse(k2.stdout().trim().split("\n").at(-1) ?? "{}");
}

/** Waits until the feed has received `frames` frames and no more arrive. */
async function waitForFrames(port: number, frames: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s = await status(port);
    if ((s.feeds[0]?.frames ?? 0) >= frames) return;
    await sleep(200);
  }
  throw new Error(`feed did not receive ${frames} frames within ${timeoutMs} ms`);
}

/** Ingest of the whole capture at --speed max through a separate replay-server; clients optional. */
async function throughputRun(
  dir: string,
  name: string,
  clients: number,
  workers: number,
  totalFrames: number,
  channels: string[],
  nice = false,
): Promise<Record<string, unknown>> {
  const replayPort = await freePort();
  const k2 = await spawnK2([
    "run",
    "--ws-url",
    `ws://127.0.0.1:${replayPort}`,
    "--symbols",
    "BTCUSDT",
    "--streams",
    "trade,bookTicker",
    "--http-port",
    "0",
    "--db",
    join(dir, `${name}.duckdb`),
  ]);
  const fleet =
    clients > 0
      ? await ClientFleet.start(`ws://127.0.0.1:${k2.port}/ws`, clients, workers, channels, nice)
      : null;
  const cpu0 = cpuMs(k2.child.pid);
  const t0 = performance.now();
  const replay = await spawnReplayServer(replayPort);
  await waitForFrames(k2.port, totalFrames, 300_000);
  // let the gateway drain what is still queued for the clients
  let last = -1;
  for (;;) {
    const s = await status(k2.port);
    if (s.gateway.messages_sent === last) break;
    last = s.gateway.messages_sent;
    await sleep(1000);
  }
  const gw = (await status(k2.port)).gateway;
  const serverCpuPct = Math.round(((cpuMs(k2.child.pid) - cpu0) / (performance.now() - t0)) * 100);
  const report = fleet ? await fleet.report() : null;
  const summary = await stopK2(k2);
  replay.kill("SIGTERM");
  await fleet?.close();
  const receiveS = (summary.receive_ms ?? 0) / 1000;
  const result: Record<string, unknown> = {
    clients,
    clients_niced: nice,
    frames: summary.frames,
    ingest_receive_ms: summary.receive_ms,
    ingest_frames_per_s: receiveS > 0 ? Math.round(summary.frames / receiveS) : null,
    k2_cpu_pct: serverCpuPct,
  };
  if (report) {
    const windowS = (report.lastAtUs - report.firstAtUs) / 1e6;
    Object.assign(result, {
      delivered: report.received,
      delivery_window_s: Math.round(windowS * 100) / 100,
      delivered_per_s: Math.round(report.received / windowS),
      gateway_messages_sent: gw.messages_sent,
      conflated: gw.conflated,
      disconnected_slow: gw.disconnected_slow,
      latency_ms: {
        p50: percentileMs(report.histogram, 0.5),
        p99: percentileMs(report.histogram, 0.99),
        max: maxMs(report.histogram),
      },
    });
  }
  return result;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : def;
  };
  const clients = Number(opt("clients", "1000"));
  const seconds = Number(opt("seconds", "60"));
  const workers = Number(opt("workers", "2"));
  const channels = opt("channels", "trades,quotes").split(",");
  const phases = opt("phases", "latency,throughput").split(",");
  const niceLatency = args.includes("--nice");
  const dir = mkdtempSync(join(tmpdir(), "k2-bench-gateway-"));
  const out: Record<string, unknown> = { clients, workers, channels, symbols: ["BTCUSDT"] };
  try {
    if (phases.includes("latency")) {
      // 1. latency at --speed 1
      process.stderr.write(
        `bench gateway: latency, ${clients} clients (${channels}), --speed 1, ${seconds} s\n`,
      );
      const k2 = await spawnK2([
        "run",
        "--replay",
        CAPTURE,
        "--speed",
        "1",
        "--symbols",
        "BTCUSDT",
        "--streams",
        "trade,bookTicker",
        "--http-port",
        "0",
        "--db",
        join(dir, "latency.duckdb"),
      ]);
      const fleet = await ClientFleet.start(
        `ws://127.0.0.1:${k2.port}/ws`,
        clients,
        workers,
        channels,
        niceLatency,
      );
      fleet.reset();
      const before = (await status(k2.port)).gateway;
      const cpu0 = cpuMs(k2.child.pid);
      const self0 = process.cpuUsage();
      await sleep(seconds * 1000);
      const r = await fleet.report();
      const k2Cpu = Math.round(((cpuMs(k2.child.pid) - cpu0) / (seconds * 1000)) * 100);
      const self = process.cpuUsage(self0);
      const after = (await status(k2.port)).gateway;
      await fleet.close();
      await stopK2(k2);
      out.speed_1 = {
        seconds,
        clients_niced: niceLatency,
        clients_connected: after.clients,
        delivered: r.received,
        delivered_per_s: Math.round(r.received / seconds),
        latency_ms: {
          p50: percentileMs(r.histogram, 0.5),
          p90: percentileMs(r.histogram, 0.9),
          p99: percentileMs(r.histogram, 0.99),
          p999: percentileMs(r.histogram, 0.999),
          max: maxMs(r.histogram),
        },
        conflated: after.conflated - before.conflated,
        disconnected_slow: after.disconnected_slow - before.disconnected_slow,
        k2_cpu_pct: k2Cpu,
        clients_cpu_pct: Math.round(((self.user + self.system) / 1000 / (seconds * 1000)) * 100),
        p99_target_met: percentileMs(r.histogram, 0.99) <= 10,
      };
      process.stderr.write(`${JSON.stringify(out.speed_1)}\n`);
    }
    if (phases.includes("throughput")) {
      // 2. throughput at --speed max, without and with the clients
      process.stderr.write("bench gateway: ingest at --speed max without clients\n");
      const TOTAL_FRAMES = 37_797; // trade + bookTicker frames of BTCUSDT in the capture
      out.speed_max_no_clients = await throughputRun(dir, "base", 0, workers, TOTAL_FRAMES, channels);
      process.stderr.write(`${JSON.stringify(out.speed_max_no_clients)}\n`);
      process.stderr.write(`bench gateway: ingest at --speed max with ${clients} clients\n`);
      out.speed_max = await throughputRun(dir, "max", clients, workers, TOTAL_FRAMES, channels);
      process.stderr.write(`${JSON.stringify(out.speed_max)}\n`);
      // the same with the client threads at the lowest CPU priority: what the gateway itself costs ingest
      process.stderr.write(`bench gateway: ingest at --speed max with ${clients} clients at nice 19\n`);
      out.speed_max_clients_niced = await throughputRun(
        dir,
        "nice",
        clients,
        workers,
        TOTAL_FRAMES,
        channels,
        true,
      );
      process.stderr.write(`${JSON.stringify(out.speed_max_clients_niced)}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify({ bench: "gateway", ...out })}\n`);
}

if (isMainThread) {
  try {
    await main();
  } catch (e) {
    process.stderr.write(`bench gateway failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  }
} else {
  await workerMain(workerData as WorkerInit);
}
