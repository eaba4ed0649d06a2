/**
 * Backpressure with 200 WebSocket clients on a real `k2 run --replay btcusdt_20240808.gz --speed 10
 * --exit-at-end` child process: 190 readers subscribed to trades, and 10 clients subscribed to trades,
 * quotes and ticks that never read (their sockets are paused). The readers must receive every trade in
 * venue order; the 10 must be conflated, then cut (the k2 log shows each cut with its queue and
 * conflation counts; a client that gets to read its close frame sees 4000 and the reason); ingest must
 * run to the end at the replay's pace and store everything.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  CAPTURE,
  ensureBuilt,
  type K2Process,
  LAST_TRADE_ID,
  metricValue,
  sleep,
  spawnK2Run,
  TRADES_IN_CAPTURE,
  tempDir,
} from "./helpers.js";

const READERS = 190;
const STALLED = 10;
const MAX_QUEUE = 300;
const tmp = tempDir();
let k2Child: K2Process | null = null;

beforeAll(() => ensureBuilt());
afterAll(() => {
  if (k2Child && k2Child.child.exitCode === null) k2Child.child.kill("SIGKILL");
  tmp.cleanup();
});

interface Reader {
  ws: WebSocket;
  seqs: number[];
  closeCode: number | null;
  /** Resolves when its connection has closed (every message before the close has been read). */
  closed: Promise<void>;
}

interface Stalled {
  ws: WebSocket;
  received: number;
  closeCode: number | null;
  closeReason: string;
  closed: Promise<void>;
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once("open", () => res(ws));
    ws.once("error", rej);
  });
}

/** Sends one subscribe request per channel (all symbols). */
function sendSubscribes(ws: WebSocket, channels: string[]): void {
  for (const [i, channel] of channels.entries()) {
    ws.send(JSON.stringify({ op: "subscribe", channel, symbols: ["*"], id: i }));
  }
}

/** Subscribes and waits for every reply; rejects with the reply or close that came instead. */
function subscribe(ws: WebSocket, channels: string[]): Promise<void> {
  let pending = channels.length;
  return new Promise((res, rej) => {
    const onReply = (d: WebSocket.RawData) => {
      const m = JSON.parse(d.toString());
      if (m.type === "error") rej(new Error(`subscribe refused: ${d.toString()}`));
      if (m.type === "subscribed" && --pending === 0) {
        ws.off("message", onReply);
        res();
      }
    };
    ws.on("message", onReply);
    ws.once("close", (code, reason) => rej(new Error(`closed ${code} ${reason} before subscribed`)));
    sendSubscribes(ws, channels);
  });
}

describe("200 clients, 10 of them never reading", () => {
  it("readers get every trade in order; stalled clients are conflated then cut; ingest completes", async () => {
    const k2 = await spawnK2Run(
      [
        "--replay",
        CAPTURE,
        "--speed",
        "10",
        "--http-port",
        "0",
        "--db",
        `${tmp.dir}/k2.duckdb`,
        "--symbols",
        "BTCUSDT",
        "--streams",
        "trade,bookTicker",
        "--exit-at-end",
      ],
      { K2_WS_MAX_QUEUE: String(MAX_QUEUE), K2_WS_HIGH_WATER_BYTES: "65536" },
    );
    k2Child = k2;
    const url = `ws://127.0.0.1:${k2.port}/ws`;
    const metricsUrl = `http://127.0.0.1:${k2.port}/metrics`;

    const progress = { connected: 0, subscribed: 0 };
    const connectedAll = (async () => {
      // readers and stalled clients connect at once: a stalled client that subscribed only after the
      // 190 readers (late in the burst, on a loaded machine) could miss enough of it never to be cut
      const readersP: Promise<Reader[]> = Promise.all(
        Array.from({ length: READERS }, async () => {
          const ws = await connect(url);
          progress.connected++;
          const r: Reader = { ws, seqs: [], closeCode: null, closed: Promise.resolve() };
          ws.on("message", (d) => {
            const m = JSON.parse(d.toString());
            if (m.type === "trade") r.seqs.push(m.data.source_sequence);
          });
          r.closed = new Promise((res) =>
            ws.on("close", (code) => {
              r.closeCode = code;
              res();
            }),
          );
          await subscribe(ws, ["trades"]);
          progress.subscribed++;
          return r;
        }),
      );
      const stalledP: Promise<Stalled[]> = Promise.all(
        Array.from({ length: STALLED }, async () => {
          const ws = await connect(url);
          // never reads from its socket from now on, not even the replies (a client that read them
          // while the burst flows could itself be too slow for the queue limit on a loaded machine
          // and be cut before it paused); that the subscriptions took is shown by the cuts below
          sendSubscribes(ws, ["trades", "quotes", "ticks"]);
          ws.pause();
          const s: Stalled = { ws, received: 0, closeCode: null, closeReason: "", closed: Promise.resolve() };
          ws.on("message", () => {
            s.received++;
          });
          ws.on("error", () => {});
          s.closed = new Promise((res) =>
            ws.on("close", (code, reason) => {
              s.closeCode = code;
              s.closeReason = reason.toString();
              res();
            }),
          );
          return s;
        }),
      );
      const [readers, stalled] = await Promise.all([readersP, stalledP]);
      return { readers, stalled };
    })();
    const { readers, stalled } = await Promise.race([
      connectedAll,
      sleep(60_000).then(async () => {
        const status = await fetch(`http://127.0.0.1:${k2.port}/api/v1/status`)
          .then((r) => r.text())
          .catch((e) => `status unavailable: ${e}`);
        throw new Error(
          `clients not all subscribed within 60 s: ${JSON.stringify(progress)}; status: ${status}; stderr: ${k2.stderr().slice(-3000)}`,
        );
      }),
    ]);

    // watch the gateway count conflation while the replay goes on
    let exited = false;
    k2.exited.then(() => {
      exited = true;
    });
    let conflatedDuringRun = 0;
    const giveUpAt = performance.now() + 100_000;
    while (!exited) {
      if (performance.now() > giveUpAt) {
        const status = await fetch(`http://127.0.0.1:${k2.port}/api/v1/status`)
          .then((r) => r.text())
          .catch((e) => `status unavailable: ${e}`);
        throw new Error(
          `k2 did not exit within 100 s; status: ${status}; stderr: ${k2.stderr().slice(-3000)}`,
        );
      }
      const text = await fetch(metricsUrl)
        .then((r) => r.text())
        .catch(() => "");
      conflatedDuringRun = Math.max(
        conflatedDuringRun,
        metricValue(text, "k2_ws_messages_conflated_total") || 0,
      );
      await sleep(500);
    }
    const code = await k2.exited;
    for (const s of stalled) s.ws.resume(); // let them see the end of their connection
    expect(code).toBe(0);

    // ingest ran to the end and stored everything
    const summary = JSON.parse(k2.stdout().trim().split("\n").at(-1) ?? "{}");
    expect(summary.trades).toBe(TRADES_IN_CAPTURE);
    expect(summary.stored).toBe(summary.frames);
    expect(summary.rejected).toBe(0);
    // (whether ingest keeps the replay's pace beside 200 clients is a figure for the gateway bench,
    // not a test on a shared machine: here, completeness and order)
    expect(conflatedDuringRun).toBeGreaterThan(0);

    // exactly the 10 stalled clients were cut, during the run, each after conflating
    const lines = k2
      .stderr()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const stoppedAt = lines.findIndex((l) => l.msg === "stopped");
    const cuts = lines
      .map((l, i) => ({ l, i }))
      .filter(({ l }) => l.msg === "ws client disconnected: slow consumer");
    expect(cuts.length).toBe(STALLED);
    for (const { l, i } of cuts) {
      expect(i).toBeLessThan(stoppedAt);
      expect(l.queued as number).toBeGreaterThan(MAX_QUEUE);
      expect(l.conflated as number).toBeGreaterThan(0);
    }
    // k2 has exited, so each stalled connection is closed; this process sees it once it has read what
    // the kernel still buffers for it (several MB each), beside 190 readers' tails on a loaded machine
    const stalledClosed = Promise.all(stalled.map((s) => s.closed));
    if ((await Promise.race([stalledClosed.then(() => true), sleep(60_000).then(() => false)])) === false) {
      expect.fail(
        `stalled clients not closed 60 s after k2 exited: ${stalled.map((s) => `${s.received} received, close ${s.closeCode}`).join("; ")}`,
      );
    }
    for (const s of stalled) {
      expect([4000, 1006]).toContain(s.closeCode); // 1006 when terminated before it read the close frame
      expect(s.received).toBeLessThan(TRADES_IN_CAPTURE * 3);
      if (s.closeCode === 4000) expect(s.closeReason).toMatch(/^slow consumer: \d+ messages queued/);
    }

    // every reader: all trades from its first one to the capture's last, in order, none missing. The
    // k2 process closed every reader (1001) after what it was due; on a loaded machine this process may
    // still be reading the tail from its sockets: wait for each close, which comes after the data
    const readersClosed = Promise.all(readers.map((r) => r.closed));
    if ((await Promise.race([readersClosed.then(() => true), sleep(60_000).then(() => false)])) === false) {
      const open = readers.filter((r) => r.closeCode === null);
      throw new Error(`${open.length} readers not closed 60 s after k2 exited`);
    }
    const short = readers.filter((r) => r.seqs.at(-1) !== LAST_TRADE_ID);
    if (short.length > 0)
      console.log(
        `readers without the last trade: ${short.length}; ${short
          .slice(0, 5)
          .map((r) => `last ${r.seqs.at(-1)} close ${r.closeCode}`)
          .join(", ")}`,
      );
    const firsts = readers.map((r) => r.seqs[0]);
    for (const r of readers) {
      expect(r.seqs.length).toBeGreaterThan(TRADES_IN_CAPTURE * 0.5);
      expect(r.seqs.at(-1)).toBe(LAST_TRADE_ID);
      for (let i = 1; i < r.seqs.length; i++) {
        if (r.seqs[i] !== r.seqs[i - 1] + 1)
          throw new Error(`reader gap/out of order at ${r.seqs[i - 1]} → ${r.seqs[i]}`);
      }
      expect(r.closeCode).toBe(1001); // never cut as slow: closed when k2 stopped
    }
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeLessThan(TRADES_IN_CAPTURE * 0.5);
    for (const r of readers) r.ws.terminate();
  });
});
