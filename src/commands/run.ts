import type { Command } from "commander";
import { ConfigError, type RunFlags, resolveRunConfig } from "../config.js";
import { createLogger } from "../ops/logger.js";
import { startRun } from "../run.js";
import { fail, onSignal } from "./common.js";

/** Registers `k2 run`. */
export function registerRun(program: Command): void {
  program
    .command("run")
    .description(
      "ingest a venue (live or --replay FILE) into the embedded store and serve /health and /metrics",
    )
    .option(
      "--exchange <name>",
      "venue, or several: binance,coinbase,kraken (env K2_EXCHANGE; default binance)",
      undefined,
    )
    .option(
      "--symbols <list>",
      "comma-separated venue symbols, `coinbase:BTC-USD` for one exchange only (env K2_SYMBOLS; default per venue)",
    )
    .option(
      "--streams <list>",
      "comma-separated streams, `kraken:trade` for one exchange only (env K2_STREAMS; default per venue)",
    )
    .option(
      "--db <spec>",
      "store: DuckDB file PATH, duckdb:PATH or postgres://USER@HOST:5432/DB (env K2_DB; default ./k2.duckdb)",
    )
    .option(
      "--http-port <n>",
      "HTTP port for /health and /metrics, 0 = any free port (env K2_HTTP_PORT; default 8080)",
    )
    .option("--http-host <host>", "HTTP bind address (env K2_HTTP_HOST; default 127.0.0.1)")
    .option("--ws-url <url>", "venue WebSocket base URL, one per exchange (env K2_WS_URL; default per venue)")
    .option(
      "--replay <file>",
      "replay a capture through an in-process replay server instead of the live venue (one file per exchange, in order)",
    )
    .option("--speed <x>", "replay pace: 1, 10, ... or max", "max")
    .option(
      "--exit-at-end",
      "with --replay: flush, print a JSON summary line on stdout and exit when the replay ends",
    )
    .option("--batch-size <n>", "store batch size (env K2_BATCH_SIZE; default 500)")
    .option("--batch-max-wait-ms <ms>", "store batch time bound (env K2_BATCH_MAX_WAIT_MS; default 2000)")
    .option("--max-batch-size <n>", "largest batch under backlog (env K2_MAX_BATCH_SIZE; default 50000)")
    .option(
      "--candle-grace-ms <ms>",
      "close a quiet market's candle this long after its end (env K2_CANDLE_GRACE_MS; default 2000)",
    )
    .action(async (flags: RunFlags) => {
      let config: ReturnType<typeof resolveRunConfig>;
      try {
        config = resolveRunConfig(flags);
      } catch (e) {
        if (e instanceof ConfigError) fail(e.message);
        throw e;
      }
      const logger = createLogger();
      const running = await startRun(config, logger);
      const signal = onSignal();
      const reason = await (running.replayDone && config.exitAtEnd
        ? Promise.race([running.replayDone.then(() => "replay finished"), signal])
        : signal);
      const summary = await running.stop(reason);
      process.stdout.write(
        `${JSON.stringify({
          frames: summary.frames,
          trades: summary.trades,
          quotes: summary.quotes,
          rejected: summary.rejected,
          duplicates: summary.duplicates,
          aggTrades: summary.aggTrades,
          stored: summary.stored,
          gaps: summary.gaps,
          elapsed_ms: summary.elapsed_ms,
          receive_ms: summary.receive_ms,
          frames_per_s: summary.frames_per_s,
          max_rss_mb: summary.max_rss_mb,
        })}\n`,
      );
    });
}
