/** Helpers of the output tests (`--redis-out`, `--zmq-pub`): the replay they run and its figures. */
import { join } from "node:path";
import { readCapture } from "../../src/replay/capture.js";
import { sharedData } from "./capture.js";
import { tempDir } from "./cli.js";
import { expectedFigures } from "./expected.js";

export const OUTPUT_FILE = "btcusdt_20240808.gz";
export const outputExpected = expectedFigures().find((f) => f.file === OUTPUT_FILE)!;

/** `k2 run` replaying BTCUSDT trades and book tickers of {@link OUTPUT_FILE} at `speed` into a fresh DuckDB. */
export function outputRunArgs(speed: string, ...extra: string[]): string[] {
  return [
    ...["run", "--replay", sharedData(`binance-spot/${OUTPUT_FILE}`), "--speed", speed, "--exit-at-end"],
    ...["--symbols", "BTCUSDT", "--streams", "trade,bookTicker", "--http-port", "0"],
    ...["--db", join(tempDir(), "k2.duckdb"), ...extra],
  ];
}

/** From the first to the last recorded receive time of the capture's trade and book ticker frames, ms. */
export async function recordedSpanMs(): Promise<number> {
  let first = 0;
  let last = 0;
  for await (const f of readCapture(sharedData(`binance-spot/${OUTPUT_FILE}`))) {
    if (!f.raw.includes("@trade") && !f.raw.includes("@bookTicker")) continue;
    if (first === 0) first = f.ms;
    last = f.ms;
  }
  return last - first;
}

/** The value of one series of `/metrics` (`name{labels}`), 0 when absent. */
export async function metric(port: number, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** Trade ids (`BINANCE-123` → 123) of JSON records that are trades, in the order given. */
export function tradeIds(messages: string[]): number[] {
  const ids: number[] = [];
  for (const m of messages) {
    const r = JSON.parse(m) as { trade_id?: string };
    if (r.trade_id) ids.push(Number(r.trade_id.slice(r.trade_id.indexOf("-") + 1)));
  }
  return ids;
}

/** Every id from `first` to `last`, once each, ascending. */
export function contiguous(first: string, last: string): number[] {
  const out: number[] = [];
  for (let i = Number(first); i <= Number(last); i++) out.push(i);
  return out;
}
