/**
 * `k2/client`: a small typed client of K2's WebSocket gateway (`/ws`, protocol in
 * `serve/ws/protocol.ts`) for Node (uses `ws`).
 *
 *   import { K2Client } from "k2/client";
 *   const client = new K2Client({ url: "ws://127.0.0.1:8080/ws", token: process.env.K2_TOKEN });
 *   client.on("trade", (t) => console.log(t.symbol, t.price, t.quantity)); // TradeV2, exact strings
 *   await client.connect();
 *   await client.subscribe("trades", ["BTCUSDT"]);
 *
 * Reconnects with exponential backoff and jitter (0.5 s doubling to 30 s by default) after any drop
 * except a client `close()` or an authentication failure (close code 1008), and then subscribes again
 * to everything subscribed before. Batched deliveries (`batchMs`) are unpacked into one event per
 * record. A connection on which nothing arrived for `silenceTimeoutMs` (the server heartbeats every
 * 30 s) is dropped and reconnected.
 */
import { EventEmitter } from "node:events";
import WebSocket from "ws";
import * as history from "./client-history.js";
import type { LiveBookTop } from "./schema/live-book.js";
import type { QuoteV2, TradeV2 } from "./schema/records.js";
import type { LiveCandle, Tick } from "./serve/ws/feed.js";
import {
  type Channel,
  CLOSE_CODES,
  ClientMessageSchema,
  MAX_SYMBOLS_PER_REQUEST,
  type RequestId,
  type ServerMessage,
} from "./serve/ws/protocol.js";

export * from "./client-history.js";
export type { LiveBookTop } from "./schema/live-book.js";
export type { QuoteV2, TradeV2 } from "./schema/records.js";
export type { LiveCandle, Tick } from "./serve/ws/feed.js";
export type { Channel, ServerMessage } from "./serve/ws/protocol.js";

/** Options of {@link K2Client}. */
export interface K2ClientOptions {
  /** Gateway URL, e.g. `ws://127.0.0.1:8080/ws`. */
  url: string;
  /** API token (when the server sets `K2_API_TOKENS`), sent as `Authorization: Bearer`. */
  token?: string;
  /** First reconnect delay, ms (default 500). */
  backoffInitialMs?: number;
  /** Reconnect delay ceiling, ms (default 30000). */
  backoffMaxMs?: number;
  /** Fraction of each delay taken off at random, 0..1 (default 0.2). */
  jitter?: number;
  /** A request without a reply within this is rejected, ms (default 10000). */
  requestTimeoutMs?: number;
  /** Reconnect when nothing arrived for this long, ms (default 75000; 0 = never). */
  silenceTimeoutMs?: number;
}

/** Connection state of the client. */
export type ClientState = "idle" | "connecting" | "open" | "reconnecting" | "closed" | "unauthorized";

/** Events of {@link K2Client}. */
export interface K2ClientEvents {
  trade: [trade: TradeV2];
  quote: [quote: QuoteV2];
  tick: [tick: Tick];
  candle: [candle: LiveCandle, channel: Channel];
  /** A whole top-N of a kept order book (`book.{N}` channels; each replaces the previous one). */
  book: [book: LiveBookTop, channel: Channel];
  /** Server heartbeat; `ts` µs since epoch. */
  heartbeat: [ts: number];
  /** Each (re)connection, once the gateway has answered (subscriptions are sent again first). */
  open: [];
  /** The connection closed (code and reason as sent by the server, 1006 when dropped). */
  close: [code: number, reason: string];
  /** A reconnect is scheduled after `delayMs`. */
  reconnect: [attempt: number, delayMs: number];
  state: [state: ClientState];
  /** Connection errors, and error replies to requests nobody waits for (resubscriptions). */
  error: [err: Error];
}

/** An `error` reply of the gateway: `field` names the request field at fault. */
export class K2GatewayError extends Error {
  override name = "K2GatewayError";
  constructor(
    message: string,
    readonly field: string | null,
  ) {
    super(message);
  }
}

/** Reply to a subscribe request. */
export type Subscribed = Extract<ServerMessage, { type: "subscribed" }>;
/** Reply to an unsubscribe request. */
export type Unsubscribed = Extract<ServerMessage, { type: "unsubscribed" }>;

interface Pending {
  resolve: (m: ServerMessage) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Wanted {
  symbols: Set<string>;
  batchMs: number | undefined;
}

/** The gateway client (see the module comment). */
export class K2Client extends EventEmitter<K2ClientEvents> {
  private ws: WebSocket | null = null;
  private readonly wanted = new Map<Channel, Wanted>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private silenceTimer: NodeJS.Timeout | null = null;
  private firstOpen: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private _state: ClientState = "idle";
  /** Reconnections so far. */
  reconnects = 0;

  constructor(private readonly opts: K2ClientOptions) {
    super();
  }

  get state(): ClientState {
    return this._state;
  }

  /** Channels and symbols this client is subscribed to (restored after each reconnect). */
  subscriptions(): { channel: Channel; symbols: string[]; batchMs?: number }[] {
    return [...this.wanted].map(([channel, w]) => ({
      channel,
      symbols: [...w.symbols],
      ...(w.batchMs !== undefined ? { batchMs: w.batchMs } : {}),
    }));
  }

  /**
   * Opens the connection; resolves once the gateway has answered on it (so a bad token rejects).
   * Later drops reconnect on their own.
   * @throws {Error} when the first attempt fails with an authentication error (1008)
   */
  connect(): Promise<void> {
    if (this._state !== "idle" && this._state !== "closed") return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.firstOpen = { resolve, reject };
      this.open();
    });
  }

  /**
   * Subscribes to `channel` for `given` symbols (any case, upper-cased as the gateway reads them; `"*"`
   * for all); with `batchMs` the server sends arrays at most every `batchMs` ms (still emitted here one
   * record per event).
   * @throws {K2GatewayError} for an invalid request (checked here first) or an error reply
   */
  async subscribe(channel: Channel, given: string[], opts: { batchMs?: number } = {}): Promise<Subscribed> {
    const symbols = upperSymbols(given);
    const msg = { op: "subscribe" as const, channel, symbols, batch_ms: opts.batchMs };
    this.validate(msg);
    let w = this.wanted.get(channel);
    const added = symbols.filter((s) => !w?.symbols.has(s));
    if (!w) {
      w = { symbols: new Set(), batchMs: undefined };
      this.wanted.set(channel, w);
    }
    for (const s of symbols) w.symbols.add(s);
    const prevBatch = w.batchMs;
    if (opts.batchMs !== undefined) w.batchMs = opts.batchMs;
    try {
      return (await this.request(msg)) as Subscribed;
    } catch (e) {
      if (e instanceof K2GatewayError) {
        for (const s of added) w.symbols.delete(s);
        w.batchMs = prevBatch;
        if (w.symbols.size === 0) this.wanted.delete(channel);
      }
      throw e;
    }
  }

  /** Unsubscribes `given` symbols (any case; `"*"`: everything) from `channel`. */
  async unsubscribe(channel: Channel, given: string[]): Promise<Unsubscribed> {
    const symbols = upperSymbols(given);
    const msg = { op: "unsubscribe" as const, channel, symbols };
    this.validate(msg);
    const w = this.wanted.get(channel);
    if (w) {
      if (symbols.includes("*")) w.symbols.clear();
      for (const s of symbols) w.symbols.delete(s);
      if (w.symbols.size === 0) this.wanted.delete(channel);
    }
    return (await this.request(msg)) as Unsubscribed;
  }

  /**
   * Stored history (REST pages), merged in time order across channels, symbols and venues (ties: venue
   * sequence); see `client-history.ts`.
   * @throws {Error} on an HTTP error
   */
  replay(q: Omit<history.HistoryQuery, "url" | "token">): AsyncGenerator<history.HistoryRecord> {
    return history.replay({ ...q, url: this.opts.url, token: this.opts.token });
  }

  /**
   * History from `from`, then live, on a connection of its own that reconnects with this client's
   * backoff and resumes after the last record yielded (no gap, no duplicate); see `client-history.ts`.
   * @throws {Error} on an error frame (bad request, `K2_REPLAY_MAX_RANGE` exceeded) or close 1008
   */
  stream(q: Omit<history.StreamOptions, "url" | "token">): AsyncGenerator<history.HistoryRecord> {
    return history.stream({
      backoffInitialMs: this.opts.backoffInitialMs,
      backoffMaxMs: this.opts.backoffMaxMs,
      ...q,
      url: this.opts.url,
      token: this.opts.token,
    });
  }

  /** Round trip to the server; resolves with the time taken, ms. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.request({ op: "ping" });
    return performance.now() - t0;
  }

  /** Closes for good (no reconnect); pending requests are rejected. */
  async close(): Promise<void> {
    this.setState("closed");
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.failPending(new Error("client closed"));
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once("close", () => resolve());
        ws.close(1000, "client closed");
        setTimeout(() => {
          ws.terminate();
          resolve();
        }, 1000).unref();
      });
    }
  }

  private validate(msg: object): void {
    const r = ClientMessageSchema.safeParse({ ...msg, id: 0 });
    if (!r.success) {
      const issue = r.error.issues[0];
      const field = issue.path.map(String).join(".") || null;
      throw new K2GatewayError(`${field ?? "message"}: ${issue.message}`, field);
    }
  }

  private request(msg: Record<string, unknown>): Promise<ServerMessage> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      // not connected: the subscription state is kept and sent on (re)connect
      if (msg.op === "subscribe" || msg.op === "unsubscribe") {
        return Promise.resolve(
          msg.op === "subscribe"
            ? ({
                type: "subscribed",
                id: null,
                channel: msg.channel as Channel,
                symbols: [...(this.wanted.get(msg.channel as Channel)?.symbols ?? [])],
                batch_ms: (msg.batch_ms as number | undefined) ?? 0,
              } satisfies Subscribed)
            : ({
                type: "unsubscribed",
                id: null,
                channel: msg.channel as Channel,
                symbols: [...(this.wanted.get(msg.channel as Channel)?.symbols ?? [])],
              } satisfies Unsubscribed),
        );
      }
      return Promise.reject(new Error(`not connected (${this._state})`));
    }
    const id = this.nextId++;
    return new Promise<ServerMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${String(msg.op)} within ${this.opts.requestTimeoutMs ?? 10_000} ms`));
      }, this.opts.requestTimeoutMs ?? 10_000);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  private open(): void {
    this.setState(this.reconnects > 0 || this.attempt > 0 ? "reconnecting" : "connecting");
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    const ws = new WebSocket(this.opts.url, { headers, perMessageDeflate: false });
    this.ws = ws;
    ws.on("open", () => {
      if (this.ws !== ws) return;
      this.touch();
      this.resubscribe(ws);
      // the gateway accepts the upgrade and closes with 1008 on a bad token: the connection counts as
      // open once it has answered a ping
      this.request({ op: "ping" }).then(
        () => {
          if (this.ws !== ws) return;
          this.attempt = 0;
          this.setState("open");
          this.emit("open");
          this.firstOpen?.resolve();
          this.firstOpen = null;
        },
        () => {}, // closed first: the close handler decides
      );
    });
    ws.on("message", (data: WebSocket.RawData) => {
      if (this.ws !== ws) return;
      this.touch();
      let m: ServerMessage;
      try {
        m = JSON.parse(data.toString()) as ServerMessage;
      } catch {
        this.emit("error", new Error("gateway sent invalid JSON"));
        return;
      }
      this.dispatch(m);
    });
    ws.on("ping", () => this.touch());
    ws.on("error", (err) => {
      if (this.listenerCount("error") > 0) this.emit("error", err);
    });
    ws.on("close", (code, reasonBuf) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const reason = reasonBuf.toString();
      this.clearTimers();
      this.failPending(new Error(`connection closed (${code}${reason ? `: ${reason}` : ""})`));
      this.emit("close", code, reason);
      if (this._state === "closed") return;
      if (code === CLOSE_CODES.unauthorized) {
        this.setState("unauthorized");
        const err = new Error(`gateway refused the connection: ${reason || "unauthorized"}`);
        if (this.firstOpen) this.firstOpen.reject(err);
        else if (this.listenerCount("error") > 0) this.emit("error", err);
        this.firstOpen = null;
        return;
      }
      this.scheduleReconnect();
    });
  }

  private resubscribe(ws: WebSocket): void {
    for (const [channel, w] of this.wanted) {
      const symbols = [...w.symbols];
      for (let i = 0; i < symbols.length; i += MAX_SYMBOLS_PER_REQUEST) {
        const id = this.nextId++;
        const msg = {
          op: "subscribe",
          channel,
          symbols: symbols.slice(i, i + MAX_SYMBOLS_PER_REQUEST),
          id,
          ...(w.batchMs !== undefined ? { batch_ms: w.batchMs } : {}),
        };
        const timer = setTimeout(() => this.pending.delete(id), this.opts.requestTimeoutMs ?? 10_000);
        this.pending.set(id, {
          resolve: () => {},
          reject: (e) => {
            if (e instanceof K2GatewayError && this.listenerCount("error") > 0) this.emit("error", e);
          },
          timer,
        });
        ws.send(JSON.stringify(msg));
      }
    }
  }

  private dispatch(m: ServerMessage): void {
    switch (m.type) {
      case "trade":
        this.emit("trade", m.data);
        return;
      case "quote":
        this.emit("quote", m.data);
        return;
      case "tick":
        this.emit("tick", m.data);
        return;
      case "candle":
        this.emit("candle", m.data, m.channel);
        return;
      case "book":
        this.emit("book", m.data, m.channel);
        return;
      case "batch":
        for (const r of m.data as unknown[]) {
          if (m.channel === "trades") this.emit("trade", r as TradeV2);
          else if (m.channel === "quotes") this.emit("quote", r as QuoteV2);
          else if (m.channel === "ticks") this.emit("tick", r as Tick);
          else if (m.channel.startsWith("book.")) this.emit("book", r as LiveBookTop, m.channel);
          else this.emit("candle", r as LiveCandle, m.channel);
        }
        return;
      case "heartbeat":
        this.emit("heartbeat", m.ts);
        return;
      default:
        this.settle(m);
    }
  }

  private settle(m: Extract<ServerMessage, { id: RequestId }>): void {
    if (typeof m.id !== "number") return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.type === "error") p.reject(new K2GatewayError(m.error, m.field));
    else p.resolve(m);
  }

  private scheduleReconnect(): void {
    this.attempt++;
    this.reconnects++;
    const initial = this.opts.backoffInitialMs ?? 500;
    const max = this.opts.backoffMaxMs ?? 30_000;
    const jitter = Math.min(1, Math.max(0, this.opts.jitter ?? 0.2));
    const base = Math.min(max, initial * 2 ** (this.attempt - 1));
    const delay = Math.round(base * (1 - jitter * Math.random()));
    this.setState("reconnecting");
    this.emit("reconnect", this.attempt, delay);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this._state !== "closed") this.open();
    }, delay);
  }

  private touch(): void {
    const ms = this.opts.silenceTimeoutMs ?? 75_000;
    if (ms <= 0) return;
    if (this.silenceTimer) this.silenceTimer.refresh();
    else {
      this.silenceTimer = setTimeout(() => {
        this.silenceTimer = null;
        this.ws?.terminate(); // 'close' follows and schedules the reconnect
      }, ms);
    }
  }

  private clearTimers(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.silenceTimer) clearTimeout(this.silenceTimer);
    this.reconnectTimer = null;
    this.silenceTimer = null;
  }

  private failPending(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  private setState(s: ClientState): void {
    if (this._state === s) return;
    this._state = s;
    this.emit("state", s);
  }
}

/**
 * Symbols as the gateway reads them: any case, upper-cased (`btcusdt` is `BTCUSDT`), so the
 * subscriptions this client restores after a reconnect name what the server subscribed.
 */
function upperSymbols(symbols: string[]): string[] {
  return Array.isArray(symbols) ? symbols.map((s) => (typeof s === "string" ? s.toUpperCase() : s)) : symbols;
}
