/**
 * Pieces of the scale-out end-to-end tests (`k2 ingest` → a networked bus → two `k2 persist` in one
 * group → PostgreSQL): the commands, the store's figures for btcusdt_20240808.gz, and the check that
 * PostgreSQL holds exactly the figures of ../shared/data/README.md.
 */
import postgres from "postgres";
import { expect } from "vitest";
import { vwapFromSums } from "../../src/schema/decimal.js";
import { sharedData } from "./capture.js";
import { type CliResult, lastJsonLine, type RunningCli, startCli } from "./cli.js";
import { expectedFigures } from "./expected.js";
import { waitFor } from "./run.js";

/** The recording the scale-out tests replay, and its figures. */
export const SCALE_OUT_FILE = "btcusdt_20240808.gz";
export const scaleOutExpected = expectedFigures().find((f) => f.file === SCALE_OUT_FILE)!;

/** Creates database `name` on the server of `pgUrl` (`.../postgres`) and returns its URL. */
export async function newDatabase(pgUrl: string, name: string): Promise<string> {
  const admin = postgres(pgUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  return pgUrl.replace(/\/postgres$/, `/${name}`);
}

/** `k2 persist --bus bus --db db` with short batches. */
export function persistArgs(bus: string, db: string): string[] {
  return ["persist", "--bus", bus, "--db", db, "--http-port", "0", "--batch-max-wait-ms", "200"];
}

/** `k2 ingest` replaying the scale-out recording's trades and book tickers at `speed`. */
export function ingestArgs(bus: string, speed: string): string[] {
  return [
    ...["ingest", "--bus", bus, "--replay", sharedData(`binance-spot/${SCALE_OUT_FILE}`)],
    ...["--speed", speed, "--exit-at-end", "--http-port", "0"],
    ...["--symbols", "BTCUSDT", "--streams", "trade,bookTicker"],
  ];
}

/** Starts `k2 ...args`, remembering the child in `children` (for the afterAll SIGKILL). */
export function startTracked(children: RunningCli[], args: string[]): RunningCli {
  const c = startCli(args);
  children.push(c);
  return c;
}

/** The process's exit, or a failure showing its last log lines. */
export async function exitedWithin(c: RunningCli, ms: number): Promise<CliResult> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not exit in ${ms} ms:\n${c.stderr().slice(-3000)}`)), ms);
  });
  try {
    return await Promise.race([c.exited, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Row counts and trade figures of the store, or null while its tables are missing or it restarts. */
export async function storeCounts(db: string) {
  const sql = postgres(db, { max: 1, onnotice: () => undefined });
  try {
    const [t] = await sql`SELECT count(*)::text AS n, count(DISTINCT trade_id)::text AS u,
      min(source_sequence)::text AS lo, max(source_sequence)::text AS hi, sum(quantity)::text AS volume,
      sum(price::numeric(38,8) * quantity::numeric(38,8))::text AS notional FROM trades_v2`;
    const [q] = await sql`SELECT count(*)::text AS n, count(DISTINCT message_id)::text AS u FROM quotes_v2`;
    return { trades: t, quotes: q };
  } catch {
    return null;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/** Waits for every record, then checks PostgreSQL holds each exactly once with the README's figures. */
export async function expectExactlyOnce(db: string): Promise<void> {
  const expected = scaleOutExpected;
  await waitFor(
    async () => {
      const c = await storeCounts(db);
      return c !== null && Number(c.trades.n) >= expected.trades && Number(c.quotes.n) >= expected.quotes;
    },
    90_000,
    "every record in PostgreSQL",
  );
  await new Promise((r) => setTimeout(r, 500)); // anything extra would land now
  const c = (await storeCounts(db))!;
  expect({
    trades: Number(c.trades.n),
    uniqueTrades: Number(c.trades.u),
    first: c.trades.lo,
    last: c.trades.hi,
    volume: c.trades.volume,
    vwap: vwapFromSums(c.trades.notional, c.trades.volume),
    quotes: Number(c.quotes.n),
    uniqueQuotes: Number(c.quotes.u),
  }).toEqual({
    trades: expected.trades,
    uniqueTrades: expected.trades,
    first: expected.firstTradeId,
    last: expected.lastTradeId,
    volume: expected.volume,
    vwap: expected.vwap,
    quotes: expected.quotes,
    uniqueQuotes: expected.quotes,
  });
}

/** SIGTERMs persist processes; returns the redeliveries their summary lines report. */
export async function stopPersists(ps: RunningCli[]): Promise<number> {
  let redeliveries = 0;
  for (const p of ps) {
    p.child.kill("SIGTERM");
    const exit = await p.exited;
    expect(exit.code, exit.stderr.slice(-1500)).toBe(0);
    redeliveries += Number(lastJsonLine(exit.stdout).redeliveries);
  }
  return redeliveries;
}
