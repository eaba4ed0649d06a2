/**
 * Runs a replay server on a worker thread, so that serving the capture (gunzip, pacing, socket
 * writes: the venue's side of the wire) does not share the event loop with the feed handler it feeds.
 * `k2 run --replay` uses it; the server is still inside the `k2 run` process.
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { emptyFaultCounts, type FaultCounts, snapshotCounts } from "./faults.js";
import { type CaptureFormat, REPLAY_SERVERS } from "./index.js";
import type { ReplayServer, ReplayServerEvents, ReplayServerOptions } from "./replay-server.js";

type FromWorker =
  | { type: "listening"; port: number }
  | { type: "end"; sent: number; dataFrames: number; totalSent: number }
  | { type: "faults"; counts: FaultCounts }
  | { type: "error"; message: string };

/** Handle on a replay server in a worker thread, with the same events as the server itself. */
export class WorkerReplayServer extends EventEmitter<ReplayServerEvents> implements ReplayServer {
  private worker: Worker | null = null;
  private port = 0;
  /** Messages the server has written to sockets (updated at each `end`). */
  totalSent = 0;
  /** What the server injected (updated after each fault), null without faults. */
  private faults: FaultCounts | null = null;

  constructor(
    private readonly format: CaptureFormat,
    private readonly opts: ReplayServerOptions,
  ) {
    super();
  }

  /** True when the compiled worker script exists (running from `dist/`). */
  static available(): boolean {
    return existsSync(fileURLToPath(import.meta.url)) && import.meta.url.endsWith(".js");
  }

  async start(): Promise<number> {
    const worker = new Worker(fileURLToPath(import.meta.url), {
      workerData: { format: this.format, opts: this.opts },
    });
    this.worker = worker;
    this.port = await new Promise<number>((resolve, reject) => {
      worker.on("message", (m: FromWorker) => {
        if (m.type === "listening") resolve(m.port);
        else if (m.type === "end") {
          this.totalSent = m.totalSent;
          this.emit("end", { sent: m.sent, dataFrames: m.dataFrames });
        } else if (m.type === "faults") this.faults = m.counts;
        else if (m.type === "error") reject(new Error(m.message));
      });
      worker.once("error", reject);
    });
    return this.port;
  }

  /** What the server injected so far (as last reported by the worker), null without faults. */
  faultCounts(): FaultCounts | null {
    return this.faults ?? (this.opts.faults ? emptyFaultCounts() : null);
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const { format, opts } = workerData as { format: CaptureFormat; opts: ReplayServerOptions };
  const server = new REPLAY_SERVERS[format](opts);
  server.onFault?.(() => {
    const counts = server.faultCounts();
    if (counts) port.postMessage({ type: "faults", counts: snapshotCounts(counts) });
  });
  server.on("end", (info) => port.postMessage({ type: "end", ...info, totalSent: server.totalSent }));
  server.start().then(
    (p) => port.postMessage({ type: "listening", port: p }),
    (e: Error) => port.postMessage({ type: "error", message: e.message }),
  );
}
