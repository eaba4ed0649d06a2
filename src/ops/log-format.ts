/**
 * The log format (`--log-format`, `K2_LOG_FORMAT`): `pretty` or `json`. Kept apart from the logger
 * (`logger.ts`, pino) so the CLI validates the flag before any command loads pino.
 */

/** How log lines are written. */
export type LogFormat = "json" | "pretty";

/** The values `--log-format` accepts. */
export const LOG_FORMATS: readonly LogFormat[] = ["json", "pretty"];

/**
 * The log format in force: `K2_LOG_FORMAT` when set, else `pretty` on a terminal and `json` elsewhere.
 * @throws {Error} naming `K2_LOG_FORMAT` when it is neither `json` nor `pretty`
 */
export function logFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const v = env.K2_LOG_FORMAT?.trim();
  if (v === undefined || v === "") return process.stderr.isTTY ? "pretty" : "json";
  if (!(LOG_FORMATS as readonly string[]).includes(v)) {
    throw new Error(`--log-format (K2_LOG_FORMAT): expected json or pretty, got "${v}"`);
  }
  return v as LogFormat;
}
