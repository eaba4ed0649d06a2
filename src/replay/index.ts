/**
 * Picks the replay server for a capture by its format:
 * - `<ns> <frame>` lines (hftbacktest collector, `k2 record`): Binance combined-stream frames, served
 *   by {@link BinanceReplayServer};
 * - cryptofeed raw-data recordings (`*.jsonl[.gz]`, first line `{"t":"header",..}`): served by
 *   {@link CryptofeedReplayServer} as the recorded exchange's endpoint (Binance, Coinbase, Kraken).
 */
import { BinanceReplayServer } from "./binance-replay-server.js";
import { readCaptureHead } from "./capture.js";
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
  const head = readCaptureHead(file);
  const text = head.subarray(0, 4096).toString("utf8");
  if (/^\d+ [{[]/.test(text)) return "binance-lines";
  if (text.startsWith('{"t":"header"') || text.startsWith('{"t": "header"')) return "cryptofeed";
  throw new Error(
    `${file}: unknown capture format (expected "<ns> <frame>" lines or a cryptofeed recording)`,
  );
}
