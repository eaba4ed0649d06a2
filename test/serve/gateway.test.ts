/**
 * WebSocket gateway against a real `k2 run --replay btcusdt_20240808.gz` (in process, --speed 10):
 * requests and replies with ids, validation errors naming the field, live trades/quotes/ticks,
 * unsubscribe, batching, heartbeat and idle close (shortened intervals), status and metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningPipeline } from "../../src/run.js";
import { QuoteV2Schema, TradeV2Schema } from "../../src/schema/validators.js";
import { metricValue, sleep, startReplayRun, TestClient, tempDir } from "./helpers.js";

let run: RunningPipeline;
let url: string;
let base: string;
const tmp = tempDir();

beforeAll(async () => {
  run = await startReplayRun({
    db: `${tmp.dir}/k2.duckdb`,
    speed: "10",
    env: { K2_WS_HEARTBEAT_MS: "200", K2_WS_IDLE_TIMEOUT_MS: "1000" },
  });
  url = `ws://127.0.0.1:${run.httpPort}/ws`;
  base = `http://127.0.0.1:${run.httpPort}`;
});

afterAll(async () => {
  await run?.stop("test done");
  tmp.cleanup();
});

describe("requests and replies", () => {
  it("answers subscribe, unsubscribe and ping with the request's id (string or number)", async () => {
    const c = await TestClient.open(url);
    const sub = await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 41 });
    expect(sub).toEqual({ type: "subscribed", id: 41, channel: "trades", symbols: ["BTCUSDT"], batch_ms: 0 });
    const more = await c.request({ op: "subscribe", channel: "trades", symbols: ["ETHUSDT"], id: "s-2" });
    expect(more).toMatchObject({ type: "subscribed", id: "s-2", symbols: ["BTCUSDT", "ETHUSDT"] });
    const pong = await c.request({ op: "ping", id: "p" });
    expect(pong.type).toBe("pong");
    expect(pong.id).toBe("p");
    expect(Math.abs((pong.ts as number) / 1000 - Date.now())).toBeLessThan(5000);
    const unsub = await c.request({ op: "unsubscribe", channel: "trades", symbols: ["ETHUSDT"], id: 42 });
    expect(unsub).toEqual({ type: "unsubscribed", id: 42, channel: "trades", symbols: ["BTCUSDT"] });
    c.close();
  });

  it.each([
    [{ op: "subscribe", channel: "candles.2m", symbols: ["BTCUSDT"], id: 1 }, "channel"],
    [{ op: "subscribe", channel: "trades", symbols: ["btc usdt"], id: 2 }, "symbols.0"],
    // seconds and ms are refused as the REST API refuses them (read as µs they would be 1970)
    [{ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], from: 1723161360, id: 10 }, "from"],
    [{ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], from: "1723161360000", id: 11 }, "from"],
    [{ op: "subscribe", channel: "book.0", symbols: ["BTCUSDT"], id: 1 }, "channel"],
    [{ op: "subscribe", channel: "book.1001", symbols: ["BTCUSDT"], id: 1 }, "channel"],
    [{ op: "subscribe", channel: "book.010", symbols: ["BTCUSDT"], id: 1 }, "channel"],
    [{ op: "subscribe", channel: "ticks", symbols: ["BTCUSDT"], from: 0, id: 1 }, "from"],
    [{ op: "subscribe", channel: "trades", symbols: [], id: 3 }, "symbols"],
    [{ op: "subscribe", channel: "trades", id: 4 }, "symbols"],
    [{ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], batch_ms: 2.5, id: 5 }, "batch_ms"],
    [{ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], batch_ms: -1, id: 6 }, "batch_ms"],
    [
      { op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], sql: "1;DROP TABLE trades_v2", id: 7 },
      "sql",
    ],
    [{ op: "fetch", id: 8 }, "op"],
    [{ op: "unsubscribe", channel: "quotes", symbols: "BTCUSDT", id: 9 }, "symbols"],
  ])("rejects %j naming field %s", async (msg, field) => {
    const c = await TestClient.open(url);
    const reply = await c.request(msg as Record<string, unknown> & { id: number });
    expect(reply.type).toBe("error");
    expect(reply.id).toBe(msg.id);
    expect(reply.field).toBe(field);
    expect(String(reply.error).startsWith(`${field}:`)).toBe(true);
    // the connection stays usable
    expect((await c.request({ op: "ping", id: "after" })).type).toBe("pong");
    c.close();
  });

  it("rejects malformed JSON, non-objects and binary frames without an id", async () => {
    const c = await TestClient.open(url);
    const errors = c.next((m) => m.type === "error");
    c.send("{not json");
    expect(await errors).toEqual({ type: "error", id: null, field: null, error: "invalid JSON" });
    const arr = c.next((m) => m.type === "error");
    c.send("[1,2]");
    expect((await arr).error).toBe("expected a JSON object");
    const bin = c.next((m) => m.type === "error");
    c.ws.send(Buffer.from('{"op":"ping"}'), { binary: true });
    expect((await bin).error).toBe("expected a JSON text frame");
    c.close();
  });

  it("answers 404 to an upgrade on another path", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${run.httpPort}/other`);
    const err = await new Promise<Error>((res) => ws.on("error", res));
    expect(err.message).toContain("404");
  });
});

describe("live data", () => {
  it("delivers trades of the subscribed symbol in venue order, valid TradeV2, and stops after unsubscribe", async () => {
    const c = await TestClient.open(url);
    await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
    await c.next((m) => m.type === "trade");
    while (c.messages.filter((m) => m.type === "trade").length < 20) await sleep(50);
    const unsub = await c.request({ op: "unsubscribe", channel: "trades", symbols: ["BTCUSDT"], id: 2 });
    const at = c.messages.indexOf(unsub);
    const trades = c.messages.filter((m) => m.type === "trade").map((m) => TradeV2Schema.parse(m.data));
    expect(trades.length).toBeGreaterThanOrEqual(20);
    for (const t of trades) expect(t.symbol).toBe("BTCUSDT");
    const seqs = trades.map((t) => t.source_sequence as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1] + 1);
    await sleep(600); // trades flow at ~280/s: none may follow the unsubscribed reply
    expect(c.messages.slice(at + 1).filter((m) => m.type === "trade")).toEqual([]);
    c.close();
  });

  it("takes symbols in any case, as the REST API does: btcusdt is BTCUSDT", async () => {
    const c = await TestClient.open(url);
    const sub = await c.request({ op: "subscribe", channel: "trades", symbols: ["btcusdt"], id: 1 });
    expect(sub).toMatchObject({ type: "subscribed", symbols: ["BTCUSDT"] });
    const t = TradeV2Schema.parse((await c.next((m) => m.type === "trade")).data);
    expect(t.symbol).toBe("BTCUSDT");
    const unsub = await c.request({ op: "unsubscribe", channel: "trades", symbols: ["BtcUsdt"], id: 2 });
    expect(unsub).toMatchObject({ type: "unsubscribed", symbols: [] });
    c.close();
  });

  it("delivers quotes (QuoteV2) and ticks whose fields match the latest trade and quote", async () => {
    const c = await TestClient.open(url);
    await c.request({ op: "subscribe", channel: "quotes", symbols: ["*"], id: "q" });
    const q = await c.next((m) => m.type === "quote");
    const quote = QuoteV2Schema.parse(q.data);
    expect(quote.symbol).toBe("BTCUSDT");
    // a ticks subscription starts with the current tick (snapshot), then updates
    const snap = c.next((m) => m.type === "tick");
    await c.request({ op: "subscribe", channel: "ticks", symbols: ["BTCUSDT"], id: "t" });
    const tick = (await snap).data as Record<string, unknown>;
    expect(tick.symbol).toBe("BTCUSDT");
    expect(tick.exchange).toBe("BINANCE");
    expect(tick.last_price).toMatch(/^\d+\.\d{8}$/);
    expect(tick.bid_price).toMatch(/^\d+\.\d{8}$/);
    expect(BigInt((tick.ask_price as string).replace(".", ""))).toBeGreaterThanOrEqual(
      BigInt((tick.bid_price as string).replace(".", "")),
    );
    // after a trade, the next tick carries that trade's price
    await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: "tr" });
    const trade = (await c.next((m) => m.type === "trade")).data as Record<string, unknown>;
    const after = c.messages.slice(c.messages.findIndex((m) => m.type === "trade" && m.data === trade) + 1);
    const nextTick = after.find((m) => m.type === "tick") ?? (await c.next((m) => m.type === "tick"));
    const t2 = nextTick.data as Record<string, unknown>;
    expect(t2.last_price).toBe(trade.price);
    expect(t2.last_trade_time).toBe(trade.timestamp);
    c.close();
  });

  it("with batch_ms delivers arrays at most every batch_ms, in order", async () => {
    const c = await TestClient.open(url);
    const times: number[] = [];
    c.ws.on("message", (d) => {
      if (String(d).startsWith('{"type":"batch"')) times.push(performance.now());
    });
    const subscribedAt = performance.now();
    const r = await c.request({
      op: "subscribe",
      channel: "trades",
      symbols: ["BTCUSDT"],
      batch_ms: 250,
      id: 1,
    });
    expect(r.batch_ms).toBe(250);
    while (times.length < 5) await sleep(50);
    c.close();
    const window = performance.now() - subscribedAt;
    const batches = c.messages.filter((m) => m.type === "batch");
    expect(c.messages.filter((m) => m.type === "trade")).toEqual([]);
    const trades = batches.flatMap((b) => b.data as Record<string, unknown>[]);
    expect(trades.length).toBeGreaterThan(5);
    for (const b of batches) expect(b.channel).toBe("trades");
    const seqs = trades.map((t) => t.source_sequence as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe(seqs[i - 1] + 1);
    // at most one batch per 250 ms over the whole window (counted, not measured between arrivals: a
    // client whose event loop was busy reads two batches back to back, yet the server kept the pace)
    expect(batches.length).toBeLessThanOrEqual(Math.floor(window / 250) + 1);
  });
});

describe("heartbeat and idle timeout (heartbeat 200 ms, idle 1000 ms)", () => {
  it("sends heartbeats and closes a client that sends nothing and does not answer pings with 4001", async () => {
    // timed from before the connection opens: the server's idle clock starts at its accept, which a
    // loaded machine may report to the client 100 ms or more later
    const opened = performance.now();
    const silent = await TestClient.open(url, { autoPong: false });
    await silent.closed;
    const after = performance.now() - opened;
    expect(silent.closeCode).toBe(4001);
    expect(silent.closeReason).toMatch(/^idle: nothing received for 1000 ms/);
    expect(after).toBeGreaterThan(900);
    expect(after).toBeLessThan(15_000); // closed for idleness, not by the test's end
    const beats = silent.messages.filter((m) => m.type === "heartbeat");
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(typeof beats[0].ts).toBe("number");
  });

  it("keeps clients that ping or answer WebSocket pings", async () => {
    const pinger = await TestClient.open(url, { autoPong: false });
    const ponger = await TestClient.open(url); // ws answers pings by default
    const timer = setInterval(() => pinger.send({ op: "ping" }), 300);
    await sleep(2500);
    clearInterval(timer);
    expect(pinger.closeCode).toBeNull();
    expect(ponger.closeCode).toBeNull();
    expect(ponger.messages.filter((m) => m.type === "heartbeat").length).toBeGreaterThanOrEqual(5);
    pinger.close();
    ponger.close();
  });
});

describe("status and metrics", () => {
  it("reports feed health at /api/v1/status and gateway counters in /metrics", async () => {
    const c = await TestClient.open(url);
    await c.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 });
    await c.next((m) => m.type === "trade");
    await sleep(1100);
    const status = (await (await fetch(`${base}/api/v1/status`)).json()) as {
      status: string;
      symbols: string[];
      feeds: { frames: number; trades: number; frames_per_s: number }[];
      gateway: { clients: number };
    };
    expect(status.status).toBe("ok");
    expect(status.symbols).toEqual(["BTCUSDT"]);
    const feed = status.feeds[0];
    expect(feed).toMatchObject({ exchange: "BINANCE", state: "CONNECTED", dead_letters: 0, gaps: 0 });
    expect(feed.frames).toBeGreaterThan(0);
    expect(feed.frames).toBeLessThanOrEqual(run.feed.counts.frames);
    expect(feed.trades).toBeGreaterThan(0);
    expect(feed.frames_per_s).toBeGreaterThan(0);
    expect(status.gateway.clients).toBeGreaterThanOrEqual(1);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(metricValue(text, "k2_ws_clients")).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, "k2_ws_messages_sent_total")).toBeGreaterThanOrEqual(c.messages.length);
    expect(metricValue(text, "k2_ws_disconnects_total", '{reason="idle"}')).toBeGreaterThanOrEqual(1);
    c.close();
  });
});
