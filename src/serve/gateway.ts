/**
 * The live WebSocket gateway at `/ws` on the Fastify server (protocol: `gateway-protocol.ts`).
 *
 * Fan-out: each live record is serialized and framed once (server frames are unmasked, so every
 * client gets the same bytes). Clients with identical subscriptions form a group: a record is appended
 * once to the group's log, and flush rounds give each member, in one socket write, everything from its
 * cursor to the log's head. So a burst of N records to C clients in G groups costs N·G appends and at
 * most C writes per round, not N·C. A round runs in slices of at most 2 ms with the event loop turning
 * in between, so records that arrive during a round reach the members not yet written in the same
 * round: with C clients a record waits at most about one round (C socket writes). Nothing awaits a
 * client: a slow client never delays the others. Clients that are behind or use `batch_ms` are served
 * one by one. Built on `ws` (github.com/websockets/ws): {@link Gateway.attach} puts it on a Fastify
 * server's `upgrade` event; {@link Gateway.handleUpgrade} takes a socket handed over by another
 * process (`gateway-pool.ts` runs gateways in worker processes so fan-out has cores of its own).
 *
 * Backpressure, per client:
 *   - while the socket's unflushed bytes (`bufferedAmount`) stay under `highWaterBytes`, messages are
 *     written straight away;
 *   - above it the client is *behind*: messages wait in its own send queue, drained as the socket
 *     drains. While waiting, quotes and ticks are conflated: a newer quote/tick of the same symbol
 *     replaces the queued one (counted in `k2_ws_messages_conflated_total`), whereas trades, candles
 *     and replies keep their order and are never dropped;
 *   - once more than `maxQueue` messages wait, the client is disconnected with close code 4000 and a
 *     reason (`slow consumer: ...`), its queue is freed, and `k2_ws_disconnects_total{reason=
 *     "slow_consumer"}` counts it. A client that does not read its socket cannot read the close frame
 *     either: it is terminated `closeGraceMs` later.
 *
 * Liveness: every `heartbeatMs` each client gets `{"type":"heartbeat","ts":µs}` and a WebSocket ping;
 * a client from which nothing (message, ping or pong) arrived for `idleTimeoutMs` is closed with 4001.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { Counter, Gauge } from "prom-client";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import type { QuoteV2, TradeV2 } from "../schema/records.js";
import { nowMicros } from "../schema/time.js";
import type { TokenAuth } from "./auth.js";
import { type ConnLimits, UpgradeGuard } from "./conn-limit.js";
import {
  type Channel,
  CLOSE_CODES,
  type ClientMessage,
  parseClientMessage,
  type RequestId,
  type SubscribeRequest,
} from "./gateway-protocol.js";
import type { FeedListener, LiveCandle, LiveFeed, LiveFeedEvents, Tick } from "./live-feed.js";

/** Options of {@link Gateway}. */
export interface GatewayOptions {
  feed: LiveFeed;
  /** Where to register the gateway's metrics (omitted in a worker process: the pool reports them). */
  metrics?: Metrics;
  logger: Logger;
  auth: TokenAuth;
  /** Heartbeat period, ms (default 30000). */
  heartbeatMs?: number;
  /** Close a client silent this long, ms (default 90000). */
  idleTimeoutMs?: number;
  /** Most messages waiting for a client that fell behind before it is cut (default 10000). */
  maxQueue?: number;
  /** `bufferedAmount` (bytes) above which a client counts as behind (default 512 KiB). */
  highWaterBytes?: number;
  /** After a close frame, terminate a client that has not completed the close within this, ms (default 5000). */
  closeGraceMs?: number;
  /** Path of the endpoint (default `/ws`). */
  path?: string;
  /** Most symbols a client may hold per channel (default 1000). */
  maxSymbolsPerChannel?: number;
  /**
   * Connection limits enforced by {@link Gateway.attach} (`conn-limit.ts`); omitted in a worker
   * process, where the pool that hands over the sockets enforces them.
   */
  connLimits?: ConnLimits;
}

/** Counters of the gateway (also exported to `/metrics`). */
export interface GatewayStats {
  /** Worker processes serving the clients (0: served in this process). */
  workers: number;
  clients: number;
  /** Groups of clients with identical subscriptions (served together). */
  groups: number;
  /** Clients currently behind (with a non-empty send queue). */
  behind: number;
  messages_sent: number;
  conflated: number;
  disconnected_slow: number;
  disconnected_idle: number;
  rejected_unauthorized: number;
}

/** Counters of a gateway with no clients yet. */
export function emptyGatewayStats(): GatewayStats {
  return {
    workers: 0,
    clients: 0,
    groups: 0,
    behind: 0,
    messages_sent: 0,
    conflated: 0,
    disconnected_slow: 0,
    disconnected_idle: 0,
    rejected_unauthorized: 0,
  };
}

interface QueueItem {
  /** null once conflated away. */
  frame: Buffer | null;
  key: string | null;
}

interface Subscription {
  all: boolean;
  symbols: Set<string>;
  batchMs: number;
}

interface Batch {
  items: string[];
  /** Index in `items` of each symbol's latest entry (conflatable channels). */
  bySymbol: Map<string, number> | null;
  timer: NodeJS.Timeout;
}

/**
 * Clients with identical subscriptions (no batching, not behind). The group's frames form a log; each
 * member has a cursor (`Client.seq`) into it, and a flush round writes to each member, in one socket
 * write, every frame from its cursor to the log's head (see {@link Gateway.flush}).
 */
class Group {
  /** Members in round order (a member knows its index as `slot`). */
  readonly members: Client[] = [];
  /** Frames not yet written to every member; `log[0]` has sequence number `base`. */
  log: Buffer[] = [];
  keys: (string | null)[] = [];
  base = 0;
  /** Index in `members` where the next flush slice goes on. */
  cursor = 0;
  /** In the gateway's list of groups to flush. */
  dirty = false;

  constructor(
    readonly sig: string,
    readonly subs: Map<Channel, Subscription>,
  ) {}

  /** Sequence number of the next frame appended. */
  get head(): number {
    return this.base + this.log.length;
  }
}

/** What the subscription index holds: a group, or a client served on its own. */
type Member = Group | Client;

interface ChannelIndex {
  all: Set<Member>;
  bySymbol: Map<string, Set<Member>>;
}

class Client {
  readonly subs = new Map<Channel, Subscription>();
  readonly batches = new Map<Channel, Batch>();
  queue: (QueueItem | undefined)[] = [];
  head = 0;
  /** Frames waiting (conflated ones excluded). */
  queued = 0;
  readonly latest = new Map<string, QueueItem>();
  lastSeenMs: number;
  conflated = 0;
  closed = false;
  /** Frames written to this client alone in this pass, sent as one socket write after it. */
  pending: Buffer[] = [];
  pendingBytes = 0;
  /** The group it belongs to, or null when served on its own (`indexed`) or not subscribed. */
  group: Group | null = null;
  /** In its group: index in `members`, and sequence number of the next group frame it needs. */
  slot = -1;
  seq = 0;
  indexed = false;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly socket: Socket | null,
    readonly remote: string,
  ) {
    this.lastSeenMs = Date.now();
  }
}

const CONFLATABLE = new Set<Channel>(["quotes", "ticks"]);
/** Longest a flush runs before the event loop gets a turn, ms. */
const FLUSH_SLICE_MS = 2;

/** The WebSocket gateway; {@link Gateway.attach} puts it on a Fastify server. */
export class Gateway {
  private readonly clients = new Set<Client>();
  private readonly index = new Map<Channel, ChannelIndex>();
  private readonly behind = new Set<Client>();
  private readonly flushList: Client[] = [];
  private readonly flushGroups: Group[] = [];
  private flushScheduled = false;
  private readonly groups = new Map<string, Group>();
  private drainTimer: NodeJS.Timeout | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private lastHeartbeatMs = Date.now();
  private wss: WebSocketServer | null = null;
  private unlisten: (() => void)[] = [];
  private nextId = 1;
  private readonly counts = { sent: 0, conflated: 0, slow: 0, idle: 0, unauthorized: 0 };
  private readonly heartbeatMs: number;
  private readonly idleTimeoutMs: number;
  private readonly maxQueue: number;
  private readonly highWater: number;
  private readonly closeGraceMs: number;
  private readonly maxSymbols: number;
  readonly path: string;
  private readonly listeners: {
    trade: (t: TradeV2) => void;
    quote: (q: QuoteV2) => void;
    tick: (t: Tick) => void;
    candle: (c: LiveCandle) => void;
  };

  constructor(private readonly opts: GatewayOptions) {
    this.heartbeatMs = opts.heartbeatMs ?? 30_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 90_000;
    this.maxQueue = opts.maxQueue ?? 10_000;
    this.highWater = opts.highWaterBytes ?? 512 * 1024;
    this.closeGraceMs = opts.closeGraceMs ?? 5000;
    this.maxSymbols = opts.maxSymbolsPerChannel ?? 1000;
    this.path = opts.path ?? "/ws";
    this.listeners = {
      trade: (t) => this.publish("trades", "trade", t.exchange, t.symbol, t),
      quote: (q) => this.publish("quotes", "quote", q.exchange, q.symbol, q),
      tick: (t) => this.publish("ticks", "tick", t.exchange, t.symbol, t),
      candle: (c) => this.publish(`candles.${c.interval}` as Channel, "candle", c.exchange, c.symbol, c),
    };
    if (opts.metrics) registerGatewayMetrics(opts.metrics, () => this.stats());
  }

  /** Counters so far. */
  stats(): GatewayStats {
    return {
      workers: 0,
      clients: this.clients.size,
      groups: this.groups.size,
      behind: this.behind.size,
      messages_sent: this.counts.sent,
      conflated: this.counts.conflated,
      disconnected_slow: this.counts.slow,
      disconnected_idle: this.counts.idle,
      rejected_unauthorized: this.counts.unauthorized,
    };
  }

  /**
   * Serves the gateway on `app`'s HTTP server at {@link path}, starts listening to the feed and the
   * heartbeat, and closes every client when the app closes. Upgrade requests for other paths get 404;
   * with `connLimits`, connections over a limit are closed with 1013 (`conn-limit.ts`).
   */
  attach(app: FastifyInstance): void {
    this.start();
    const limits = this.opts.connLimits;
    const guard = limits ? new UpgradeGuard(limits, this.opts.auth, this.opts.metrics) : null;
    app.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (!isUpgradePath(req, this.path)) {
        refuseUpgrade(socket);
        return;
      }
      if (guard) {
        const release = guard.admit(req, socket, head);
        if (!release) return;
        socket.once("close", release);
      }
      this.handleUpgrade(req, socket, head);
    });
    app.addHook("preClose", async () => {
      await this.close();
      guard?.close();
    });
  }

  /** Starts listening to the feed and the heartbeat/idle sweep (idempotent; `attach` calls it). */
  start(): void {
    if (this.wss) return;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: 64 * 1024,
      perMessageDeflate: false,
      clientTracking: false,
    });
    const f = this.opts.feed;
    const l = this.listeners;
    this.unlisten = [
      listen(f, "trade", l.trade),
      listen(f, "quote", l.quote),
      listen(f, "tick", l.tick),
      listen(f, "candle", l.candle),
    ];
    const period = Math.max(20, Math.min(this.heartbeatMs, this.idleTimeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweep(), period);
    this.sweepTimer.unref();
  }

  /**
   * Completes the WebSocket handshake of an upgrade request for {@link path} on `socket` (with `head`,
   * the bytes read after the request) and serves the client. `req` may be a copy of the request's
   * method, url and headers when the socket was handed over from another process.
   * @throws {Error} when called before {@link start}
   */
  handleUpgrade(req: UpgradeRequest, socket: Socket, head: Buffer): void {
    const wss = this.wss;
    if (!wss) throw new Error("Gateway.handleUpgrade: call start() first");
    wss.handleUpgrade(req as IncomingMessage, socket, head, (ws) => this.accept(ws, req, socket));
  }

  /** Stops listening to the feed, closes every client (1001) and waits briefly for them to go. */
  async close(): Promise<void> {
    for (const off of this.unlisten) off();
    this.unlisten = [];
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.drainTimer) clearInterval(this.drainTimer);
    this.sweepTimer = null;
    this.drainTimer = null;
    const all = [...this.clients];
    const gone = all.map((c) => new Promise<void>((resolve) => c.ws.once("close", () => resolve())));
    for (const c of all) this.closeClient(c, CLOSE_CODES.goingAway, "server shutting down");
    await Promise.race([Promise.all(gone), new Promise((r) => setTimeout(r, 1000))]);
    for (const c of all) c.ws.terminate();
    this.wss?.close();
  }

  private accept(ws: WebSocket, req: UpgradeRequest, socket: Socket): void {
    // the gateway writes pre-built frames to the upgraded socket, next to `ws` (see `write`)
    const remote = `${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}`;
    if (!this.opts.auth.acceptsRequest(req)) {
      this.counts.unauthorized++;
      this.opts.logger.warn({ remote }, "ws client rejected: missing or invalid API token");
      ws.on("error", () => {});
      ws.close(CLOSE_CODES.unauthorized, "unauthorized: missing or invalid API token");
      setTimeout(() => ws.terminate(), this.closeGraceMs).unref();
      return;
    }
    const c = new Client(this.nextId++, ws, socket, remote);
    this.clients.add(c);
    socket.on("drain", () => {
      if (this.behind.has(c)) this.drainClient(c);
    });
    ws.on("message", (data: RawData, isBinary: boolean) => {
      c.lastSeenMs = Date.now();
      if (c.closed) return;
      if (isBinary) {
        this.reply(c, { type: "error", id: null, field: null, error: "expected a JSON text frame" });
        return;
      }
      this.onMessage(c, rawText(data));
    });
    ws.on("pong", () => {
      c.lastSeenMs = Date.now();
    });
    ws.on("ping", () => {
      c.lastSeenMs = Date.now();
    });
    ws.on("error", (err) => this.opts.logger.debug({ client: c.id, err: err.message }, "ws client error"));
    ws.on("close", () => this.forget(c));
    this.opts.logger.debug({ client: c.id, remote }, "ws client connected");
  }

  private onMessage(c: Client, text: string): void {
    const r = parseClientMessage(text);
    if (!r.ok) {
      this.reply(c, { type: "error", id: r.id, field: r.field, error: r.error });
      return;
    }
    const m: ClientMessage = r.message;
    const id: RequestId = m.id ?? null;
    if (m.op === "ping") this.reply(c, { type: "pong", id, ts: nowMicros() });
    else if (m.op === "subscribe") this.subscribe(c, m, id);
    else this.unsubscribe(c, m.channel, m.symbols, id);
  }

  private subscribe(c: Client, m: SubscribeRequest, id: RequestId): void {
    const channel: Channel = m.channel;
    const current = c.subs.get(channel);
    const adding = m.symbols.filter((s) => s !== "*" && !current?.symbols.has(s)).length;
    if ((current?.symbols.size ?? 0) + adding > this.maxSymbols) {
      this.reply(c, {
        type: "error",
        id,
        field: "symbols",
        error: `symbols: at most ${this.maxSymbols} symbols per channel (use "*" for all)`,
      });
      return;
    }
    this.displace(c);
    let sub = current;
    if (!sub) {
      sub = { all: false, symbols: new Set(), batchMs: 0 };
      c.subs.set(channel, sub);
    }
    for (const s of m.symbols) {
      if (s === "*") sub.all = true;
      else sub.symbols.add(s);
    }
    if (m.batch_ms !== undefined && m.batch_ms !== sub.batchMs) {
      this.flushBatch(c, channel);
      sub.batchMs = m.batch_ms;
    }
    this.place(c);
    this.reply(c, { type: "subscribed", id, channel, symbols: symbolsOf(sub), batch_ms: sub.batchMs });
    if (channel === "ticks" && this.opts.feed.ticks) {
      const wanted = new Set(m.symbols);
      for (const t of this.opts.feed.ticks()) {
        if (wanted.has("*") || wanted.has(t.symbol))
          this.deliver(c, "ticks", "tick", t.exchange, t.symbol, JSON.stringify(t));
      }
    }
  }

  private unsubscribe(c: Client, channel: Channel, symbols: string[], id: RequestId): void {
    const sub = c.subs.get(channel);
    if (sub) {
      this.displace(c);
      for (const s of symbols) {
        if (s === "*") {
          sub.all = false;
          sub.symbols.clear();
        } else sub.symbols.delete(s);
      }
      if (!sub.all && sub.symbols.size === 0) {
        c.subs.delete(channel);
        this.flushBatch(c, channel);
      }
      this.place(c);
    }
    this.reply(c, { type: "unsubscribed", id, channel, symbols: sub ? symbolsOf(sub) : [] });
  }

  /**
   * Puts a client where its subscriptions are served from: its group (same subscriptions, no
   * batching, not behind) or, otherwise, the index itself.
   */
  private place(c: Client): void {
    this.displace(c);
    if (c.closed || c.subs.size === 0) return;
    let solo = c.queued > 0;
    for (const sub of c.subs.values()) if (sub.batchMs > 0) solo = true;
    if (solo) {
      this.indexMember(c, c.subs);
      c.indexed = true;
      return;
    }
    const sig = signature(c.subs);
    let g = this.groups.get(sig);
    if (!g) {
      g = new Group(sig, cloneSubs(c.subs));
      this.groups.set(sig, g);
      this.indexMember(g, g.subs);
    }
    c.group = g;
    c.slot = g.members.length;
    c.seq = g.head;
    g.members.push(c);
  }

  /** Takes a client out of its group or the index (frames its group holds for this pass follow it). */
  private displace(c: Client): void {
    const g = c.group;
    if (g) {
      c.group = null;
      const last = g.members.pop() as Client;
      if (last !== c) {
        g.members[c.slot] = last;
        last.slot = c.slot;
      }
      c.slot = -1;
      // the group frames it has not had yet follow it
      if (!c.closed) for (let i = c.seq - g.base; i < g.log.length; i++) this.send(c, g.log[i], g.keys[i]);
      if (g.members.length === 0) {
        this.unindexMember(g, g.subs);
        this.groups.delete(g.sig);
      }
    }
    if (c.indexed) {
      c.indexed = false;
      this.unindexMember(c, c.subs);
    }
  }

  private indexMember(m: Member, subs: Map<Channel, Subscription>): void {
    for (const [channel, sub] of subs) {
      const idx = this.channelIndex(channel);
      if (sub.all) idx.all.add(m);
      for (const s of sub.symbols) {
        let set = idx.bySymbol.get(s);
        if (!set) {
          set = new Set();
          idx.bySymbol.set(s, set);
        }
        set.add(m);
      }
    }
  }

  private unindexMember(m: Member, subs: Map<Channel, Subscription>): void {
    for (const [channel, sub] of subs) {
      const idx = this.index.get(channel);
      if (!idx) continue;
      idx.all.delete(m);
      for (const s of sub.symbols) {
        const set = idx.bySymbol.get(s);
        set?.delete(m);
        if (set?.size === 0) idx.bySymbol.delete(s);
      }
    }
  }

  private channelIndex(channel: Channel): ChannelIndex {
    let idx = this.index.get(channel);
    if (!idx) {
      idx = { all: new Set(), bySymbol: new Map() };
      this.index.set(channel, idx);
    }
    return idx;
  }

  /** Fan-out of one record to the channel's subscribers; synchronous, serializes the record once. */
  private publish(channel: Channel, type: string, exchange: string, symbol: string, record: object): void {
    const idx = this.index.get(channel);
    if (!idx) return;
    const bySymbol = idx.bySymbol.get(symbol);
    if (idx.all.size === 0 && !bySymbol) return;
    const json = JSON.stringify(record);
    let frame: Buffer | null = null;
    const key = CONFLATABLE.has(channel) ? `${channel}|${exchange}|${symbol}` : null;
    const one = (m: Member) => {
      if (m instanceof Group) {
        frame ??= textFrame(`{"type":"${type}","channel":"${channel}","data":${json}}`);
        this.groupPush(m, frame, key);
        return;
      }
      const sub = m.subs.get(channel);
      if (!sub || m.closed) return;
      if (sub.batchMs > 0) {
        this.addToBatch(m, channel, symbol, json, sub.batchMs);
        return;
      }
      frame ??= textFrame(`{"type":"${type}","channel":"${channel}","data":${json}}`);
      this.send(m, frame, key);
    };
    for (const m of idx.all) one(m);
    if (bySymbol) for (const m of bySymbol) if (!idx.all.has(m)) one(m);
  }

  private groupPush(g: Group, frame: Buffer, key: string | null): void {
    g.log.push(frame);
    g.keys.push(key);
    if (!g.dirty) {
      g.dirty = true;
      this.flushGroups.push(g);
    }
    this.scheduleFlush();
  }

  /**
   * Flushes right after the current synchronous pass (`process.nextTick`), or, when a flush ran out of
   * its time slice, after the event loop has had a turn (`setImmediate`): other work (ingest, client
   * messages) runs between slices, and frames that arrive meanwhile join the round in progress.
   */
  private scheduleFlush(afterIo = false): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (afterIo) setImmediate(() => this.flush());
    else process.nextTick(() => this.flush());
  }

  /** One record to one client (used for the tick snapshot on subscribe). */
  private deliver(c: Client, channel: Channel, type: string, exchange: string, symbol: string, json: string) {
    const sub = c.subs.get(channel);
    if (!sub) return;
    if (sub.batchMs > 0) this.addToBatch(c, channel, symbol, json, sub.batchMs);
    else
      this.send(
        c,
        textFrame(`{"type":"${type}","channel":"${channel}","data":${json}}`),
        CONFLATABLE.has(channel) ? `${channel}|${exchange}|${symbol}` : null,
      );
  }

  private addToBatch(c: Client, channel: Channel, symbol: string, json: string, batchMs: number): void {
    let b = c.batches.get(channel);
    if (!b) {
      b = {
        items: [],
        bySymbol: CONFLATABLE.has(channel) ? new Map() : null,
        timer: setTimeout(() => this.flushBatch(c, channel), batchMs),
      };
      c.batches.set(channel, b);
    }
    if (b.bySymbol) {
      const at = b.bySymbol.get(symbol);
      if (at !== undefined && c.queued > 0) {
        // behind: the batch keeps only the latest quote/tick per symbol
        b.items[at] = json;
        c.conflated++;
        this.counts.conflated++;
        return;
      }
      b.bySymbol.set(symbol, b.items.length);
    }
    b.items.push(json);
  }

  private flushBatch(c: Client, channel: Channel): void {
    const b = c.batches.get(channel);
    if (!b) return;
    clearTimeout(b.timer);
    c.batches.delete(channel);
    if (c.closed || b.items.length === 0) return;
    this.send(c, textFrame(`{"type":"batch","channel":"${channel}","data":[${b.items.join(",")}]}`), null);
  }

  private reply(c: Client, message: object): void {
    this.send(c, textFrame(JSON.stringify(message)), null);
  }

  /** Writes a frame now, or queues it (conflating by `key`) when the client is behind. */
  private send(c: Client, frame: Buffer, key: string | null): void {
    if (c.closed) return;
    if (c.queued === 0 && c.ws.bufferedAmount + c.pendingBytes < this.highWater) {
      this.write(c, frame);
      return;
    }
    this.enqueue(c, frame, key);
    if (c.group && !c.closed) this.place(c); // behind: served on its own until it catches up
  }

  private enqueue(c: Client, frame: Buffer, key: string | null): void {
    if (key !== null) {
      const old = c.latest.get(key);
      if (old?.frame) {
        old.frame = null;
        c.queued--;
        c.conflated++;
        this.counts.conflated++;
      }
    }
    const item: QueueItem = { frame, key };
    c.queue.push(item);
    c.queued++;
    if (key !== null) c.latest.set(key, item);
    if (c.queued > this.maxQueue) {
      this.cutSlow(c);
      return;
    }
    if (!this.behind.has(c)) {
      this.behind.add(c);
      if (!this.drainTimer) this.drainTimer = setInterval(() => this.drainAll(), 20);
    }
  }

  /**
   * Adds one complete WebSocket frame to what the client alone gets after this synchronous pass.
   * Writing next to `ws` keeps order because `ws` (without permessage-deflate) writes synchronously
   * and the gateway sends every data frame and reply through here or its group.
   */
  private write(c: Client, frame: Buffer): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    if (c.pending.length === 0) {
      this.flushList.push(c);
      this.scheduleFlush();
    }
    c.pending.push(frame);
    c.pendingBytes += frame.length;
    this.counts.sent++;
  }

  /**
   * After a pass: one socket write per client served on its own (drained queues, replies, batches),
   * then the groups' rounds ({@link flushGroup}) until done or the slice's time is up; what is left
   * goes on after the event loop has turned.
   */
  private flush(): void {
    this.flushScheduled = false;
    const started = performance.now();
    const shared = new Map<Buffer, { frames: Buffer[]; buf: Buffer }[]>();
    const clients = this.flushList.splice(0);
    for (const c of clients) {
      const frames = c.pending;
      c.pending = [];
      c.pendingBytes = 0;
      if (frames.length === 0 || c.closed || !c.socket || c.ws.readyState !== WebSocket.OPEN) continue;
      if (frames.length === 1) {
        c.socket.write(frames[0]);
        continue;
      }
      let candidates = shared.get(frames[0]);
      if (!candidates) {
        candidates = [];
        shared.set(frames[0], candidates);
      }
      let buf: Buffer | null = null;
      for (const cand of candidates) {
        if (sameFrames(cand.frames, frames)) {
          buf = cand.buf;
          break;
        }
      }
      if (!buf) {
        buf = Buffer.concat(frames);
        candidates.push({ frames, buf });
      }
      c.socket.write(buf);
    }
    // groups: round-robin over the members, in slices of at most FLUSH_SLICE_MS
    while (this.flushGroups.length > 0) {
      const g = this.flushGroups[0];
      if (!this.flushGroup(g, started)) break;
      g.dirty = false;
      this.flushGroups.shift();
    }
    if (this.flushList.length > 0 || this.flushGroups.length > 0) this.scheduleFlush(true);
  }

  /**
   * Continues a group's round from its cursor: each member gets every frame from its cursor to the
   * head in one socket write (members at the same cursor share one buffer). Frames appended between
   * slices reach the members not yet written in this round at once, the others in the next round, so a
   * frame waits at most about one round. A member whose socket is over the high-water mark takes its
   * frames into its own queue and leaves the group until it has caught up. Returns true when every
   * member is at the head (the log is then emptied), false when the slice's time ran out.
   */
  private flushGroup(g: Group, started: number): boolean {
    const members = g.members;
    const head = g.head;
    /** Concatenation of log[from..] by `from`, valid while the head does not move (this slice). */
    const tails = new Map<number, Buffer>();
    let clean = 0;
    let writes = 0;
    let i = g.cursor;
    while (clean < members.length) {
      if (i >= members.length) i = 0;
      const c = members[i];
      if (c.seq >= head) {
        clean++;
        i++;
        continue;
      }
      clean = 0;
      if (c.closed || !c.socket || c.ws.readyState !== WebSocket.OPEN) {
        c.seq = head;
        i++;
        continue;
      }
      if (c.ws.bufferedAmount >= this.highWater) {
        // its slot now holds another member: do not advance i
        this.displace(c);
        this.place(c);
        continue;
      }
      const from = c.seq - g.base;
      let buf = from === g.log.length - 1 ? g.log[from] : tails.get(from);
      if (!buf) {
        buf = Buffer.concat(g.log.slice(from));
        tails.set(from, buf);
      }
      c.socket.write(buf);
      this.counts.sent += head - c.seq;
      c.seq = head;
      i++;
      if ((++writes & 7) === 0 && performance.now() - started > FLUSH_SLICE_MS) {
        g.cursor = i;
        this.trimLog(g);
        return false;
      }
    }
    g.cursor = i >= members.length ? 0 : i;
    g.base = head;
    g.log = [];
    g.keys = [];
    return true;
  }

  /** Drops the frames every member of the group has had. */
  private trimLog(g: Group): void {
    if (g.log.length < 256) return;
    let min = g.head;
    for (const c of g.members) if (c.seq < min) min = c.seq;
    const drop = min - g.base;
    if (drop <= 0) return;
    g.log = g.log.slice(drop);
    g.keys = g.keys.slice(drop);
    g.base = min;
  }

  private drainAll(): void {
    for (const c of this.behind) this.drainClient(c);
    if (this.behind.size === 0 && this.drainTimer) {
      clearInterval(this.drainTimer);
      this.drainTimer = null;
    }
  }

  private drainClient(c: Client): void {
    if (c.closed) {
      this.behind.delete(c);
      return;
    }
    const q = c.queue;
    while (c.head < q.length && c.ws.bufferedAmount + c.pendingBytes < this.highWater) {
      const item = q[c.head];
      q[c.head++] = undefined;
      if (!item?.frame) continue;
      if (item.key !== null && c.latest.get(item.key) === item) c.latest.delete(item.key);
      c.queued--;
      this.write(c, item.frame);
    }
    if (c.head >= q.length) {
      c.queue = [];
      c.head = 0;
      c.queued = 0;
      c.latest.clear();
      this.behind.delete(c);
      this.place(c); // caught up: back to its group
    } else if (c.head > 4096 && c.head * 2 > q.length) {
      c.queue = q.slice(c.head);
      c.head = 0;
    }
  }

  private cutSlow(c: Client): void {
    this.counts.slow++;
    const reason = `slow consumer: ${c.queued} messages queued (limit ${this.maxQueue}), ${c.conflated} quotes/ticks conflated`;
    this.opts.logger.warn(
      { client: c.id, remote: c.remote, queued: c.queued, conflated: c.conflated },
      "ws client disconnected: slow consumer",
    );
    this.closeClient(c, CLOSE_CODES.slowConsumer, reason);
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.clients) {
      if (!c.closed && now - c.lastSeenMs >= this.idleTimeoutMs) {
        this.counts.idle++;
        this.opts.logger.info({ client: c.id, remote: c.remote }, "ws client closed: idle");
        this.closeClient(c, CLOSE_CODES.idle, `idle: nothing received for ${this.idleTimeoutMs} ms`);
      }
    }
    if (now - this.lastHeartbeatMs >= this.heartbeatMs) {
      this.lastHeartbeatMs = now;
      const frame = textFrame(`{"type":"heartbeat","ts":${nowMicros()}}`);
      for (const g of this.groups.values()) this.groupPush(g, frame, "heartbeat");
      for (const c of this.clients) {
        if (c.closed) continue;
        if (!c.group) this.send(c, frame, "heartbeat");
        if (!c.closed && c.queued === 0) c.ws.ping();
      }
    }
  }

  /** Stops delivering to a client, frees its queue and sends a close frame; terminates it after the grace. */
  private closeClient(c: Client, code: number, reason: string): void {
    if (c.closed) return;
    c.closed = true;
    this.unindex(c);
    c.queue = [];
    c.head = 0;
    c.queued = 0;
    c.latest.clear();
    this.behind.delete(c);
    // what this pass already wrote goes out before the close frame, except to a client cut as slow
    if (code !== CLOSE_CODES.slowConsumer && c.pending.length > 0 && c.ws.readyState === WebSocket.OPEN) {
      c.socket?.write(Buffer.concat(c.pending));
    }
    c.pending = [];
    c.pendingBytes = 0;
    try {
      c.ws.close(code, truncateReason(reason));
    } catch {
      c.ws.terminate();
    }
    setTimeout(() => c.ws.terminate(), this.closeGraceMs).unref();
  }

  private unindex(c: Client): void {
    this.displace(c);
    c.subs.clear();
    for (const b of c.batches.values()) clearTimeout(b.timer);
    c.batches.clear();
  }

  private forget(c: Client): void {
    if (!c.closed) {
      c.closed = true;
      this.unindex(c);
    }
    this.behind.delete(c);
    this.clients.delete(c);
    this.opts.logger.debug({ client: c.id }, "ws client gone");
  }
}

/**
 * Registers the gateway's metrics on `metrics.registry`: `k2_ws_clients`, `k2_ws_clients_behind`,
 * `k2_ws_messages_sent_total`, `k2_ws_messages_conflated_total` and `k2_ws_disconnects_total{reason}`,
 * read from `stats` at scrape time (which may be async: the worker pool asks its processes).
 */
export function registerGatewayMetrics(
  metrics: Metrics,
  stats: () => GatewayStats | Promise<GatewayStats>,
): void {
  const registers = [metrics.registry];
  // one stats call per scrape, shared by the five metrics
  let pending: Promise<GatewayStats> | null = null;
  const current = () => {
    pending ??= Promise.resolve(stats()).finally(() => {
      setTimeout(() => {
        pending = null;
      }, 10);
    });
    return pending;
  };
  const reported = { sent: 0, conflated: 0, slow: 0, idle: 0, unauthorized: 0 };
  /** Counters only go up: a delta is added when positive (a restarted worker process starts at 0). */
  const add = (c: Counter, key: keyof typeof reported, value: number, label?: string) => {
    const d = value - reported[key];
    if (d > 0) (label ? c.labels(label) : c).inc(d);
    if (d !== 0) reported[key] = value;
  };
  new Gauge({
    name: "k2_ws_clients",
    help: "WebSocket gateway clients connected",
    registers,
    async collect() {
      this.set((await current()).clients);
    },
  });
  new Gauge({
    name: "k2_ws_clients_behind",
    help: "WebSocket clients with messages waiting in their send queue",
    registers,
    async collect() {
      this.set((await current()).behind);
    },
  });
  new Counter({
    name: "k2_ws_messages_sent_total",
    help: "Messages written to WebSocket clients (data, replies, heartbeats; a batch counts once)",
    registers,
    async collect() {
      add(this, "sent", (await current()).messages_sent);
    },
  });
  new Counter({
    name: "k2_ws_messages_conflated_total",
    help: "Quotes/ticks replaced by a newer one of the same symbol while a client was behind",
    registers,
    async collect() {
      add(this, "conflated", (await current()).conflated);
    },
  });
  new Counter({
    name: "k2_ws_disconnects_total",
    help: "WebSocket clients closed by the gateway, by reason (slow_consumer, idle, unauthorized)",
    labelNames: ["reason"],
    registers,
    async collect() {
      const s = await current();
      add(this, "slow", s.disconnected_slow, "slow_consumer");
      add(this, "idle", s.disconnected_idle, "idle");
      add(this, "unauthorized", s.rejected_unauthorized, "unauthorized");
    },
  });
}

/** The part of an HTTP upgrade request the gateway reads. */
export type UpgradeRequest = Pick<IncomingMessage, "method" | "url" | "headers">;

/** Whether an upgrade request is for `path` (query string ignored). */
export function isUpgradePath(req: Pick<IncomingMessage, "url">, path: string): boolean {
  return (req.url ?? "/").split("?", 1)[0] === path;
}

/** Answers an upgrade request for an unknown path with 404 and closes the socket. */
export function refuseUpgrade(socket: Socket): void {
  socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
}

/** Adds a feed listener; returns its removal (from `on`'s return value, else through `off`). */
function listen<E extends keyof LiveFeedEvents>(
  feed: LiveFeed,
  event: E,
  listener: (...args: LiveFeedEvents[E]) => void,
): () => void {
  const l = listener as FeedListener;
  const r = feed.on(event, l);
  if (typeof r === "function") return r as () => void;
  return () => {
    feed.off?.(event, l);
  };
}

/** A final, unmasked text frame (RFC 6455 §5.2) carrying `text`. */
export function textFrame(text: string): Buffer {
  const len = Buffer.byteLength(text);
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + len);
  frame[0] = 0x81; // FIN + opcode 1 (text)
  if (len < 126) frame[1] = len;
  else if (len < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    frame.writeUInt32BE(len >>> 0, 6);
  }
  frame.write(text, head, "utf8");
  return frame;
}

/** Canonical text of a client's subscriptions: equal for clients that get exactly the same frames. */
function signature(subs: Map<Channel, Subscription>): string {
  return [...subs]
    .map(
      ([channel, sub]) =>
        `${channel}|${sub.all ? "*" : ""}|${[...sub.symbols].sort().join(",")}|${sub.batchMs}`,
    )
    .sort()
    .join(";");
}

function cloneSubs(subs: Map<Channel, Subscription>): Map<Channel, Subscription> {
  const copy = new Map<Channel, Subscription>();
  for (const [channel, sub] of subs) copy.set(channel, { ...sub, symbols: new Set(sub.symbols) });
  return copy;
}

function sameFrames(a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function symbolsOf(sub: Subscription): string[] {
  const list = [...sub.symbols].sort();
  return sub.all ? ["*", ...list] : list;
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}

/** Close reasons are limited to 123 bytes (RFC 6455 §5.5). */
function truncateReason(reason: string): string {
  let r = reason;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}
