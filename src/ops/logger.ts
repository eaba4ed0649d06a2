/**
 * Structured logs (pino, JSON lines) on stderr, so stdout stays free for command output such as the
 * `--exit-at-end` summary line. Level from `K2_LOG_LEVEL` (default `info`).
 */
import { pino } from "pino";

export type Logger = pino.Logger;

/** Creates the process logger. */
export function createLogger(level = process.env.K2_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { app: "k2" } }, pino.destination({ fd: 2, sync: true }));
}
