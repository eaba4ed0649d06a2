/**
 * Acceptance: a hostile Binance-like venue on loopback. A fake `ws` server speaking Binance combined
 * streams (answers SUBSCRIBE with `{"result":null,"id":N}`) sends 200 good trades interleaved with deep
 * nesting, a zero price, unsubscribed symbols, a mismatched envelope, a conflicting duplicate, broken
 * JSON, a 5 MB frame, a lone surrogate and a garbage symbol (plus an exact duplicate and an id going
 * backwards, which are not errors). The real CLI (`k2 run`) stays up and healthy, stores exactly the
 * 200 good trades, dead-letters every bad frame with its reason, keeps writing after them, and exits 0
 * within seconds of SIGTERM.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { query, startCli, tempDir } from "../helpers/cli.js";
import { waitFor } from "../helpers/run.js";

const deep = (n: number) => "[".repeat(n) + "]".repeat(n);

function trade(id: number, fields: Record<string, unknown> = {}, stream = "btcusdt@trade"): string {
  return JSON.stringify({
    stream,
    data: {
      e: "trade",
      E: 1_723_161_255_000 + id,
      s: "BTCUSDT",
      t: id,
      p: `${61_000 + (id % 97)}.25`,
      q: "0.015",
      T: 1_723_161_255_000 + id,
      m: id % 2 === 0,
      M: true,
      ...fields,
    },
  });
}

/** Scrapes one sample of `/metrics` (0 when absent). */
function sample(metrics: string, name: string): number {
  const m = new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(metrics);
  return m ? Number(m[1]) : 0;
}

describe("hostile venue input end to end", () => {
  it("stores exactly the good trades, dead-letters every bad frame with a reason, stays healthy and exits 0", async () => {
    const bad: { raw: string; reason: RegExp }[] = [
      {
        raw: `{"stream":"btcusdt@trade","data":{"e":${deep(5000)},"s":"BTCUSDT"}}`,
        reason: /^unknown event type <value nested deeper than 32 levels>$/,
      },
      {
        raw: trade(5001).replace(/\}\}$/, `,"x":${deep(20_000)}}}`),
        reason: /^vendor field "x" is nested deeper than 32 levels$/,
      },
      { raw: trade(5002, { p: "0.00000000" }), reason: /^price \(p\) is zero$/ },
      {
        raw: JSON.stringify(JSON.parse(trade(5003, { s: "XRPUSDT" })).data),
        reason: /^frame for unsubscribed stream xrpusdt@trade \(payload without envelope\)$/,
      },
      {
        raw: trade(5004, { s: "XRPUSDT" }, "xrpusdt@trade"),
        reason: /^frame for unsubscribed stream xrpusdt@trade$/,
      },
      {
        raw: trade(5005, { s: "ETHUSDT" }),
        reason: /^symbol \(s\) ETHUSDT does not match stream btcusdt@trade$/,
      },
      {
        raw: trade(1050, { p: "1.5" }),
        reason: /^conflicting duplicate of trade id 1050: first seen with price /,
      },
      { raw: trade(5006).slice(0, 70), reason: /^malformed JSON$/ },
      {
        raw: trade(5007, { x: "y".repeat(5 * 1024 * 1024) }),
        reason: /^frame of \d+ characters is larger than the 65536-character bound$/,
      },
      {
        raw: trade(5008).replace(/\}\}$/, ',"x":"\\ud800"}}'),
        reason: /^field data\.x is not well-formed UTF-16 \(lone surrogate\)$/,
      },
      {
        raw: JSON.stringify(JSON.parse(trade(5009, { s: "BTC'; DROP TABLE trades_v2;--USDT" })).data),
        reason: /^symbol \(s\) is not a Binance symbol like BTCUSDT/,
      },
    ];
    // 200 good trades, ids 1000..1199, with 1101 sent before 1100 (an id going backwards: stored)
    const goodIds = Array.from({ length: 200 }, (_, i) => 1000 + i);
    const order = [...goodIds];
    order.splice(100, 2, 1101, 1100);
    const frames: string[] = [];
    order.forEach((id, i) => {
      frames.push(trade(id));
      if (i % 17 === 16 && i / 17 < bad.length + 1) {
        const b = bad[Math.floor(i / 17)];
        if (b && !(b.raw.includes('"t":1050') && i < 60)) frames.push(b.raw);
      }
      if (id === 1010) frames.push(trade(1010)); // exact duplicate (reconnect overlap): silently one row
    });
    // whatever the interleaving left out goes after trade 1150, so good trades follow every bad frame
    const missing = bad.filter((b) => !frames.includes(b.raw));
    frames.splice(frames.indexOf(trade(1150)) + 1, 0, ...missing.map((b) => b.raw));
    expect(frames.filter((f) => bad.some((b) => b.raw === f))).toHaveLength(bad.length);

    const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((r) => wss.once("listening", () => r()));
    const port = (wss.address() as { port: number }).port;
    wss.on("connection", (ws) => {
      let sent = false;
      ws.on("message", (m) => {
        const req = JSON.parse(String(m)) as { method?: string; id?: number };
        if (req.method !== "SUBSCRIBE") return;
        ws.send(JSON.stringify({ result: null, id: req.id ?? null }));
        if (sent) return;
        sent = true;
        for (const f of frames) ws.send(f);
      });
    });

    const db = join(tempDir(), "k2.duckdb");
    const k2 = startCli([
      "run",
      "--ws-url",
      `ws://127.0.0.1:${port}`,
      "--symbols",
      "BTCUSDT,ETHUSDT",
      "--streams",
      "trade",
      "--db",
      db,
      "--http-port",
      "0",
      "--batch-max-wait-ms",
      "200",
    ]);
    try {
      const http = `http://127.0.0.1:${await k2.httpPort}`;
      let metrics = "";
      await waitFor(
        async () => {
          metrics = await (await fetch(`${http}/metrics`)).text();
          return (
            sample(metrics, 'k2_records_stored_total{table="trades_v2"}') >= 200 &&
            sample(metrics, 'k2_records_stored_total{table="dead_letters"}') >= bad.length
          );
        },
        60_000,
        `200 trades and ${bad.length} dead letters stored (log: ${k2.stderr().slice(-1500)})`,
      );
      const health = await fetch(`${http}/health`);
      expect(health.status, await health.clone().text()).toBe(200);
      expect(sample(metrics, 'k2_conflicting_duplicates_total{exchange="BINANCE"}')).toBe(1);
      expect(sample(metrics, 'k2_sequence_regressions_total{exchange="BINANCE"}')).toBe(1);
      expect(sample(metrics, 'k2_records_rejected_total{exchange="BINANCE"}')).toBe(bad.length);
      expect(sample(metrics, 'k2_normalizer_errors_total{exchange="BINANCE"}')).toBe(0);
      // per-symbol series only for subscribed symbols
      expect(metrics).not.toMatch(/XRPUSDT|DROP TABLE/);
      expect(k2.child.exitCode).toBeNull();
    } finally {
      const t0 = Date.now();
      k2.child.kill("SIGTERM");
      const exit = await k2.exited;
      const ms = Date.now() - t0;
      await new Promise<void>((r) => wss.close(() => r()));
      expect(exit.code, exit.stderr.slice(-2000)).toBe(0);
      expect(ms).toBeLessThan(15_000);
    }

    const trades = await query(db, "SELECT trade_id, price FROM trades_v2 ORDER BY source_sequence");
    expect(trades.map((t) => t.trade_id)).toEqual(goodIds.map((id) => `BINANCE-${id}`));
    const first1050 = JSON.parse(trade(1050)).data.p as string;
    expect(trades.find((t) => t.trade_id === "BINANCE-1050")!.price).toBe(`${first1050}000000`);
    const rows = await query(db, "SELECT reason, raw, source FROM dead_letters");
    expect(rows).toHaveLength(bad.length);
    for (const b of bad) {
      // every bad frame is kept whole, the 5 MB one included
      const row = rows.find((r) => r.raw === b.raw);
      expect(row, `dead letter for ${b.raw.slice(0, 80)}`).toBeDefined();
      expect(row!.reason).toMatch(b.reason);
    }
  }, 120_000);
});
