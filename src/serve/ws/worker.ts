/**
 * Entry point of a gateway worker process: a {@link Gateway} with its own event loop (and core), fed
 * by the parent `k2` process through `pool.ts`. Started with `child_process.fork`; not a CLI
 * command.
 *
 * First the worker says `hello` (its IPC listener is in place); then, from the parent:
 *   - stdin, one record per line (`\n`-terminated), only those its clients need (its interest,
 *     reported with `interest` messages, `interest.ts`): `T` + TradeV2 JSON, `Q` + QuoteV2 JSON,
 *     `C` + candle JSON, `K` + Tick JSON (the parent's current tick of a symbol this worker starts
 *     needing ticks of), `B` + LiveBookTop JSON (a kept order book's whole top-N, replacing this
 *     process's copy, `live/books.ts`), `I` + an update id (the marker that confirms an `interest`
 *     update: the subscriptions waiting for it are served from here on), and last `E` (the end: no more records; the worker closes every
 *     client with 1001 once each has been sent what it was due, and answers `closed` over IPC; on the
 *     same pipe as the records, so the close cannot overtake them). Trades and quotes go through a {@link LiveFeed} of this process,
 *     which derives the ticks as the parent's does;
 *   - IPC messages ({@link ToWorker}): `init` (settings), `page` (a history page it asked for with
 *     `history`: the parent reads the store for `from` subscriptions, since a DuckDB file has one
 *     writer, the parent, and one reader path keeps PostgreSQL and DuckDB alike; the parent's pages
 *     include the records received but not stored yet), `conn` with a client's socket handle (its
 *     upgrade request not yet answered; answered with `gone` when that socket closes) and `stats`
 *     (answered with {@link FromWorker} `stats`).
 * The process exits when the IPC channel closes (the parent died or let it go).
 */
import type { Socket } from "node:net";
import { setPriority } from "node:os";
import { createLogger } from "../../ops/logger.js";
import type { BookSnapshotV2 } from "../../schema/books.js";
import type { CandleV2 } from "../../schema/candles.js";
import type { LiveBookTop } from "../../schema/live-book.js";
import type { QuoteV2, TradeV2 } from "../../schema/records.js";
import { type MarketQuery, type Page, parsePage, type TextPage } from "../../store/page.js";
import { TokenAuth } from "../auth.js";
import { LiveBookCopy } from "../live/books.js";
import { LiveFeed, type Tick } from "../live/feed.js";
import type { CandlePage, CandleQuery } from "../rest/source.js";
import type { GatewayConfig } from "./config.js";
import { parseRecord } from "./frames.js";
import { Gateway, type UpgradeRequest } from "./gateway.js";
import { LiveActivity } from "./history-queue.js";
import { InterestTracker, type InterestUpdate } from "./interest.js";
import { emptyGatewayStats, type GatewayStats } from "./metrics.js";
import type { ReplayHistory } from "./replay.js";

/** History pages read by the parent, asked for over IPC. */
class ParentHistory implements ReplayHistory {
  private nextId = 0;
  private readonly waiting = new Map<
    number,
    { resolve: (p: HistoryPage) => void; reject: (e: Error) => void }
  >();

  constructor(private readonly send: (m: FromWorker) => void) {}

  trades(q: MarketQuery): Promise<Page<TradeV2>> {
    return this.ask("trades", q) as Promise<Page<TradeV2>>;
  }

  quotes(q: MarketQuery): Promise<Page<QuoteV2>> {
    return this.ask("quotes", q) as Promise<Page<QuoteV2>>;
  }

  candles(q: CandleQuery): Promise<CandlePage> {
    return this.ask("candles", q) as Promise<CandlePage>;
  }

  bookSnapshots(q: MarketQuery): Promise<Page<BookSnapshotV2>> {
    return this.ask("bookSnapshots", q) as Promise<Page<BookSnapshotV2>>;
  }

  /** The parent's answer to request `id`. */
  answer(m: Extract<ToWorker, { t: "page" }>): void {
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (m.text) w.resolve(parsePage<TradeV2 | QuoteV2>(m.text));
    else if (m.page) w.resolve(m.page);
    else w.reject(new Error(m.error ?? "no page"));
  }

  private ask(kind: HistoryKind, query: MarketQuery | CandleQuery): Promise<HistoryPage> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (!process.connected) {
        this.waiting.delete(id);
        reject(new Error("parent process gone"));
        return;
      }
      this.send({ t: "history", id, kind, query } as FromWorker);
    });
  }
}

/** Messages from the pool to a worker. */
export type ToWorker =
  | { t: "init"; worker: number; path: string; config: GatewayConfig; logLevel: string }
  | { t: "conn"; cid: number; req: UpgradeRequest; head: string }
  | { t: "stats"; id: number }
  /** Another worker served live clients (at most every `LIVE_QUIET_MS / 2` from each). */
  | { t: "live" }
  /**
   * A history page asked for with `history` (or why it could not be read): trades and quotes as JSON
   * text (`text`) where the parent's history reads them so, else `page`.
   */
  | { t: "page"; id: number; page?: HistoryPage; text?: TextPage; error?: string };

/** Messages from a worker to the pool. */
export type FromWorker =
  | { t: "hello" }
  /** Live records were handed to this worker's clients (at most every `LIVE_QUIET_MS / 2`). */
  | { t: "live" }
  | { t: "stats"; id: number; stats: GatewayStats }
  | { t: "closed" }
  /** Connection `cid` and its socket arrived (the pool stops its hand-over deadline). */
  | { t: "taken"; cid: number }
  /** The socket of connection `cid` closed (the pool releases its connection-limit count). */
  | { t: "gone"; cid: number }
  /** Asks the parent for one page of stored trades, quotes, candles or book snapshots (answered with `page`). */
  | { t: "history"; id: number; kind: "trades" | "quotes" | "bookSnapshots"; query: MarketQuery }
  | { t: "history"; id: number; kind: "candles"; query: CandleQuery }
  /** Its clients' interest changed (`interest.ts`): records are routed to it accordingly. */
  | { t: "interest"; update: InterestUpdate };

/** What a worker asks the parent's history for. */
export type HistoryKind = "trades" | "quotes" | "candles" | "bookSnapshots";
/** A history page sent to a worker: trades, quotes, candles (with the open ones) or book snapshots. */
export type HistoryPage = Page<TradeV2 | QuoteV2> | CandlePage | Page<BookSnapshotV2>;

/**
 * Splits stdin into lines and hands each record to the live feed; confirms interest updates at their
 * markers; calls `onEnd` at the end line.
 */
function readRecords(
  live: LiveFeed,
  books: LiveBookCopy,
  interest: InterestTracker,
  onBadLine: (line: string, err: unknown) => void,
  onEnd: () => void,
): void {
  let rest = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    const text = rest + chunk;
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      const line = text.slice(start, nl);
      start = nl + 1;
      if (line === "E") {
        onEnd();
        continue;
      }
      if (line.length < 2) continue;
      try {
        if (line[0] === "I") {
          interest.confirm(Number(line.slice(1)));
          continue;
        }
        // trades, quotes and candles keep their text: fan-out sends it as it came (no second stringify)
        const k = line[0];
        const value =
          k === "T" || k === "Q" || k === "C" ? parseRecord(line.slice(1)) : JSON.parse(line.slice(1));
        switch (line[0]) {
          case "T":
            live.publishTrade(value as TradeV2);
            break;
          case "Q":
            live.publishQuote(value as QuoteV2);
            break;
          case "C":
            live.emit("candle", value as CandleV2);
            break;
          case "K":
            live.restoreTick(value as Tick);
            break;
          case "B": {
            // a book this process stopped needing (sent before the parent knew) is not kept: it would go stale
            const top = value as LiveBookTop;
            if (interest.wantsBook(top.symbol)) books.apply(top);
            break;
          }
          default:
            onBadLine(line, new Error(`unknown record kind "${line[0]}"`));
        }
      } catch (err) {
        onBadLine(line, err);
      }
    }
    rest = text.slice(start);
  });
}

function main(): void {
  const send = (m: FromWorker) => {
    if (process.connected) process.send?.(m);
  };
  const live = new LiveFeed();
  const books = new LiveBookCopy();
  const history = new ParentHistory(send);
  /** Other workers served live clients lately (the parent relays their `live`). */
  const elsewhere = new LiveActivity();
  const interest: InterestTracker = new InterestTracker(
    (update) => send({ t: "interest", update }),
    () => books.retain((symbol) => interest.wantsBook(symbol)),
  );
  let gateway: Gateway | null = null;
  let logger = createLogger();
  readRecords(
    live,
    books,
    interest,
    (line, err) =>
      logger.error(
        { err: (err as Error).message, line: line.slice(0, 200) },
        "gateway worker: bad record line",
      ),
    () => {
      // the process stays until the parent disconnects: the parent's HTTP server asks it (Node's
      // internal messages) whether every socket it was handed is closed
      const g = gateway;
      gateway = null;
      (g ? g.close() : Promise.resolve()).finally(() => send({ t: "closed" }));
    },
  );
  process.on("disconnect", () => process.exit(0));
  // Ctrl-C (SIGINT) reaches the whole process group of the terminal, and a service manager's stop
  // (SIGTERM) often the whole control group: the parent shuts down in order (clients closed with
  // 1001, then the IPC channel), and this worker exits on that disconnect. Dying on the signal itself
  // would cut its clients first and read as a crash in the parent's log.
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => undefined);
  process.on("message", (m: ToWorker, handle?: Socket) => {
    if (m.t === "init") {
      logger = createLogger(m.logLevel).child({ gateway_worker: m.worker });
      // fan-out gives way to ingest and the store when they compete for a core (Linux: this thread)
      try {
        if (m.config.workerNice > 0) setPriority(m.config.workerNice);
      } catch (err) {
        logger.warn({ err: (err as Error).message }, "gateway worker: could not lower its priority");
      }
      gateway = new Gateway({
        feed: live,
        logger,
        auth: new TokenAuth(m.config.apiTokens),
        heartbeatMs: m.config.heartbeatMs,
        idleTimeoutMs: m.config.idleTimeoutMs,
        maxQueue: m.config.maxQueue,
        highWaterBytes: m.config.highWaterBytes,
        path: m.path,
        history,
        replayMaxRange: m.config.replayMaxRange,
        replayMaxRecords: m.config.replayMaxRecords,
        books,
        interest,
        // the parent's history page reads keep to their share of its loop while live clients are served
        onLive: () => send({ t: "live" }),
        liveElsewhere: () => elsewhere.busy(),
      });
      gateway.start();
    } else if (m.t === "conn") {
      send({ t: "taken", cid: m.cid });
      if (!handle) {
        send({ t: "gone", cid: m.cid });
        return;
      }
      // every way a client ends (closed, terminated, handshake failed, refused) closes its socket
      handle.once("close", () => send({ t: "gone", cid: m.cid }));
      if (handle.destroyed) {
        send({ t: "gone", cid: m.cid });
        return;
      }
      if (!gateway) {
        handle.destroy();
        return;
      }
      try {
        gateway.handleUpgrade(m.req, handle, Buffer.from(m.head, "base64"));
      } catch (err) {
        logger.warn({ err: (err as Error).message }, "gateway worker: upgrade failed");
        handle.destroy();
      }
    } else if (m.t === "page") {
      history.answer(m);
    } else if (m.t === "live") {
      elsewhere.mark();
    } else if (m.t === "stats") {
      const stats: GatewayStats = { ...(gateway ? gateway.stats() : emptyGatewayStats()), workers: 1 };
      send({ t: "stats", id: m.id, stats });
    }
  });
  // the pool sends nothing before this: until then it neither hands this process clients nor waits
  // on it for counters (it is still loading its modules)
  send({ t: "hello" });
}

main();
