/**
 * Structured logs (pino) on stderr, so stdout stays free for command output such as the
 * `--exit-at-end` summary line. Level from `K2_LOG_LEVEL` (default `info`). Format from
 * `K2_LOG_FORMAT` (`--log-format`): `pretty` (readable lines, the default when stderr is a terminal)
 * or `json` (one JSON object a line, the default otherwise: for log shippers and tests).
 */
import { createRequire } from "node:module";
import { pino } from "pino";
import { type LogFormat, logFormat } from "./log-format.js";

export type Logger = pino.Logger;

// the format choice lives apart from pino, so the CLI checks `--log-format` without loading pino
export { LOG_FORMATS, type LogFormat, logFormat } from "./log-format.js";

/** Creates the process logger (synchronous writes to stderr, so nothing is lost at exit). */
export function createLogger(
  level = process.env.K2_LOG_LEVEL ?? "info",
  format: LogFormat = safeLogFormat(),
): Logger {
  const options = { level, base: { app: "k2" } };
  if (format === "json") return pino(options, pino.destination({ fd: 2, sync: true }));
  // loaded only when used: it is not needed on the JSON path, and start-up time counts
  const { PinoPretty } = createRequire(import.meta.url)("pino-pretty") as typeof import("pino-pretty");
  return pino(
    options,
    PinoPretty({
      destination: 2,
      sync: true,
      colorize: Boolean(process.stderr.isTTY),
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname,app",
      singleLine: true,
    }),
  );
}

/** {@link logFormat}, falling back to JSON when the variable is invalid (the CLI rejects it first). */
function safeLogFormat(): LogFormat {
  try {
    return logFormat();
  } catch {
    return "json";
  }
}
