/**
 * Feed liveness on loopback servers, with deadlines shrunk to ~hundreds of ms: a silent connection
 * (no frames, no pong) is terminated and reconnected; a venue that never answers the subscription
 * is too; a quiet venue that answers pings stays connected; invalid UTF-8 frames become dead letters
 * with their exact bytes without losing the connection; full-jitter backoff stays in its bounds and
 * resets only after a stable connection.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { type ConnectionState, VenueConnection } from "../../src/feed/connection.js";
import { backoffCeiling, feedLivenessProblems, seededRandom } from "../../src/feed/liveness.js";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { parseFaults } from "../../src/replay/faults.js";
import { binance } from "../../src/venues/binance.js";
import { sharedData } from "../helpers/capture.js";
import { waitFor } from "../helpers/run.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");
const FAST = { pingIntervalMs: 150, pongTimeoutMs: 150, firstFrameTimeoutMs: 300 };

const cleanup: (() => Promise<unknown> | undefined)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A loopback `ws` server whose connection handler the test writes; counts pings received. */
async function server(
  onConnection: (ws: WebSocket, n: number) => void,
  opts: { autoPong?: boolean } = {},
): Promise<{ url: string; pings: () => number; connections: () => number }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, autoPong: opts.autoPong ?? true });
  await new Promise((r) => wss.once("listening", r));
  let pings = 0;
  let n = 0;
  wss.on("connection", (ws) => {
    ws.on("ping", () => pings++);
    ws.on("error", () => undefined);
    onConnection(ws, ++n);
  });
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  );
  return {
    url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`,
    pings: () => pings,
    connections: () => n,
  };
}

function connect(url: string, extra: Partial<ConstructorParameters<typeof VenueConnection>[0]> = {}) {
  const conn = new VenueConnection({
    url,
    onOpenMessages: () => ['{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}'],
    maxMessagesPerSecond: 5,
    backoffInitialMs: 50,
    backoffMaxMs: 100,
    ...FAST,
    ...extra,
  });
  const errors: string[] = [];
  const states: ConnectionState[] = [];
  conn.on("state", (s, reason) => {
    states.push(s);
    if (s === "ERROR") errors.push(reason ?? "");
  });
  conn.on("error", () => undefined);
  cleanup.push(() => conn.stop());
  return { conn, errors, states };
}

describe("liveness watchdog", () => {
  it("does not judge a paused connection (backlog push-back), and judges again after resume", async () => {
    // one ack, then silence; pings are not answered
    const s = await server((ws) => ws.send('{"result":null,"id":1}'), { autoPong: false });
    const { conn, errors } = connect(s.url);
    conn.start();
    await waitFor(() => conn.framesReceived === 1, 5000, "the ack");
    conn.pause();
    // far past ping + pong (300 ms): a paused socket reads nothing, not even pongs
    await new Promise((r) => setTimeout(r, 1500));
    expect(conn.state).toBe("CONNECTED");
    expect(conn.deadConnections).toBe(0);
    expect(s.connections()).toBe(1);
    conn.resume();
    // the watchdog counts the dead connection when it terminates the socket; the ERROR state (and its
    // reason) follows on the socket's close event, a turn later (later still on a loaded machine)
    await waitFor(() => conn.deadConnections === 1 && errors.length > 0, 5000, "judged dead after resume");
    expect(errors[0]).toMatch(/silent for .* no frames and no pong/);
  });

  it("terminates a connection that goes silent (no frames, no pong) and reconnects", async () => {
    // one ack, then silence; pings are not answered
    const s = await server((ws) => ws.send('{"result":null,"id":1}'), { autoPong: false });
    const { conn, errors } = connect(s.url);
    // the /health sentence while the feed is dead, naming the exchange and the silence
    const problems: string[] = [];
    conn.on("state", (st) => {
      if (st === "ERROR")
        problems.push(...feedLivenessProblems([{ venue: { exchange: "BINANCE" }, connection: conn }]));
    });
    conn.start();
    const t0 = performance.now();
    await waitFor(() => errors.length > 0, 10_000, "the silent connection to be judged dead");
    const detectedMs = performance.now() - t0;
    expect(errors[0]).toMatch(/^silent for \d+\.\d s: no frames and no pong$/);
    expect(s.pings()).toBeGreaterThanOrEqual(1);
    // detected after the ping interval plus the pong timeout, not before
    expect(detectedMs).toBeGreaterThanOrEqual(FAST.pingIntervalMs + FAST.pongTimeoutMs - 20);
    expect(conn.deadConnections).toBeGreaterThanOrEqual(1);
    expect(problems[0]).toMatch(
      /^feed BINANCE silent for \d+\.\d s, reconnecting \(last connection: silent for .*no pong\)$/,
    );
    await waitFor(() => s.connections() >= 2, 10_000, "a reconnect");
  });

  it("terminates a connection whose venue never answers the subscription", async () => {
    const s = await server(() => undefined);
    const { conn, errors } = connect(s.url);
    conn.start();
    await waitFor(() => errors.length > 0, 10_000, "the first-frame deadline");
    expect(errors[0]).toMatch(/^no first frame within \d+\.\d s after subscribing/);
    expect(conn.liveness()).toMatch(/^silent for \d+\.\d s, reconnecting \(last connection: no first frame/);
    await waitFor(() => s.connections() >= 2, 10_000, "a reconnect");
  });

  it("keeps a quiet connection whose server answers pings", async () => {
    const s = await server((ws) => ws.send('{"result":null,"id":1}'));
    const { conn, states } = connect(s.url);
    conn.start();
    // several ping cycles without a single data frame
    await waitFor(() => s.pings() >= 5, 10_000, "five pings answered");
    expect(states).toEqual(["CONNECTING", "CONNECTED"]);
    expect(conn.liveness()).toBeNull();
    expect(conn.silentForMs()).toBeGreaterThan(4 * FAST.pingIntervalMs);
    expect(s.connections()).toBe(1);
  });

  it("the replay server with no-pong is judged dead once the capture ends; without, it stays up", async () => {
    const sub = { symbols: ["BTCUSDT"], streams: ["trade"] };
    for (const noPong of [true, false]) {
      const replay = new BinanceReplayServer({
        file: FILE,
        speed: "max",
        ...(noPong ? { faults: parseFaults("no-pong") } : {}),
      });
      await replay.start();
      cleanup.push(() => replay.stop());
      const ended = new Promise((r) => replay.once("end", r));
      const { conn, errors } = connect("", { ...binance.connection(replay.url, sub), ...FAST });
      conn.start();
      await ended;
      if (noPong) {
        await waitFor(() => errors.length > 0, 10_000, "no-pong to be detected");
        expect(errors[0]).toMatch(/no frames and no pong/);
        expect(replay.faultCounts()?.pings_unanswered).toBeGreaterThanOrEqual(1);
      } else {
        const quiet = performance.now();
        await waitFor(() => performance.now() - quiet > 6 * FAST.pingIntervalMs, 10_000);
        expect(errors).toEqual([]);
        expect(conn.state).toBe("CONNECTED");
      }
      await conn.stop();
    }
  });
});

describe("raw bytes", () => {
  it("dead-letters invalid UTF-8 (text or binary) with the exact bytes and keeps the connection", async () => {
    const bad = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0xc3, 0x28, 0xff, 0x7d]); // {"a":<bad>}
    const s = await server((ws) => {
      ws.send(bad, { binary: false }); // a text frame that is not UTF-8
      ws.send(Buffer.from('{"binary":"ok é"}'), { binary: true }); // binary, valid UTF-8
      ws.send(Buffer.from([0x80, 0x81, 0x00]), { binary: true }); // binary, not UTF-8
      ws.send('{"after":1}');
    });
    const { conn, states } = connect(s.url);
    const frames: string[] = [];
    const invalid: { bytes: Buffer; binary: boolean }[] = [];
    conn.on("frame", (raw) => frames.push(raw));
    conn.on("invalidUtf8", (bytes, _at, binary) => invalid.push({ bytes: Buffer.from(bytes), binary }));
    conn.start();
    await waitFor(() => frames.length === 2 && invalid.length === 2, 5000, "four frames");
    expect(frames).toEqual(['{"binary":"ok é"}', '{"after":1}']);
    expect(invalid.map((i) => i.binary)).toEqual([false, true]);
    expect(invalid[0].bytes.toString("base64")).toBe(bad.toString("base64"));
    expect(invalid[1].bytes.toString("base64")).toBe("gIEA");
    expect(conn.framesReceived).toBe(4);
    expect(states).toEqual(["CONNECTING", "CONNECTED"]); // no 1007 close, no reconnect
    expect(s.connections()).toBe(1);
  });
});

describe("full-jitter backoff", () => {
  it("draws each delay in [0, min(cap, base·2^(n−1))] from the injected random source", () => {
    const conn = new VenueConnection({
      url: "ws://127.0.0.1:1",
      onOpenMessages: () => [],
      maxMessagesPerSecond: 5,
      random: seededRandom(42),
    });
    const expected = seededRandom(42);
    const ceilings = [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000];
    for (const [i, ceiling] of ceilings.entries()) {
      expect(conn.backoffCeiling(i + 1)).toBe(ceiling);
      const d = conn.backoffDelay(i + 1);
      expect(d).toBe(Math.floor(expected() * (ceiling + 1)));
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
    // delays of many processes spread over the whole range instead of all being 4000
    const r = seededRandom(7);
    const many = Array.from({ length: 200 }, () => Math.floor(r() * (backoffCeiling(3, 1000, 60000) + 1)));
    expect(Math.min(...many)).toBeLessThan(500);
    expect(Math.max(...many)).toBeGreaterThan(3500);
  });

  it("counts failed attempts up across short-lived connections and resets only after stableAfterMs", async () => {
    // connections 1-3 deliver one frame and are dropped at once; the 4th stays up
    const s = await server((ws, n) => {
      ws.send('{"result":null,"id":1}');
      if (n <= 3) setTimeout(() => ws.terminate(), 20);
    });
    const { conn } = connect(s.url, {
      backoffInitialMs: 40,
      backoffMaxMs: 10_000,
      stableAfterMs: 400,
      random: () => 0.5,
      pingIntervalMs: 5000,
    });
    const attempts: { n: number; delay: number }[] = [];
    conn.on("reconnect", (n, delay) => attempts.push({ n, delay }));
    conn.start();
    await waitFor(() => attempts.length >= 3, 10_000, "three reconnects");
    // one frame per connection does not reset the count: 1, 2, 3 with delays half of 40, 80, 160
    expect(attempts.slice(0, 3)).toEqual([
      { n: 1, delay: 20 },
      { n: 2, delay: 40 },
      { n: 3, delay: 80 },
    ]);
    await waitFor(() => conn.state === "CONNECTED" && s.connections() >= 4, 10_000, "a lasting connection");
    await waitFor(() => conn.backoffAttempt === 0, 10_000, "the stable connection to reset the backoff");
    expect(attempts.length).toBe(3);
  });
});
