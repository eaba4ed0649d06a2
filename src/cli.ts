#!/usr/bin/env node
/**
 * `k2`: one CLI for everything, a thin layer over the pipeline. Each command lives in
 * `src/commands/<name>.ts` (`k2 ingest`, `k2 persist` and `k2 serve` beside `k2 run`, in `run.ts`).
 *
 *   k2 run            feed → bus → store → API, /ws, /health, /metrics in one process (embedded
 *                     default: in-process bus, DuckDB file)
 *   k2 ingest         feed → bus: the ingest role alone (a networked bus: NATS JetStream or Kafka)
 *   k2 persist        bus → store: the store role alone; several share the load with one --group
 *   k2 serve          API, /ws, live candles, /health, /metrics over the shared store, tailing the bus
 *   k2 query          read-only SQL over a DuckDB file or PostgreSQL (json, csv or table)
 *   k2 record         write raw frames with receive times (capture format)
 *   k2 replay-server  serve a capture as the recorded venue's WebSocket endpoint on 127.0.0.1
 *   k2 export         a table or query of a DuckDB file to Parquet
 *   k2 load           historical trade files (Binance aggTrades CSV/ZIP, mapped CSV) into the store
 *
 * Start-up stays light: the registrations import commander and a few constants only; each command
 * loads its modules (store, pipeline, server, bus clients) with `import()` when it runs, so
 * `k2 --help` does not load DuckDB, fastify or the bus clients.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad flags or configuration (the message names the flag).
 */
import { readFileSync } from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { registerExport } from "./commands/export.js";
import { registerLoad } from "./commands/load.js";
import { registerQuery } from "./commands/query.js";
import { registerRecord } from "./commands/record.js";
import { registerReplayServer } from "./commands/replay-server.js";
import { registerRun } from "./commands/run.js";
import { LOG_FORMATS, logFormat } from "./ops/log-format.js";
import { GATEWAY_DEFAULTS, MIN_TOKEN_LENGTH } from "./serve/ws/defaults.js";

/** k2's version from package.json (one level up from src/, two from dist/src/). */
function packageVersion(): string {
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === "k2" && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return "unknown";
}

const version = packageVersion();

const program = new Command()
  .name("k2")
  .description("K2: market data ingestion, exact normalization, bus, storage and serving")
  .version(version, "-V, --version", "print k2's version")
  .addOption(
    new Option(
      "--log-format <format>",
      "logs on stderr: pretty (default on a terminal) or json (default otherwise; env K2_LOG_FORMAT)",
    ).choices(LOG_FORMATS),
  )
  .showHelpAfterError()
  .exitOverride()
  .hook("preAction", (cmd) => {
    const format = cmd.opts<{ logFormat?: string }>().logFormat;
    if (format) process.env.K2_LOG_FORMAT = format;
    try {
      logFormat();
    } catch (e) {
      process.stderr.write(`k2: ${(e as Error).message}\n`);
      process.exit(2);
    }
  })
  .addHelpText(
    "after",
    `
Access control (k2 run, k2 serve):
  K2_API_TOKENS=tok1,tok2     when set, the API (/api/*), /docs, /docs/json and /ws need one of
                              the tokens, as "Authorization: Bearer <token>" or "?token=<token>"
                              (on every route). Each token needs at least ${MIN_TOKEN_LENGTH} printable ASCII
                              characters, no spaces or commas; a shorter one is refused at start
                              (exit 2). Open without a token: /health, /metrics and the
                              dashboard's static files.
  K2_WS_MAX_CONN_PER_IP       open /ws connections per client address (default ${GATEWAY_DEFAULTS.maxConnPerIp},
                              0 = no limit); loopback is exempt unless K2_WS_LIMIT_LOOPBACK=true
  K2_WS_MAX_CONN_PER_TOKEN    open /ws connections per API token (default ${GATEWAY_DEFAULTS.maxConnPerToken}, 0 = no limit);
                              over a limit a connection is closed with 1013 "try again later"
  K2_API_MAX_RESPONSE_BYTES   byte budget of one REST list page (default ${GATEWAY_DEFAULTS.apiMaxResponseBytes});
                              next_cursor continues past it`,
  );

registerRun(program);
registerQuery(program);
registerRecord(program);
registerReplayServer(program);
registerExport(program);
registerLoad(program);
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  process.stderr.write(`k2: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
}
