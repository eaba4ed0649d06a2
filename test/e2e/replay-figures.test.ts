/**
 * Issue "Binance ingestion end to end": replaying each recording at --speed max reproduces the
 * reference figures exactly, a second replay into the same DB changes nothing and reports duplicates.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { vwapFromSums } from "../../src/schema/decimal.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, query, runCli, tempDir } from "../helpers/cli.js";
import { expectedFigures } from "../helpers/expected.js";

const FIGURES_SQL = `SELECT count(*) AS trades, count(DISTINCT trade_id) AS unique_trades,
  min(source_sequence) AS first_id, max(source_sequence) AS last_id, sum(quantity) AS volume,
  sum(price::DECIMAL(38,8) * quantity::DECIMAL(38,8)) AS notional FROM trades_v2`;

async function figures(db: string) {
  const [t] = await query(db, FIGURES_SQL);
  const [q] = await query(
    db,
    "SELECT count(*) AS quotes, count(DISTINCT source_sequence) AS unique_u FROM quotes_v2",
  );
  const [g] = await query(db, "SELECT count(*) AS gaps FROM sequence_gaps");
  const [d] = await query(db, "SELECT count(*) AS dead FROM dead_letters");
  return {
    trades: Number(t.trades),
    uniqueTrades: Number(t.unique_trades),
    firstId: t.first_id,
    lastId: t.last_id,
    volume: t.volume,
    vwap: vwapFromSums(t.notional!, t.volume!),
    quotes: Number(q.quotes),
    uniqueU: Number(q.unique_u),
    gaps: Number(g.gaps),
    dead: Number(d.dead),
  };
}

describe.each(expectedFigures())("replay of $file", (exp) => {
  it("reproduces the reference figures exactly, then stores nothing twice", async () => {
    const db = join(tempDir(), "k2.duckdb");
    const symbol = exp.file.split("_")[0].toUpperCase();
    const args = [
      "run",
      "--replay",
      sharedData(`binance-spot/${exp.file}`),
      "--speed",
      "max",
      "--exit-at-end",
      "--db",
      db,
      "--http-port",
      "0",
      "--symbols",
      symbol,
      "--streams",
      "trade,aggTrade,bookTicker",
    ];
    const first = await runCli(args);
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    const s1 = lastJsonLine(first.stdout);
    expect(s1).toMatchObject({ trades: exp.trades, quotes: exp.quotes, rejected: 0, duplicates: 0, gaps: 0 });
    expect(s1.frames).toBe(exp.trades + exp.quotes);

    const f1 = await figures(db);
    expect(f1).toEqual({
      trades: exp.trades,
      uniqueTrades: exp.trades,
      firstId: exp.firstTradeId,
      lastId: exp.lastTradeId,
      volume: exp.volume,
      vwap: exp.vwap,
      quotes: exp.quotes,
      uniqueU: exp.quotes,
      gaps: 0,
      dead: 0,
    });
    // ids are contiguous: count equals the id range
    expect(BigInt(f1.lastId!) - BigInt(f1.firstId!) + 1n).toBe(BigInt(exp.trades));

    const second = await runCli(args);
    expect(second.code, second.stderr.slice(-2000)).toBe(0);
    const s2 = lastJsonLine(second.stdout);
    expect(s2.duplicates).toBe(exp.trades + exp.quotes);
    expect(s2.stored).toBe(0);
    expect(await figures(db)).toEqual(f1);
  });
});
