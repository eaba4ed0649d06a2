/**
 * One venue WebSocket connection with a state machine, exponential backoff, an outbound rate limit
 * and make-before-break rollover before the venue's maximum connection age.
 *
 * States: DISCONNECTED → CONNECTING → CONNECTED, and ERROR after a failed attempt or a drop, from
 * which the backoff timer leads back to CONNECTING. Backoff starts at `backoffInitialMs` (1 s), doubles
 * per consecutive failure up to `backoffMaxMs` (60 s) and resets once a connection has delivered a frame.
 */
import { EventEmitter } from "node:events";
import WebSocket from "ws";

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

export interface ConnectionOptions {
  /** Full URL to connect to (the venue builds it, e.g. Binance `/stream?streams=...`). */
  url: string;
  /** Text messages sent after each (re)connect, in order, through the rate limiter (subscriptions). */
  onOpenMessages: () => string[];
  /** At most this many messages per second sent to the server (Binance: 5). */
  maxMessagesPerSecond: number;
  /** First reconnect delay, ms (default 1000). */
  backoffInitialMs?: number;
  /** Reconnect delay ceiling, ms (default 60000). */
  backoffMaxMs?: number;
  /**
   * Venue's maximum connection age, ms (Binance: 24 h). A new connection is opened this long minus
   * `rolloverLeadMs` after connecting; the old one closes once the new one delivers its first frame.
   */
  maxConnectionAgeMs?: number;
  /** How long before `maxConnectionAgeMs` the replacement is opened (default 10 min). */
  rolloverLeadMs?: number;
  /** Connection attempt timeout, ms (default 10000). */
  connectTimeoutMs?: number;
}

export interface ConnectionEvents {
  /** A text frame; `receivedAtUs` is stamped on receipt, µs since epoch. */
  frame: [raw: string, receivedAtUs: number];
  state: [state: ConnectionState, reason?: string];
  reconnect: [attempt: number, delayMs: number];
  error: [err: Error];
}

/** Current wall-clock time in µs since epoch, with sub-ms resolution from the monotonic clock. */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
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
  private ws: WebSocket | null = null;
  private retiring: WebSocket | null = null;
  private attempt = 0;
  private stopped = true;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private rolloverTimer: NodeJS.Timeout | null = null;
  private sendQueue: string[] = [];
  private sendTimes: number[] = [];
  private sendTimer: NodeJS.Timeout | null = null;
  private readonly opts: Required<ConnectionOptions>;

  constructor(opts: ConnectionOptions) {
    super();
    this.opts = {
      backoffInitialMs: 1000,
      backoffMaxMs: 60_000,
      maxConnectionAgeMs: 0,
      rolloverLeadMs: 10 * 60_000,
      connectTimeoutMs: 10_000,
      ...opts,
    };
  }

  /** Starts connecting; resolves immediately (progress is reported through `state` events). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
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

  /** Delay before reconnect attempt `n` (1-based): initial × 2^(n−1), capped. */
  backoffDelay(n: number): number {
    return Math.min(this.opts.backoffMaxMs, this.opts.backoffInitialMs * 2 ** Math.max(0, n - 1));
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
    });
    let delivered = false;
    ws.on("open", () => {
      if (ws !== this.ws && !rollover) return;
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
      const receivedAtUs = nowMicros();
      if (!delivered) {
        delivered = true;
        this.attempt = 0; // a connection that delivers data resets the backoff
        if (rollover && ws === this.ws) this.retireOld();
      }
      this.framesReceived++;
      this.emit(
        "frame",
        isBinary ? Buffer.from(data as Buffer).toString("utf8") : data.toString(),
        receivedAtUs,
      );
    });
    ws.on("error", (err) => {
      this.emit("error", err);
    });
    ws.on("close", (code, reasonBuf) => {
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
      const reason = `closed ${code}${reasonBuf.length ? ` ${reasonBuf.toString()}` : ""}`;
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
   * pushes back on the venue. Used by the backlog policy `block`; a socket opened later (reconnect)
   * starts unpaused.
   */
  pause(): void {
    this.ws?.pause();
    this.retiring?.pause();
  }

  /** Reads the venue socket again after {@link pause}. */
  resume(): void {
    this.ws?.resume();
    this.retiring?.resume();
  }
}
