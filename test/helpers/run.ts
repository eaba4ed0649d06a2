/** In-process pipeline helpers for tests that need to reach inside (replay server, connection). */
import { join } from "node:path";
import { type RunConfig, resolveRunConfig } from "../../src/config.js";
import { createLogger } from "../../src/ops/logger.js";
import { tempDir } from "./cli.js";

/**
 * A validated config for BTCUSDT trade + bookTicker into a fresh DuckDB file; `wsUrl` is the (only)
 * feed's venue endpoint.
 */
export function testConfig({ wsUrl, ...overrides }: Partial<RunConfig> & { wsUrl?: string } = {}): RunConfig {
  const base = resolveRunConfig({
    symbols: "BTCUSDT",
    streams: "trade,bookTicker",
    db: join(tempDir(), "k2.duckdb"),
    httpPort: "0",
    wsUrl,
  });
  return { ...base, ...overrides };
}

export const silentLogger = () => createLogger("silent");

/** Polls `cond` every 20 ms until it is true or `timeoutMs` passes. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what = "condition",
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
