/**
 * Serves a cryptofeed raw-data recording (`src/replay/cryptofeed.ts`) as the recorded venue's
 * WebSocket endpoint on 127.0.0.1, so that venue's own feed handler (`src/venues/<venue>.ts`) runs
 * unchanged on recorded data.
 *
 * The recording's header names the exchange; the venue's {@link ReplayDialect} (in its venue file)
 * says how to read subscriptions and recorded frames. When a client connects and subscribes (in its
 * URL, Binance, or by messages, Coinbase and Kraken), the server waits `settleMs` for further
 * subscribe messages, then sends the recorded `recv` frames of every recorded connection that
 * subscribed to at least one of the same keys (`<stream>|<SYMBOL>`), merged in recorded order and paced
 * by the recorded `ts` divided by `speed` (`max`: as fast as the client reads). Frames the dialect
 * keys to one stream and symbol are sent only when the client asked for that key; frames keyed to the
 * whole connection (acks, heartbeats, status, and all Coinbase frames, which carry a per-connection
 * `sequence_num`) are always sent, so a replay never invents a gap the recording does not have. The
 * venue's replies to subscriptions are the recorded ones; dialects of venues whose replies are not in
 * the recording (Binance) answer themselves.
 *
 * `end` is emitted once a connection has been sent everything it matched, with the count of messages
 * sent on it; `totalSent` counts every message whose write completed, over all connections.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { WebSocket } from "ws";
import { recordedTimePayload } from "../feed/recorded-time.js";
import { getVenue } from "../venues/registry.js";
import type { ReplayDialect } from "../venues/venue.js";
import { BinanceRestEmulator } from "./binance-rest.js";
import {
  connOfLine,
  indexRecording,
  isRecvLine,
  keyRequested,
  type RecordingIndex,
  readCryptofeed,
} from "./cryptofeed.js";
import { LoopbackReplayServer, type ReplayServerOptions, SendWindow } from "./replay-server.js";

/** What one client connection asked for; `version` changes with every (un)subscribe. */
interface ClientSubscription {
  requested: Set<string>;
  version: number;
}

/** Options of the cryptofeed replay server. */
export interface CryptofeedReplayOptions extends ReplayServerOptions {
  /** Quiet time after the client's last subscribe message before sending starts, ms (default 150). */
  settleMs?: number;
}

/**
 * A replay server for one cryptofeed recording (any exchange whose venue has a replay dialect), on
 * 127.0.0.1. `start()` indexes the recording, then listens; each client connection is served as above.
 */
export class CryptofeedReplayServer extends LoopbackReplayServer {
  declare protected readonly opts: CryptofeedReplayOptions;
  private index: (RecordingIndex & { dialect: ReplayDialect }) | null = null;
  constructor(opts: CryptofeedReplayOptions) {
    super(opts);
  }

  /**
   * Indexes the recording (then `start()` listens on 127.0.0.1).
   * @throws {Error} when the recording cannot be read or its exchange has no replay dialect
   */
  protected async prepare(): Promise<void> {
    this.index = await indexRecording(this.opts.file, (exchange) => getVenue(exchange.toLowerCase())?.replay);
  }

  /** Binance REST emulation over the recording's `aggTrade` / `trade` frames (Binance recordings only). */
  private rest: BinanceRestEmulator | null = null;

  /** Binance recordings also answer `/api/v3/aggTrades` and `/api/v3/historicalTrades` (`binance-rest.ts`). */
  protected override handleHttp(req: IncomingMessage, res: ServerResponse): void {
    if (this.exchange !== "BINANCE") {
      super.handleHttp(req, res);
      return;
    }
    const file = this.opts.file;
    this.rest ??= new BinanceRestEmulator(async function* () {
      for await (const l of readCryptofeed(file, isRecvLine)) if (l.data) yield l.data;
    }, this.opts.rest);
    this.rest.handle(req, res);
  }

  /** Exchange recorded (`COINBASE`), after `start()`. */
  get exchange(): string {
    return this.index?.exchange ?? "";
  }

  protected serve(ws: WebSocket, url: string): void {
    const index = this.index!;
    const dialect = index.dialect;
    this.sockets.add(ws);
    this.answerPings(ws);
    this.emit("connection", url);
    const sub: ClientSubscription = { requested: new Set(dialect.urlKeys(url)), version: 0 };
    const requested = sub.requested;
    let closed = false;
    let started = false;
    let timer: NodeJS.Timeout | null = null;
    const incoming: number[] = [];
    const send = (text: string, cb?: (err?: Error) => void) => {
      ws.send(text, (err) => {
        if (!err) this.totalSent++;
        cb?.(err);
      });
    };
    const schedule = () => {
      if (started) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        timer = null;
        started = true;
        void this.pump(ws, sub, dialect, () => closed, send);
      }, this.opts.settleMs ?? 150);
    };
    ws.on("close", () => {
      closed = true;
      if (timer) clearTimeout(timer);
      this.sockets.delete(ws);
    });
    ws.on("error", () => undefined);
    ws.on("message", (data) => {
      if (this.isCut(ws)) return; // no answer after a drop fault's FIN (see cut)
      const limit = this.opts.maxIncomingPerSecond;
      if (limit !== undefined) {
        const now = Date.now();
        incoming.push(now);
        while (incoming.length && now - incoming[0] > 1000) incoming.shift();
        if (incoming.length > limit) {
          ws.close(1008, "Too many requests");
          return;
        }
      }
      const text = data.toString();
      const reply = dialect.reply(text);
      if (reply !== null) send(reply);
      const change = dialect.subscription(text);
      if (!change) return;
      for (const k of change.keys) change.subscribe ? requested.add(k) : requested.delete(k);
      sub.version++;
      schedule();
    });
    if (requested.size > 0) schedule();
  }

  /** Recorded connections that subscribed to at least one key the client requested. */
  private matchedConnections(requested: ReadonlySet<string>): Set<string> {
    const out = new Set<string>();
    for (const c of this.index!.connections.values()) {
      for (const k of c.keys) {
        if (keyRequested(requested, k)) {
          out.add(c.conn);
          break;
        }
      }
    }
    return out;
  }

  private async pump(
    ws: WebSocket,
    sub: ClientSubscription,
    dialect: ReplayDialect,
    isClosed: () => boolean,
    send: (text: string, cb?: (err?: Error) => void) => void,
  ): Promise<void> {
    const speed = this.opts.speed ?? 1;
    const stamp = this.opts.stampReceiveTimes ?? false;
    const faults = this.faults;
    // with faults the server is a live venue: one position shared by successive connections
    const resume = (this.opts.resume ?? false) || faults !== null;
    const skip = resume ? this.cursor : 0;
    const requested = sub.requested;
    let matched = this.matchedConnections(requested);
    let matchedFor = sub.version;
    let index = 0;
    const window = new SendWindow(isClosed);
    let dataFrames = 0;
    let t0Wall = 0;
    let t0Rec = -1;
    const sendBefore = this.totalSent;
    /** Frames still to lose after a `drop-every=N:lost=M` cut. */
    const loss = { frames: 0 };
    const lose = (myIndex: number, stream: string) => this.loseFrame(ws, loss, myIndex, stream);
    try {
      // lines of recorded connections this client does not match are skipped unparsed
      const accept = (raw: string) => {
        if (!isRecvLine(raw)) return false;
        const conn = connOfLine(raw);
        return conn === null || matched.has(conn) || sub.version !== matchedFor;
      };
      for await (const line of readCryptofeed(this.opts.file, accept)) {
        if (isClosed()) return;
        if (line.t !== "recv" || typeof line.data !== "string" || !line.conn) continue;
        if (sub.version !== matchedFor) {
          matched = this.matchedConnections(requested);
          matchedFor = sub.version;
        }
        if (!matched.has(line.conn)) continue;
        const key = dialect.frameKey(line.data);
        if (key !== null && !keyRequested(requested, key)) continue;
        const myIndex = index++;
        if (myIndex < skip) continue;
        if (loss.frames > 0) {
          if (lose(myIndex, key ?? line.conn)) return;
          continue;
        }
        const ms = typeof line.ts === "number" ? line.ts * 1000 : 0;
        if (speed !== "max" && ms > 0) {
          if (t0Rec < 0) {
            t0Rec = ms;
            t0Wall = Date.now();
          }
          const wait = t0Wall + (ms - t0Rec) / speed - Date.now();
          if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
          if (isClosed()) return;
        }
        if (faults) {
          const fault = faults.next(myIndex);
          if (fault) {
            await window.settle();
            if (isClosed()) return;
            const done = await this.applyFault(ws, fault, loss, myIndex, key ?? line.conn);
            if (done === "end") return;
            if (done === "lost") continue;
            if (isClosed()) return;
            t0Wall += done;
          }
          const garbage = faults.garbage();
          if (garbage !== null) send(garbage);
          faults.sent();
        }
        dataFrames++;
        // the recorded receive time (`ts`, seconds) in µs, for a feed on the recorded clock
        if (stamp && ms > 0) ws.ping(recordedTimePayload(Math.round(ms * 1000)), false, () => undefined);
        const full = this.sendFrame(send, line.data, myIndex, window, resume);
        if (full) await full;
      }
      await this.endOfCapture(ws, loss, () => window.settle(), isClosed, sendBefore, dataFrames);
    } catch (err) {
      if (!isClosed()) ws.close(1011, `replay failed: ${(err as Error).message}`.slice(0, 120));
    }
  }
}
