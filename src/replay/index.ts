/**
 * Picks the replay server for a capture by its format:
 * - `<ns> <frame>` lines (hftbacktest collector, `k2 record`): Binance combined-stream frames, served
 *   by {@link BinanceReplayServer};
 * - cryptofeed raw-data recordings (`*.jsonl[.gz]`, first line `{"t":"header",..}`): served by
 *   {@link CryptofeedReplayServer} as the recorded exchange's endpoint (Binance, Coinbase, Kraken).
 */
import { closeSync, openSync, readSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { BinanceReplayServer } from "./binance-replay-server.js";
import { CryptofeedReplayServer } from "./cryptofeed-replay-server.js";
import type { ReplayServer, ReplayServerOptions } from "./replay-server.js";

export type CaptureFormat = "binance-lines" | "cryptofeed";

/** Replay server classes by capture format (used on the main thread and in the worker). */
export const REPLAY_SERVERS: Record<CaptureFormat, new (opts: ReplayServerOptions) => ReplayServer> = {
  "binance-lines": BinanceReplayServer,
  cryptofeed: CryptofeedReplayServer,
};

/**
 * Detects a capture's format from its first bytes.
 * @throws {Error} when the file cannot be read or has no known format
 */
export function detectCaptureFormat(file: string): CaptureFormat {
  const fd = openSync(file, "r");
  const buf = Buffer.alloc(65536);
  let n: number;
  try {
    n = readSync(fd, buf, 0, buf.length, 0);
  } finally {
    closeSync(fd);
  }
  let head = buf.subarray(0, n);
  if (head[0] === 0x1f && head[1] === 0x8b) {
    try {
      head = gunzipSync(head, { finishFlush: 2 /* Z_SYNC_FLUSH: tolerate a truncated stream */ });
    } catch (e) {
      throw new Error(`${file}: cannot read gzip data: ${(e as Error).message}`);
    }
  }
  const text = head.subarray(0, 4096).toString("utf8");
  if (/^\d+ [{[]/.test(text)) return "binance-lines";
  if (text.startsWith('{"t":"header"') || text.startsWith('{"t": "header"')) return "cryptofeed";
  throw new Error(
    `${file}: unknown capture format (expected "<ns> <frame>" lines or a cryptofeed recording)`,
  );
}
