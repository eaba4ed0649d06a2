/**
 * Soak (`npm run soak`, not in CI): k2 under faults and gateway clients for a long run, watching for
 * leaks and for records lost silently.
 *
 *   1. `../shared/data/binance-spot/btcusdt_20240808.gz` then `btcusdt_20240809.gz` (consecutive: trade
 *      ids continue) are written, looped enough times to cover `--minutes` at `--speed`, into a
 *      temporary capture in which loop k has its ids and times shifted (bench/soak-capture.ts), so every
 *      loop is new market data, not duplicates. The replay servers' REST emulation reads the same file,
 *      so gaps are backfilled with shifted ids too.
 *   2. `k2 run --replay LOOPED.gz --speed S --faults SPEC --symbols BTCUSDT --streams trade,bookTicker
 *      --db TMP/k2.duckdb --http-port 0 --ping-interval-ms 2000 --pong-timeout-ms 2000
 *      --backoff-max-ms 2000 --exit-at-end` as a child process.
 *   3. `--clients` WebSocket clients (in `--client-threads` worker threads of this process) subscribe
 *      to BTCUSDT trades on `/ws`; a client that is closed reconnects after 500 ms. Each client counts
 *      its messages and checks that the `source_sequence` of its streamed trades is increasing, and
 *      separately that of its backfilled trades (`vendor_data.source = "rest_backfill"`, delivered when
 *      a gap is filled, so behind the stream).
 *   4. Every `--sample-s` (5) seconds: k2's RSS (VmRSS of /proc/PID/status) and open fds (/proc/PID/fd),
 *      the same of its gateway worker processes (children), and from `/metrics`: frames received,
 *      records stored, dead letters, backfilled records, reconnects, consumer lag, the main thread's JS
 *      heap used (RSS growth beside it is native memory: DuckDB); one progress line.
 *   5. At `--minutes` (or the replay's end), SIGTERM k2, wait for its exit and its summary line, query
 *      the DuckDB file (`k2 query`) and report: trades received on the stream, dead-lettered,
 *      backfilled (`vendor_data->>'source' = 'rest_backfill'`) and stored, the identity
 *      stored == received − dead-lettered + backfilled (trades and quotes) and trade ids contiguous
 *      (count == max − min + 1, all distinct), RSS first/peak/last and its least-squares slope (MiB/min)
 *      over the second half, fds first/last/max, the clients' messages and ordering violations, the
 *      faults injected.
 *
 * Options: `--minutes N` (10), `--speed N` (10), `--clients N` (200), `--faults SPEC`
 * (`drop-every=20000:lost=200,garbage=0.0005`), `--out FILE` (JSON report), `--client-threads N` (1),
 * `--sample-s N` (5), `--ws-workers N` (k2's gateway processes; default k2's).
 * Prints one JSON line on stdout and a table on stderr; exits 1 when the identity fails, trade ids
 * are not contiguous, a client saw trades out of order or a client received no trade at all (its first
 * messages are reported), 2 on a bad option.
 *
 * Definitions: "received" = records k2 normalized from the stream (its summary's `trades` / `quotes`)
 * plus the stream's frames it dead-lettered (dead letters whose raw frame is a trade / bookTicker);
 * "stored" = rows in `trades_v2` / `quotes_v2`. The replay server runs inside k2 (worker thread), so
 * k2's RSS includes the looped capture held in memory (constant: it does not change the slope).
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import WebSocket from "ws";
import { writeLoopedCapture } from "./soak-capture.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const CLI = join(ROOT, "dist/src/cli.js");
const DATA = resolve(ROOT, "../shared/data/binance-spot");
const INPUTS = [join(DATA, "btcusdt_20240808.gz"), join(DATA, "btcusdt_20240809.gz")];
const RECONNECT_MS = 500;

// ------------------------------------------------------------------ gateway clients (worker threads)

interface ClientInit {
  url: string;
  clients: number;
  /** Number of this thread's first client (for violation reports). */
  first: number;
}

type ToClients = { type: "report" } | { type: "stop" };

/** A trade seen out of order by one client. */
interface Violation {
  client: number;
  /** `stream` or `backfill` chain. */
  chain: string;
  previous: number;
  sequence: number;
}

/** Counts of one client thread (added up over threads by the soak). */
interface ClientReport {
  type: "report";
  connected: number;
  subscribed: number;
  messages: number;
  trades: number;
  backfilledTrades: number;
  /** Fewest / most messages of one client. */
  minMessages: number;
  maxMessages: number;
  reconnects: number;
  violations: number;
  examples: Violation[];
  closeCodes: Record<string, number>;
  /** Clients that received no trade at all, and the first few of them. */
  clientsWithoutTrades: number;
  withoutTrades: {
    client: number;
    messages: number;
    /** Seconds after the thread started: connection open, `subscribed` reply (null: none). */
    openedAtS: number | null;
    subscribedAtS: number | null;
    first: string[];
  }[];
}

/** One thread's clients: subscribe to BTCUSDT trades, count, check order, reconnect when closed. */
function clientThread(init: ClientInit): void {
  const port = parentPort;
  if (!port) return;
  const TRADE = Buffer.from('{"type":"trade"');
  const SEQ = Buffer.from('"source_sequence":');
  const BACKFILL = Buffer.from('"rest_backfill"');
  const SUBSCRIBED = Buffer.from('{"type":"subscribed"');
  let stopping = false;
  let connected = 0;
  let subscribed = 0;
  let messages = 0;
  let trades = 0;
  let backfilledTrades = 0;
  let reconnects = 0;
  let violations = 0;
  const examples: Violation[] = [];
  const closeCodes: Record<string, number> = {};
  const perClient = new Float64Array(init.clients);
  const tradesOf = new Float64Array(init.clients);
  const subscribedAt = new Float64Array(init.clients).fill(-1);
  const openedAt = new Float64Array(init.clients).fill(-1);
  /** The first messages of each client (200 characters each), for the report of a client left without trades. */
  const firstMessages: string[][] = Array.from({ length: init.clients }, () => []);
  const t0 = performance.now();
  const sockets: (WebSocket | null)[] = new Array(init.clients).fill(null);
  const lastStream = new Float64Array(init.clients).fill(-1);
  const lastBackfill = new Float64Array(init.clients).fill(-1);

  const open = (i: number) => {
    if (stopping) return;
    const ws = new WebSocket(init.url, { perMessageDeflate: false, skipUTF8Validation: true });
    sockets[i] = ws;
    let isOpen = false;
    ws.on("open", () => {
      isOpen = true;
      connected++;
      openedAt[i] = (performance.now() - t0) / 1000;
      ws.send(JSON.stringify({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 }));
    });
    ws.on("message", (data: Buffer) => {
      messages++;
      perClient[i]++;
      if (firstMessages[i].length < 3) firstMessages[i].push(data.toString("utf8", 0, 200));
      if (data.compare(TRADE, 0, TRADE.length, 0, TRADE.length) === 0) {
        trades++;
        tradesOf[i]++;
        const k = data.indexOf(SEQ);
        if (k < 0) return;
        let seq = 0;
        for (let p = k + SEQ.length; p < data.length; p++) {
          const d = data[p] - 48;
          if (d < 0 || d > 9) break;
          seq = seq * 10 + d;
        }
        const backfill = data.indexOf(BACKFILL) >= 0;
        if (backfill) backfilledTrades++;
        const chain = backfill ? lastBackfill : lastStream;
        if (seq <= chain[i]) {
          violations++;
          if (examples.length < 10)
            examples.push({
              client: init.first + i,
              chain: backfill ? "backfill" : "stream",
              previous: chain[i],
              sequence: seq,
            });
        }
        chain[i] = seq;
      } else if (data.compare(SUBSCRIBED, 0, SUBSCRIBED.length, 0, SUBSCRIBED.length) === 0) {
        subscribed++;
        subscribedAt[i] = (performance.now() - t0) / 1000;
      }
    });
    ws.on("error", () => {});
    ws.on("close", (code) => {
      if (isOpen) connected--;
      sockets[i] = null;
      closeCodes[code] = (closeCodes[code] ?? 0) + 1;
      if (stopping) return;
      reconnects++;
      setTimeout(() => open(i), RECONNECT_MS);
    });
  };
  for (let i = 0; i < init.clients; i++) setTimeout(() => open(i), i * 5); // spread the handshakes

  port.on("message", (m: ToClients) => {
    if (m.type === "stop") stopping = true;
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (const n of perClient) {
      if (n < min) min = n;
      if (n > max) max = n;
    }
    const withoutTrades: ClientReport["withoutTrades"] = [];
    for (let i = 0; i < init.clients; i++)
      if (tradesOf[i] === 0 && withoutTrades.length < 5)
        withoutTrades.push({
          client: init.first + i,
          messages: perClient[i],
          openedAtS: round(openedAt[i], 2),
          subscribedAtS: round(subscribedAt[i], 2),
          first: firstMessages[i],
        });
    let noTrades = 0;
    for (const n of tradesOf) if (n === 0) noTrades++;
    port.postMessage({
      type: "report",
      clientsWithoutTrades: noTrades,
      withoutTrades,
      connected,
      subscribed,
      messages,
      trades,
      backfilledTrades,
      minMessages: init.clients ? min : 0,
      maxMessages: max,
      reconnects,
      violations,
      examples,
      closeCodes,
    } satisfies ClientReport);
    if (m.type === "stop") {
      for (const ws of sockets) ws?.terminate();
      setTimeout(() => process.exit(0), 50);
    }
  });
}

/** The soak's client threads. */
class Fleet {
  private readonly threads: Worker[] = [];

  constructor(url: string, clients: number, threads: number) {
    const per = Math.ceil(clients / threads);
    for (let first = 0; first < clients; first += per) {
      const init: ClientInit = { url, clients: Math.min(per, clients - first), first };
      this.threads.push(new Worker(fileURLToPath(import.meta.url), { workerData: init }));
    }
  }

  /** Counts of every thread, added up; `stop` also closes the clients (no reconnects). */
  async report(stop = false): Promise<ClientReport> {
    const reports = await Promise.all(
      this.threads.map(
        (w) =>
          new Promise<ClientReport>((res, rej) => {
            const on = (m: ClientReport) => {
              w.off("message", on);
              w.off("error", fail);
              res(m);
            };
            const fail = (err: Error) => {
              w.off("message", on);
              rej(err);
            };
            w.on("message", on);
            w.once("error", fail);
            w.postMessage({ type: stop ? "stop" : "report" } satisfies ToClients);
          }),
      ),
    );
    const total: ClientReport = {
      type: "report",
      connected: 0,
      subscribed: 0,
      messages: 0,
      trades: 0,
      backfilledTrades: 0,
      minMessages: Math.min(...reports.map((r) => r.minMessages)),
      maxMessages: Math.max(...reports.map((r) => r.maxMessages)),
      reconnects: 0,
      violations: 0,
      examples: reports.flatMap((r) => r.examples).slice(0, 10),
      closeCodes: {},
      clientsWithoutTrades: 0,
      withoutTrades: reports.flatMap((r) => r.withoutTrades).slice(0, 5),
    };
    for (const r of reports) {
      for (const k of [
        "connected",
        "subscribed",
        "messages",
        "trades",
        "backfilledTrades",
        "reconnects",
        "violations",
        "clientsWithoutTrades",
      ] as const)
        total[k] += r[k];
      for (const [c, n] of Object.entries(r.closeCodes)) total.closeCodes[c] = (total.closeCodes[c] ?? 0) + n;
    }
    return total;
  }
}

// ------------------------------------------------------------------ k2 and its process figures

/** RSS (MiB) and open fds of a process, null when it is gone. */
function procStats(pid: number): { rssMb: number; fds: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return { rssMb: m ? Number(m[1]) / 1024 : Number.NaN, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return null;
  }
}

/** Pids whose parent is `pid` (k2's gateway worker processes). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Sum of every sample of metric `name` (all label sets) in a Prometheus text exposition. */
function metricSum(text: string, name: string, labelFilter = ""): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!(line.startsWith(`${name}{`) || line.startsWith(`${name} `))) continue;
    if (labelFilter && !line.includes(labelFilter)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** One sample taken every `--sample-s`. */
interface Sample {
  /** Seconds since k2 listened. */
  t: number;
  rssMb: number;
  fds: number;
  /** Gateway worker processes: RSS added up (MiB), fds added up. */
  workersRssMb: number;
  workersFds: number;
  frames: number;
  stored: number;
  deadLetters: number;
  backfilled: number;
  reconnects: number;
  lag: number;
  clientsConnected: number;
  clientMessages: number;
  /** k2's main thread JS heap used and external memory (`/metrics`), MiB: RSS growth outside them is native (DuckDB). */
  heapMb: number;
  externalMb: number;
  /** CPU of k2's main process and of this process (the clients) since the previous sample, % of one core. */
  k2CpuPct: number;
  soakCpuPct: number;
  /** Gateway counters (`/api/v1/status`): messages sent, conflated, slow clients disconnected. */
  gwSent: number;
  gwConflated: number;
  gwSlowDisconnects: number;
}

/** CPU time (user + system) of a process so far, ms (Linux /proc), NaN when it is gone. */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = f.slice(f.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, 1/100 s
  } catch {
    return Number.NaN;
  }
}

/** Size of a file in MiB (NaN when missing). */
function fileMb(path: string): number {
  try {
    return statSync(path).size / 1048576;
  } catch {
    return Number.NaN;
  }
}

/** Least-squares slope of `y` over `x`. */
function slope(x: number[], y: number[]): number {
  const n = x.length;
  if (n < 2) return Number.NaN;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (x[i] - mx) * (y[i] - my);
    den += (x[i] - mx) ** 2;
  }
  return den > 0 ? num / den : Number.NaN;
}

const mean = (v: number[]) => (v.length ? v.reduce((a, b) => a + b, 0) / v.length : Number.NaN);
const round = (v: number, d = 2) => (Number.isFinite(v) ? Math.round(v * 10 ** d) / 10 ** d : null);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `k2 query --format json SQL` on `db`. */
async function query(db: string, sql: string): Promise<Record<string, string | number | null>[]> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [CLI, "query", "--db", db, "--format", "json", sql],
    { cwd: ROOT, maxBuffer: 1 << 26 },
  );
  return JSON.parse(stdout);
}

interface Options {
  minutes: number;
  speed: number;
  clients: number;
  faults: string;
  out: string | null;
  clientThreads: number;
  sampleS: number;
  wsWorkers: string | null;
}

/** Parses the command line; exits 2 naming the flag on a bad value. */
function parseOptions(args: string[]): Options {
  const known = new Set([
    "minutes",
    "speed",
    "clients",
    "faults",
    "out",
    "client-threads",
    "sample-s",
    "ws-workers",
  ]);
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const name = args[i].replace(/^--/, "");
    if (!args[i].startsWith("--") || !known.has(name) || args[i + 1] === undefined) {
      process.stderr.write(`soak: unknown option or missing value: ${args[i]}\n`);
      process.exit(2);
    }
    values.set(name, args[++i]);
  }
  const num = (name: string, def: number, min: number, integer = false) => {
    const text = values.get(name);
    if (text === undefined) return def;
    const v = Number(text);
    if (!Number.isFinite(v) || v < min || (integer && !Number.isInteger(v))) {
      process.stderr.write(
        `soak: --${name}: expected ${integer ? "an integer" : "a number"} ≥ ${min}, got "${text}"\n`,
      );
      process.exit(2);
    }
    return v;
  };
  return {
    minutes: num("minutes", 10, 0.05),
    speed: num("speed", 10, 0.1),
    clients: num("clients", 200, 0, true),
    faults: values.get("faults") ?? "drop-every=20000:lost=200,garbage=0.0005",
    out: values.get("out") ?? null,
    clientThreads: num("client-threads", 1, 1, true),
    sampleS: num("sample-s", 5, 0.5),
    wsWorkers: values.get("ws-workers") ?? null,
  };
}

/** The k2 child: stderr read line by line (port, `stopped` line, last lines kept), stdout kept. */
interface K2 {
  child: ChildProcess;
  pid: number;
  port: number;
  stdout: () => string;
  stoppedLine: () => Record<string, unknown> | null;
  tail: () => string[];
  warnings: () => number;
  exited: Promise<number | null>;
}

function startK2(args: string[]): Promise<K2> {
  const child = spawn(process.execPath, [CLI, "run", ...args], {
    cwd: ROOT,
    env: { ...process.env, K2_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => {
    out += d;
    if (out.length > 1_000_000) out = out.slice(-100_000);
  });
  const tail: string[] = [];
  let stopped: Record<string, unknown> | null = null;
  let warnings = 0;
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return new Promise((res, rej) => {
    const lines = createInterface({ input: child.stderr! });
    lines.on("line", (line) => {
      tail.push(line);
      if (tail.length > 40) tail.shift();
      if (line.includes('"level":40') || line.includes('"level":50')) warnings++;
      const m = /http listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (m)
        res({
          child,
          pid: child.pid as number,
          port: Number(m[1]),
          stdout: () => out,
          stoppedLine: () => stopped,
          tail: () => tail,
          warnings: () => warnings,
          exited,
        });
      if (line.includes('"msg":"stopped"')) {
        try {
          stopped = JSON.parse(line);
        } catch {
          // not JSON: keep the previous
        }
      }
    });
    exited.then((code) => rej(new Error(`k2 exited with ${code} before listening:\n${tail.join("\n")}`)));
  });
}

async function main(): Promise<void> {
  const opt = parseOptions(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), "k2-soak-"));
  let k2: K2 | null = null;
  const cleanup = () => {
    if (k2 && k2.child.exitCode === null && k2.child.signalCode === null) k2.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  process.on("exit", cleanup);
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.on(sig, () => {
      cleanup();
      process.exit(130);
    });

  // 1. the looped capture: enough loops for the duration at the speed, plus one (faults slow it down)
  const t0 = performance.now();
  const marketMs = opt.minutes * 60_000 * opt.speed;
  const looped = await writeLoopedCapture(
    INPUTS,
    join(dir, "looped.gz"),
    (spans) => Math.ceil(marketMs / spans.timeMs) + 1,
  );
  const loops = looped.loops;
  process.stderr.write(
    `soak: looped capture of ${loops} × ${looped.framesPerLoop} frames (trade ids +${looped.spans.tradeIds}, ` +
      `times +${looped.spans.timeMs} ms per loop) written in ${Math.round(performance.now() - t0)} ms\n`,
  );

  // 2. k2
  const db = join(dir, "k2.duckdb");
  const args = [
    "--replay",
    looped.path,
    "--speed",
    String(opt.speed),
    "--faults",
    opt.faults,
    "--symbols",
    "BTCUSDT",
    "--streams",
    "trade,bookTicker",
    "--db",
    db,
    "--http-port",
    "0",
    "--ping-interval-ms",
    "2000",
    "--pong-timeout-ms",
    "2000",
    "--backoff-max-ms",
    "2000",
    "--exit-at-end",
    ...(opt.wsWorkers !== null ? ["--ws-workers", opt.wsWorkers] : []),
  ];
  k2 = await startK2(args);
  const started = performance.now();
  const base = `http://127.0.0.1:${k2.port}`;
  process.stderr.write(
    `soak: k2 pid ${k2.pid} on ${base}, ${opt.minutes} min at --speed ${opt.speed}, faults ${opt.faults}, ${opt.clients} clients\n`,
  );

  // 3. clients
  const fleet =
    opt.clients > 0 ? new Fleet(`ws://127.0.0.1:${k2.port}/ws`, opt.clients, opt.clientThreads) : null;

  // 4. samples until the duration is reached or k2 ends (the replay's end)
  const samples: Sample[] = [];
  let k2Ended = false;
  k2.exited.then(() => {
    k2Ended = true;
  });
  const durationMs = opt.minutes * 60_000;
  const intervalMs = opt.sampleS * 1000;
  let cpu = { at: performance.now(), k2: cpuMs(k2.pid), soak: process.cpuUsage() };
  for (let next = started + intervalMs; ; next += intervalMs) {
    const wait = Math.min(next, started + durationMs) - performance.now();
    if (wait > 0) await Promise.race([sleep(wait), k2.exited]);
    if (k2Ended) break;
    const t = (performance.now() - started) / 1000;
    const own = procStats(k2.pid);
    const workers = childPids(k2.pid)
      .map(procStats)
      .filter((s) => s !== null);
    const now = { at: performance.now(), k2: cpuMs(k2.pid), soak: process.cpuUsage() };
    const soakCpu = process.cpuUsage(cpu.soak);
    const pct = (ms: number) => Math.round((ms / (now.at - cpu.at)) * 100);
    const k2CpuPct = pct(now.k2 - cpu.k2);
    const soakCpuPct = pct((soakCpu.user + soakCpu.system) / 1000);
    cpu = now;
    let metrics = "";
    let gateway: { messages_sent?: number; conflated?: number; disconnected_slow?: number } = {};
    try {
      metrics = await (await fetch(`${base}/metrics`)).text();
      gateway =
        ((await (await fetch(`${base}/api/v1/status`)).json()) as { gateway?: typeof gateway }).gateway ?? {};
    } catch {
      if (k2Ended) break;
    }
    const clients = fleet ? await fleet.report() : null;
    if (!own) break;
    const s: Sample = {
      t: round(t, 1) as number,
      rssMb: round(own.rssMb, 1) as number,
      fds: own.fds,
      workersRssMb: round(
        workers.reduce((a, w) => a + w.rssMb, 0),
        1,
      ) as number,
      workersFds: workers.reduce((a, w) => a + w.fds, 0),
      frames: metricSum(metrics, "k2_frames_received_total"),
      stored: metricSum(metrics, "k2_records_stored_total"),
      deadLetters: metricSum(metrics, "k2_records_rejected_total"),
      backfilled: metricSum(metrics, "k2_backfill_records_total"),
      reconnects: metricSum(metrics, "k2_reconnects_total"),
      lag: metricSum(metrics, "k2_consumer_lag"),
      clientsConnected: clients?.connected ?? 0,
      clientMessages: clients?.messages ?? 0,
      heapMb: round(metricSum(metrics, "k2_process_nodejs_heap_size_used_bytes") / 1048576, 1) as number,
      externalMb: round(metricSum(metrics, "k2_process_nodejs_external_memory_bytes") / 1048576, 1) as number,
      k2CpuPct,
      soakCpuPct,
      gwSent: gateway.messages_sent ?? 0,
      gwConflated: gateway.conflated ?? 0,
      gwSlowDisconnects: gateway.disconnected_slow ?? 0,
    };
    samples.push(s);
    process.stderr.write(
      `soak ${String(Math.round(s.t)).padStart(4)}s  frames ${s.frames}  stored ${s.stored}  dead ${s.deadLetters}  ` +
        `backfilled ${s.backfilled}  reconnects ${s.reconnects}  lag ${s.lag}  rss ${s.rssMb} MiB (heap ${s.heapMb}) ` +
        `(+gw ${s.workersRssMb})  fds ${s.fds} (+gw ${s.workersFds})  clients ${s.clientsConnected}  msgs ${s.clientMessages}  ` +
        `cpu k2 ${s.k2CpuPct}% soak ${s.soakCpuPct}%\n`,
    );
    if (performance.now() - started >= durationMs) break;
  }
  const endedBy = k2Ended ? "replay end" : "duration";

  // 5. stop: clients first (no reconnects), then k2
  const clients = fleet ? await fleet.report(true) : null;
  const stopAt = performance.now();
  if (!k2Ended) k2.child.kill("SIGTERM");
  const killTimer = setTimeout(() => k2?.child.kill("SIGKILL"), 180_000);
  const exitCode = await k2.exited;
  clearTimeout(killTimer);
  const stopMs = Math.round(performance.now() - stopAt);
  const durationS = (stopAt - started) / 1000;
  let summary: Record<string, unknown> | null = null;
  try {
    summary = JSON.parse(k2.stdout().trim().split("\n").at(-1) ?? "");
  } catch {
    summary = k2.stoppedLine();
  }
  if (!summary) {
    process.stderr.write(`soak: k2 exited with ${exitCode} without a summary:\n${k2.tail().join("\n")}\n`);
    process.exit(1);
  }
  const [q] = await query(
    db,
    `SELECT
       (SELECT count(*) FROM trades_v2) AS trades,
       (SELECT count(DISTINCT source_sequence) FROM trades_v2) AS trade_ids,
       (SELECT min(source_sequence) FROM trades_v2) AS first_id,
       (SELECT max(source_sequence) FROM trades_v2) AS last_id,
       (SELECT count(*) FROM trades_v2 WHERE vendor_data->>'source' = 'rest_backfill') AS backfilled,
       (SELECT count(*) FROM quotes_v2) AS quotes,
       (SELECT count(*) FROM dead_letters) AS dead_letters,
       (SELECT count(*) FROM dead_letters WHERE raw LIKE '%"e":"trade"%') AS dead_trades,
       (SELECT count(*) FROM dead_letters WHERE raw LIKE '%@bookTicker"%') AS dead_quotes,
       (SELECT count(*) FROM sequence_gaps WHERE data_type = 'trades') AS trade_gaps,
       (SELECT count(*) FROM sequence_gaps WHERE data_type = 'trades' AND status = 'filled') AS trade_gaps_filled`,
  );
  const n = (v: unknown) => Number(v ?? 0);
  const faults = (summary.faults ?? null) as { lost_by_stream?: Record<string, number> } | null;
  const trades = {
    received: n(summary.trades) + n(q.dead_trades),
    dead_lettered: n(q.dead_trades),
    backfilled: n(q.backfilled),
    stored: n(q.trades),
    identity_ok: false,
    first_id: q.first_id === null ? null : n(q.first_id),
    last_id: q.last_id === null ? null : n(q.last_id),
    distinct_ids: n(q.trade_ids),
    ids_contiguous: false,
    starts_at_first_id: n(q.first_id) === looped.firstTradeId,
    lost_by_faults: faults?.lost_by_stream?.["btcusdt@trade"] ?? 0,
    gaps: n(q.trade_gaps),
    gaps_filled: n(q.trade_gaps_filled),
  };
  trades.identity_ok = trades.stored === trades.received - trades.dead_lettered + trades.backfilled;
  trades.ids_contiguous =
    trades.stored > 0 &&
    trades.distinct_ids === trades.stored &&
    trades.stored === n(q.last_id) - n(q.first_id) + 1 &&
    trades.starts_at_first_id;
  const quotes = {
    received: n(summary.quotes) + n(q.dead_quotes),
    dead_lettered: n(q.dead_quotes),
    backfilled: 0,
    stored: n(q.quotes),
    identity_ok: false,
  };
  quotes.identity_ok = quotes.stored === quotes.received - quotes.dead_lettered + quotes.backfilled;

  const second = samples.filter((s) => s.t >= durationS / 2);
  const minutesOf = (ss: Sample[]) => ss.map((s) => s.t / 60);
  const rss = samples.map((s) => s.rssMb);
  const wrss = samples.map((s) => s.workersRssMb);
  const fds = samples.map((s) => s.fds);
  const report = {
    bench: "soak",
    ended_by: endedBy,
    duration_s: round(durationS, 1),
    minutes: opt.minutes,
    speed: opt.speed,
    faults: opt.faults,
    loops,
    frames_per_loop: looped.framesPerLoop,
    samples: samples.length,
    frames: n(summary.frames),
    frames_per_s: round(n(summary.frames) / durationS, 0),
    trades,
    quotes,
    dead_letters: n(q.dead_letters),
    reconnects: n(summary.reconnects),
    gaps_detected: n(summary.gaps_detected),
    gaps_filled: n(summary.gaps_filled),
    missing: n(summary.missing),
    faults_injected: summary.faults ?? null,
    rss_mb: {
      first: rss[0] ?? null,
      peak: rss.length ? Math.max(...rss) : null,
      last: rss.at(-1) ?? null,
      k2_max_rss_mb: n(summary.max_rss_mb),
      slope_mb_per_min_second_half: round(
        slope(
          minutesOf(second),
          second.map((s) => s.rssMb),
        ),
        3,
      ),
    },
    heap_used_mb: {
      first: samples[0]?.heapMb ?? null,
      peak: samples.length ? Math.max(...samples.map((s) => s.heapMb)) : null,
      last: samples.at(-1)?.heapMb ?? null,
      slope_mb_per_min_second_half: round(
        slope(
          minutesOf(second),
          second.map((s) => s.heapMb),
        ),
        3,
      ),
      external_last: samples.at(-1)?.externalMb ?? null,
    },
    db_file_mb: round(fileMb(db), 1),
    gateway_workers_rss_mb: {
      first: wrss[0] ?? null,
      peak: wrss.length ? Math.max(...wrss) : null,
      last: wrss.at(-1) ?? null,
      slope_mb_per_min_second_half: round(
        slope(
          minutesOf(second),
          second.map((s) => s.workersRssMb),
        ),
        3,
      ),
    },
    fds: {
      first: fds[0] ?? null,
      last: fds.at(-1) ?? null,
      max: fds.length ? Math.max(...fds) : null,
      gateway_workers_first: samples[0]?.workersFds ?? null,
      gateway_workers_last: samples.at(-1)?.workersFds ?? null,
    },
    consumer_lag_max: samples.length ? Math.max(...samples.map((s) => s.lag)) : null,
    cpu_pct_mean: {
      k2_main: round(mean(samples.map((s) => s.k2CpuPct)), 0),
      soak_clients: round(mean(samples.map((s) => s.soakCpuPct)), 0),
    },
    gateway: samples.length
      ? {
          messages_sent: samples.at(-1)?.gwSent,
          conflated: samples.at(-1)?.gwConflated,
          disconnected_slow: samples.at(-1)?.gwSlowDisconnects,
        }
      : null,
    clients: clients && {
      count: opt.clients,
      threads: opt.clientThreads,
      messages: clients.messages,
      trades: clients.trades,
      backfilled_trades: clients.backfilledTrades,
      per_client_min: clients.minMessages,
      per_client_max: clients.maxMessages,
      reconnects: clients.reconnects,
      subscribed: clients.subscribed,
      without_trades: clients.clientsWithoutTrades,
      without_trades_examples: clients.withoutTrades,
      ordering_violations: clients.violations,
      violation_examples: clients.examples,
      close_codes: clients.closeCodes,
    },
    k2_exit_code: exitCode,
    k2_stop_ms: stopMs,
    k2_warnings_logged: k2.warnings(),
    ok: false,
  };
  report.ok =
    trades.identity_ok &&
    quotes.identity_ok &&
    trades.ids_contiguous &&
    (clients?.violations ?? 0) === 0 &&
    (clients === null || trades.stored === 0 || clients.clientsWithoutTrades === 0);
  if (opt.out) writeFileSync(opt.out, `${JSON.stringify({ ...report, series: samples }, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  const row = (k: string, v: unknown) => process.stderr.write(`  ${k.padEnd(40)} ${v}\n`);
  process.stderr.write("\nsoak report\n");
  row("ended by", `${endedBy} after ${report.duration_s} s (${loops} loops prepared)`);
  row("frames received", `${report.frames} (${report.frames_per_s}/s)`);
  row("faults injected", JSON.stringify(report.faults_injected));
  row(
    "reconnects / gaps detected / filled",
    `${report.reconnects} / ${report.gaps_detected} / ${report.gaps_filled}`,
  );
  row(
    "trades received − dead + backfilled",
    `${trades.received} − ${trades.dead_lettered} + ${trades.backfilled} = ${trades.received - trades.dead_lettered + trades.backfilled}`,
  );
  row("trades stored", `${trades.stored}  identity ${trades.identity_ok ? "OK" : "FAILED"}`);
  row(
    "trade ids",
    `${trades.first_id}..${trades.last_id}, ${trades.distinct_ids} distinct, contiguous ${trades.ids_contiguous ? "yes" : "NO"}`,
  );
  row("trades lost by faults / backfilled", `${trades.lost_by_faults} / ${trades.backfilled}`);
  row(
    "quotes received − dead = stored",
    `${quotes.received} − ${quotes.dead_lettered} = ${quotes.received - quotes.dead_lettered} vs ${quotes.stored}  identity ${quotes.identity_ok ? "OK" : "FAILED"}`,
  );
  row("dead letters (all)", report.dead_letters);
  row(
    "k2 RSS MiB first / peak / last",
    `${report.rss_mb.first} / ${report.rss_mb.peak} / ${report.rss_mb.last}  slope ${report.rss_mb.slope_mb_per_min_second_half} MiB/min (2nd half)`,
  );
  row(
    "k2 JS heap used MiB first / peak / last",
    `${report.heap_used_mb.first} / ${report.heap_used_mb.peak} / ${report.heap_used_mb.last}  slope ${report.heap_used_mb.slope_mb_per_min_second_half} MiB/min (2nd half)`,
  );
  row("DuckDB file MiB", report.db_file_mb);
  row(
    "gateway workers RSS MiB first/peak/last",
    `${report.gateway_workers_rss_mb.first} / ${report.gateway_workers_rss_mb.peak} / ${report.gateway_workers_rss_mb.last}  slope ${report.gateway_workers_rss_mb.slope_mb_per_min_second_half} MiB/min`,
  );
  row("k2 fds first / last / max", `${report.fds.first} / ${report.fds.last} / ${report.fds.max}`);
  row("consumer lag max", report.consumer_lag_max);
  row(
    "CPU mean: k2 main / soak clients",
    `${report.cpu_pct_mean.k2_main}% / ${report.cpu_pct_mean.soak_clients}%`,
  );
  if (report.gateway)
    row(
      "gateway sent / conflated / slow closed",
      `${report.gateway.messages_sent} / ${report.gateway.conflated} / ${report.gateway.disconnected_slow} (last sample)`,
    );
  if (report.clients)
    row(
      "clients msgs (min..max per client)",
      `${report.clients.messages} (${report.clients.per_client_min}..${report.clients.per_client_max}), reconnects ${report.clients.reconnects}, ordering violations ${report.clients.ordering_violations}, without trades ${report.clients.without_trades}`,
    );
  if (report.clients?.without_trades)
    row("clients without any trade", JSON.stringify(report.clients.without_trades_examples));
  row("k2 exit / stop time", `${exitCode} / ${stopMs} ms`);
  row("result", report.ok ? "OK" : "FAILED");
  process.exitCode = report.ok ? 0 : 1;
}

if (isMainThread) {
  main().catch((err) => {
    process.stderr.write(`soak failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
} else {
  clientThread(workerData as ClientInit);
}
