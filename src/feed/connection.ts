/**
 * One venue WebSocket connection with a state machine, exponential backoff, an outbound rate limit
 * and make-before-break rollover before the venue's maximum connection age.
 *
 * States: DISCONNECTED → CONNECTING → CONNECTED, and ERROR after a failed attempt, a drop or a
 * connection judged dead by its liveness watchdog, from which the backoff timer leads back to
 * CONNECTING. Backoff is "full jitter": a delay drawn in [0, min(`backoffMaxMs`, `backoffInitialMs` ·
 * 2^(n−1))] for the n-th consecutive failure (1 s base, 60 s cap); the count resets only once a
 * connection has delivered frames and stayed up for `stableAfterMs` (30 s).
 *
 * Liveness (see `liveness.ts`): any frame or pong proves the connection alive; after `pingIntervalMs`
 * without either a ping is sent, and without a frame or the pong `pongTimeoutMs` later the socket is
 * terminated (state ERROR, reason `silent for 20.0 s: no frames and no pong`) and reconnected. The first
 * frame must arrive within `firstFrameTimeoutMs` of open.
 *
 * Raw bytes: the client does not let `ws` validate UTF-8 (it would close with 1007 and lose the frame);
 * a text or binary frame that is not valid UTF-8 is emitted as `invalidUtf8` with its exact bytes (the
 * pipeline dead-letters it) and the connection is kept. A binary frame that is valid UTF-8 is emitted
 * as a `frame` like a text frame.
 */
import { isUtf8 } from "node:buffer";
import { EventEmitter } from "node:events";
import WebSocket from "ws";
import type { VenueConnectionSpec } from "../venues/venue.js";
import { backoffCeiling, DEFAULT_LIVENESS, fullJitterDelay, SocketWatchdog, seconds } from "./liveness.js";
import { parseRecordedTime } from "./recorded-time.js";

/**
 * The outbound limit is "N messages per second"; the window is a little longer than a second so that
 * network jitter never lets the server see N+1 messages inside one of its seconds.
 */
const RATE_WINDOW_MS = 1100;

export type ConnectionState = "DISCONNECTED" | "CONNECTING" | "CONNECTED" | "ERROR";

/** Numeric code of each state for the `k2_connection_state` gauge. */
export const STATE_CODE: Record<ConnectionState, number> = {
  DISCONNECTED: 0,
  CONNECTING: 1,
  CONNECTED: 2,
  ERROR: 3,
};

/** A venue's connection spec plus the backoff, rollover and liveness settings (defaults below). */
export interface ConnectionOptions extends VenueConnectionSpec {
  /** First reconnect delay, ms (default 1000). */
  backoffInitialMs?: number;
  /** Reconnect delay ceiling, ms (default 60000). */
  backoffMaxMs?: number;
  /** How long before `maxConnectionAgeMs` the replacement is opened (default 10 min). */
  rolloverLeadMs?: number;
  /** Connection attempt timeout, ms (default 10000). */
  connectTimeoutMs?: number;
  /** Ping the venue after this long without a frame or pong, ms (default 10000). */
  pingIntervalMs?: number;
  /** Judge the connection dead this long after an unanswered ping, ms (default 10000). */
  pongTimeoutMs?: number;
  /** The first frame must arrive this long after open, ms (default 10000). */
  firstFrameTimeoutMs?: number;
  /** The backoff count resets once a connection has delivered frames for this long, ms (default 30000). */
  stableAfterMs?: number;
  /** Random source in [0, 1) for the backoff jitter (default Math.random; tests pass a seeded one). */
  random?: () => number;
  /**
   * A replay's recorded clock (default false): a frame announced by a recorded-receive-time ping
   * (`recorded-time.ts`) is stamped with that time instead of the wall clock, and such pings are not
   * answered.
   */
  recordedClock?: boolean;
}

/** The liveness and backoff settings a process may override for every venue connection. */
export type LivenessOverrides = Partial<
  Pick<
    ConnectionOptions,
    | "pingIntervalMs"
    | "pongTimeoutMs"
    | "firstFrameTimeoutMs"
    | "stableAfterMs"
    | "backoffInitialMs"
    | "backoffMaxMs"
    | "random"
  >
>;

/** Why a connection attempt failed, by where it failed. */
export type ConnectFailureCause = "dns" | "refused" | "timeout" | "tls" | "http" | "reset" | "other";

/** A failed connection attempt: its cause and a sentence naming it (host, port, code). */
export interface ConnectFailure {
  cause: ConnectFailureCause;
  /** e.g. `DNS lookup failed for stream.binance.com (getaddrinfo ENOTFOUND)`. */
  message: string;
}

/** Node's TLS and certificate error codes (besides the `ERR_TLS_`/`ERR_SSL_`/`CERT_` prefixes). */
const TLS_CODES = new Set([
  "EPROTO",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "HOSTNAME_MISMATCH",
]);

/**
 * Classifies the error of a WebSocket connection attempt to `url` by its Node error code: DNS lookup,
 * refused, timed out, TLS, reset, else `other` with the error's own message. `ws`' handshake timeout
 * carries no code and is recognised here, the only place that reads an error's text. (An HTTP status
 * on the upgrade is classified where the response arrives, see {@link httpFailure}.)
 */
export function classifyConnectError(err: Error & { code?: string }, url: string): ConnectFailure {
  const { host, port } = hostPortOf(url);
  const code = err.code ?? "";
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_FAIL" || code === "EAI_NONAME") {
    return { cause: "dns", message: `DNS lookup failed for ${host} (getaddrinfo ${code})` };
  }
  if (code === "ECONNREFUSED") {
    return { cause: "refused", message: `connection refused by ${host}:${port} (ECONNREFUSED)` };
  }
  if (code === "ETIMEDOUT" || code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return { cause: "timeout", message: `${host}:${port} unreachable (${code})` };
  }
  if (err.message === "Opening handshake has timed out") {
    return { cause: "timeout", message: `no WebSocket handshake from ${host}:${port} in time` };
  }
  if (TLS_CODES.has(code) || /^(ERR_TLS_|ERR_SSL_|CERT_)/.test(code)) {
    return { cause: "tls", message: `TLS handshake with ${host}:${port} failed (${code}: ${err.message})` };
  }
  if (code === "ECONNRESET" || code === "EPIPE") {
    return { cause: "reset", message: `connection to ${host}:${port} reset (${code})` };
  }
  return { cause: "other", message: `connecting to ${host}:${port}: ${err.message}` };
}

/** The failure of an upgrade answered with an HTTP status instead of 101. */
export function httpFailure(status: number, url: string): ConnectFailure {
  const { host, port } = hostPortOf(url);
  return { cause: "http", message: `${host}:${port} answered the WebSocket upgrade with HTTP ${status}` };
}

/** Host and port of a ws:// or wss:// URL (the scheme's default port when none is given). */
function hostPortOf(url: string): { host: string; port: string } {
  try {
    const u = new URL(url);
    return { host: u.hostname, port: u.port || (u.protocol === "wss:" ? "443" : "80") };
  } catch {
    return { host: url, port: "?" };
  }
}

export interface ConnectionEvents {
  /**
   * A text frame (or a binary frame that is valid UTF-8); `receivedAtUs` is stamped on receipt, µs
   * since epoch, or is the recording's receive time when `recorded` (see `recordedClock`).
   */
  frame: [raw: string, receivedAtUs: number, recorded: boolean];
  /** A text or binary frame that is not valid UTF-8: its exact bytes (the connection is kept). */
  invalidUtf8: [bytes: Buffer, receivedAtUs: number, binary: boolean];
  state: [state: ConnectionState, reason?: string];
  /** A connection attempt failed before it opened (then `state` ERROR with the same sentence as reason). */
  connectFailed: [failure: ConnectFailure];
  reconnect: [attempt: number, delayMs: number];
  error: [err: Error];
}

/**
 * A resilient WebSocket connection to one venue endpoint. Emits `frame` for every text frame,
 * including frames from a rollover connection during the overlap (duplicates are deduplicated
 * downstream by message_id / unique keys).
 */
export class VenueConnection extends EventEmitter<ConnectionEvents> {
  state: ConnectionState = "DISCONNECTED";
  /** Frames received over the lifetime of this object. */
  framesReceived = 0;
  /** Number of reconnects scheduled after a drop or failed attempt. */
  reconnects = 0;
  /** Connections terminated by the liveness watchdog (silent past the deadline). */
  deadConnections = 0;
  /** Wall-clock time of the last frame received, ms since epoch (0: none yet). */
  lastFrameAtMs = 0;
  /** `performance.now()` of the last frame, or of `start()` before any frame. */
  private lastFramePerf = 0;
  /**
   * Why the last connection attempt failed before it opened (DNS, refused, TLS, HTTP status...); null
   * once a connection opens.
   */
  lastFailure: ConnectFailure | null = null;
  /** Why the last connection was judged dead; cleared by the next frame. */
  private deadReason: string | null = null;
  private readonly watchdogs = new Map<WebSocket, SocketWatchdog>();
  private readonly random: () => number;
  private ws: WebSocket | null = null;
  private retiring: WebSocket | null = null;
  private attempt = 0;
  private stopped = true;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private rolloverTimer: NodeJS.Timeout | null = null;
  private sendQueue: string[] = [];
  private sendTimes: number[] = [];
  private sendTimer: NodeJS.Timeout | null = null;
  private readonly opts: Required<Omit<ConnectionOptions, "random">>;

  constructor(opts: ConnectionOptions) {
    super();
    const { random, ...rest } = opts;
    this.opts = {
      backoffInitialMs: 1000,
      backoffMaxMs: 60_000,
      maxConnectionAgeMs: 0,
      rolloverLeadMs: 10 * 60_000,
      connectTimeoutMs: 10_000,
      ...DEFAULT_LIVENESS,
      stableAfterMs: 30_000,
      recordedClock: false,
      ...stripUndefined(rest),
    };
    this.random = random ?? Math.random;
  }

  /** Ms since the last frame (or since `start()` when none arrived yet); 0 when stopped. */
  silentForMs(): number {
    if (this.stopped) return 0;
    return performance.now() - this.lastFramePerf;
  }

  /**
   * The feed's liveness problem as a sentence, or null when healthy: set from the moment a connection
   * is judged dead until the next frame, e.g.
   * `silent for 23.4 s, reconnecting (last connection: silent for 20.0 s: no frames and no pong)`.
   * A quiet connection that answers pings is healthy (the watchdog judges it, not the frame age).
   */
  liveness(): string | null {
    if (this.stopped || !this.deadReason) return null;
    return `silent for ${seconds(this.silentForMs())}, reconnecting (last connection: ${this.deadReason})`;
  }

  /** Starts connecting; resolves immediately (progress is reported through `state` events). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.lastFramePerf = performance.now();
    this.deadReason = null;
    this.open(false);
  }

  /** Closes the connection and cancels every timer. Resolves once the socket is closed. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of [this.reconnectTimer, this.rolloverTimer, this.sendTimer]) if (t) clearTimeout(t);
    this.reconnectTimer = this.rolloverTimer = this.sendTimer = null;
    this.sendQueue = [];
    const sockets = [this.ws, this.retiring].filter((s): s is WebSocket => s !== null);
    this.ws = this.retiring = null;
    for (const w of this.watchdogs.values()) w.stop();
    this.watchdogs.clear();
    await Promise.all(
      sockets.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.readyState === WebSocket.CLOSED) return resolve();
            s.once("close", () => resolve());
            if (s.readyState === WebSocket.CONNECTING) s.terminate();
            else s.close(1000, "client stop");
            setTimeout(() => {
              s.terminate();
              resolve();
            }, 1000).unref();
          }),
      ),
    );
    this.setState("DISCONNECTED", "stopped");
  }

  /** Upper bound of the delay before reconnect attempt `n` (1-based): initial × 2^(n−1), capped, ms. */
  backoffCeiling(n: number): number {
    return backoffCeiling(n, this.opts.backoffInitialMs, this.opts.backoffMaxMs);
  }

  /** Delay before reconnect attempt `n` (1-based), ms: full jitter, uniform in [0, backoffCeiling(n)]. */
  backoffDelay(n: number): number {
    return fullJitterDelay(n, this.opts.backoffInitialMs, this.opts.backoffMaxMs, this.random);
  }

  /** Consecutive failed attempts counted for the backoff (reset after a stable connection). */
  get backoffAttempt(): number {
    return this.attempt;
  }

  /** Queues a text message to the server, sent within the venue's outbound message rate. */
  send(message: string): void {
    this.sendQueue.push(message);
    this.pumpSend();
  }

  private setState(state: ConnectionState, reason?: string): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state, reason);
  }

  private open(rollover: boolean): void {
    if (this.stopped) return;
    if (!rollover) this.setState("CONNECTING");
    const ws = new WebSocket(this.opts.url, {
      handshakeTimeout: this.opts.connectTimeoutMs,
      perMessageDeflate: false,
      // validated below, so that invalid bytes become a dead letter instead of a 1007 close
      skipUTF8Validation: true,
      // on a recorded clock the replay's time pings go unanswered (every other ping is, below)
      autoPong: !this.opts.recordedClock,
    });
    /** The recorded receive time announced for the next frame (recordedClock), -1: none. */
    let recordedUs = -1;
    if (this.opts.recordedClock) {
      ws.on("ping", (data) => {
        const us = parseRecordedTime(data);
        if (us === null) ws.pong(data);
        else recordedUs = us;
      });
    }
    let delivered = false;
    let killReason: string | null = null;
    let failure: ConnectFailure | null = null;
    let opened = false;
    let stableTimer: NodeJS.Timeout | null = null;
    let watchdog: SocketWatchdog | null = null;
    ws.on("open", () => {
      if (ws !== this.ws && !rollover) return;
      opened = true;
      if (!rollover) this.lastFailure = null;
      watchdog = new SocketWatchdog(ws, this.opts, (reason) => {
        killReason = reason;
        this.deadConnections++;
        // a replacement that never answered leaves the old connection in service: not a feed problem
        if (ws === this.ws && !(rollover && !delivered && this.retiring)) this.deadReason = reason;
        ws.terminate();
      });
      this.watchdogs.set(ws, watchdog);
      if (this.paused) {
        ws.pause();
        watchdog.suspend();
      }
      stableTimer = setTimeout(() => {
        // delivered and never judged dead for stableAfterMs: the venue is back, reset the backoff
        if (delivered && killReason === null && ws.readyState === WebSocket.OPEN) this.attempt = 0;
      }, this.opts.stableAfterMs);
      stableTimer.unref();
      for (const m of this.opts.onOpenMessages()) this.sendOn(ws, m);
      if (!rollover) this.setState("CONNECTED");
      if (this.opts.maxConnectionAgeMs > 0) {
        const after = Math.max(1000, this.opts.maxConnectionAgeMs - this.opts.rolloverLeadMs);
        if (this.rolloverTimer) clearTimeout(this.rolloverTimer);
        this.rolloverTimer = setTimeout(() => this.rollover(), after);
        this.rolloverTimer.unref();
      }
    });
    ws.on("message", (data, isBinary) => {
      const perf = performance.now();
      const wallUs = Math.round((performance.timeOrigin + perf) * 1000);
      const recorded = recordedUs >= 0;
      const receivedAtUs = recorded ? recordedUs : wallUs;
      recordedUs = -1;
      watchdog?.activity(perf);
      if (!delivered) {
        delivered = true;
        if (rollover && ws === this.ws) this.retireOld();
      }
      this.lastFramePerf = perf;
      this.lastFrameAtMs = Math.round(wallUs / 1000);
      this.deadReason = null;
      this.framesReceived++;
      const bytes = Buffer.isBuffer(data)
        ? data
        : Array.isArray(data)
          ? Buffer.concat(data)
          : Buffer.from(data as ArrayBuffer);
      if (!isUtf8(bytes)) {
        this.emit("invalidUtf8", bytes, receivedAtUs, isBinary);
        return;
      }
      this.emit("frame", bytes.toString("utf8"), receivedAtUs, recorded);
    });
    ws.on("unexpected-response", (_req, res) => {
      failure ??= httpFailure(res.statusCode ?? 0, this.opts.url);
      res.resume();
      ws.terminate();
    });
    ws.on("error", (err) => {
      // stop() aborting a handshake in progress is not a failure of the venue
      if (this.stopped) return;
      if (!opened) failure ??= classifyConnectError(err, this.opts.url);
      this.emit("error", err);
    });
    ws.on("close", (code, reasonBuf) => {
      if (stableTimer) clearTimeout(stableTimer);
      watchdog?.stop();
      this.watchdogs.delete(ws);
      if (ws === this.retiring) {
        this.retiring = null;
        return;
      }
      if (ws !== this.ws) return;
      if (rollover && !delivered && this.retiring) {
        // the replacement failed before delivering: keep the old connection and try again shortly
        this.ws = this.retiring;
        this.retiring = null;
        if (!this.stopped) {
          this.rolloverTimer = setTimeout(() => this.rollover(), this.backoffDelay(1));
          this.rolloverTimer.unref();
        }
        return;
      }
      this.ws = null;
      this.sendQueue = []; // subscriptions are sent again by onOpenMessages on reconnect
      if (this.stopped) return;
      if (failure && !opened) {
        this.lastFailure = failure;
        this.emit("connectFailed", failure);
      }
      const reason =
        killReason ??
        (failure && !opened
          ? failure.message
          : `closed ${code}${reasonBuf.length ? ` ${reasonBuf.toString()}` : ""}`);
      this.setState("ERROR", reason);
      this.scheduleReconnect();
    });
    if (rollover) {
      this.retiring = this.ws;
    }
    this.ws = ws;
  }

  private rollover(): void {
    if (this.stopped || !this.ws) return;
    this.open(true);
  }

  private retireOld(): void {
    const old = this.retiring;
    if (old && old.readyState === WebSocket.OPEN) old.close(1000, "rollover");
  }

  private scheduleReconnect(): void {
    this.attempt++;
    this.reconnects++;
    const delay = this.backoffDelay(this.attempt);
    this.emit("reconnect", this.attempt, delay);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.open(false);
    }, delay);
  }

  private sendOn(ws: WebSocket, message: string): void {
    this.sendQueue.push(message);
    this.pumpSend(ws);
  }

  /** Sliding window: at most N sends in any {@link RATE_WINDOW_MS}. */
  private pumpSend(target?: WebSocket): void {
    if (this.sendTimer) return;
    const now = Date.now();
    while (this.sendQueue.length > 0) {
      while (this.sendTimes.length > 0 && now - this.sendTimes[0] >= RATE_WINDOW_MS) this.sendTimes.shift();
      if (this.sendTimes.length >= this.opts.maxMessagesPerSecond) {
        const wait = RATE_WINDOW_MS - (now - this.sendTimes[0]) + 1;
        this.sendTimer = setTimeout(() => {
          this.sendTimer = null;
          this.pumpSend(target);
        }, wait);
        return;
      }
      const ws = target && target.readyState === WebSocket.OPEN ? target : this.ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) return; // re-sent by onOpenMessages on reconnect
      ws.send(this.sendQueue.shift()!);
      this.sendTimes.push(now);
    }
  }

  /**
   * Stops reading the venue socket (ws `pause()`): frames wait in the kernel and TCP flow control
   * pushes back on the venue. Used by the backlog policy `block`. While paused the liveness watchdogs
   * are suspended (a paused socket reads neither frames nor pongs: its silence is ours, not the
   * venue's), and a socket opened meanwhile (reconnect, rollover) is paused as soon as it opens.
   */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.ws?.pause();
    this.retiring?.pause();
    for (const w of this.watchdogs.values()) w.suspend();
  }

  /** Reads the venue socket again after {@link pause}; the watchdogs start their deadlines afresh. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.ws?.resume();
    this.retiring?.resume();
    for (const w of this.watchdogs.values()) w.resume();
  }

  /** True between {@link pause} and {@link resume}. */
  private paused = false;
}

/** `o` without its undefined fields (so that `{ x: undefined }` does not override a default). */
function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
