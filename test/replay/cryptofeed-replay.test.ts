/**
 * Replays of the cryptofeed recordings through the real pipeline (replay server on loopback → venue
 * feed handler → memory bus → DuckDB), checked against counts the test makes itself from the raw file.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { CryptofeedReplayServer } from "../../src/replay/cryptofeed-replay-server.js";
import { type RunSummary, startRun } from "../../src/run.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { BINANCE_FILE, COINBASE_FILE, dec8, KRAKEN_FILE, type Line, lines } from "../venues/recording.js";

const dir = mkdtempSync(join(tmpdir(), "k2-cryptofeed-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");
let dbN = 0;

/** Runs `k2 run --exchange <exchange> --replay <file> --exit-at-end` in-process; returns summary + db path. */
async function replay(exchange: string, file: string, db = join(dir, `db${++dbN}.duckdb`), extra = {}) {
  const config = resolveRunConfig(
    { exchange, replay: file, db, httpPort: "0", exitAtEnd: true, batchMaxWaitMs: "50", ...extra },
    {},
  );
  const running = await startRun(config, logger, { replayInProcess: true });
  await running.replayDone;
  const summary: RunSummary = await running.stop("test");
  return { summary, db };
}

async function query(db: string, sql: string) {
  const store = new DuckDBStore({ path: db, readOnly: true });
  await store.init();
  try {
    return await store.query(sql);
  } finally {
    await store.close();
  }
}

/** Independent count of a Coinbase recording: unique trades, tickers. */
function coinbaseExpected(ls: Line[]) {
  const trades = new Map<string, { price: string; qty: string; side: string }>();
  let tickers = 0;
  for (const l of ls) {
    if (l.t !== "recv") continue;
    const o = JSON.parse(l.data!);
    for (const e of o.events ?? []) {
      if (o.channel === "market_trades") {
        for (const t of e.trades) {
          trades.set(`COINBASE-${t.trade_id}`, {
            price: dec8(t.price),
            qty: dec8(t.size),
            side: t.side === "SELL" ? "BUY" : "SELL",
          });
        }
      }
      if (o.channel === "ticker") tickers += e.tickers.length;
    }
  }
  return { trades, tickers };
}

describe("cryptofeed replay: Coinbase", () => {
  it("stores every recorded trade and ticker exactly once, with no gap", async () => {
    const expected = coinbaseExpected(lines(COINBASE_FILE));
    expect(expected.trades.size).toBeGreaterThan(200);
    const { summary, db } = await replay("coinbase", COINBASE_FILE);
    expect(summary).toMatchObject({
      trades: expected.trades.size,
      quotes: expected.tickers,
      gaps: 0,
      rejected: 0,
    });
    const rows = await query(
      db,
      "SELECT trade_id, price, quantity, side FROM trades_v2 WHERE exchange = 'COINBASE'",
    );
    expect(rows).toHaveLength(expected.trades.size);
    for (const r of rows) {
      const e = expected.trades.get(r.trade_id as string);
      expect([r.price, r.quantity, r.side]).toEqual([e?.price, e?.qty, e?.side]);
    }
    const [q] = await query(db, "SELECT count(*) AS n, count(DISTINCT message_id) AS d FROM quotes_v2");
    expect([Number(q.n), Number(q.d)]).toEqual([expected.tickers, expected.tickers]);
    expect(await query(db, "SELECT * FROM sequence_gaps")).toEqual([]);
    expect(await query(db, "SELECT * FROM dead_letters")).toEqual([]);

    // replayed again into the same store: nothing new, everything recognised as held
    const again = await replay("coinbase", COINBASE_FILE, db);
    expect(again.summary.duplicates).toBe(expected.trades.size + expected.tickers);
    const [c] = await query(
      db,
      "SELECT (SELECT count(*) FROM trades_v2) AS t, (SELECT count(*) FROM quotes_v2) AS q",
    );
    expect([Number(c.t), Number(c.q)]).toEqual([expected.trades.size, expected.tickers]);
  });

  it("reports the gap when a frame is removed from a copy of the recording", async () => {
    const all = lines(COINBASE_FILE);
    const removed = all.find((l) => l.t === "recv" && JSON.parse(l.data!).sequence_num === 500)!;
    const kept = all.filter((l) => l !== removed);
    const copy = join(dir, "COINBASE-without-500.jsonl.gz");
    writeFileSync(copy, gzipSync(`${kept.map((l) => JSON.stringify(l)).join("\n")}\n`));
    const expected = coinbaseExpected(kept);
    const { summary, db } = await replay("coinbase", copy);
    expect(summary.gaps).toBe(1);
    expect(
      await query(db, "SELECT exchange, symbol, data_type, from_sequence, to_sequence FROM sequence_gaps"),
    ).toEqual([
      {
        exchange: "COINBASE",
        symbol: "BTC-USD,ETH-USD",
        data_type: "frames",
        from_sequence: "500",
        to_sequence: "500",
      },
    ]);
    expect(summary).toMatchObject({ trades: expected.trades.size, quotes: expected.tickers });
  });
});

describe("cryptofeed replay: Kraken", () => {
  it("stores every recorded trade and ticker exactly once (symbols taken from the recording)", async () => {
    let trades = 0;
    let tickers = 0;
    const pairs = new Set<string>();
    for (const l of lines(KRAKEN_FILE)) {
      if (l.t !== "recv" || !l.data!.startsWith("[")) continue;
      const a = JSON.parse(l.data!);
      if (a[a.length - 2] === "trade") trades += a[1].length;
      if (a[a.length - 2] === "ticker") tickers++;
      if (a[a.length - 2] === "trade" || a[a.length - 2] === "ticker") pairs.add(a[a.length - 1]);
    }
    const { summary, db } = await replay("kraken", KRAKEN_FILE);
    expect(summary).toMatchObject({ trades, quotes: tickers, gaps: 0, rejected: 0 });
    const [c] = await query(
      db,
      "SELECT (SELECT count(DISTINCT trade_id) FROM trades_v2) AS t, (SELECT count(*) FROM quotes_v2) AS q, (SELECT count(*) FROM dead_letters) AS d",
    );
    expect([Number(c.t), Number(c.q), Number(c.d)]).toEqual([trades, tickers, 0]);
    const symbols = await query(db, "SELECT DISTINCT symbol, currency FROM quotes_v2 ORDER BY symbol");
    expect(symbols.map((s) => s.symbol)).toEqual([...pairs].sort());
    for (const s of symbols) expect(s.currency).toBe((s.symbol as string).split("/")[1]);
    const again = await replay("kraken", KRAKEN_FILE, db);
    expect(again.summary.duplicates).toBe(trades + tickers);
  });
});

describe("cryptofeed replay: Binance", () => {
  it("stores the recorded aggTrades and bookTickers once", async () => {
    const agg = new Set<number>();
    const book = new Set<string>();
    for (const l of lines(BINANCE_FILE)) {
      if (l.t !== "recv") continue;
      const o = JSON.parse(l.data!);
      if (o.stream.endsWith("@aggTrade")) agg.add(o.data.a);
      if (o.stream.endsWith("@bookTicker")) book.add(`${o.data.s}/${o.data.u}`);
    }
    const { summary, db } = await replay("binance", BINANCE_FILE);
    expect(summary).toMatchObject({ aggTrades: agg.size, rejected: 0 });
    const [c] = await query(
      db,
      "SELECT (SELECT count(*) FROM agg_trades_v2) AS a, (SELECT count(*) FROM quotes_v2) AS q, (SELECT count(*) FROM trades_v2) AS t",
    );
    expect([Number(c.a), Number(c.q), Number(c.t)]).toEqual([agg.size, book.size, 0]);
  });
});

describe("CryptofeedReplayServer protocol", () => {
  /** Connects, sends `messages`, collects frames until the server reports the end. */
  async function session(server: CryptofeedReplayServer, messages: string[]) {
    const received: string[] = [];
    const ended = new Promise<{ sent: number; dataFrames: number }>((r) => server.once("end", r));
    const ws = new WebSocket(server.url);
    ws.on("message", (d) => received.push(d.toString()));
    await new Promise((r) => ws.once("open", r));
    for (const m of messages) ws.send(m);
    const info = await ended;
    while (received.length < info.sent) await new Promise((r) => setTimeout(r, 5));
    ws.close();
    return { received, info };
  }

  it("answers a Kraken subscription with that channel and pair's recorded frames only", async () => {
    const server = new CryptofeedReplayServer({ file: KRAKEN_FILE, speed: "max", settleMs: 20 });
    await server.start();
    try {
      const pair = "XMR/USD";
      const { received, info } = await session(server, [
        JSON.stringify({ event: "subscribe", pair: [pair], subscription: { name: "trade" } }),
      ]);
      // independently: the trade connection's frames for that pair, plus its per-connection frames
      const tradeConn = lines(KRAKEN_FILE).find((l) => l.t === "send" && l.data!.includes('"trade"'))!.conn;
      const expected = lines(KRAKEN_FILE)
        .filter((l) => l.t === "recv" && l.conn === tradeConn)
        .map((l) => l.data!)
        .filter((d) => {
          const o = JSON.parse(d);
          if (Array.isArray(o)) return o[3] === pair;
          if (o.event === "subscriptionStatus") return o.pair === pair;
          return true;
        });
      expect(received).toEqual(expected);
      expect(info).toEqual({ sent: expected.length, dataFrames: expected.length });
      expect(server.totalSent).toBe(expected.length);
      expect(server.exchange).toBe("KRAKEN");
    } finally {
      await server.stop();
    }
  });

  it("sends nothing for a subscription the recording does not hold, and still reports the end", async () => {
    const server = new CryptofeedReplayServer({ file: COINBASE_FILE, speed: "max", settleMs: 20 });
    await server.start();
    try {
      const { received, info } = await session(server, [
        '{"type":"subscribe","product_ids":["SOL-USD"],"channel":"market_trades"}',
      ]);
      expect(received).toEqual([]);
      expect(info.dataFrames).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it("paces frames by the recorded time divided by speed", async () => {
    const server = new CryptofeedReplayServer({ file: KRAKEN_FILE, speed: 20, settleMs: 20 });
    await server.start();
    try {
      const t0 = Date.now();
      const { received } = await session(server, [
        JSON.stringify({ event: "subscribe", pair: ["SC/EUR"], subscription: { name: "trade" } }),
      ]);
      const recv = lines(KRAKEN_FILE).filter((l) => l.t === "recv" && received.includes(l.data!));
      const span = (recv[recv.length - 1].ts! - recv[0].ts!) * 1000;
      expect(span).toBeGreaterThan(10_000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(span / 20 - 50);
    } finally {
      await server.stop();
    }
  });
});
