/**
 * What the scale-out end-to-end tests share, whatever the bus (NATS JetStream, Kafka, Redis Streams): `k2 ingest`
 * replaying one capture, `k2 persist` processes in one consumer group, the PostgreSQL figures checked
 * against ../shared/data/README.md, and the redeliveries the persist processes report.
 */
import postgres from "postgres";
import { expect } from "vitest";
import { vwapFromSums } from "../../src/schema/decimal.js";
import { sharedData } from "./capture.js";
import { lastJsonLine, type RunningCli, startCli } from "./cli.js";
import { type ExpectedFigures, expectedFigures } from "./expected.js";
import { waitFor } from "./run.js";

/** The capture the scale-out tests replay, and its figures. */
export const SCALE_OUT_FILE = "btcusdt_20240808.gz";
export const scaleOutExpected: ExpectedFigures = expectedFigures().find((f) => f.file === SCALE_OUT_FILE)!;

/** Creates database `name` on the server of `adminUrl` (a `…/postgres` URL); returns its URL. */
export async function newDatabase(adminUrl: string, name: string): Promise<string> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => undefined });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  return adminUrl.replace(/\/postgres$/, `/${name}`);
}

/** Starts processes of `k2`, remembering them in `children` (killed by the test's `afterAll`). */
export function cliStarter(children: RunningCli[]) {
  return (args: string[]): RunningCli => {
    const c = startCli(args);
    children.push(c);
    return c;
  };
}

/** `k2 persist` on `bus` into `db` (batches of at most 200 ms). */
export function persistArgs(bus: string, db: string): string[] {
  return ["persist", "--bus", bus, "--db", db, "--http-port", "0", "--batch-max-wait-ms", "200"];
}

/** `k2 ingest` replaying the capture's BTCUSDT trades and book tickers onto `bus` at `speed`. */
export function ingestArgs(bus: string, speed: string): string[] {
  return [
    "ingest",
    "--bus",
    bus,
    "--replay",
    sharedData(`binance-spot/${SCALE_OUT_FILE}`),
    "--speed",
    speed,
    "--exit-at-end",
    "--http-port",
    "0",
    "--symbols",
    "BTCUSDT",
    "--streams",
    "trade,bookTicker",
  ];
}

/** The process's exit, or a failure showing its last log lines. */
export async function exitedWithin(c: RunningCli, ms: number) {
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

/** Trade and quote counts and sums in `db`, or null before the tables exist (or while it restarts). */
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

/** Waits (up to 90 s) until `db` holds the capture's records, then checks it holds exactly them. */
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

/**
 * SIGTERMs persist processes (each must exit 0) and sums their summary lines: `redeliveries`, what the
 * bus handed a process again, and `duplicates`, records a process found already stored (also those
 * another member had stored before the partition moved).
 */
export async function stopPersistsCounting(
  ps: RunningCli[],
): Promise<{ redeliveries: number; duplicates: number }> {
  let redeliveries = 0;
  let duplicates = 0;
  for (const p of ps) {
    p.child.kill("SIGTERM");
    const exit = await p.exited;
    expect(exit.code, exit.stderr.slice(-1500)).toBe(0);
    const summary = lastJsonLine(exit.stdout);
    redeliveries += Number(summary.redeliveries);
    duplicates += Number(summary.duplicates);
  }
  return { redeliveries, duplicates };
}

/** SIGTERMs persist processes (each must exit 0); their summary lines give the redeliveries they saw. */
export async function stopPersists(ps: RunningCli[]): Promise<number> {
  return (await stopPersistsCounting(ps)).redeliveries;
}
