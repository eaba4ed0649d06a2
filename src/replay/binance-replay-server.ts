/**
 * Serves a capture file as a Binance-compatible WebSocket endpoint on 127.0.0.1, so the real feed
 * handler runs unchanged on recorded data.
 *
 * URLs, as Binance's "WebSocket Streams" doc: `/stream?streams=a/b` (combined: frames sent as the
 * recorded `{"stream","data"}` envelope text), `/ws/<stream>` (raw: the `data` payload alone), and
 * `/ws` or `/stream` with `{"method":"SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS","params":[..],"id":N}`
 * requests. Only subscribed streams' frames are sent, paced by the recorded receive times divided by
 * `speed` (`max`: as fast as the client reads). Like Binance, a connection sending more than 5
 * messages per second is closed.
 *
 * Plain HTTP GETs on the same port get Binance's REST API for the capture's trades (`binance-rest.ts`),
 * so a gap backfill can run against the replay.
 *
 * With `resume: true` the server keeps a cursor of frames whose write completed, and a new connection
 * continues from it: a test can kill connections mid-stream and check nothing the server sent is lost.
 *
 * With `faults` (see `faults.ts`) the send loop injects drops (and skips the lost frames), stalls,
 * garbage frames and closes; the cursor is shared as in `resume` mode, as a live venue's stream is.
 */
import { stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import { recordedTimePayload } from "../feed/recorded-time.js";
import { BinanceRestEmulator } from "./binance-rest.js";
import { type LoadedCapture, loadCapture, PRELOAD_MAX_BYTES, readCaptures } from "./capture.js";
import { LoopbackReplayServer, type ReplayServerOptions, SendWindow } from "./replay-server.js";

/** Header of an unmasked final text frame of `length` payload bytes (RFC 6455 §5.2). */
function frameHeader(length: number): Buffer {
  if (length < 126) return Buffer.from([0x81, length]);
  if (length < 65536) return Buffer.from([0x81, 126, length >> 8, length & 255]);
  const h = Buffer.alloc(10);
  h[0] = 0x81;
  h[1] = 127;
  h.writeBigUInt64BE(BigInt(length), 2);
  return h;
}

/** Stream name of a recorded combined-stream line, or null (REST snapshots, other lines). */
export function streamOf(raw: string): string | null {
  if (!raw.startsWith('{"stream":"')) return null;
  const end = raw.indexOf('"', 11);
  return end > 11 ? raw.slice(11, end) : null;
}

/** The `data` payload text of a combined-stream envelope, exactly as recorded. */
function payloadOf(raw: string): string {
  const i = raw.indexOf(',"data":');
  return i > 0 ? raw.slice(i + 8, raw.length - 1) : raw;
}

export class BinanceReplayServer extends LoopbackReplayServer {
  constructor(opts: ReplayServerOptions) {
    super(opts);
    this.cursor = opts.startAt ?? 0;
  }

  /** Receive time (ms) of the last frame sent: the replay position `/api/v3/depth` answers at. */
  private positionMs = 0;

  /**
   * Binance REST emulation over the same capture (`/api/v3/historicalTrades`, `/api/v3/aggTrades`,
   * `/api/v3/depth` at the replay position).
   */
  readonly rest = new BinanceRestEmulator(
    () =>
      (async function* (files: readonly string[]) {
        for await (const f of readCaptures(files)) yield f.raw;
      })(this.files),
    this.opts.rest,
    { frames: () => readCaptures(this.files), position: () => this.positionMs },
  );

  /** The captures played, in order: `files`, else `file`. */
  private get files(): readonly string[] {
    return this.opts.files ?? [this.opts.file];
  }

  protected override handleHttp(req: IncomingMessage, res: ServerResponse): void {
    this.rest.handle(req, res);
  }

  /** Loads the capture into memory when small enough (see {@link PRELOAD_MAX_BYTES}). */
  protected async prepare(): Promise<void> {
    await this.capture();
  }

  protected serve(ws: WebSocket, url: string): void {
    this.sockets.add(ws);
    this.answerPings(ws);
    this.emit("connection", url);
    const u = new URL(url, "ws://127.0.0.1");
    const subscribed = new Set<string>();
    let combined = true;
    if (u.pathname === "/stream") {
      for (const s of (u.searchParams.get("streams") ?? "").split("/")) if (s) subscribed.add(s);
    } else if (u.pathname.startsWith("/ws")) {
      combined = false;
      for (const s of u.pathname.slice(3).split("/")) if (s) subscribed.add(s);
    } else {
      ws.close(1008, "unknown path");
      return;
    }
    let closed = false;
    let started = false;
    const incoming: number[] = [];
    const send = (text: string | Buffer, cb?: (err?: Error) => void) => {
      ws.send(text, { binary: false }, (err) => {
        if (!err) this.totalSent++;
        cb?.(err);
      });
    };
    ws.on("close", () => {
      closed = true;
      this.sockets.delete(ws);
    });
    ws.on("error", () => undefined);
    ws.on("message", (data) => {
      if (this.isCut(ws)) return; // no answer after a drop fault's FIN (see cut)
      const now = Date.now();
      incoming.push(now);
      while (incoming.length && now - incoming[0] > 1000) incoming.shift();
      if (incoming.length > (this.opts.maxIncomingPerSecond ?? 5)) {
        ws.close(1008, "Too many requests");
        return;
      }
      let req: { method?: unknown; params?: unknown; id?: unknown };
      try {
        req = JSON.parse(data.toString());
      } catch {
        send(JSON.stringify({ error: { code: 3, msg: "Invalid JSON" } }));
        return;
      }
      const params = Array.isArray(req.params)
        ? req.params.filter((p): p is string => typeof p === "string")
        : [];
      if (req.method === "SUBSCRIBE") for (const p of params) subscribed.add(p);
      else if (req.method === "UNSUBSCRIBE") for (const p of params) subscribed.delete(p);
      else if (req.method === "LIST_SUBSCRIPTIONS") {
        send(JSON.stringify({ result: [...subscribed], id: req.id ?? null }));
        return;
      } else {
        send(
          JSON.stringify({ error: { code: 2, msg: `Invalid request: unknown method` }, id: req.id ?? null }),
        );
        return;
      }
      send(JSON.stringify({ result: null, id: req.id ?? null }));
      if (!started && subscribed.size > 0) {
        started = true;
        void this.pump(ws, subscribed, combined, () => closed, send);
      }
    });
    if (subscribed.size > 0) {
      started = true;
      void this.pump(ws, subscribed, combined, () => closed, send);
    }
  }

  private loaded: Promise<LoadedCapture | null> | null = null;

  /** The capture in memory when it is small enough (loaded once, shared by all connections). */
  private capture(): Promise<LoadedCapture | null> {
    this.loaded ??= Promise.all(this.files.map((f) => stat(f))).then((st) =>
      st.reduce((n, s) => n + s.size, 0) <= PRELOAD_MAX_BYTES ? loadCapture(this.files) : null,
    );
    return this.loaded;
  }

  /** Frames of the subscribed streams, in order: preloaded when possible, else streamed from disk. */
  private async *frames(
    subscribed: Set<string>,
    combined: boolean,
  ): AsyncGenerator<{ ms: number; us: number; data: string | Buffer; stream: string }> {
    const cap = await this.capture();
    if (cap) {
      const wanted = cap.streams.map((s) => subscribed.has(s));
      const dataKey = Buffer.from(',"data":');
      for (let i = 0; i < cap.count; i++) {
        const sid = cap.streamId[i];
        if (sid < 0 || !wanted[sid]) continue;
        let a = cap.start[i];
        let b = cap.end[i];
        if (!combined) {
          const d = cap.buf.indexOf(dataKey, a);
          if (d > 0 && d < b) {
            a = d + dataKey.length;
            b -= 1;
          }
        }
        yield { ms: cap.ms[i], us: cap.us[i], data: cap.buf.subarray(a, b), stream: cap.streams[sid] };
        // subscriptions may change while replaying (UNSUBSCRIBE)
        if ((i & 1023) === 0)
          for (let k = 0; k < wanted.length; k++) wanted[k] = subscribed.has(cap.streams[k]);
      }
      return;
    }
    for await (const f of readCaptures(this.files)) {
      const stream = streamOf(f.raw);
      if (stream === null || !subscribed.has(stream)) continue;
      yield { ms: f.ms, us: f.us, data: combined ? f.raw : payloadOf(f.raw), stream };
    }
  }

  private async pump(
    ws: WebSocket,
    subscribed: Set<string>,
    combined: boolean,
    isClosed: () => boolean,
    send: (text: string | Buffer, cb?: (err?: Error) => void) => void,
  ): Promise<void> {
    const speed = this.opts.speed ?? 1;
    const stamp = this.opts.stampReceiveTimes ?? false;
    const faults = this.faults;
    // with faults the server is a live venue: one position shared by successive connections
    const resume = (this.opts.resume ?? false) || faults !== null;
    const skip = resume ? this.cursor : 0;
    let index = 0; // position among frames of subscribed streams
    const window = new SendWindow(isClosed);
    let dataFrames = 0;
    let t0Wall = 0;
    let t0Rec = -1;
    const sendBefore = this.totalSent;
    const rawSocket = (ws as unknown as { _socket?: Socket })._socket ?? null;
    let pending: Buffer[] = [];
    let pendingFrames = 0;
    let pendingBytes = 0;
    /** Writes the framed messages gathered so far; the last one is frame `lastIndex`. */
    const flushPending = (lastIndex: number) => {
      const chunk = Buffer.concat(pending);
      const frames = pendingFrames;
      pending = [];
      pendingFrames = 0;
      pendingBytes = 0;
      window.begin();
      const more = rawSocket!.write(chunk, (err) => {
        if (!err) {
          this.totalSent += frames;
          if (resume && lastIndex + 1 > this.cursor) this.cursor = lastIndex + 1;
        }
        window.done(true);
      });
      return more || isClosed()
        ? Promise.resolve()
        : new Promise<void>((r) => rawSocket!.once("drain", () => r()));
    };
    /** Everything written so far has completed, so the cursor is exact (before a fault). */
    const settle = async (lastIndex: number) => {
      if (pendingFrames > 0) await flushPending(lastIndex);
      await window.settle();
    };
    /** Frames still to lose after a `drop-every=N:lost=M` cut. */
    const loss = { frames: 0 };
    const lose = (myIndex: number, stream: string) => this.loseFrame(ws, loss, myIndex, stream);
    try {
      for await (const f of this.frames(subscribed, combined)) {
        if (isClosed()) return;
        const myIndex = index++;
        if (myIndex < skip) continue;
        if (f.ms > this.positionMs) this.positionMs = f.ms;
        if (loss.frames > 0) {
          if (lose(myIndex, f.stream)) return;
          continue;
        }
        if (speed !== "max" && f.ms > 0) {
          if (t0Rec < 0) {
            t0Rec = f.ms;
            t0Wall = Date.now();
          }
          const due = t0Wall + (f.ms - t0Rec) / speed;
          const wait = due - Date.now();
          if (wait >= 1) await new Promise((r) => setTimeout(r, wait));
          if (isClosed()) return;
        }
        if (faults) {
          const fault = faults.next(myIndex);
          if (fault) {
            await settle(myIndex - 1);
            if (isClosed()) return;
            const done = await this.applyFault(ws, fault, loss, myIndex, f.stream);
            if (done === "end") return;
            if (done === "lost") continue;
            if (isClosed()) return;
            t0Wall += done;
          }
          const garbage = faults.garbage();
          if (garbage !== null) {
            if (speed === "max" && typeof f.data !== "string" && rawSocket) {
              // in the same batched writes as the data frames, so the order holds
              const g = Buffer.from(garbage);
              pending.push(frameHeader(g.length), g);
              pendingFrames++;
            } else send(garbage);
          }
          faults.sent();
        }
        dataFrames++;
        const stampPayload = stamp && f.us > 0 ? recordedTimePayload(f.us) : null;
        if (speed === "max" && typeof f.data !== "string" && rawSocket) {
          // a ping (FIN + ping opcode, payload under 126 bytes) with the frame's recorded receive time
          if (stampPayload) pending.push(Buffer.from([0x89, stampPayload.length]), stampPayload);
          // full speed from memory: frame the messages here and hand the socket large writes
          // (RFC 6455 §5.2: FIN + text opcode, unmasked server frames), as one send per frame would
          // spend the machine's CPU on the venue's side of the wire
          pending.push(frameHeader(f.data.length), f.data);
          pendingFrames++;
          pendingBytes += f.data.length;
          if (pendingFrames >= 512 || pendingBytes >= 256 * 1024) await flushPending(myIndex);
          continue;
        }
        if (stampPayload) ws.ping(stampPayload, false, () => undefined);
        const full = this.sendFrame(send, f.data, myIndex, window, resume);
        if (full) await full;
      }
      await this.endOfCapture(ws, loss, () => settle(index - 1), isClosed, sendBefore, dataFrames);
    } catch (err) {
      if (!isClosed()) ws.close(1011, `replay failed: ${(err as Error).message}`.slice(0, 120));
    }
  }
}
