/**
 * The live WebSocket gateway at `/ws` on the Fastify server (protocol: `protocol.ts`). Built on `ws`
 * (github.com/websockets/ws): {@link Gateway.attach} puts it on a Fastify server's `upgrade` event;
 * {@link Gateway.handleUpgrade} takes a socket handed over by another process (`pool.ts` runs gateways
 * in worker processes so fan-out has cores of its own).
 *
 * This file holds the clients' lifecycle (handshake, token check, messages, subscribe/unsubscribe,
 * liveness, close); the hot path is in its parts:
 *   - `groups.ts`: subscription groups (clients with identical subscriptions share one log of frames)
 *     and the subscription index (channel → symbol → groups and clients served on their own);
 *   - `fanout.ts`: one record to its subscribers, serialized and framed once;
 *   - `flush.ts`: the write path, one socket write per client per round, rounds in 2 ms slices;
 *   - `backpressure.ts`: per-client send queues, conflation of quotes/ticks/books, slow clients cut (4000);
 *   - `metrics.ts`: the counters and `k2_ws_*` metrics.
 * A client that does not read its socket cannot read a close frame either: it is terminated
 * `closeGraceMs` after one.
 *
 * Liveness: every `heartbeatMs` each client gets `{"type":"heartbeat","ts":µs}` and a WebSocket ping
 * (a client behind, with frames queued, no ping: its pong would come only once it has read up to it);
 * a client from which nothing (message, ping or pong) arrived for `idleTimeoutMs` is closed with 4001,
 * unless its socket drained meanwhile (it is reading what it was sent, however far behind); a stall of
 * this process (the sweep ran late) does not count against its clients.
 */
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import type { Logger } from "../../ops/logger.js";
import type { Metrics } from "../../ops/metrics.js";
import type { CandleInterval } from "../../schema/candles.js";
import { type LiveBookSource, type LiveBookView, liveBookTop } from "../../schema/live-book.js";
import type { QuoteV2, TradeV2 } from "../../schema/records.js";
import { nowMicros } from "../../schema/time.js";
import { TokenAuth } from "../auth.js";
import type { RecentKind, RecentRecord, RecentWindow } from "../live/recent.js";
import { SendQueues } from "./backpressure.js";
import { type BookFloor, BookReplay } from "./book-replay.js";
import { CandleReplay, RecentCandles } from "./candle-replay.js";
import { type ConnLimits, UpgradeGuard } from "./conn-limit.js";
import { type ReplayMaxRange, type ReplayMaxRecords, replayLimitOf, replayRecordsOf } from "./defaults.js";
import { Fanout } from "./fanout.js";
import type { FeedListener, GatewayFeed, GatewayFeedEvents, LiveCandle, Tick } from "./feed.js";
import { Flusher } from "./flush.js";
import { rawText, textFrame, truncateReason } from "./frames.js";
import { SubscriptionIndex } from "./groups.js";
import {
  bookPageSize,
  HISTORY_PAGE_SIZE,
  HISTORY_SEND_SHARE,
  HISTORY_SLICE_MS,
  HistoryPacer,
} from "./history-queue.js";
import { type InterestTracker, interestKey } from "./interest.js";
import { Client, type ClientSubscription } from "./members.js";
import { type GatewayStats, newGatewayCounts, registerGatewayMetrics } from "./metrics.js";
import {
  bookDepthOf,
  type Channel,
  CLOSE_CODES,
  type ClientMessage,
  parseClientMessage,
  type RequestId,
  type SubscribeRequest,
} from "./protocol.js";
import { Replay, ReplayError, type ReplayHistory } from "./replay.js";

/** Options of {@link Gateway}. */
export interface GatewayOptions {
  feed: GatewayFeed;
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
  /**
   * Where `from` subscriptions read history (the store's typed reads; in a worker process, the parent's
   * over IPC). Without it a `from` subscription is refused (503).
   */
  history?: ReplayHistory;
  /**
   * Told when live records are handed to this gateway's clients, at most every `LIVE_QUIET_MS / 2`
   * (a worker tells its parent, whose history page reads then keep to their share). Optional.
   */
  onLive?: () => void;
  /**
   * True while live clients are served elsewhere on this host (a worker: by another worker): history
   * sends then keep to their share of the loop as when this gateway serves some. Optional.
   */
  liveElsewhere?: () => boolean;
  /** The records received lately, some perhaps not stored yet (served at a replay's switch). */
  recent?: RecentWindow;
  /** How far back a `from` subscription may reach, per token (`K2_REPLAY_MAX_RANGE`; omitted: no limit). */
  replayMaxRange?: ReplayMaxRange;
  /**
   * How many stored records one `from` subscription may be sent, per token (`K2_REPLAY_MAX_RECORDS`;
   * omitted: no limit): beyond, an error frame with code 413 ends the replay.
   */
  replayMaxRecords?: ReplayMaxRecords;
  /**
   * The kept order books, for the `book.{N}` channels (this process's books, or a worker's copy of the
   * parent's); without it `book.{N}` subscriptions are accepted and get nothing.
   */
  books?: LiveBookSource;
  /**
   * Called with the largest N subscribed on a `book.{N}` channel (0: none) each time it changes: a
   * worker process asks its parent to forward the books at that depth.
   */
  onBookDepth?: (depth: number) => void;
  /**
   * In a worker process: its interest (`interest.ts`). Each client's subscriptions and replays hold
   * their keys; a live subscribe is served (client on the stream, `subscribed` replied) once its keys
   * are confirmed by the parent, and the client's later messages wait for it.
   */
  interest?: InterestTracker;
}

/** Most symbols a `from` subscription may name (each has a page in memory while it replays). */
export const MAX_REPLAY_SYMBOLS = 50;

/** Counters of the gateway (also exported to `/metrics`). */
/** The WebSocket gateway; {@link Gateway.attach} puts it on a Fastify server. */
export class Gateway {
  private readonly clients = new Set<Client>();
  private readonly counts = newGatewayCounts();
  private readonly index: SubscriptionIndex;
  private readonly flusher: Flusher;
  private readonly queues: SendQueues;
  private readonly fanout: Fanout;
  /** Slices of history sends between event-loop turns (every replay of this gateway). */
  private readonly pacer = new HistoryPacer(
    HISTORY_SLICE_MS,
    HISTORY_SEND_SHARE,
    () => this.fanout.live.busy() || (this.opts.liveElsewhere?.() ?? false),
  );
  private sweepTimer: NodeJS.Timeout | null = null;
  private lastHeartbeatMs = Date.now();
  /** When the idle sweep last ran (ms since epoch) and its period (ms). */
  private lastSweepMs = Date.now();
  private sweepPeriodMs = 1000;
  private wss: WebSocketServer | null = null;
  private unlisten: (() => void)[] = [];
  private nextId = 1;
  /** The `book.{N}` channels someone is subscribed to, with their N. */
  private bookChannels: { channel: Channel; depth: number }[] = [];
  private bookDepth = 0;
  /** N of each `book.{N}` subscription still replaying history (its books are wanted at that depth). */
  private readonly replayingBooks: number[] = [];
  private readonly heartbeatMs: number;
  private readonly idleTimeoutMs: number;
  private readonly closeGraceMs: number;
  private readonly maxSymbols: number;
  private readonly highWaterBytes: number;
  readonly path: string;
  /** The candles closed lately (a candle replay's switch takes those not stored yet from here). */
  private readonly recentCandles = new RecentCandles();
  private readonly listeners: {
    trade: (t: TradeV2) => void;
    quote: (q: QuoteV2) => void;
    tick: (t: Tick) => void;
    candle: (c: LiveCandle) => void;
  };

  constructor(private readonly opts: GatewayOptions) {
    this.heartbeatMs = opts.heartbeatMs ?? 30_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 90_000;
    this.closeGraceMs = opts.closeGraceMs ?? 5000;
    this.maxSymbols = opts.maxSymbolsPerChannel ?? 1000;
    this.path = opts.path ?? "/ws";
    const highWaterBytes = opts.highWaterBytes ?? 512 * 1024;
    this.highWaterBytes = highWaterBytes;
    // a client leaving its group takes the group's frames it has not had into its own sends
    this.index = new SubscriptionIndex((c, frame, key) => this.queues.send(c, frame, key));
    this.flusher = new Flusher(this.index, this.counts, highWaterBytes);
    this.queues = new SendQueues({
      index: this.index,
      flusher: this.flusher,
      counts: this.counts,
      logger: opts.logger,
      highWaterBytes,
      maxQueue: opts.maxQueue ?? 10_000,
      close: (c, code, reason) => this.closeClient(c, code, reason),
    });
    const fan = new Fanout(this.index, this.flusher, this.queues, this.counts, opts.onLive);
    this.fanout = fan;
    this.listeners = {
      trade: (t) => fan.publish("trades", "trade", t.exchange, t.symbol, t),
      quote: (q) => fan.publish("quotes", "quote", q.exchange, q.symbol, q),
      tick: (t) => fan.publish("ticks", "tick", t.exchange, t.symbol, t),
      candle: (c) => {
        this.recentCandles.push(c);
        fan.publish(`candles.${c.interval}` as Channel, "candle", c.exchange, c.symbol, c);
      },
    };
    if (opts.metrics) registerGatewayMetrics(opts.metrics, () => this.stats());
  }

  /** True while live records were handed to this gateway's clients lately (`LiveActivity`). */
  liveBusy(): boolean {
    return this.fanout.live.busy();
  }

  /** Counters so far. */
  stats(): GatewayStats {
    return {
      workers: 0,
      clients: this.clients.size,
      groups: this.index.groups.size,
      behind: this.queues.size,
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
    const books = this.opts.books;
    if (books) this.unlisten.push(books.onUpdate((v) => this.publishBook(v)));
    const period = Math.max(20, Math.min(this.heartbeatMs, this.idleTimeoutMs / 4));
    this.sweepPeriodMs = period;
    this.lastSweepMs = Date.now();
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
    this.sweepTimer = null;
    this.queues.stop();
    const all = [...this.clients];
    const gone = all.map((c) => new Promise<void>((resolve) => c.ws.once("close", () => resolve())));
    for (const c of all) this.closeClient(c, CLOSE_CODES.goingAway, "server shutting down");
    await Promise.race([Promise.all(gone), new Promise((r) => setTimeout(r, 1000))]);
    for (const c of all) c.ws.terminate();
    this.wss?.close();
  }

  /** A book changed: its top-N to the subscribers of each `book.{N}` channel (one frame per N). */
  private publishBook(v: LiveBookView): void {
    for (const { channel, depth } of this.bookChannels) {
      // a copy sent with fewer levels than N: the parent sends a deeper one once it knows of N
      if (depth > v.exactDepth || !this.fanout.wants(channel, v.symbol)) continue;
      this.fanout.publish(channel, "book", v.exchange, v.symbol, liveBookTop(v, depth));
    }
  }

  /** Recomputes the subscribed `book.{N}` channels after a subscription changed; reports a new max N. */
  private booksChanged(): void {
    const list: { channel: Channel; depth: number }[] = [];
    let max = 0;
    for (const channel of this.index.activeChannels()) {
      const depth = bookDepthOf(channel);
      if (depth === null) continue;
      list.push({ channel, depth });
      if (depth > max) max = depth;
    }
    this.bookChannels = list;
    for (const depth of this.replayingBooks) if (depth > max) max = depth;
    if (max !== this.bookDepth) {
      this.bookDepth = max;
      this.opts.onBookDepth?.(max);
    }
  }

  private accept(ws: WebSocket, req: UpgradeRequest, socket: Socket): void {
    // the gateway writes pre-built frames to the upgraded socket, next to `ws` (see `flush.ts`)
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
    c.token = TokenAuth.tokenOf(req);
    this.clients.add(c);
    socket.on("drain", () => {
      // the kernel took every byte queued after a write it could not take at once: the client is
      // reading (a client that stopped reading fills its buffers, and then no drain comes)
      c.lastSeenMs = Date.now();
      this.queues.drained(c);
      for (const check of c.drainWaiters) check();
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
    if (c.inbox) {
      // a subscribe waits for the worker's interest: what follows it is handled after it
      c.inbox.push(text);
      return;
    }
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
    if (m.from !== undefined) {
      this.subscribeFrom(c, m, m.from, id);
      return;
    }
    if (c.replays.has(m.channel)) {
      this.replyError(c, id, "channel", 409, `${m.channel}: a replay of this channel is in progress`);
      return;
    }
    const interest = this.opts.interest;
    if (!interest) {
      this.addSubscription(c, m, id);
      return;
    }
    // in a worker: served once the parent routes its keys here (`interest.ts`), no record missed after
    const keys = m.symbols.map((s) => interestKey(m.channel, s));
    c.waitKeys = keys;
    this.syncInterest(c);
    c.inbox = [];
    interest.whenReady(keys, () => {
      const inbox = c.inbox ?? [];
      c.inbox = null;
      c.waitKeys = null;
      if (c.closed) return;
      this.addSubscription(c, m, id);
      this.syncInterest(c);
      for (const text of inbox) this.onMessage(c, text);
    });
  }

  /**
   * In a worker: makes the client hold exactly the interest keys of its subscriptions, its waiting
   * subscribe and its replays (releasing the others).
   */
  private syncInterest(c: Client): void {
    const interest = this.opts.interest;
    if (!interest) return;
    const want = new Set<string>();
    if (!c.closed) {
      for (const [channel, sub] of c.subs) {
        if (sub.all) want.add(interestKey(channel, "*"));
        for (const s of sub.symbols) want.add(interestKey(channel, s));
      }
      for (const k of c.waitKeys ?? []) want.add(k);
      for (const keys of c.replayKeys.values()) for (const k of keys) want.add(k);
    }
    const add: string[] = [];
    const remove: string[] = [];
    for (const k of want) if (!c.interest.has(k)) add.push(k);
    for (const k of c.interest) if (!want.has(k)) remove.push(k);
    if (add.length === 0 && remove.length === 0) return;
    for (const k of add) c.interest.add(k);
    for (const k of remove) c.interest.delete(k);
    interest.change(add, remove);
  }

  /**
   * Adds `m`'s symbols to the client's live subscription of its channel and replies `subscribed` (not
   * at a replay's switch: `replay_done` follows instead).
   */
  private addSubscription(
    c: Client,
    m: SubscribeRequest,
    id: RequestId,
    reply = true,
    bookSnapshot = true,
  ): void {
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
    this.index.displace(c);
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
      this.fanout.flushBatch(c, channel);
      sub.batchMs = m.batch_ms;
    }
    this.index.place(c);
    // a replay's switch (goLive): its keys, held since its start, pass to the live subscription
    this.syncInterest(c);
    if (reply)
      this.reply(c, { type: "subscribed", id, channel, symbols: symbolsOf(sub), batch_ms: sub.batchMs });
    if (channel === "ticks" && this.opts.feed.ticks) {
      const wanted = new Set(m.symbols);
      for (const t of this.opts.feed.ticks()) {
        if (wanted.has("*") || wanted.has(t.symbol))
          this.fanout.deliver(c, "ticks", "tick", t.exchange, t.symbol, JSON.stringify(t));
      }
    }
    const depth = bookDepthOf(channel);
    if (depth !== null) {
      this.booksChanged();
      if (!bookSnapshot) return;
      // the snapshot: each kept book's top-N now (a copy too shallow for N: the next update brings it)
      const wanted = new Set(m.symbols);
      for (const v of this.opts.books?.books() ?? []) {
        if ((wanted.has("*") || wanted.has(v.symbol)) && depth <= v.exactDepth)
          this.fanout.deliver(
            c,
            channel,
            "book",
            v.exchange,
            v.symbol,
            JSON.stringify(liveBookTop(v, depth)),
          );
      }
    }
  }

  /**
   * A subscription `from` a point in time: checks it, replies `subscribed`, replays history at the
   * client's pace (`replay.ts`), then adds the live subscription and says `replay_done`.
   */
  private subscribeFrom(c: Client, m: SubscribeRequest, fromUs: number, id: RequestId): void {
    const channel = m.channel;
    if (
      channel !== "trades" &&
      channel !== "quotes" &&
      !channel.startsWith("candles.") &&
      bookDepthOf(channel) === null
    ) {
      this.replyError(
        c,
        id,
        "from",
        400,
        "from: history is served on the trades, quotes, candles.* and book.{N} channels",
      );
      return;
    }
    const history = this.opts.history;
    if (!history) {
      this.replyError(c, id, "from", 503, "from: no history here (this gateway has no store)");
      return;
    }
    const all = m.symbols.includes("*");
    if (!all && m.symbols.length > MAX_REPLAY_SYMBOLS) {
      this.replyError(
        c,
        id,
        "symbols",
        400,
        `symbols: at most ${MAX_REPLAY_SYMBOLS} symbols with from (or "*")`,
      );
      return;
    }
    const limits = this.opts.replayMaxRange;
    const maxRange = limits ? replayLimitOf(limits, c.token) : 0;
    const now = nowMicros();
    if (maxRange > 0 && now - fromUs > maxRange) {
      this.replyError(
        c,
        id,
        "from",
        416,
        `from: at most ${Math.floor(maxRange / 1e6)} s back (K2_REPLAY_MAX_RANGE); asked for ${Math.floor((now - fromUs) / 1e6)} s`,
      );
      return;
    }
    if (c.replays.has(channel)) {
      this.replyError(c, id, "channel", 409, `${channel}: a replay of this channel is in progress`);
      return;
    }
    const recordLimits = this.opts.replayMaxRecords;
    const maxRecords = recordLimits ? replayRecordsOf(recordLimits, c.token) : 0;
    let fromStore = 0;
    /** Counts a record about to be sent from the store; a sentence past the record limit. */
    const admit = () =>
      maxRecords > 0 && ++fromStore > maxRecords
        ? `replay: more than ${maxRecords} stored records (K2_REPLAY_MAX_RECORDS); ${maxRecords} were sent: subscribe again from the last one's time, or from a later point`
        : null;
    const goLive = () => {
      c.replays.delete(channel);
      if (c.closed) return;
      const { from: _from, ...live } = m;
      this.addSubscription(c, live, id, false);
    };
    const bookDepth = bookDepthOf(channel);
    if (bookDepth !== null) {
      this.subscribeBookFrom(c, m, fromUs, id, bookDepth, history, admit);
      return;
    }
    if (channel !== "trades" && channel !== "quotes") {
      this.subscribeCandlesFrom(c, m, fromUs, id, history, goLive, admit);
      return;
    }
    const kind: RecentKind = channel;
    const type = kind === "trades" ? "trade" : "quote";
    const replay = new Replay({
      kind,
      symbols: m.symbols,
      all,
      fromUs,
      history,
      recent: this.opts.recent,
      // one page in memory per symbol (about 250 KB in all); each page is one store query
      pageSize:
        all || m.symbols.length === 1
          ? HISTORY_PAGE_SIZE[kind]
          : Math.max(50, Math.floor((2 * HISTORY_PAGE_SIZE[kind]) / m.symbols.length)),
      listen: (hold) => listen(this.opts.feed, type, hold as (r: RecentRecord<RecentKind>) => void),
      send: (r) =>
        this.queues.send(
          c,
          textFrame(`{"type":"${type}","channel":"${channel}","data":${JSON.stringify(r)}}`),
          null,
        ),
      ready: () => this.ready(c),
      goLive,
      admit,
    });
    this.runReplay(c, m, fromUs, id, replay);
  }

  /**
   * A `candles.{interval}` subscription `from` a point in time (`candle-replay.ts`): named symbols only,
   * the stored closed candles, then those closed lately and the open ones, then live.
   */
  private subscribeCandlesFrom(
    c: Client,
    m: SubscribeRequest,
    fromUs: number,
    id: RequestId,
    history: ReplayHistory,
    goLive: () => void,
    admit: () => string | null,
  ): void {
    const channel = m.channel;
    if (!history.candles) {
      this.replyError(c, id, "from", 503, "from: no candle history here");
      return;
    }
    if (m.symbols.includes("*")) {
      this.replyError(c, id, "symbols", 400, `symbols: ${channel} with from needs named symbols, not "*"`);
      return;
    }
    const candles = history.candles.bind(history);
    const replay = new CandleReplay({
      interval: channel.slice("candles.".length) as CandleInterval,
      symbols: m.symbols,
      fromUs,
      history: { candles },
      recent: this.recentCandles,
      pageSize: HISTORY_PAGE_SIZE.candles,
      admit,
      listen: (hold) => listen(this.opts.feed, "candle", hold),
      send: (candle) =>
        this.queues.send(
          c,
          textFrame(`{"type":"candle","channel":"${channel}","data":${JSON.stringify(candle)}}`),
          null,
        ),
      ready: () => this.ready(c),
      goLive,
    });
    this.runReplay(c, m, fromUs, id, replay);
  }

  /**
   * A `book.{N}` subscription `from` a point in time (`book-replay.ts`): the stored top-N snapshots,
   * then each kept book's current top-N when newer, then live (a book's live frames held back while not
   * newer than the last one sent). While it replays, the books are wanted at depth N (a worker's copies
   * are kept that deep and current).
   */
  private subscribeBookFrom(
    c: Client,
    m: SubscribeRequest,
    fromUs: number,
    id: RequestId,
    depth: number,
    history: ReplayHistory,
    admit: () => string | null,
  ): void {
    const channel = m.channel;
    if (!history.bookSnapshots) {
      this.replyError(c, id, "from", 503, "from: no book history here");
      return;
    }
    const bookSnapshots = history.bookSnapshots.bind(history);
    const replay = new BookReplay({
      depth,
      symbols: m.symbols.filter((s) => s !== "*"),
      all: m.symbols.includes("*"),
      fromUs,
      history: { bookSnapshots },
      books: this.opts.books,
      pageSize: bookPageSize(depth),
      admit,
      send: (top) =>
        this.queues.send(
          c,
          textFrame(`{"type":"book","channel":"${channel}","data":${JSON.stringify(top)}}`),
          null,
        ),
      ready: () => this.ready(c),
      goLive: (floors: Map<string, BookFloor>) => {
        c.replays.delete(channel);
        if (c.closed) return;
        if (floors.size > 0) c.bookFloors.set(channel, floors);
        const { from: _from, ...live } = m;
        this.addSubscription(c, live, id, false, false);
      },
    });
    this.replayingBooks.push(depth);
    this.booksChanged();
    const ended = () => {
      this.replayingBooks.splice(this.replayingBooks.indexOf(depth), 1);
      this.booksChanged();
    };
    this.runReplay(c, m, fromUs, id, {
      run: () =>
        replay.run().finally(() => {
          ended();
        }),
      cancel: () => replay.cancel(),
    });
  }

  /** Replies `subscribed`, runs `replay` and says `replay_done` at its switch (or why it ended early). */
  private runReplay(
    c: Client,
    m: SubscribeRequest,
    fromUs: number,
    id: RequestId,
    replay: { run(): Promise<number | null>; cancel(): void },
  ): void {
    const channel = m.channel;
    c.replays.set(channel, replay);
    // in a worker its keys are held from before the first history request to its end: every page is
    // read after the parent routes its records here (`interest.ts`)
    const keys = m.symbols.map((s) => interestKey(channel, s));
    c.replayKeys.set(channel, keys);
    this.syncInterest(c);
    const release = () => {
      if (c.replayKeys.get(channel) !== keys) return;
      c.replayKeys.delete(channel);
      this.syncInterest(c);
    };
    this.reply(c, {
      type: "subscribed",
      id,
      channel,
      symbols: [...m.symbols].sort(),
      batch_ms: m.batch_ms ?? 0,
      from: fromUs,
    });
    replay.run().then(
      (sent) => {
        release();
        if (sent === null || c.closed) return;
        this.reply(c, { type: "replay_done", event: "replay_done", id, channel, replayed: sent });
      },
      (err: unknown) => {
        release();
        if (c.replays.get(channel) === replay) c.replays.delete(channel);
        if (c.closed) return;
        const e = err instanceof ReplayError ? err : new ReplayError(String(err), 503);
        this.opts.logger.warn({ client: c.id, channel, err: e.message }, "ws replay ended early");
        if (e.code === 0) {
          this.counts.slow++;
          this.closeClient(c, CLOSE_CODES.slowConsumer, `slow consumer: ${e.message}`);
        } else this.replyError(c, id, "from", e.code, e.message);
      },
    );
  }

  /**
   * A replay's pace: resolves once the client has nothing queued and its socket is under the
   * high-water mark ({@link waitDrained}), and history has its turn ({@link HistoryPacer}: slices
   * between event-loop turns, so live records are fanned out first).
   */
  private ready(c: Client): Promise<void> {
    return this.waitDrained(c).then(() => this.pacer.turn());
  }

  /** Resolves once the client has nothing queued and its socket is under the high-water mark. */
  private waitDrained(c: Client): Promise<void> {
    const ok = () =>
      c.closed || (c.queued === 0 && c.ws.bufferedAmount + c.pendingBytes < this.highWaterBytes);
    if (ok()) return Promise.resolve();
    // woken by the socket's drain; the timer covers what drains without one (its queue, a flush)
    return new Promise((resolve) => {
      const check = () => {
        if (!ok()) return false;
        clearInterval(t);
        c.drainWaiters.delete(check);
        resolve();
        return true;
      };
      const t = setInterval(check, 10);
      c.drainWaiters.add(check);
    });
  }

  private replyError(c: Client, id: RequestId, field: string, code: number, error: string): void {
    this.reply(c, { type: "error", id, field, error, code });
  }

  private unsubscribe(c: Client, channel: Channel, symbols: string[], id: RequestId): void {
    const replay = c.replays.get(channel);
    if (replay) {
      replay.cancel();
      c.replays.delete(channel);
    }
    const sub = c.subs.get(channel);
    if (sub) {
      this.index.displace(c);
      for (const s of symbols) {
        if (s === "*") {
          sub.all = false;
          sub.symbols.clear();
        } else sub.symbols.delete(s);
      }
      if (!sub.all && sub.symbols.size === 0) {
        c.subs.delete(channel);
        c.bookFloors.delete(channel);
        this.fanout.flushBatch(c, channel);
      }
      this.index.place(c);
      if (bookDepthOf(channel) !== null) this.booksChanged();
    }
    if (replay || sub) this.syncInterest(c);
    this.reply(c, { type: "unsubscribed", id, channel, symbols: sub ? symbolsOf(sub) : [] });
  }

  private reply(c: Client, message: object): void {
    this.queues.send(c, textFrame(JSON.stringify(message)), null);
  }

  private sweep(): void {
    const now = Date.now();
    // this process stalled (GC, a busy loop, no CPU): what clients sent meanwhile has not been read
    // yet, so the stall does not count against them
    const stalled = now - this.lastSweepMs - 2 * this.sweepPeriodMs;
    this.lastSweepMs = now;
    for (const c of this.clients) {
      if (stalled > 0) c.lastSeenMs += stalled;
      if (!c.closed && this.drained(c)) c.lastSeenMs = now;
      if (!c.closed && now - c.lastSeenMs >= this.idleTimeoutMs) {
        this.counts.idle++;
        this.opts.logger.info({ client: c.id, remote: c.remote }, "ws client closed: idle");
        this.closeClient(c, CLOSE_CODES.idle, `idle: nothing received for ${this.idleTimeoutMs} ms`);
      }
    }
    if (now - this.lastHeartbeatMs >= this.heartbeatMs) {
      this.lastHeartbeatMs = now;
      const frame = textFrame(`{"type":"heartbeat","ts":${nowMicros()}}`);
      for (const g of this.index.groups.values()) this.flusher.groupPush(g, frame, "heartbeat");
      for (const c of this.clients) {
        if (c.closed) continue;
        if (!c.group) this.queues.send(c, frame, "heartbeat");
        if (!c.closed && c.queued === 0) c.ws.ping();
      }
    }
  }

  /**
   * Whether the client read some of what waited for it since the last sweep: its socket then held bytes
   * the kernel had not taken (the client's window was full), and the kernel has taken more since (the
   * client acknowledged and read). A client behind sends nothing and answers pings late, yet is alive.
   */
  private drained(c: Client): boolean {
    const s = c.socket;
    if (!s) return false;
    // bytes of the socket's writes the kernel has not taken yet: a write in progress counts in
    // `writableLength` until it completes, while libuv's queue (`writeQueueSize`) shrinks as it goes
    const unsent = (s as unknown as { _handle?: { writeQueueSize?: number } })._handle?.writeQueueSize ?? 0;
    const waiting = s.writableLength;
    const sent = (s.bytesWritten ?? 0) - waiting;
    const read = c.sweptWaiting > 0 && (sent > c.sweptSent || (c.sweptUnsent > 0 && unsent < c.sweptUnsent));
    c.sweptSent = sent;
    c.sweptWaiting = waiting;
    c.sweptUnsent = unsent;
    return read;
  }

  /**
   * Stops delivering to a client, frees its queue and sends a close frame; terminates it after the grace.
   * Except to a client cut as slow, everything it was due goes out before the close frame, in order: its
   * open batches, what this pass wrote, its send queue and the frames of its group it has not had (at a
   * shutdown, a reader behind by a few hundred messages still gets the end of the stream).
   */
  private closeClient(c: Client, code: number, reason: string): void {
    if (c.closed) return;
    const due: Buffer[] = [];
    if (code !== CLOSE_CODES.slowConsumer) {
      for (const channel of [...c.batches.keys()]) this.fanout.flushBatch(c, channel);
      if (c.closed) return; // the batch made it a slow consumer
      due.push(...c.pending, ...this.queues.take(c));
      const g = c.group;
      if (g) for (let i = c.seq - g.base; i < g.log.length; i++) due.push(g.log[i]);
    }
    c.closed = true;
    this.unindex(c);
    this.queues.drop(c);
    if (due.length > 0 && c.ws.readyState === WebSocket.OPEN) c.socket?.write(Buffer.concat(due));
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
    for (const r of c.replays.values()) r.cancel();
    c.replays.clear();
    this.index.displace(c);
    const hadBooks = [...c.subs.keys()].some((ch) => bookDepthOf(ch) !== null);
    c.subs.clear();
    c.bookFloors.clear();
    if (hadBooks) this.booksChanged();
    for (const b of c.batches.values()) clearTimeout(b.timer);
    c.batches.clear();
    c.waitKeys = null;
    c.inbox = null;
    c.replayKeys.clear();
    this.syncInterest(c);
  }

  private forget(c: Client): void {
    if (!c.closed) {
      c.closed = true;
      this.unindex(c);
    }
    this.queues.drop(c);
    this.clients.delete(c);
    this.opts.logger.debug({ client: c.id }, "ws client gone");
  }
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
function listen<E extends keyof GatewayFeedEvents>(
  feed: GatewayFeed,
  event: E,
  listener: (...args: GatewayFeedEvents[E]) => void,
): () => void {
  const l = listener as FeedListener;
  const r = feed.on(event, l);
  if (typeof r === "function") return r as () => void;
  return () => {
    feed.off?.(event, l);
  };
}

/** The symbols of a subscription as replies list them: `"*"` first when subscribed to all. */
function symbolsOf(sub: ClientSubscription): string[] {
  const list = [...sub.symbols].sort();
  return sub.all ? ["*", ...list] : list;
}
