/**
 * History then live against the built CLI: `k2 run --replay btcusdt_20240808.gz --speed 5` (gateway in
 * its worker processes, so history pages reach them over IPC). Once about half the trades are stored,
 * a client subscribes `from` the file's first trade time: it gets each of the 9,757 trades exactly
 * once, in trade-id order, and `replay_done` comes inside the run (the test prints where). Then, while
 * the run goes on, REST over [first trade, now] returns exactly the trades received so far: a prefix of the file's trade
 * ids, between the pipeline's own normalized count before and after the walk, and at least as many
 * as were stored when it began (the unflushed tail included). A token limited by
 * `K2_REPLAY_MAX_RANGE` gets a 416 error frame.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { K2Client } from "../../src/client.js";
import type { QuoteV2, TradeV2 } from "../../src/schema/records.js";
import {
  CAPTURE,
  ensureBuilt,
  FIRST_TRADE_ID,
  type K2Process,
  LAST_TRADE_ID,
  metricValue,
  sleep,
  spawnK2Run,
  TestClient,
  TRADES_IN_CAPTURE,
  tempDir,
} from "./helpers.js";

const TOKEN = "history-token-1";
const LIMITED = "limited-token-2";
const auth = { Authorization: `Bearer ${TOKEN}` };
const tmp = tempDir();
let k2: K2Process;
let base: string;

beforeAll(async () => {
  ensureBuilt();
  k2 = await spawnK2Run(
    [
      "--replay",
      CAPTURE,
      "--speed",
      // 72 s for the file: after half of it is stored, the client's history (about 4,900 trades, paged to a
      // gateway worker over IPC) must be sent before the replay ends; at --speed 10 a loaded machine once
      // took longer than the 18 s left, so the switch came after the last trade
      "5",
      "--http-port",
      "0",
      "--db",
      `${tmp.dir}/k2.duckdb`,
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
    ],
    { K2_API_TOKENS: `${TOKEN},${LIMITED}`, K2_REPLAY_MAX_RANGE: `0,${LIMITED}=1h`, K2_WS_WORKERS: "2" },
  );
  base = `http://127.0.0.1:${k2.port}`;
}, 60_000);

afterAll(async () => {
  if (k2 && k2.child.exitCode === null) {
    k2.child.kill("SIGINT");
    await Promise.race([k2.exited, sleep(10_000)]);
    if (k2.child.exitCode === null) k2.child.kill("SIGKILL");
  }
  tmp.cleanup();
});

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const v = metricValue(text, name, labels);
  return Number.isNaN(v) ? 0 : v; // no line before the first record
}

const normalized = () => metric("k2_records_normalized_total", '{exchange="BINANCE",data_type="trades"}');
const storedTrades = () => metric("k2_records_stored_total", '{table="trades_v2"}');

/** Every trade from `from` on over REST, following `next_cursor` until it is null. */
async function restTrades(from: number): Promise<TradeV2[]> {
  const out: TradeV2[] = [];
  let cursor: string | null = null;
  do {
    const q = new URLSearchParams({ symbol: "BTCUSDT", from: String(from), order: "asc", limit: "1000" });
    if (cursor) q.set("cursor", cursor);
    const res = await fetch(`${base}/api/v1/trades?${q}`, { headers: auth });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: TradeV2[]; next_cursor: string | null };
    out.push(...body.data);
    cursor = body.next_cursor;
  } while (cursor);
  return out;
}

/** Bytes each way over one proxied connection, with the start of each direction's text. */
interface ProxiedConnection {
  up: number;
  down: number;
  sent: string;
  received: string;
}

/**
 * A TCP proxy to the k2 port whose connections {@link cut} destroys (the client sees a drop); it counts
 * what went over each connection.
 */
async function cuttableProxy(
  port: number,
): Promise<{ port: number; cut: () => void; server: Server; connections: ProxiedConnection[] }> {
  const open = new Set<Socket>();
  const connections: ProxiedConnection[] = [];
  const server = createServer((c) => {
    const s = createConnection(port, "127.0.0.1");
    const seen: ProxiedConnection = { up: 0, down: 0, sent: "", received: "" };
    connections.push(seen);
    c.on("data", (d: Buffer) => {
      seen.up += d.length;
      if (seen.sent.length < 300) seen.sent += d.toString("latin1").slice(0, 300);
    });
    s.on("data", (d: Buffer) => {
      seen.down += d.length;
      if (seen.received.length < 300) seen.received += d.toString("latin1").slice(0, 300);
    });
    for (const x of [c, s]) {
      open.add(x);
      x.on("close", () => open.delete(x));
      x.on("error", () => undefined);
    }
    c.pipe(s);
    s.pipe(c);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : 0,
    server,
    connections,
    cut: () => {
      for (const x of open) x.destroy();
    },
  };
}

const idOf = (t: TradeV2) => Number(t.trade_id.slice(t.trade_id.indexOf("-") + 1));

describe("subscribe from a point in time during a replay", () => {
  // first, on a fresh gateway: once (in one loaded CI run of several) it got no answer within 10 s when it
  // ran after the stream test's cut connections — an open question (replays of closed clients?), noted on #16
  it("answers a from beyond the token's K2_REPLAY_MAX_RANGE with a 416 error frame", async () => {
    const c = await TestClient.open(`ws://127.0.0.1:${k2.port}/ws`, {
      headers: { Authorization: `Bearer ${LIMITED}` },
    });
    const reply = await c.request({
      op: "subscribe",
      channel: "trades",
      symbols: ["BTCUSDT"],
      from: "2024-08-08T00:00:00Z",
      id: 7,
    });
    expect(reply).toMatchObject({ type: "error", id: 7, field: "from", code: 416 });
    expect(String(reply.error)).toContain("K2_REPLAY_MAX_RANGE");
    c.close();
  });

  it("gets every trade once, in order, switching to live inside the run; REST includes the unflushed tail", async () => {
    // about half the trades stored
    const deadline = Date.now() + 120_000;
    while ((await storedTrades()) < TRADES_IN_CAPTURE / 2) {
      if (Date.now() > deadline) throw new Error("half the trades were not stored within 120 s");
      await sleep(50);
    }
    const first = await (
      await fetch(`${base}/api/v1/trades?symbol=BTCUSDT&order=asc&limit=1`, { headers: auth })
    ).json();
    const fromUs = (first as { data: TradeV2[] }).data[0].timestamp;
    expect(idOf((first as { data: TradeV2[] }).data[0])).toBe(FIRST_TRADE_ID);

    const c = await TestClient.open(
      `ws://127.0.0.1:${k2.port}/ws`,
      { headers: auth },
      (m) => m.type === "trade",
    );
    let doneAt = -1;
    let doneMsg: Record<string, unknown> | null = null;
    c.ws.on("message", (d) => {
      const m = JSON.parse(d.toString()) as Record<string, unknown>;
      if (m.type === "replay_done") {
        doneAt = c.messages.length;
        doneMsg = m;
      }
    });
    // client.stream through a proxy: cut twice during the replay, once after the switch
    const proxy = await cuttableProxy(k2.port);
    const streamClient = new K2Client({
      url: `ws://127.0.0.1:${proxy.port}/ws`,
      token: TOKEN,
      backoffInitialMs: 100,
    });
    const abort = new AbortController();
    const streamed: number[] = [];
    const cuts: string[] = [];
    let replaying = true;
    let since = 0; // records since the last (re)connection or switch
    const events: string[] = [];
    const t0 = performance.now();
    const streaming = (async () => {
      for await (const r of streamClient.stream({
        symbols: ["BTCUSDT"],
        channels: ["trades"],
        from: fromUs,
        signal: abort.signal,
        onReconnect: (attempt, delay) => {
          const at = Math.round(performance.now() - t0);
          events.push(`reconnect ${attempt} after ${delay} ms, at record ${streamed.length}, ${at} ms in`);
          replaying = true;
          since = 0;
        },
        onReplayDone: () => {
          replaying = false;
          since = 0;
        },
      })) {
        streamed.push(idOf(r.data as TradeV2));
        since++;
        const n = streamed.length;
        if (replaying && cuts.length < 2 && since === 1500) {
          cuts.push(`during replay ${cuts.length + 1} at record ${n}`);
          proxy.cut();
        } else if (!replaying && cuts.length === 2 && since === 300) {
          cuts.push(`after the switch at record ${n}`);
          proxy.cut();
        }
        if (n >= TRADES_IN_CAPTURE) break;
      }
    })();
    const storedAtSubscribe = await storedTrades();
    const sub = await c.request({
      op: "subscribe",
      channel: "trades",
      symbols: ["BTCUSDT"],
      from: new Date(fromUs / 1000).toISOString(),
      id: "h1",
    });
    expect(sub).toMatchObject({
      type: "subscribed",
      id: "h1",
      channel: "trades",
      from: Math.floor(fromUs / 1000) * 1000,
    });

    // the switch first (REST reads would compete with the replay's pages for the store's read connection)
    const switchEnd = Date.now() + 60_000;
    while (!doneMsg && Date.now() < switchEnd) await sleep(20);
    expect(doneMsg).not.toBeNull();

    // REST during the run: exactly the trades received so far
    const storedBefore = await storedTrades();
    const before = await normalized();
    const rest = await restTrades(fromUs);
    const after = await normalized();
    const restIds = rest.map(idOf);
    expect(restIds).toEqual(Array.from({ length: rest.length }, (_, i) => FIRST_TRADE_ID + i));
    expect(rest.length).toBeGreaterThanOrEqual(Math.max(before, storedBefore));
    expect(rest.length).toBeLessThanOrEqual(after);
    console.log(
      `REST [first trade, now]: ${rest.length} trades; pipeline normalized ${before}..${after} around the walk, stored ${storedBefore} when it began`,
    );

    // the client: every trade once, in order
    const end = Date.now() + 120_000;
    while (c.messages.length < TRADES_IN_CAPTURE && Date.now() < end) await sleep(100);
    await sleep(500); // nothing more (no duplicate) arrives
    const ids = c.messages.map((m) => idOf(m.data as TradeV2));
    expect(ids.length).toBe(TRADES_IN_CAPTURE);
    expect(ids[0]).toBe(FIRST_TRADE_ID);
    expect(ids[ids.length - 1]).toBe(LAST_TRADE_ID);
    for (let i = 1; i < ids.length; i++)
      if (ids[i] !== ids[i - 1] + 1) expect.fail(`trade ${i}: ${ids[i - 1]} then ${ids[i]}`);
    expect(doneMsg).toMatchObject({ type: "replay_done", event: "replay_done", id: "h1", channel: "trades" });
    // the switch is inside the run: history first, then live trades
    expect(doneAt).toBeGreaterThan(storedAtSubscribe - 1);
    expect(doneAt).toBeLessThan(TRADES_IN_CAPTURE);
    console.log(
      `replay_done after ${doneAt} trades (trade id ${ids[doneAt - 1]}; ${storedAtSubscribe} stored at subscribe); ${TRADES_IN_CAPTURE - doneAt} trades live after the switch`,
    );
    c.close();

    await Promise.race([streaming, sleep(90_000)]);
    abort.abort();
    proxy.server.close();
    console.log(`client.stream: cuts ${cuts.join("; ")}; ${streamed.length} trades`);
    if (cuts.length !== 3 || streamed.length !== TRADES_IN_CAPTURE) {
      // what went over each proxied connection, the stream's reconnects and k2's warnings (a CI run under
      // load once streamed nothing at all, without an error)
      console.log(`client.stream connections: ${JSON.stringify(proxy.connections)}`);
      console.log(`client.stream reconnects: ${events.join("; ") || "none"}`);
      const warnings = k2
        .stderr()
        .split("\n")
        .filter((l) => /"level":(40|50)/.test(l));
      console.log(`k2 warnings and errors:\n${warnings.join("\n")}`);
    }
    expect(cuts.length).toBe(3);
    expect(streamed).toEqual(Array.from({ length: TRADES_IN_CAPTURE }, (_, i) => FIRST_TRADE_ID + i));
  }, 360_000);

  it("client.replay over the whole stored file: every trade and quote, merged in time order", async () => {
    const quotesStored = () => metric("k2_records_stored_total", '{table="quotes_v2"}');
    const end = Date.now() + 120_000;
    while ((await storedTrades()) < TRADES_IN_CAPTURE || (await quotesStored()) < 28_040) {
      if (Date.now() > end) throw new Error("the file was not stored within 120 s");
      await sleep(100);
    }
    const client = new K2Client({ url: `ws://127.0.0.1:${k2.port}/ws`, token: TOKEN });
    let trades = 0;
    let quotes = 0;
    let prev: TradeV2 | QuoteV2 | null = null;
    for await (const r of client.replay({ symbols: ["BTCUSDT"], channels: ["trades", "quotes"], from: 0 })) {
      if (r.channel === "trades") trades++;
      else quotes++;
      if (prev) {
        const t = r.data.timestamp - prev.timestamp;
        if (t < 0 || (t === 0 && (r.data.source_sequence ?? -1) < (prev.source_sequence ?? -1)))
          expect.fail(`out of order at record ${trades + quotes}`);
      }
      prev = r.data;
    }
    expect(trades).toBe(TRADES_IN_CAPTURE);
    expect(quotes).toBe(28_040);
  }, 240_000);
});
