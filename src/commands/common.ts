/** Shared helpers of the CLI commands (light: modules they need are loaded when they run). */
import type { RunConfig, RunFlags } from "../config.js";

/**
 * Prints `k2: message` on stderr and exits the process with `code` (2: bad flags or configuration;
 * 1: runtime failure). Never returns (unlike `venues/mapping.ts`' `fail`, which throws).
 */
export function exitWithError(message: string, code = 2): never {
  process.stderr.write(`k2: ${message}\n`);
  process.exit(code);
}

/** Resolves on the first SIGINT or SIGTERM, with the signal's name. */
export function onSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handler = (sig: NodeJS.Signals) => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
      resolve(sig);
    };
    process.on("SIGINT", handler);
    process.on("SIGTERM", handler);
  });
}

/**
 * The validated run configuration of `flags` (`k2 run`, `k2 record`, …), after `check` (which may
 * throw a `ConfigError` too); a `ConfigError` exits 2 with its message, which names the flag.
 */
export async function runConfigOrExit(
  flags: RunFlags,
  check: (config: RunConfig) => void = () => undefined,
): Promise<RunConfig> {
  const { ConfigError, resolveRunConfig } = await import("../config.js");
  try {
    const config = resolveRunConfig(flags);
    check(config);
    return config;
  } catch (e) {
    if (e instanceof ConfigError) exitWithError(e.message);
    throw e;
  }
}
