/**
 * VenueConnection: backoff schedule, Binance's 5 messages/s outbound limit (the replay server closes a
 * connection that exceeds it, as Binance does), and make-before-break rollover before the 24 h limit.
 */
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { type ConnectionState, VenueConnection } from "../../src/feed/connection.js";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { binance } from "../../src/venues/binance.js";
import { sharedData } from "../helpers/capture.js";
import { waitFor } from "../helpers/run.js";

const FILE = sharedData("binance-spot/btcusdt_20240808.gz");

describe("backoff", () => {
  it("ceiling starts at 1 s, doubles, and caps at 60 s; each delay is drawn in [0, ceiling]", () => {
    const draws = [0, 0.999999, 0.5];
    let i = 0;
    const c = new VenueConnection({
      url: "ws://127.0.0.1:1",
      onOpenMessages: () => [],
      maxMessagesPerSecond: 5,
      random: () => draws[i++ % draws.length],
    });
    expect([1, 2, 3, 4, 5, 6, 7, 8, 20].map((n) => c.backoffCeiling(n))).toEqual([
      1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000,
    ]);
    // full jitter: the lowest draw gives 0, the highest the ceiling itself, a middle one half of it
    expect([3, 3, 3].map((n) => c.backoffDelay(n))).toEqual([0, 4000, 2000]);
    expect([20, 20, 20].map((n) => c.backoffDelay(n))).toEqual([0, 60000, 30000]);
  });
});

describe("outbound rate limit", () => {
  it("sends 12 subscription requests at no more than 5 per second", async () => {
    // a plain server that timestamps what it receives and acks each request, as Binance does
    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise((r) => wss.once("listening", r));
    const received: { id: number; at: number }[] = [];
    wss.on("connection", (ws) =>
      ws.on("message", (d) => {
        const m = JSON.parse(d.toString());
        received.push({ id: m.id, at: performance.now() });
        ws.send(JSON.stringify({ result: null, id: m.id }));
      }),
    );
    const requests = Array.from({ length: 12 }, (_, i) =>
      JSON.stringify({ method: i % 2 ? "UNSUBSCRIBE" : "SUBSCRIBE", params: ["btcusdt@trade"], id: i + 1 }),
    );
    const conn = new VenueConnection({
      url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/ws`,
      onOpenMessages: () => requests,
      maxMessagesPerSecond: 5,
    });
    const acks: number[] = [];
    const states: ConnectionState[] = [];
    conn.on("state", (s) => states.push(s));
    conn.on("frame", (raw) => acks.push(JSON.parse(raw).id));
    conn.start();
    try {
      await waitFor(() => acks.length === 12, 6000, "12 acks");
      expect(acks).toEqual(requests.map((_, i) => i + 1));
      expect(received.map((r) => r.id)).toEqual(acks);
      // any 6 consecutive requests span more than a second at the server
      for (let i = 5; i < received.length; i++)
        expect(received[i].at - received[i - 5].at).toBeGreaterThan(1000);
      expect(states).not.toContain("ERROR");
    } finally {
      await conn.stop();
      await new Promise((r) => wss.close(r));
    }
  });

  it("the replay server, like Binance, closes a client that floods it", async () => {
    const server = new BinanceReplayServer({ file: FILE, speed: "max" });
    await server.start();
    const conn = new VenueConnection({
      url: `${server.url}/ws`,
      onOpenMessages: () =>
        Array.from({ length: 8 }, (_, i) => JSON.stringify({ method: "SUBSCRIBE", params: [], id: i })),
      maxMessagesPerSecond: 100, // a misconfigured limit
      backoffInitialMs: 60_000,
    });
    const reasons: string[] = [];
    conn.on("state", (s, r) => s === "ERROR" && reasons.push(r ?? ""));
    conn.start();
    try {
      await waitFor(() => reasons.length > 0, 5000, "disconnect");
      expect(reasons[0]).toMatch(/closed 1008 Too many requests/);
    } finally {
      await conn.stop();
      await server.stop();
    }
  });
});

describe("24 h connection limit", () => {
  it("opens a replacement before the limit and closes the old one only after the new one delivers", async () => {
    const server = new BinanceReplayServer({ file: FILE, speed: 40 });
    await server.start();
    const paths: string[] = [];
    server.on("connection", (p) => paths.push(p));
    const sub = { symbols: ["BTCUSDT"], streams: ["trade", "bookTicker"] };
    const conn = new VenueConnection({
      ...binance.connection(server.url, sub),
      maxConnectionAgeMs: 1500, // stands in for Binance's 24 h
      rolloverLeadMs: 1000,
    });
    const states: ConnectionState[] = [];
    conn.on("state", (s) => states.push(s));
    conn.start();
    try {
      await waitFor(() => paths.length >= 2, 5000, "the replacement connection");
      // the old connection is closed once the replacement delivers, and frames keep coming
      await waitFor(() => server.connections === 1, 5000, "the old connection to close");
      const before = conn.framesReceived;
      await waitFor(() => conn.framesReceived > before + 100, 5000, "frames on the replacement");
      expect(states).toEqual(["CONNECTING", "CONNECTED"]); // never ERROR, never a gap in service
      expect(paths[1]).toBe(paths[0]); // same streams resubscribed
    } finally {
      await conn.stop();
      await server.stop();
    }
  });
});
