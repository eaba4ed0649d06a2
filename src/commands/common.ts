/** Shared helpers of the CLI commands. */

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
