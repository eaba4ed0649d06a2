/**
 * The WebSocket gateway in worker processes, so that fan-out has cores of its own and never shares the
 * ingest event loop: with 1,000 clients a record costs 1,000 socket writes (about 10 µs each on a
 * loopback VM, nearly all of it in the kernel), which on the ingest loop took most of its time.
 *
 * `k2 run` / `k2 serve` keep the HTTP server: an upgrade request for `/ws` is not answered here but
 * handed over with its socket (`child.send(message, socket)`: the descriptor moves to the worker, as
 * Node's cluster module moves connections) to one of `workers` processes, round-robin; the worker
 * completes the handshake and serves the client with the same {@link Gateway} as in-process
 * (`worker.ts`). Workers start with the first client, so a process nobody subscribes to pays
 * nothing. Each worker is sent only the records its clients need (its interest, `interest.ts`: keys
 * `(channel, symbol)` it reports as its clients subscribe and leave; the marker line that makes a new
 * subscription gap-free is explained there). Every trade, quote and candle of the live feed is
 * serialized once; the records of one event-loop pass go to each worker that needs them in one pipe
 * write (the same bytes to each worker whose share is the same). Each worker derives the ticks itself,
 * from the parent's ticks sent when it first needs a symbol's. Order books (`book.{N}` channels) are
 * sent to the workers that hold a `book.{N}` key of their symbol, after each change of a book, as the
 * whole top-N at the largest N held by any worker (each line replaces the worker's copy of that book,
 * `live/books.ts`); when that N grows, every kept book is sent at once at the new depth, and a worker
 * that starts needing a book is sent its current top-N (the snapshot the new subscribers wait for). A worker that dies is logged and its
 * clients see their connection close (the `k2/client` reconnects); the next client starts it again. A
 * worker that stops reading stdin (more than {@link MAX_PIPE_BACKLOG} bytes queued) is killed.
 *
 * Counters (`/api/v1/status`, `/metrics`) are the sums over the workers, asked at read time.
 *
 * Connection limits (`conn-limit.ts`) are counted and enforced here, before a socket is handed over:
 * each handed-over connection has an id, and the worker reports `gone` with it when the socket
 * closes (a worker that exits releases all of its connections).
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "../../ops/logger.js";
import type { Metrics } from "../../ops/metrics.js";
import { packageRoot } from "../../paths.js";
import { type LiveBookSource, type LiveBookView, liveBookTop } from "../../schema/live-book.js";
import type { TextPage } from "../../store/page.js";
import { TokenAuth } from "../auth.js";
import type { LiveFeed } from "../live/feed.js";
import { RecentCandles, withRecentClosed } from "./candle-replay.js";
import type { GatewayConfig } from "./config.js";
import { UpgradeGuard } from "./conn-limit.js";
import { isUpgradePath, refuseUpgrade } from "./gateway.js";
import { busyPage, HISTORY_LOOP_SHARE, HistoryQueue, LiveActivity } from "./history-queue.js";
import { type InterestUpdate, WorkerRoutes } from "./interest.js";
import { emptyGatewayStats, type GatewayStats, registerGatewayMetrics } from "./metrics.js";
import type { ReplayHistory } from "./replay.js";
import type { FromWorker, HistoryPage, ToWorker } from "./worker.js";

/** Bytes of records queued for a worker's stdin beyond which the worker counts as stuck. */
const MAX_PIPE_BACKLOG = 256 * 1024 * 1024;

/** Options of {@link GatewayPool}. */
export interface GatewayPoolOptions {
  /** The serving layer's live feed (trades, quotes, candles and its tick book). */
  feed: LiveFeed;
  config: GatewayConfig;
  metrics: Metrics;
  logger: Logger;
  /** Worker processes (at least 1). */
  workers: number;
  /** Path of the endpoint (default `/ws`). */
  path?: string;
  /**
   * History for the workers' `from` subscriptions: a worker asks for each page over IPC and this
   * process reads it (a DuckDB file has one writer, this process; see `worker.ts`).
   */
  history?: ReplayHistory;
  /** The kept order books, forwarded to the workers for their `book.{N}` channels. */
  books?: LiveBookSource;
}

interface Slot {
  index: number;
  child: ChildProcess;
  /** Last counters it reported (kept when it exits, so totals do not go back). */
  last: GatewayStats;
  exited: Promise<void>;
  alive: boolean;
  /** Its death was handled ({@link GatewayPool.died}). */
  dead: boolean;
  /** Resolves true once the worker said hello and was sent its settings, false if it exited first. */
  ready: Promise<boolean>;
  isReady: boolean;
  /** Largest N of its `book.{N}` subscriptions (0: none). */
  bookDepth: number;
  /** What it needs (`interest.ts`). */
  routes: WorkerRoutes;
  /** Its record lines of this event-loop pass, written in one go by {@link GatewayPool.flush}. */
  out: string[];
}

/** The compiled worker script, or null when K2 runs from sources that were never built. */
export function gatewayWorkerScript(): string | null {
  const script = join(packageRoot(), "dist", "src", "serve", "ws", "worker.js");
  return existsSync(script) ? script : null;
}

/** Serves `/ws` from worker processes; see the module comment. */
/** How long a worker has to take a handed-over socket before it is closed, ms. */
const HAND_OFF_TIMEOUT_MS = 10_000;

export class GatewayPool {
  private readonly slots: (Slot | null)[];
  private next = 0;
  private flushScheduled = false;
  private unlisten: (() => void)[] = [];
  /** Counters of workers that exited (cumulative ones only). */
  private readonly retired = emptyGatewayStats();
  private statsId = 0;
  private readonly statsWaiters = new Map<number, (s: GatewayStats) => void>();
  private closing = false;
  /** Depth at which books are forwarded (the largest N any live worker has a subscriber for; 0: none). */
  private bookDepth = 0;
  /** Connection limits, counted in this process. */
  readonly guard: UpgradeGuard;
  /** Connections handed over (or being handed over), by id: their worker and their count's release. */
  private readonly conns = new Map<
    number,
    {
      slot: Slot | null;
      release: () => void;
      handOff: NodeJS.Timeout | null;
      /** This process's copy of the socket until the worker says it took it. */
      socket: Socket | null;
    }
  >();
  private nextConn = 0;
  /** A worker served live clients lately (`live` messages): history waits out its share only then. */
  private readonly live = new LiveActivity();
  /** The candles closed lately, for the last page of a worker's candle replay (`withRecentClosed`). */
  private readonly recentCandles = new RecentCandles();
  /**
   * The workers' history page reads, one at a time, within a share of this event loop while live
   * records are being written to the workers.
   */
  private readonly pages = new HistoryQueue(HISTORY_LOOP_SHARE, () => this.live.busy());
  readonly path: string;

  /** @throws {Error} when the worker script is missing (build with `npm run build`) or `workers` < 1 */
  constructor(
    private readonly opts: GatewayPoolOptions,
    private readonly script: string | null = gatewayWorkerScript(),
  ) {
    if (!script) throw new Error("gateway worker script missing: run `npm run build`");
    if (opts.workers < 1) throw new Error("GatewayPool: workers must be at least 1");
    this.slots = Array.from({ length: opts.workers }, () => null);
    this.path = opts.path ?? "/ws";
    const c = opts.config;
    this.guard = new UpgradeGuard(
      { perIp: c.maxConnPerIp, perToken: c.maxConnPerToken, limitLoopback: c.limitLoopback },
      new TokenAuth(c.apiTokens),
      opts.metrics,
    );
  }

  /** Takes `/ws` upgrades of `app`'s server, forwards the live feed, registers metrics and shutdown. */
  attach(app: FastifyInstance): void {
    app.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (!isUpgradePath(req, this.path)) {
        refuseUpgrade(socket);
        return;
      }
      if (this.closing) {
        socket.destroy();
        return;
      }
      const release = this.guard.admit(req, socket, head);
      if (release) this.handOver(req, socket, head, release);
    });
    const f = this.opts.feed;
    this.unlisten = [
      f.on("trade", (t) => this.push("T", t)),
      f.on("quote", (q) => this.push("Q", q)),
      f.on("candle", (c) => {
        this.recentCandles.push(c);
        this.push("C", c);
      }),
    ];
    const books = this.opts.books;
    if (books) this.unlisten.push(books.onUpdate((v) => this.pushBook(v)));
    registerGatewayMetrics(this.opts.metrics, () => this.stats());
    app.addHook("preClose", async () => {
      await this.closeClients();
      // Node's net.Server.close() would then ask each process that received sockets whether they are
      // all closed, and wait for the answer: forever when every such process has exited (nobody is
      // left to ask), or when a socket there is still half-way through its handshake. The workers
      // have closed their clients (or were given 3 s), so the server closes on its own connections.
      const server = app.server as unknown as { _usingWorkers?: boolean };
      if (server._usingWorkers) server._usingWorkers = false;
    });
    app.addHook("onClose", async () => {
      await this.close();
      this.guard.close();
    });
  }

  /** Open `/ws` connections counted against the limits (handed over and not yet reported gone). */
  get openConnections(): number {
    return this.conns.size;
  }

  /**
   * Sums of the workers' counters, asked now; a worker that does not answer within 1 s counts with its
   * latest answer (one that arrived after its own 1 s wait included).
   */
  async stats(): Promise<GatewayStats> {
    const alive = this.slots.filter((s): s is Slot => s?.alive === true);
    const fresh = await Promise.all(alive.map((s) => this.ask(s)));
    // cumulative counters include exited workers; gauges (clients, groups, behind) only live ones
    const sum: GatewayStats = { ...this.retired, workers: alive.length, clients: 0, groups: 0, behind: 0 };
    for (const s of fresh) {
      for (const k of Object.keys(sum) as (keyof GatewayStats)[]) if (k !== "workers") sum[k] += s[k];
    }
    return sum;
  }

  /**
   * Stops forwarding and taking clients; every worker, once it has read every record sent before (the
   * end line `E` follows them on its stdin), closes its clients (1001 after what each was due,
   * terminated after 1 s) and answers, or 3 s pass. The workers stay up: the HTTP server's close asks them whether their
   * sockets are closed. Called before the HTTP server closes.
   */
  async closeClients(): Promise<void> {
    this.closing = true;
    for (const off of this.unlisten) off();
    this.unlisten = [];
    // the records of this pass go out first: the end line follows them on the same pipe
    this.flush();
    const alive = this.slots.filter((s): s is Slot => s?.alive === true);
    await Promise.all(
      alive.map(
        (s) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(done, 3000);
            function done() {
              clearTimeout(timer);
              s.child.off("message", onMessage);
              resolve();
            }
            const onMessage = (m: FromWorker) => {
              if (m.t === "closed") done();
            };
            s.child.on("message", onMessage);
            s.exited.then(done);
            s.ready.then((ready) => {
              if (!ready || !endRecords(s.child)) done();
            });
          }),
      ),
    );
  }

  /** {@link closeClients}, then lets every worker exit (3 s, then SIGKILL) and waits for it. */
  async close(): Promise<void> {
    if (!this.closing) await this.closeClients();
    this.pages.close();
    const alive = this.slots.filter((s): s is Slot => s?.alive === true);
    await Promise.all(
      alive.map(async (s) => {
        if (s.child.connected) s.child.disconnect();
        const timer = setTimeout(() => s.child.kill("SIGKILL"), 3000);
        await s.exited;
        clearTimeout(timer);
      }),
    );
  }

  /** Hands `socket` to the next worker; `release` frees its connection count once it is gone. */
  private handOver(req: IncomingMessage, socket: Socket, head: Buffer, release: () => void): void {
    const i = this.next;
    this.next = (this.next + 1) % this.slots.length;
    const slot = this.slots[i]?.alive ? (this.slots[i] as Slot) : this.spawn(i);
    const cid = ++this.nextConn;
    // a socket handed to a worker that died before taking it (killed, not yet reaped) would never
    // be answered: past the deadline it is closed and its place released
    const handOff = setTimeout(() => {
      if (!this.conns.has(cid)) return;
      this.opts.logger.warn({ worker: i }, "ws client not taken by its worker within 10 s; closed");
      socket.destroy();
      this.gone(cid);
    }, HAND_OFF_TIMEOUT_MS);
    handOff.unref();
    this.conns.set(cid, { slot, release, handOff, socket });
    const message: ToWorker = {
      t: "conn",
      cid,
      req: { method: req.method, url: req.url, headers: req.headers },
      head: head.toString("base64"),
    };
    const fail = () => {
      socket.destroy();
      this.gone(cid);
    };
    slot.ready.then((ready) => {
      if (!ready || this.closing || !slot.child.connected) {
        fail();
        return;
      }
      slot.child.send(message, socket, (err) => {
        if (err) {
          this.opts.logger.warn(
            { err: err.message, worker: i },
            "ws client could not be handed to its worker",
          );
          fail();
        }
      });
    });
  }

  /** Releases connection `cid`'s count (idempotent). */
  private gone(cid: number): void {
    const c = this.conns.get(cid);
    if (!c) return;
    if (c.handOff) clearTimeout(c.handOff);
    this.conns.delete(cid);
    c.release();
  }

  /** Connection `cid` reached its worker: its hand-over deadline no longer applies. */
  private taken(cid: number): void {
    const c = this.conns.get(cid);
    if (!c) return;
    if (c.handOff) clearTimeout(c.handOff);
    c.handOff = null;
    c.socket = null;
  }

  private spawn(index: number): Slot {
    const { logger, config } = this.opts;
    const child = fork(this.script as string, [], {
      stdio: ["pipe", "inherit", "inherit", "ipc"],
      execArgv: [],
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const slot: Slot = {
      index,
      child,
      last: emptyGatewayStats(),
      alive: true,
      dead: false,
      exited,
      isReady: false,
      bookDepth: 0,
      routes: new WorkerRoutes(),
      out: [],
      // clients and stats requests wait until the worker has loaded and is listening (its hello)
      ready: new Promise<boolean>((resolve) => {
        child.on("message", (m: FromWorker) => {
          if (m.t !== "hello" || slot.isReady) return;
          send(child, { t: "init", worker: index, path: this.path, config, logLevel: logger.level });
          slot.isReady = true;
          resolve(true);
        });
        exited.then(() => resolve(false));
      }),
    };
    this.slots[index] = slot;
    child.stdin?.on("error", () => undefined); // EPIPE when it died: handled by died()
    child.on("message", (m: FromWorker) => {
      if (m.t === "stats") {
        // an answer that came after its 1 s wait is still the newest: the next scrape reports it
        slot.last = m.stats;
        this.statsWaiters.get(m.id)?.(m.stats);
      } else if (m.t === "gone") this.gone(m.cid);
      else if (m.t === "taken") this.taken(m.cid);
      else if (m.t === "history") this.servePage(child, m);
      else if (m.t === "live") this.liveIn(slot);
      else if (m.t === "interest") this.interest(slot, m.update);
    });
    // a worker is dead once it exited; the end of its IPC channel says so too (it exits on that, and
    // could no longer report its connections gone): whichever comes first frees its places
    child.once("exit", (code, signal) => this.died(slot, code, signal));
    child.once("disconnect", () => this.died(slot, child.exitCode, child.signalCode));
    logger.info({ worker: index, pid: child.pid }, "gateway worker started");
    return slot;
  }

  /**
   * Worker `slot` is dead (exited, or its IPC channel closed): no client is handed to it any more, every
   * place it held is released and the sockets sent to it and not yet taken are closed (their clients see
   * the close and retry instead of waiting for a handshake). Idempotent.
   */
  private died(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.dead) return;
    slot.dead = true;
    slot.alive = false;
    slot.bookDepth = 0;
    slot.routes.clear();
    slot.out = [];
    closeUnacknowledged(slot.child);
    for (const [cid, c] of this.conns) {
      if (c.slot !== slot) continue;
      c.socket?.destroy();
      this.gone(cid);
    }
    for (const k of [
      "messages_sent",
      "conflated",
      "disconnected_slow",
      "disconnected_idle",
      "rejected_unauthorized",
    ] as const) {
      this.retired[k] += slot.last[k];
    }
    if (!this.closing) {
      // its places are free: a worker cut off from this process (not exited) must not keep serving
      if (slot.child.exitCode === null && slot.child.signalCode === null) slot.child.kill("SIGKILL");
      this.opts.logger.error(
        { worker: slot.index, code, signal },
        "gateway worker exited; its clients were disconnected",
      );
    }
    this.bookDepthChanged();
  }

  /**
   * Reads one history page a worker asked for and sends it back (or the error's message), in its turn
   * in the {@link HistoryQueue}: reading and serializing pages takes at most its share of this event
   * loop, which ingest and the live feed share.
   */
  private servePage(child: ChildProcess, m: Extract<FromWorker, { t: "history" }>): void {
    this.pages.run(() => this.readPage(child, m)).catch(() => undefined);
  }

  /**
   * A worker served live clients: this process's page reads keep to their share, and the other workers
   * are told (their history sends then keep to theirs: they share the cores with the live path).
   */
  private liveIn(from: Slot): void {
    this.live.mark();
    for (const s of this.slots) {
      if (s && s !== from && s.alive && s.isReady) send(s.child, { t: "live" });
    }
  }

  /** Reads one history page and sends it (or why not) to `child`. */
  private readPage(child: ChildProcess, m: Extract<FromWorker, { t: "history" }>): Promise<void> {
    if (!child.connected) return Promise.resolve(); // its worker is gone: nobody waits for the page
    const h = this.opts.history;
    if (!h) {
      send(child, { t: "page", id: m.id, error: "no history here (this process has no store)" });
      return Promise.resolve();
    }
    // what the page message carries: `page`, or for trades and quotes `text` where the history reads
    // them so (a DuckDB store builds it in SQL: the page goes to the worker as one string, not as
    // objects converted here and serialized again)
    let read: Promise<{ page: HistoryPage } | { text: TextPage }>;
    if (m.kind === "candles") {
      if (!h.candles) {
        send(child, { t: "page", id: m.id, error: "no candle history here" });
        return Promise.resolve();
      }
      // the last page also names the candles closed lately (this process's memory of its feed) that
      // the store may not hold yet: the worker's own memory of them starts when the worker does
      read = h
        .candles(m.query)
        .then((page) => ({ page: withRecentClosed(page, m.query, this.recentCandles) }));
    } else if (m.kind === "bookSnapshots") {
      if (!h.bookSnapshots) {
        send(child, { t: "page", id: m.id, error: "no book history here" });
        return Promise.resolve();
      }
      read = h.bookSnapshots(m.query).then((page) => ({ page }));
    } else {
      const text = m.kind === "trades" ? h.tradesText : h.quotesText;
      if (text) read = text.call(h, busyPage(m.query, this.live.busy())).then((t) => ({ text: t }));
      else read = (m.kind === "trades" ? h.trades(m.query) : h.quotes(m.query)).then((page) => ({ page }));
    }
    return read.then(
      (body) => {
        send(child, { t: "page", id: m.id, ...body });
      },
      (err: unknown) => {
        send(child, { t: "page", id: m.id, error: (err as Error).message ?? String(err) });
      },
    );
  }

  /** A book changed: its top-N to the workers that need it, while one has a `book.{N}` subscriber. */
  private pushBook(v: LiveBookView): void {
    if (this.bookDepth === 0) return;
    const symbol = v.symbol;
    let line: string | null = null;
    for (const s of this.slots) {
      if (!s?.alive || !s.routes.wantsBook(symbol)) continue;
      line ??= `B${JSON.stringify(liveBookTop(v, this.bookDepth))}`;
      this.queue(s, line);
    }
  }

  /**
   * A worker's largest `book.{N}` changed: books are forwarded at the largest over live workers from
   * now on; when it grew, every kept book is sent now at the new depth (true then).
   */
  private bookDepthChanged(): boolean {
    let depth = 0;
    for (const s of this.slots) if (s?.alive && s.bookDepth > depth) depth = s.bookDepth;
    const grew = depth > this.bookDepth;
    this.bookDepth = depth;
    if (grew) for (const v of this.opts.books?.books() ?? []) this.pushBook(v);
    return grew;
  }

  /**
   * A worker's interest changed (`interest.ts`): routes from now on; for added keys, the current ticks
   * and books they need, then the marker that confirms the update, all after the lines already queued.
   */
  private interest(slot: Slot, u: InterestUpdate): void {
    if (!slot.alive) return;
    const added = slot.routes.apply(u);
    slot.bookDepth = slot.routes.bookDepth;
    const grew = this.bookDepthChanged();
    if (u.add.length === 0) return;
    if (added.ticks.length > 0) {
      const all = added.ticks.includes("*");
      const wanted = new Set(added.ticks);
      for (const t of this.opts.feed.ticks())
        if (all || wanted.has(t.symbol)) this.queue(slot, `K${JSON.stringify(t)}`);
    }
    // when the depth grew every kept book went out to each worker that needs it, this one included
    if (added.books.length > 0 && !grew && this.bookDepth > 0) {
      const all = added.books.includes("*");
      const wanted = new Set(added.books);
      for (const v of this.opts.books?.books() ?? [])
        if (all || wanted.has(v.symbol))
          this.queue(slot, `B${JSON.stringify(liveBookTop(v, this.bookDepth))}`);
    }
    this.queue(slot, `I${u.id}`);
  }

  /** Queues a record for the workers that need it; written once per event-loop pass. */
  private push(kind: "T" | "Q" | "C", value: { symbol: string }): void {
    let line: string | null = null;
    for (const s of this.slots) {
      if (!s?.alive) continue;
      const r = s.routes;
      const wanted =
        kind === "T"
          ? r.wantsTrade(value.symbol)
          : kind === "Q"
            ? r.wantsQuote(value.symbol)
            : (value as CandleLine).closed === true ||
              r.wantsCandle((value as CandleLine).interval, value.symbol);
      if (!wanted) continue;
      line ??= kind + JSON.stringify(value);
      this.queue(s, line);
    }
  }

  /** Queues one line for one worker. */
  private queue(s: Slot, line: string): void {
    s.out.push(line);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    let prev: string[] | null = null;
    let data: Buffer | null = null;
    for (const s of this.slots) {
      if (!s || s.out.length === 0) continue;
      const out = s.out;
      s.out = [];
      if (!s.alive || !s.child.stdin) continue;
      if (s.child.stdin.writableLength > MAX_PIPE_BACKLOG) {
        this.opts.logger.error(
          { worker: s.index, queued_bytes: s.child.stdin.writableLength },
          "gateway worker is not reading its records; killing it",
        );
        s.child.kill("SIGKILL");
        continue;
      }
      // workers that need the same records (the usual case) share one buffer
      if (!prev || !sameLines(prev, out)) data = Buffer.from(`${out.join("\n")}\n`);
      prev = out;
      s.child.stdin.write(data as Buffer);
    }
  }

  private ask(s: Slot): Promise<GatewayStats> {
    if (!s.isReady) return Promise.resolve(s.last);
    const id = ++this.statsId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(s.last), 1000);
      const done = (stats: GatewayStats) => {
        clearTimeout(timer);
        this.statsWaiters.delete(id);
        s.last = stats;
        resolve(stats);
      };
      this.statsWaiters.set(id, done);
      if (!send(s.child, { t: "stats", id })) done(s.last);
    });
  }
}

/** What the pool reads of a candle to route it. */
type CandleLine = { symbol: string; interval: string; closed?: boolean };

/** Whether two workers' lines of a pass are the same strings (the same records, in the same order). */
function sameLines(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Closes this process's copies of the sockets sent to `child` that it never acknowledged (it died).
 * Node (20) keeps the copy of the socket in flight until the receiver acknowledges it
 * (`_pendingMessage`; its handle is already detached from the `net.Socket`, so destroying that does
 * nothing) and queues the sockets sent after it (`_handleQueue`); a dead receiver acknowledges
 * nothing, and their clients would wait for a handshake until their own timeout.
 */
function closeUnacknowledged(child: ChildProcess): void {
  const internals = child as unknown as {
    _pendingMessage?: { handle?: { close?: () => void } } | null;
    _handleQueue?: { handle?: unknown }[] | null;
  };
  const pending = internals._pendingMessage;
  if (pending) {
    internals._pendingMessage = null;
    try {
      pending.handle?.close?.();
    } catch {
      // already closed
    }
  }
  for (const q of internals._handleQueue ?? []) if (q.handle instanceof Socket) q.handle.destroy();
}

/**
 * Writes the end line (`E`) after the records on a worker's stdin: the worker closes its clients once it
 * has read every record before it (an IPC message could overtake the records still in the pipe, and
 * the clients would miss the tail of the stream). False when the pipe is gone.
 */
function endRecords(child: ChildProcess): boolean {
  const stdin = child.stdin;
  if (!stdin || stdin.destroyed || !stdin.writable) return false;
  stdin.write("E\n");
  return true;
}

/** Sends an IPC message; false when the channel is gone. */
function send(child: ChildProcess, m: ToWorker): boolean {
  if (!child.connected) return false;
  try {
    child.send(m);
    return true;
  } catch {
    return false;
  }
}
