import type { Command } from "commander";
import type { RunFlags } from "../config.js";
import type { Roles, RunSummary } from "../run.js";
import { exitWithError, onSignal, runConfigOrExit } from "./common.js";

type OptionGroup = "source" | "store" | "batch" | "serve" | "bus";

/** The processes of the pipeline: `k2 run` (all in one) and its parts for scale-out. */
const PROCESSES: { name: string; roles: Roles; groups: OptionGroup[]; description: string }[] = [
  {
    name: "run",
    roles: { ingest: true, persist: true, serve: true },
    groups: ["source", "store", "batch", "serve", "bus"],
    description:
      "ingest venues (live or --replay FILE) into the store and serve the API, /health and /metrics, in one process",
  },
  {
    name: "ingest",
    roles: { ingest: true, persist: false, serve: false },
    groups: ["source", "bus"],
    description: "feed handlers → bus: ingest venues (live or --replay FILE) and publish normalized records",
  },
  {
    name: "persist",
    roles: { ingest: false, persist: true, serve: false },
    groups: ["store", "batch", "bus"],
    description:
      "bus → store: write batches and ack them after each commit; run several with one --group to share the load",
  },
  {
    name: "serve",
    roles: { ingest: false, persist: false, serve: true },
    groups: ["store", "serve", "bus"],
    description:
      "API, live candles, /health and /metrics over a store shared with `k2 persist`, tailing the bus",
  },
];

/** Registers `k2 run`, `k2 ingest`, `k2 persist` and `k2 serve`. */
export function registerRun(program: Command): void {
  for (const p of PROCESSES) registerProcess(program, p.name, p.roles, p.groups, p.description);
}

function registerProcess(
  program: Command,
  name: string,
  roles: Roles,
  groups: OptionGroup[],
  description: string,
) {
  const cmd = program.command(name).description(description);
  if (groups.includes("source")) {
    cmd
      .option(
        "--exchange <name>",
        "venue, or several: binance,coinbase,kraken (env K2_EXCHANGE; default binance)",
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
        "--ws-url <url>",
        "venue WebSocket base URL, one per exchange (env K2_WS_URL; default per venue)",
      )
      .option(
        "--replay <file>",
        "replay a capture through an in-process replay server instead of the live venue (one entry per exchange, in order; consecutive Binance captures as one session: a.gz,b.gz with one exchange, a.gz+b.gz with several)",
      )
      .option(
        "--rest-url <url>",
        "venue REST base URL of the gap backfill, one per exchange (env K2_REST_URL; default per venue, with --replay the replay server's)",
      )
      .option("--no-backfill", "report sequence gaps without filling them from the venue's REST API")
      .option("--speed <x>", "replay pace: 1, 10, ... or max (default 1; with --exit-at-end max)")
      .option(
        "--replay-clock <clock>",
        "with --replay: recorded (records carry the recording's receive times, the same rows every replay) or wall (this process's clock, for load tests) (default recorded)",
      )
      .option(
        "--exit-at-end",
        "with --replay: flush, print a JSON summary line on stdout and exit when the replay ends",
      )
      .option(
        "--faults <spec>",
        "with --replay: inject faults, e.g. drop-every=5000:lost=300,garbage=0.001,stall=90s@20000,close=1001@100,no-pong",
      )
      .option("--faults-seed <n>", "seed of the --faults PRNG (default 1)")
      .option(
        "--book-depth <n>",
        "levels per side of the periodic snapshots of every kept order book, 1 to 1000 (env K2_BOOK_DEPTH; default 10)",
      )
      .option(
        "--book-interval <d>",
        "interval of those snapshots on the venue's clock: 250ms, 1s, 1m ... (env K2_BOOK_INTERVAL; default 1s)",
      )
      .option(
        "--ping-interval-ms <ms>",
        "ping the venue after this long without frames (env K2_PING_INTERVAL_MS; default 10000)",
      )
      .option(
        "--pong-timeout-ms <ms>",
        "reconnect when neither a frame nor the pong arrives this long after a ping (env K2_PONG_TIMEOUT_MS; default 10000)",
      )
      .option(
        "--backoff-max-ms <ms>",
        "ceiling of the jittered reconnect backoff (env K2_BACKOFF_MAX_MS; default 60000)",
      )
      .option(
        "--first-frame-timeout-ms <ms>",
        "reconnect when the venue sends nothing this long after subscribing (env K2_FIRST_FRAME_TIMEOUT_MS; default 10000)",
      )
      .option(
        "--max-backlog <n>",
        "records received and not yet stored held in memory (env K2_MAX_BACKLOG; default 200000)",
      )
      .option(
        "--backlog-policy <p>",
        "past --max-backlog: block (pause the venue sockets) or spill (to the journal) (env K2_BACKLOG_POLICY; default spill)",
      )
      .option(
        "--journal-dir <dir>",
        "spill journal directory (env K2_JOURNAL_DIR; default <duckdb file>.journal, else ./k2-journal)",
      )
      .option(
        "--redis-out <url>",
        "also keep the latest trade and quote per symbol in Redis and PUBLISH every one: redis://HOST:6379[/DB][?prefix=NAME&queue=10000] (env K2_REDIS_OUT)",
      )
      .option(
        "--redis-ttl <s>",
        "expiry of the --redis-out latest-tick keys, seconds, 0 = none (env K2_REDIS_TTL; default 60)",
      )
      .option(
        "--zmq-pub <endpoint>",
        "also publish every trade and quote on a ZeroMQ PUB socket bound here: tcp://HOST:PORT or ipc://PATH (env K2_ZMQ_PUB)",
      )
      .option(
        "--zmq-hwm <n>",
        "send high-water mark of --zmq-pub per subscriber, messages (env K2_ZMQ_HWM; default 10000)",
      );
  }
  if (groups.includes("store")) {
    cmd.option(
      "--db <spec>",
      "store: DuckDB file PATH, duckdb:PATH or postgres://USER@HOST:5432/DB (env K2_DB; default ./k2.duckdb)",
    );
  }
  if (groups.includes("batch")) {
    cmd
      .option(
        "--store-book-changes",
        "also store every order-book change (book_changes_v2; env K2_STORE_BOOK_CHANGES=1; default: on the bus only)",
      )
      .option("--batch-size <n>", "store batch size (env K2_BATCH_SIZE; default 500)")
      .option("--batch-max-wait-ms <ms>", "store batch time bound (env K2_BATCH_MAX_WAIT_MS; default 2000)")
      .option("--max-batch-size <n>", "largest batch under backlog (env K2_MAX_BATCH_SIZE; default 50000)");
    if (!roles.ingest) cmd.option("--group <name>", "consumer group (env K2_GROUP; default k2-persist)");
  }
  if (groups.includes("serve")) {
    cmd.option(
      "--candle-grace-ms <ms>",
      "close a quiet market's candle this long after its end (env K2_CANDLE_GRACE_MS; default 2000)",
    );
    cmd.option(
      "--ws-workers <n>",
      "processes serving the /ws gateway, 0 = in this process (env K2_WS_WORKERS; default 2)",
    );
  }
  if (groups.includes("bus")) {
    cmd.option(
      "--bus <url>",
      "bus: memory, nats://HOST:4222[,HOST2][?replicas=3&max_age=7d], kafka://HOST:9092 or redis://HOST:6379[?maxlen=1000000] (env K2_BUS; default memory)",
    );
  }
  cmd
    .option(
      "--http-port <n>",
      "HTTP port for /health and /metrics (and the API), 0 = any free port (env K2_HTTP_PORT; default 8080)",
    )
    .option("--http-host <host>", "HTTP bind address (env K2_HTTP_HOST; default 127.0.0.1)")
    .option(
      "--shutdown-timeout <s>",
      "longest SIGTERM/SIGINT flush, seconds; what is not stored by then is journaled (env K2_SHUTDOWN_TIMEOUT; default 30)",
    )
    .action(async (flags: RunFlags) => {
      // a SIGTERM or Ctrl-C during start-up is kept, not fatal: the process stops in order once started
      const signal = onSignal();
      let started = false;
      let stoppedWhileStarting = false;
      signal.then(() => {
        stoppedWhileStarting = !started;
      });
      const [
        { ConfigError },
        { createLogger },
        { startProcess },
        { ListenError },
        { StoreLockedError },
        { OutputStartError },
        { ReplaySymbolsError },
      ] = await Promise.all([
        import("../config.js"),
        import("../ops/logger.js"),
        import("../run.js"),
        import("../serve/http.js"),
        import("../store/duckdb.js"),
        import("../outputs/start.js"),
        import("../replay/feeds.js"),
      ]);
      const config = await runConfigOrExit(flags, (c) => {
        if (name !== "run" && c.bus === "memory") {
          throw new ConfigError(
            `--bus: k2 ${name} shares records with other processes: give nats://HOST:4222, kafka://HOST:9092 or redis://HOST:6379`,
          );
        }
      });
      const logger = createLogger();
      let running: Awaited<ReturnType<typeof startProcess>>;
      try {
        running = await startProcess(config, logger, roles);
      } catch (e) {
        if (e instanceof ListenError || e instanceof OutputStartError) exitWithError(e.message);
        if (e instanceof StoreLockedError) exitWithError(`--db: ${e.message}`);
        if (e instanceof ReplaySymbolsError) exitWithError(e.message);
        throw e;
      }
      started = true;
      const reason = await (running.replayDone && config.exitAtEnd
        ? Promise.race([running.replayDone.then(() => "replay finished"), signal])
        : signal);
      const summary = await running.stop(reason);
      const line = summaryLine(summary, roles);
      process.stdout.write(`${JSON.stringify(line)}\n`);
      if (summary.shutdown_timed_out || summary.journaled > 0) {
        process.stderr.write(
          summary.journaled > 0
            ? `k2: shutdown: ${summary.journaled.toLocaleString("en-US")} records not stored are in the journal ${config.journalDir} (${summary.journaled_at_shutdown.toLocaleString("en-US")} written at shutdown after the ${config.shutdownTimeoutMs / 1000} s timeout); the next start replays them\n`
            : `k2: shutdown: not everything was stored within the ${config.shutdownTimeoutMs / 1000} s timeout; the bus delivers the unacknowledged records again\n`,
        );
        process.exit(1);
      }
      // a run that got nothing failed: no frame and no record of an earlier run's spill journal (a
      // restart that drained the journal did its work), unless it was told to stop before it had started
      if (roles.ingest && summary.frames === 0 && summary.journal_read_back === 0 && !stoppedWhileStarting) {
        exitWithError(noFramesSentence(running.feeds), 1);
      }
      // everything is flushed and closed; do not wait for client libraries' idle timers
      process.exit(0);
    });
}

/**
 * Why a run that received no market data frames is a failure, naming each feed's last connection
 * failure, e.g. `the run got no frames: BINANCE: DNS lookup failed for stream.binance.com (getaddrinfo
 * ENOTFOUND)`.
 */
function noFramesSentence(
  feeds: readonly { venue: { exchange: string }; connection: { lastFailure: { message: string } | null } }[],
): string {
  const why = feeds.map(
    (f) =>
      `${f.venue.exchange}: ${f.connection.lastFailure?.message ?? "no market data on the subscription"}`,
  );
  return `the run got no frames (${why.join("; ")})`;
}

/**
 * The JSON summary line printed on stdout at exit: the figures of the roles the process ran, in this
 * order (a `duplicates` of both roles is printed once, where ingest puts it).
 */
function summaryLine(summary: RunSummary, roles: Roles): Partial<RunSummary> {
  const fields: (keyof RunSummary)[] = [
    ...(roles.ingest ? INGEST_COUNTS : []),
    ...(roles.persist ? PERSIST_COUNTS : []),
    ...(roles.ingest ? INGEST_TIMES : []),
    ...(roles.ingest && summary.faults ? (["faults"] as const) : []),
    ...(roles.ingest && summary.book_changes > 0 ? BOOK_CHECKS : []),
    ...(roles.persist && summary.book_changes_stored + summary.book_snapshots_stored > 0 ? BOOK_STORED : []),
    "max_rss_mb",
    ...(roles.ingest ? INGEST_MEMORY : []),
    ...(roles.persist ? (["poison"] as const) : []),
  ];
  return Object.fromEntries(fields.map((k) => [k, summary[k]]));
}

const INGEST_COUNTS = ["frames", "trades", "quotes", "rejected", "duplicates", "aggTrades"] as const;
const PERSIST_COUNTS = ["stored", "duplicates", "redeliveries"] as const;
const INGEST_TIMES = [
  "gaps",
  "gaps_detected",
  "gaps_filled",
  "missing",
  "elapsed_ms",
  "receive_ms",
  "frames_per_s",
  "active_ms",
  "reconnects",
] as const;
const BOOK_CHECKS = [
  "book_changes",
  "book_checks",
  "book_mismatches",
  "book_checks_late",
  "resyncs",
  "checksums_verified",
  "checksum_failures",
  "book_snapshots",
] as const;
const BOOK_STORED = ["book_changes_stored", "book_snapshots_stored"] as const;
const INGEST_MEMORY = ["max_backlog", "max_heap_mb", "journaled", "journal_read_back"] as const;
