#!/usr/bin/env node
/**
 * `k2`: one CLI for everything, a thin layer over the pipeline.
 *
 *   k2 run            feed → bus → store → /health, /metrics (embedded default: DuckDB file)
 *   k2 query          read-only SQL over a DuckDB file (json, csv or table)
 *   k2 record         write raw frames with receive times (capture format)
 *   k2 replay-server  serve a capture as a Binance-compatible WebSocket endpoint on 127.0.0.1
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad flags or configuration (the message names the flag).
 */
import { Command, CommanderError, Option } from "commander";
import { MemoryBus } from "./bus/memory.js";
import { ConfigError, type RunFlags, resolveRunConfig } from "./config.js";
import { createLogger } from "./ops/logger.js";
import { Metrics } from "./ops/metrics.js";
import { Publisher, startIngest } from "./pipeline.js";
import { formatRows } from "./query-format.js";
import { BinanceReplayServer } from "./replay/binance-replay-server.js";
import { CaptureWriter } from "./replay/capture.js";
import { startRun } from "./run.js";
import { DuckDBStore } from "./store/duckdb.js";

function fail(message: string, code = 2): never {
  process.stderr.write(`k2: ${message}\n`);
  process.exit(code);
}

/** Resolves on the first SIGINT or SIGTERM, with the signal's name. */
function onSignal(): Promise<string> {
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

const program = new Command()
  .name("k2")
  .description("K2: market data ingestion, exact normalization, bus, storage and serving")
  .showHelpAfterError()
  .exitOverride();

program
  .command("run")
  .description(
    "ingest a venue (live or --replay FILE) into the embedded store and serve /health and /metrics",
  )
  .option("--exchange <name>", "venue (env K2_EXCHANGE)", undefined)
  .option(
    "--symbols <list>",
    "comma-separated venue symbols (env K2_SYMBOLS; default BTCUSDT,ETHUSDT,BNBUSDT)",
  )
  .option("--streams <list>", "comma-separated streams (env K2_STREAMS; default trade,aggTrade,bookTicker)")
  .option("--db <path>", "DuckDB file (env K2_DB; default ./k2.duckdb)")
  .option(
    "--http-port <n>",
    "HTTP port for /health and /metrics, 0 = any free port (env K2_HTTP_PORT; default 8080)",
  )
  .option("--http-host <host>", "HTTP bind address (env K2_HTTP_HOST; default 127.0.0.1)")
  .option("--ws-url <url>", "venue WebSocket base URL (env K2_WS_URL; default wss://stream.binance.com:9443)")
  .option("--replay <file>", "replay a capture through an in-process replay server instead of the live venue")
  .option("--speed <x>", "replay pace: 1, 10, ... or max", "max")
  .option(
    "--exit-at-end",
    "with --replay: flush, print a JSON summary line on stdout and exit when the replay ends",
  )
  .option("--batch-size <n>", "store batch size (env K2_BATCH_SIZE; default 500)")
  .option("--batch-max-wait-ms <ms>", "store batch time bound (env K2_BATCH_MAX_WAIT_MS; default 2000)")
  .option("--max-batch-size <n>", "largest batch under backlog (env K2_MAX_BATCH_SIZE; default 50000)")
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

program
  .command("query")
  .description("run a read-only SQL query over a DuckDB file")
  .requiredOption("--db <path>", "DuckDB file")
  .addOption(new Option("--format <fmt>", "output format").choices(["json", "csv", "table"]).default("table"))
  .argument("<sql>", "SQL (read-only)")
  .action(async (sql: string, opts: { db: string; format: "json" | "csv" | "table" }) => {
    const store = new DuckDBStore({ path: opts.db, readOnly: true });
    try {
      await store.init();
    } catch (e) {
      fail(`--db: cannot open ${opts.db} read-only: ${(e as Error).message}`);
    }
    try {
      const rows = await store.query(sql);
      process.stdout.write(formatRows(rows, opts.format));
    } catch (e) {
      fail(`query failed: ${(e as Error).message}`, 1);
    } finally {
      await store.close();
    }
  });

program
  .command("record")
  .description("record raw frames with receive times (gzip, `<ns> <frame>` per line)")
  .requiredOption("--out <file>", "capture file to write (.gz)")
  .option("--exchange <name>", "venue", "binance")
  .option("--symbols <list>", "comma-separated venue symbols")
  .option("--streams <list>", "comma-separated streams")
  .option("--ws-url <url>", "venue WebSocket base URL")
  .option("--duration <s>", "stop after this many seconds (default: until SIGINT/SIGTERM)")
  .action(async (opts: RunFlags & { out: string; duration?: string }) => {
    let config: ReturnType<typeof resolveRunConfig>;
    try {
      config = resolveRunConfig({
        exchange: opts.exchange,
        symbols: opts.symbols,
        streams: opts.streams,
        wsUrl: opts.wsUrl,
      });
    } catch (e) {
      if (e instanceof ConfigError) fail(e.message);
      throw e;
    }
    let duration = 0;
    if (opts.duration !== undefined) {
      duration = Number(opts.duration);
      if (!Number.isFinite(duration) || duration <= 0)
        fail(`--duration: expected seconds > 0, got "${opts.duration}"`);
    }
    const logger = createLogger();
    const writer = new CaptureWriter(opts.out);
    const { getVenue } = await import("./venues/registry.js");
    const venue = getVenue(config.exchange)!;
    const bus = new MemoryBus();
    const feed = startIngest(
      {
        venue,
        subscription: { symbols: config.symbols, streams: config.streams },
        wsUrl: config.wsUrl,
        bus,
        metrics: new Metrics({ defaultMetrics: false }),
        logger,
        onRawFrame: (raw, at) => writer.write(raw, at),
      },
      new Publisher(bus, logger),
    );
    const timer =
      duration > 0
        ? new Promise<string>((r) => setTimeout(() => r("duration elapsed"), duration * 1000))
        : null;
    const reason = await (timer ? Promise.race([timer, onSignal()]) : onSignal());
    await feed.connection.stop();
    await writer.close();
    logger.info({ reason, frames: writer.frames, out: opts.out }, "recording closed");
    process.stdout.write(`${JSON.stringify({ frames: writer.frames, out: opts.out })}\n`);
    process.exit(0);
  });

program
  .command("replay-server")
  .description("serve a capture as a Binance-compatible WebSocket endpoint on 127.0.0.1")
  .argument("<file>", "capture file (`<ns> <frame>` lines, gzip)")
  .option("--port <n>", "port, 0 = any free port", "9443")
  .option("--speed <x>", "pace: 1, 10, ... or max", "1")
  .action(async (file: string, opts: { port: string; speed: string }) => {
    const port = Number(opts.port);
    if (!/^\d+$/.test(opts.port) || port > 65535) fail(`--port: expected 0..65535, got "${opts.port}"`);
    const speed = opts.speed === "max" ? "max" : Number(opts.speed);
    if (speed !== "max" && (!Number.isFinite(speed) || speed <= 0)) {
      fail(`--speed: expected a positive number or "max", got "${opts.speed}"`);
    }
    const { access } = await import("node:fs/promises");
    await access(file).catch(() => fail(`<file>: cannot read ${file}`));
    const logger = createLogger();
    const server = new BinanceReplayServer({ file, port, speed });
    const bound = await server.start();
    server.on("connection", (path) => logger.info({ path }, "replay connection"));
    server.on("end", (info) => logger.info(info, "replay finished for a connection"));
    logger.info({ url: `ws://127.0.0.1:${bound}`, file, speed }, "replay server listening");
    process.stdout.write(`${JSON.stringify({ url: `ws://127.0.0.1:${bound}`, port: bound })}\n`);
    await onSignal();
    await server.stop();
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  process.stderr.write(`k2: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
}
