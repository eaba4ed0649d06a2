/**
 * What `k2 run --replay` needs of a replay server, whatever the capture format: listen on 127.0.0.1,
 * speak the venue's WebSocket protocol, report when a connection has been sent the whole capture.
 */
import { EventEmitter } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { type FaultAction, type FaultCounts, type FaultSpec, FaultState } from "./faults.js";

export type ReplaySpeed = number | "max";

export interface ReplayServerOptions {
  /** Capture file (with `files`, the first of them: the name in logs). */
  file: string;
  /**
   * Consecutive captures played as one session, in order (Binance `<ns> <frame>` captures; e.g.
   * `btcusdt_20240808.gz`, `btcusdt_20240809.gz`); absent: `file` alone.
   */
  files?: readonly string[];
  /** 127.0.0.1 port; 0 picks a free one. */
  port?: number;
  /** Pace multiplier (1 = real time, 10 = ten times faster) or `max`. */
  speed?: ReplaySpeed;
  /** Continue a new connection from where the previous one broke (test mode). */
  resume?: boolean;
  /** With `resume`: the first frame to send (index among the subscribed streams' frames). */
  startAt?: number;
  /** Incoming message limit per second before the connection is closed (Binance: 5). */
  maxIncomingPerSecond?: number;
  /** Faults to inject (`--faults`, see `faults.ts`); implies `resume` (one position shared by connections). */
  faults?: FaultSpec;
  /** REST emulation limits (request weight per window, bans), for servers that answer REST GETs. */
  rest?: RestLimits;
  /**
   * Send each data frame's recorded receive time before it, as a ping (`feed/recorded-time.ts`), for
   * a feed on the recorded clock (default false).
   */
  stampReceiveTimes?: boolean;
}

/** Request-weight limits of a replay server's REST emulation (defaults: Binance spot's). */
export interface RestLimits {
  /** Request weight allowed per window (Binance spot: 6000 per minute). */
  weightPerWindow?: number;
  /** Window length, ms (default 60000; tests shrink it). */
  windowMs?: number;
  /** Requests made while already rate-limited (after a 429 in the window) before a 418 ban (default 3). */
  banAfter?: number;
  /** Length of a 418 ban, ms (default 120000, Binance's first ban). */
  banMs?: number;
  /**
   * The venue's clock, ms since epoch, that places each request in its window (default `Date.now`).
   * A test passes its own to decide which requests share a window whatever the machine's pace; the
   * `Retry-After` a client waits is still real time.
   */
  clock?: () => number;
}

export interface ReplayServerEvents {
  /** A connection reached the end of the capture; `sent` counts every message sent on it. */
  end: [info: { sent: number; dataFrames: number }];
  connection: [path: string];
}

/** A running replay server. */
export interface ReplayServer extends EventEmitter<ReplayServerEvents> {
  /** Listens; resolves with the port. */
  start(): Promise<number>;
  /** `ws://127.0.0.1:<port>` */
  readonly url: string;
  /** Messages written to sockets over all connections (data frames and replies). */
  readonly totalSent: number;
  /** What was injected with `faults`, or null without faults. */
  faultCounts(): FaultCounts | null;
  /** Sets the callback run after each injected fault. */
  onFault?(fn: () => void): void;
  stop(): Promise<void>;
}

/** Most writes in flight on one connection before its pump waits (it resumes below half). */
export const MAX_IN_FLIGHT = 2048;

/**
 * The writes in flight on one connection: a pump stops reading the capture while
 * {@link MAX_IN_FLIGHT} are outstanding, and settles (waits for every one) before a fault or the end.
 */
export class SendWindow {
  /** Writes started and not completed. */
  inFlight = 0;
  private waiter: (() => void) | null = null;

  constructor(private readonly isClosed: () => boolean) {}

  /** A write started. */
  begin(): void {
    this.inFlight++;
  }

  /** A write completed: wakes the waiting pump, once fewer than half the window are left (`always`: at once). */
  done(always = false): void {
    this.inFlight--;
    if (this.waiter && (always || this.inFlight < MAX_IN_FLIGHT / 2)) {
      const w = this.waiter;
      this.waiter = null;
      w();
    }
  }

  /** Null while there is room, else a promise resolving when there is. */
  room(): Promise<void> | null {
    return this.inFlight >= MAX_IN_FLIGHT ? this.woken() : null;
  }

  /** Resolves once every write has completed (or the connection closed). */
  async settle(): Promise<void> {
    while (this.inFlight > 0 && !this.isClosed()) await this.woken();
  }

  private woken(): Promise<void> {
    return new Promise<void>((r) => (this.waiter = r));
  }
}

/**
 * What every in-process replay server shares: a `ws` server on 127.0.0.1, its open connections, the
 * count of messages written. Subclasses load their capture in {@link prepare} and speak their venue's
 * protocol in {@link serve}.
 */
export abstract class LoopbackReplayServer extends EventEmitter<ReplayServerEvents> implements ReplayServer {
  private wss: WebSocketServer | null = null;
  /** Open client connections (a subclass adds each in `serve` and removes it on close). */
  protected readonly sockets = new Set<WebSocket>();
  /** Messages written to sockets over all connections (data frames and replies). */
  totalSent = 0;
  /** Fault injection state shared by the connections (null without `faults`). */
  protected readonly faults: FaultState | null;
  /** Connections in a `stall` fault: they answer no ping. */
  protected readonly stalled = new WeakSet<WebSocket>();
  /** Connections cut by a `drop-every` fault (see {@link cut}): nothing more is written on them. */
  private readonly cutOff = new WeakSet<WebSocket>();

  constructor(protected readonly opts: ReplayServerOptions) {
    super();
    this.faults = opts.faults ? new FaultState(opts.faults) : null;
  }

  /** What was injected, or null without faults. */
  faultCounts(): FaultCounts | null {
    return this.faults?.counts ?? null;
  }

  /** Sets the callback run after each injected fault (the worker thread forwards the counts). */
  onFault(fn: () => void): void {
    if (this.faults) this.faults.onChange = fn;
  }

  /**
   * With faults the server answers pings itself (`autoPong: false`): never with `no-pong`, not while
   * the connection is stalled.
   */
  protected answerPings(ws: WebSocket): void {
    const faults = this.faults;
    if (!faults) return;
    ws.on("ping", (data) => {
      if (this.isCut(ws)) return; // the connection is gone for the client, see cut
      if (faults.answersPings && !this.stalled.has(ws)) ws.pong(data);
      else faults.unansweredPing();
    });
  }

  /**
   * True once `ws` was cut by a `drop-every` fault: its requests and pings get no answer (a write
   * after the FIN would destroy the socket, see {@link cut}).
   */
  protected isCut(ws: WebSocket): boolean {
    return this.cutOff.has(ws);
  }

  /**
   * Cuts the TCP connection under `ws` without a WebSocket close (a `drop-every` fault): the client
   * sees close 1006. A FIN after the data already written rather than a reset, so that every frame the
   * server counted as sent arrives (a reset would also discard the client's unread bytes, which the
   * fault counts could not account for). Nothing is written after the FIN: a write after `end()`
   * (e.g. the answer to a SUBSCRIBE read only now, the max-speed pump having kept the event loop busy)
   * errors the socket and `ws` destroys it; the client's next packet (a ping) then meets a closed
   * socket and draws a reset, which discards the frames still queued for a client that reads slowly
   * (on a loaded machine), though they were counted as sent. For the same reason the socket is kept
   * open (and read) until the client closes it, at most 30 s.
   */
  protected cut(ws: WebSocket): void {
    const socket = (ws as unknown as { _socket?: { end(): void } })._socket;
    if (!socket) {
      ws.terminate();
      return;
    }
    this.cutOff.add(ws);
    socket.end();
    setTimeout(() => ws.terminate(), 30_000).unref();
  }

  /**
   * Position (among the frames a connection is sent) of the next frame to send in resume mode: shared
   * by successive connections, as a live venue's stream is.
   */
  cursor = 0;

  /**
   * Loses frame `index` of the `drop-every=N:lost=M` cut in progress (`loss.frames` still to lose):
   * it is never sent, counted as lost, and the shared position moves past it; after the last one
   * the connection is cut. True when it was cut.
   */
  protected loseFrame(ws: WebSocket, loss: { frames: number }, index: number, stream: string): boolean {
    const faults = this.faults as FaultState;
    faults.lost(stream);
    if (index + 1 > this.cursor) this.cursor = index + 1;
    if (--loss.frames > 0) return false;
    faults.lostDone();
    this.cut(ws);
    return true;
  }

  /**
   * Sends data frame `index` of a connection through its `window`; once written (with `resume`) the
   * shared position moves past it. Null while the window has room, else a promise resolving when it
   * has (the pump awaits it).
   */
  protected sendFrame<T extends string | Buffer>(
    send: (data: T, cb?: (err?: Error) => void) => void,
    data: T,
    index: number,
    window: SendWindow,
    resume: boolean,
  ): Promise<void> | null {
    window.begin();
    send(data, (err) => {
      if (!err && resume && index + 1 > this.cursor) this.cursor = index + 1;
      window.done();
    });
    return window.room();
  }

  /**
   * The end of the capture on one connection: cut it when the end came while frames were being lost
   * (as the fault says), else wait until everything is written (`settle`) and report `end` with the
   * messages sent on it since `sentBefore` (the server's `totalSent` then) and its data frames.
   */
  protected async endOfCapture(
    ws: WebSocket,
    loss: { frames: number },
    settle: () => Promise<void>,
    isClosed: () => boolean,
    sentBefore: number,
    dataFrames: number,
  ): Promise<void> {
    if (loss.frames > 0) {
      (this.faults as FaultState).lostDone();
      this.cut(ws);
      return;
    }
    await settle();
    if (isClosed()) return;
    this.emit("end", { sent: this.totalSent - sentBefore, dataFrames });
  }

  /**
   * Carries out the fault due at data frame `index` of a connection (the caller has settled what it
   * wrote before): a `close` or a cut without loss ends the connection (`"end"`); a drop with loss
   * starts losing at this frame (`"lost"`: not sent; `"end"` when that loss also cut); a stall keeps
   * the socket silent and resolves with its length, ms (the caller's pacing clock moves on by as much).
   */
  protected async applyFault(
    ws: WebSocket,
    fault: NonNullable<FaultAction>,
    loss: { frames: number },
    index: number,
    stream: string,
  ): Promise<"end" | "lost" | number> {
    if (fault.kind === "close") {
      ws.close(fault.code, "fault injection");
      return "end";
    }
    if (fault.kind === "drop") {
      if (fault.lost === 0) {
        this.cut(ws);
        return "end";
      }
      loss.frames = fault.lost;
      return this.loseFrame(ws, loss, index, stream) ? "end" : "lost";
    }
    await this.stall(ws, fault.durationMs);
    return fault.durationMs;
  }

  /** Keeps `ws` silent for `ms` (a `stall` fault); resolves early when it closes. */
  protected async stall(ws: WebSocket, ms: number): Promise<void> {
    this.stalled.add(ws);
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        ws.off("close", done);
        resolve();
      }
      ws.once("close", done);
    });
    this.stalled.delete(ws);
  }

  /** Loads or indexes the capture before listening. */
  protected abstract prepare(): Promise<void>;

  /** Serves one client connection opened at `url` (path and query). */
  protected abstract serve(ws: WebSocket, url: string): void;

  /**
   * Answers a plain HTTP request (not a WebSocket upgrade) on the same port: a subclass emulating the
   * venue's REST API overrides it. Default: 404.
   */
  protected handleHttp(_req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(404, { "content-type": "application/json" }).end('{"error":"not found"}');
  }

  private http: Server | null = null;

  /**
   * Prepares the capture, then listens on 127.0.0.1 (an HTTP server: WebSocket upgrades go to the `ws`
   * server, plain requests to {@link handleHttp}); resolves with the port.
   */
  async start(): Promise<number> {
    await this.prepare();
    const http = createServer((req, res) => this.handleHttp(req, res));
    const wss = new WebSocketServer({
      server: http,
      perMessageDeflate: false,
      autoPong: !this.faults, // with faults, see answerPings
    });
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen(this.opts.port ?? 0, "127.0.0.1", () => {
        http.off("error", reject);
        resolve();
      });
    });
    wss.on("connection", (ws, req) => this.serve(ws, req.url ?? "/"));
    this.wss = wss;
    this.http = http;
    return (http.address() as AddressInfo).port;
  }

  /** http:// base URL of this server's REST emulation (same port as {@link url}). */
  get restUrl(): string {
    return this.url.replace(/^ws:/, "http:");
  }

  /** ws:// base URL of this server. */
  get url(): string {
    if (!this.wss) throw new Error("replay server not started");
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }

  /** Open client connections. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Drops every open connection abruptly (as a network failure would). */
  dropConnections(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  /** Closes every connection and stops listening. */
  async stop(): Promise<void> {
    this.dropConnections();
    const wss = this.wss;
    this.wss = null;
    if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
    const http = this.http;
    this.http = null;
    if (http) {
      http.closeAllConnections(); // REST clients keep connections alive
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  }
}
