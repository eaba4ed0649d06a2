/**
 * Gateway benchmark (`npm run bench:gateway`): 1,000 WebSocket clients subscribed to trades and quotes
 * of BTCUSDT on a real `k2 run` child process fed by `../shared/data/binance-spot/btcusdt_20240808.gz`.
 *
 *   1. latency: `k2 run --replay ... --speed 1`; after `--warmup` seconds (default 5) with every client
 *      subscribed, measured for `--seconds` (default 60): p50/p90/p99/max of client receipt time − the
 *      record's `ingestion_timestamp` (µs, the frame's receipt time in k2), i.e. normalize → bus → live
 *      feed → gateway process → socket → client. Target p99 ≤ 10 ms.
 *   2. floor: the same clients, warm-up, window and frame timing against `bench/bare-fanout.ts`, a bare
 *      Node broadcaster with nothing of K2 in it: what this host can do at all with that many loopback
 *      clients (K2's figure cannot be better than this one).
 *   3. throughput: `k2 run --ws-url` to a `k2 replay-server --speed max` started only after every client
 *      has subscribed (the feed connects on its next backoff attempt); messages delivered per second
 *      in total (all clients, first to last message), plus ingest frames/s with and without the clients,
 *      and once more with the client threads at nice 19 (as if the clients were on other hosts).
 *
 * Clients live in `--workers` worker threads (default 2) of this process and use a minimal WebSocket
 * client (`RawClient`; `--client ws` uses the `ws` library instead); receipt times use
 * `performance.timeOrigin + performance.now()` in µs, like k2's receipt stamps (same host clock).
 * Options: `--clients N` (1000), `--seconds S` (60), `--warmup S` (5), `--workers W` (2),
 * `--channels trades,quotes`, `--phases latency,floor,throughput`, `--ws-workers N` (k2's gateway
 * processes; default: k2's default), `--nice` (client threads at nice 19 in the latency phase too).
 * Prints one JSON line with the figures at the end; CPU figures are % of one core (k2's main process;
 * its gateway processes are not included; client workers = this process).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { setPriority, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import WebSocket from "ws";
import { frameAt } from "./ws-frames.js";

const BUCKET_US = 10;
const BUCKETS = 200_000; // 10 µs buckets up to 2 s; slower goes to the last bucket

interface WorkerInit {
  url: string;
  clients: number;
  channels: string[];
  /** Run the client thread at the lowest CPU priority (Linux: per thread). */
  nice: boolean;
  /** `raw`: the minimal client below; `ws`: the `ws` library. */
  client: "raw" | "ws";
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

/** Set from the command line in main(): client implementation and k2's gateway worker processes. */
let CLIENT_KIND: WorkerInit["client"] = "raw";
let WS_WORKERS: string | null = null;

const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;

/**
 * A minimal WebSocket client (RFC 6455) for measuring: the handshake, masked text frames out, and the
 * server's unmasked frames parsed in place; pings are answered. Every text frame in a chunk read from
 * the socket counts as received when the chunk was read. The `ws` library does much more per message
 * (validation, events, copies): with 1,000 clients on a 2-core host its per-message cost, not K2's,
 * would dominate the figure (`--client ws` measures with it).
 */
class RawClient {
  /** Called with each text frame's payload `buf[start, end)` and the chunk's receipt time (µs). */
  onText: ((buf: Buffer, start: number, end: number, at: number) => void) | null = null;
  private rest: Buffer | null = null;
  private replies: ((text: string) => void)[] = [];

  private constructor(
    private readonly socket: Socket,
    private readonly onClose: (code: number) => void,
  ) {}

  static open(url: string, onClose: (code: number) => void): Promise<RawClient> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(u.port), u.hostname);
      socket.setNoDelay(true);
      const c = new RawClient(socket, onClose);
      let head = Buffer.alloc(0);
      const onHandshake = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onHandshake);
        if (!head.subarray(0, 12).toString().startsWith("HTTP/1.1 101")) {
          reject(new Error(`handshake refused: ${head.subarray(0, end).toString()}`));
          socket.destroy();
          return;
        }
        socket.on("data", (d: Buffer) => c.read(d));
        socket.on("close", () => onClose(1006));
        if (head.length > end + 4) c.read(head.subarray(end + 4));
        resolve(c);
      };
      socket.on("data", onHandshake);
      socket.once("error", reject);
      socket.on("error", () => {});
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  /** Sends a text message and resolves with the next non-data reply (subscribe → `subscribed`). */
  request(text: string): Promise<string> {
    return new Promise((resolve) => {
      this.replies.push(resolve);
      this.send(0x1, Buffer.from(text));
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private send(opcode: number, payload: Buffer): void {
    const len = payload.length;
    const head = len < 126 ? 2 : 4;
    const frame = Buffer.allocUnsafe(head + 4 + len);
    frame[0] = 0x80 | opcode;
    if (len < 126) frame[1] = 0x80 | len;
    else {
      frame[1] = 0x80 | 126;
      frame.writeUInt16BE(len, 2);
    }
    const mask = randomBytes(4);
    mask.copy(frame, head);
    for (let i = 0; i < len; i++) frame[head + 4 + i] = payload[i] ^ mask[i & 3];
    this.socket.write(frame);
  }

  private read(chunk: Buffer): void {
    const at = nowUs();
    let buf = chunk;
    if (this.rest) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let p = 0;
    for (let f = frameAt(buf, p); f; f = frameAt(buf, p)) {
      const { opcode, start, end } = f;
      if (opcode === 0x1) {
        if (this.onText) this.onText(buf, start, end, at);
        else {
          // subscribing: replies answer the requests; data of a channel already subscribed is skipped
          const text = buf.toString("utf8", start, end);
          if (text.startsWith('{"type":"subscribed"') || text.startsWith('{"type":"error"')) {
            this.replies.shift()?.(text);
          }
        }
      } else if (opcode === 0x9) this.send(0xa, buf.subarray(start, end));
      else if (opcode === 0x8) this.onClose(end - start >= 2 ? buf.readUInt16BE(start) : 1005);
      p = end;
    }
    if (p < buf.length) this.rest = Buffer.from(buf.subarray(p));
  }
}

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
  const raws: RawClient[] = [];
  if (init.client === "raw") {
    const KEY_BYTES = Buffer.from(KEY);
    const onText = (buf: Buffer, start: number, end: number, at: number) => {
      const i = buf.indexOf(KEY_BYTES, start);
      if (i < 0 || i >= end) return;
      let ingested = 0;
      for (let k = i + KEY_BYTES.length; k < end; k++) {
        const d = buf[k] - 48;
        if (d < 0 || d > 9) break;
        ingested = ingested * 10 + d;
      }
      received++;
      if (firstAtUs === 0) firstAtUs = at;
      lastAtUs = at;
      const b = Math.min(BUCKETS - 1, Math.max(0, Math.floor((at - ingested) / BUCKET_US)));
      histogram[b]++;
    };
    const onClose = (code: number) => {
      closed++;
      closeCodes[code] = (closeCodes[code] ?? 0) + 1;
    };
    await Promise.all(
      Array.from({ length: init.clients }, async (_, n) => {
        await new Promise((r) => setTimeout(r, n * 2)); // spread the handshakes
        const c = await RawClient.open(init.url, onClose);
        raws.push(c);
        await Promise.all(
          init.channels.map((channel, id) =>
            c.request(JSON.stringify({ op: "subscribe", channel, symbols: ["BTCUSDT"], id })),
          ),
        );
        c.onText = onText;
      }),
    );
  } else {
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
  }
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
      for (const c of raws) c.destroy();
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
    client: WorkerInit["client"] = CLIENT_KIND,
  ): Promise<ClientFleet> {
    const fleet = new ClientFleet();
    const per = Math.ceil(clients / workers);
    const ready: Promise<void>[] = [];
    for (let i = 0; i < workers; i++) {
      const n = Math.min(per, clients - i * per);
      if (n <= 0) break;
      const w = new Worker(fileURLToPath(import.meta.url), {
        workerData: { url, clients: n, channels, nice, client } satisfies WorkerInit,
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

/** p50/p90/p99/p99.9/max of a bucket histogram, ms. */
function latencySummary(h: Uint32Array): Record<string, number> {
  return {
    p50: percentileMs(h, 0.5),
    p90: percentileMs(h, 0.9),
    p99: percentileMs(h, 0.99),
    p999: percentileMs(h, 0.999),
    max: maxMs(h),
  };
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
  const child = spawn(process.execPath, [CLI, ...args, ...(WS_WORKERS ? ["--ws-workers", WS_WORKERS] : [])], {
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
  const warmupS = Number(opt("warmup", "5"));
  const workers = Number(opt("workers", "2"));
  const channels = opt("channels", "trades,quotes").split(",");
  const phases = opt("phases", "latency,floor,throughput").split(",");
  const niceLatency = args.includes("--nice");
  CLIENT_KIND = opt("client", "raw") === "ws" ? "ws" : "raw";
  WS_WORKERS = opt("ws-workers", "") || null;
  const dir = mkdtempSync(join(tmpdir(), "k2-bench-gateway-"));
  const out: Record<string, unknown> = {
    clients,
    client_threads: workers,
    client: CLIENT_KIND,
    k2_ws_workers: WS_WORKERS ?? "default",
    channels,
    symbols: ["BTCUSDT"],
  };
  /**
   * The clients on `url`; after the warm-up (JIT, the gateway processes' first rounds, the capture's
   * first seconds) a window of `seconds`: the clients' report, and the CPU the server (`pid`) and the
   * clients used meanwhile (% of one core).
   */
  const measureWindow = async (url: string, pid: number | undefined, atStart?: () => Promise<void>) => {
    const fleet = await ClientFleet.start(url, clients, workers, channels, niceLatency);
    await sleep(warmupS * 1000);
    fleet.reset();
    await atStart?.();
    const cpu0 = cpuMs(pid);
    const self0 = process.cpuUsage();
    await sleep(seconds * 1000);
    const r = await fleet.report();
    const serverCpuPct = Math.round(((cpuMs(pid) - cpu0) / (seconds * 1000)) * 100);
    const self = process.cpuUsage(self0);
    await fleet.close();
    return {
      r,
      serverCpuPct,
      clientsCpuPct: Math.round(((self.user + self.system) / 1000 / (seconds * 1000)) * 100),
    };
  };
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
        "--replay-clock",
        "wall", // latency is measured from ingestion_timestamp: this process's receipt time
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
      const before: { gateway?: Status["gateway"] } = {};
      const {
        r,
        serverCpuPct: k2Cpu,
        clientsCpuPct,
      } = await measureWindow(`ws://127.0.0.1:${k2.port}/ws`, k2.child.pid, async () => {
        before.gateway = (await status(k2.port)).gateway;
      });
      const after = (await status(k2.port)).gateway;
      await stopK2(k2);
      out.speed_1 = {
        seconds,
        warmup_s: warmupS,
        clients_niced: niceLatency,
        clients_connected: after.clients,
        delivered: r.received,
        delivered_per_s: Math.round(r.received / seconds),
        latency_ms: latencySummary(r.histogram),
        conflated: after.conflated - (before.gateway?.conflated ?? 0),
        disconnected_slow: after.disconnected_slow - (before.gateway?.disconnected_slow ?? 0),
        k2_cpu_pct: k2Cpu,
        clients_cpu_pct: clientsCpuPct,
        p99_target_met: percentileMs(r.histogram, 0.99) <= 10,
      };
      process.stderr.write(`${JSON.stringify(out.speed_1)}\n`);
    }
    if (phases.includes("floor")) {
      // 1b. the same clients, window and frame timing on a bare Node broadcaster without K2: what this
      // host can do at all (socket writes and reads for 1,000 loopback clients on its cores)
      process.stderr.write(`bench gateway: bare Node fan-out (no K2), ${clients} clients, ${seconds} s\n`);
      const port = await freePort();
      const bare = spawn(
        process.execPath,
        [join(ROOT, "dist/bench/bare-fanout.js"), "--port", String(port)],
        {
          cwd: ROOT,
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      children.add(bare);
      await new Promise((r) => bare.stdout?.once("data", r));
      const { r, serverCpuPct: bareCpu } = await measureWindow(`ws://127.0.0.1:${port}/ws`, bare.pid);
      bare.kill("SIGTERM");
      out.bare_fanout_floor = {
        seconds,
        warmup_s: warmupS,
        delivered: r.received,
        delivered_per_s: Math.round(r.received / seconds),
        latency_ms: latencySummary(r.histogram),
        server_cpu_pct: bareCpu,
      };
      process.stderr.write(`${JSON.stringify(out.bare_fanout_floor)}\n`);
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
