/**
 * Configuration from flags and environment, validated at start with errors that name the flag.
 * Precedence: flag > environment variable > default.
 */
import { z } from "zod";
import type { BacklogPolicy } from "./bus/backlog.js";
import { BusSpecError, parseBusUrl } from "./bus/index.js";
import { type FeedConfig, resolveFeeds } from "./config-feeds.js";
import type { LivenessOptions } from "./feed/liveness.js";
import { type OutputFlags, OutputSpecError, type OutputsConfig, resolveOutputs } from "./outputs/spec.js";
import { type FaultSpec, parseFaults, parseFaultsSeed } from "./replay/faults.js";
import { type GatewayConfig, resolveGatewayConfig } from "./serve/ws/config.js";
import { parseStoreSpec } from "./store/index.js";

/** `<file>.journal` next to a DuckDB file; `./k2-journal` for PostgreSQL and `:memory:`. */
export function defaultJournalDir(db: string): string {
  try {
    const spec = parseStoreSpec(db);
    if (spec.kind === "duckdb" && spec.path !== ":memory:") return `${spec.path}.journal`;
  } catch {
    // reported by the --db check
  }
  return "k2-journal";
}

/** Thrown for invalid configuration; the CLI prints the message and exits 2. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * `--book-interval`: a duration `<n>ms`, `<n>s` or `<n>m` (e.g. `1s`, `250ms`, `1m`), from 10 ms to
 * 1 hour, as ms.
 * @throws {ConfigError} naming `--book-interval`
 */
export function parseBookInterval(raw: string): number {
  const m = /^(\d{1,7})(ms|s|m)$/.exec(raw.trim());
  const ms = m ? Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : 60_000) : Number.NaN;
  if (!(ms >= 10 && ms <= 3_600_000)) {
    throw new ConfigError(
      `--book-interval: expected a duration from 10ms to 60m such as 1s, 250ms or 1m, got "${raw}"`,
    );
  }
  return ms;
}

const intIn = (flag: string, min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    const n = typeof v === "number" ? v : /^\d+$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({
        code: "custom",
        message: `${flag}: expected an integer from ${min} to ${max}, got "${v}"`,
      });
      return z.NEVER;
    }
    return n;
  });

/**
 * Raw options as the CLI hands them over (strings from flags, or undefined); the outputs' flags
 * (`--redis-out`, `--redis-ttl`, `--zmq-pub`, `--zmq-hwm`) are in {@link OutputFlags}.
 */
export interface RunFlags extends OutputFlags {
  exchange?: string;
  symbols?: string;
  streams?: string;
  db?: string;
  httpPort?: string;
  httpHost?: string;
  wsUrl?: string;
  replay?: string;
  speed?: string;
  /** `recorded` (default) or `wall` (`--replay-clock`, with `--replay`). */
  replayClock?: string;
  exitAtEnd?: boolean;
  batchSize?: string;
  batchMaxWaitMs?: string;
  maxBatchSize?: string;
  candleGraceMs?: string;
  /** Gateway worker processes (overrides `K2_WS_WORKERS`). */
  wsWorkers?: string;
  bus?: string;
  group?: string;
  /** Feed liveness: ping after this long without frames, ms (env `K2_PING_INTERVAL_MS`). */
  pingIntervalMs?: string;
  /** Feed liveness: judged dead this long after an unanswered ping, ms (env `K2_PONG_TIMEOUT_MS`). */
  pongTimeoutMs?: string;
  /** Feed liveness: first frame due this long after open, ms (env `K2_FIRST_FRAME_TIMEOUT_MS`). */
  firstFrameTimeoutMs?: string;
  /** Reconnect backoff ceiling, ms (env `K2_BACKOFF_MAX_MS`). */
  backoffMaxMs?: string;
  /** Fault injection SPEC for the replay server (`--faults`, with `--replay`). */
  faults?: string;
  /** Seed of the fault injection PRNG (`--faults-seed`). */
  faultsSeed?: string;
  /** REST base URL(s) of the gap backfill, one per exchange (commander: `--rest-url`). */
  restUrl?: string;
  /** False with `--no-backfill`. */
  backfill?: boolean;
  maxBacklog?: string;
  backlogPolicy?: string;
  journalDir?: string;
  shutdownTimeout?: string;
  /** True with `--store-book-changes`. */
  storeBookChanges?: boolean;
  /** Levels per side of the periodic book snapshots (`--book-depth`). */
  bookDepth?: string;
  /** Interval of the periodic book snapshots (`--book-interval`, e.g. `1s`, `500ms`, `1m`). */
  bookInterval?: string;
}

/** Validated configuration of `k2 run`. */
export interface RunConfig {
  /**
   * Store: a DuckDB file path, `duckdb:PATH`, or `postgres://user@host:5432/db` (see `store/index.ts`).
   */
  db: string;
  /** 0 picks a free port. */
  httpPort: number;
  httpHost: string;
  /**
   * Pace of every replay server (`--speed`): a multiple of the recorded pace, or `max` (as fast as
   * read); default 1, `max` with `--exit-at-end`.
   */
  speed: number | "max";
  /**
   * The receipt clock of replayed feeds (`--replay-clock`): `recorded` (default) stamps records with
   * the recording's receive times (`ingestion_timestamp`) and starts platform_sequence at the first
   * of them, so a recording always gives the same rows; `wall` stamps them with this process's clock
   * (load tests).
   */
  replayClock: "recorded" | "wall";
  exitAtEnd: boolean;
  batchSize: number;
  batchMaxWaitMs: number;
  maxBatchSize: number;
  /** Grace past a candle's end before a quiet market closes it, ms. */
  candleGraceMs: number;
  /** Bus: `memory` (in-process), `nats://host:4222[,host2]?...`, `kafka://host:9092?...` or `redis://host:6379?...` (Redis Streams). */
  bus: string;
  /** Consumer group of `k2 persist` (members share the messages). */
  group: string;
  /**
   * One feed per exchange of `--exchange a,b,c`, in order (see `config-feeds.ts`): its exchange,
   * symbols, streams, endpoint and replay file. Never empty.
   */
  feeds: FeedConfig[];
  /** API tokens and WebSocket gateway limits (`K2_API_TOKENS`, `K2_WS_*`). */
  gateway: GatewayConfig;
  /** Most records received and not yet stored held in memory (`--max-backlog`, default 200,000). */
  maxBacklog: number;
  /** Past the budget: pause the venue sockets (`block`) or spill to the journal (`spill`, default). */
  backlogPolicy: BacklogPolicy;
  /**
   * Spill journal directory (`--journal-dir`): default `<duckdb file>.journal` next to a DuckDB file,
   * else `./k2-journal`.
   */
  journalDir: string;
  /** Longest a SIGTERM/SIGINT flush may take before the rest is journaled, ms (default 30 s). */
  shutdownTimeoutMs: number;
  /** Store book_changes_v2 (`--store-book-changes`, env `K2_STORE_BOOK_CHANGES=1`; default false). */
  storeBookChanges: boolean;
  /** Periodic top-N snapshots of every kept book (`--book-depth`, `--book-interval`; 10 levels, 1 s). */
  bookSnapshots: { depth: number; intervalUs: number };
  /** A store batch write running longer is reported stalled on `/health`, ms (`K2_STORE_STALL_MS`, 30000). */
  storeStallMs: number;
  /** Feed liveness deadlines, ms (`--ping-interval-ms`, `--pong-timeout-ms`, `--first-frame-timeout-ms`). */
  liveness: LivenessOptions;
  /** Ceiling of the full-jitter reconnect backoff, ms (`--backoff-max-ms`, default 60000). */
  backoffMaxMs: number;
  /** Faults the replay servers inject (`--faults`, `--faults-seed`), or null. */
  faults: FaultSpec | null;
  /**
   * REST base URL of each feed's gap backfill, in `feeds` order; null: the replay server's own
   * (`http://127.0.0.1:PORT`) when replaying, else the venue's (`https://api.binance.com`).
   */
  restUrls: (string | null)[];
  /** Fill trade gaps from the venue's REST API (`--no-backfill`: report them only). */
  backfill: boolean;
  /**
   * Where the ingest process also sends every trade and quote (`--redis-out` with `--redis-ttl`,
   * `--zmq-pub` with `--zmq-hwm`; see `outputs/spec.ts`); null members: not asked for.
   */
  outputs: OutputsConfig;
}

/**
 * `--rest-url` (env `K2_REST_URL`): one http(s) URL, or with several exchanges one per exchange in
 * `--exchange` order.
 * @throws {ConfigError} naming `--rest-url`
 */
function resolveRestUrls(raw: string | undefined, feeds: number): (string | null)[] {
  if (raw === undefined || raw.trim() === "") return Array.from({ length: feeds }, () => null);
  const urls = feeds > 1 ? raw.split(",").map((u) => u.trim()) : [raw.trim()];
  if (urls.length !== feeds) {
    throw new ConfigError(
      `--rest-url: ${feeds} exchanges need ${feeds} URLs (one per exchange, in --exchange order), got ${urls.length}`,
    );
  }
  for (const u of urls) {
    if (!/^https?:\/\/[^\s/]+/.test(u))
      throw new ConfigError(`--rest-url: expected an http:// or https:// URL, got "${u}"`);
  }
  return urls;
}

/**
 * Builds the run configuration from flags and `env`; a flag wins over its variable:
 *
 * - feeds: `K2_EXCHANGE`, `K2_SYMBOLS`, `K2_STREAMS`, `K2_WS_URL`, `K2_REST_URL`
 * - feed liveness: `K2_PING_INTERVAL_MS`, `K2_PONG_TIMEOUT_MS`, `K2_FIRST_FRAME_TIMEOUT_MS`,
 *   `K2_BACKOFF_MAX_MS` (ms)
 * - bus: `K2_BUS`, `K2_GROUP` (consumer group of `k2 persist`)
 * - store: `K2_DB`, `K2_BATCH_SIZE`, `K2_BATCH_MAX_WAIT_MS`, `K2_MAX_BATCH_SIZE`, `K2_STORE_STALL_MS`
 *   (no flag)
 * - outputs: `K2_REDIS_OUT`, `K2_REDIS_TTL` (seconds), `K2_ZMQ_PUB`, `K2_ZMQ_HWM`
 * - backlog and shutdown: `K2_MAX_BACKLOG`, `K2_BACKLOG_POLICY`, `K2_JOURNAL_DIR`, `K2_SHUTDOWN_TIMEOUT`
 *   (seconds)
 * - serving: `K2_HTTP_PORT`, `K2_HTTP_HOST`, `K2_CANDLE_GRACE_MS`, `K2_WS_WORKERS`; the API tokens and
 *   gateway limits without flags (`K2_API_TOKENS`, `K2_API_MAX_RESPONSE_BYTES`, `K2_WS_*`: see
 *   `serve/ws/config.ts`)
 *
 * @throws {ConfigError} naming the flag (or the variable, where there is no flag) at fault
 */
export function resolveRunConfig(flags: RunFlags, env: NodeJS.ProcessEnv = process.env): RunConfig {
  let feeds: FeedConfig[];
  try {
    feeds = resolveFeeds(flags, env);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const parse = <T>(schema: z.ZodType<T>, value: unknown): T => {
    const r = schema.safeParse(value);
    if (!r.success) throw new ConfigError(r.error.issues[0]?.message ?? "invalid value");
    return r.data;
  };
  // a replay to watch (the dashboard demo) plays at the recorded pace; a batch run (--exit-at-end) as
  // fast as it is read
  const speedRaw = flags.speed ?? (flags.exitAtEnd ? "max" : "1");
  let speed: number | "max";
  if (speedRaw === "max") speed = "max";
  else {
    speed = Number(speedRaw);
    if (!Number.isFinite(speed) || speed <= 0) {
      throw new ConfigError(`--speed: expected a positive number (1, 10) or "max", got "${speedRaw}"`);
    }
  }
  const batchSize = parse(intIn("--batch-size", 1, 1_000_000), flags.batchSize ?? env.K2_BATCH_SIZE ?? 500);
  const maxBatchSize = parse(
    intIn("--max-batch-size", 1, 10_000_000),
    flags.maxBatchSize ?? env.K2_MAX_BATCH_SIZE ?? Math.max(50_000, batchSize),
  );
  if (maxBatchSize < batchSize) throw new ConfigError("--max-batch-size: must be at least --batch-size");
  const db = flags.db ?? env.K2_DB ?? "k2.duckdb";
  try {
    parseStoreSpec(db);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (flags.exitAtEnd && !flags.replay)
    throw new ConfigError("--exit-at-end: only meaningful with --replay FILE");
  const replayClock = (flags.replayClock ?? "recorded").trim();
  if (replayClock !== "recorded" && replayClock !== "wall") {
    throw new ConfigError(`--replay-clock: expected recorded or wall, got "${replayClock}"`);
  }
  if (flags.replayClock !== undefined && !flags.replay)
    throw new ConfigError("--replay-clock: only meaningful with --replay FILE");
  const busSpec = (flags.bus ?? env.K2_BUS ?? "memory").trim();
  try {
    parseBusUrl(busSpec);
  } catch (e) {
    if (e instanceof BusSpecError) throw new ConfigError(e.message); // names --bus
    throw e;
  }
  const group = flags.group ?? env.K2_GROUP ?? "k2-persist";
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(group)) {
    throw new ConfigError(`--group: letters, digits, _ or - (at most 64), got "${group}"`);
  }
  let gateway: GatewayConfig;
  try {
    gateway = resolveGatewayConfig(env, { wsWorkers: flags.wsWorkers });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const liveness: LivenessOptions = {
    pingIntervalMs: parse(
      intIn("--ping-interval-ms", 50, 3_600_000),
      flags.pingIntervalMs ?? env.K2_PING_INTERVAL_MS ?? 10_000,
    ),
    pongTimeoutMs: parse(
      intIn("--pong-timeout-ms", 50, 3_600_000),
      flags.pongTimeoutMs ?? env.K2_PONG_TIMEOUT_MS ?? 10_000,
    ),
    firstFrameTimeoutMs: parse(
      intIn("--first-frame-timeout-ms", 50, 3_600_000),
      flags.firstFrameTimeoutMs ?? env.K2_FIRST_FRAME_TIMEOUT_MS ?? 10_000,
    ),
  };
  let faults: FaultSpec | null = null;
  if (flags.faultsSeed !== undefined && flags.faults === undefined)
    throw new ConfigError("--faults-seed: only meaningful with --faults SPEC");
  if (flags.faults !== undefined) {
    if (!flags.replay) throw new ConfigError("--faults: only meaningful with --replay FILE");
    try {
      faults = parseFaults(
        flags.faults,
        flags.faultsSeed === undefined ? 1 : parseFaultsSeed(flags.faultsSeed),
      );
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  }
  const maxBacklog = parse(
    intIn("--max-backlog", 1000, 100_000_000),
    flags.maxBacklog ?? env.K2_MAX_BACKLOG ?? 200_000,
  );
  const policy = (flags.backlogPolicy ?? env.K2_BACKLOG_POLICY ?? "spill").trim();
  if (policy !== "block" && policy !== "spill") {
    throw new ConfigError(`--backlog-policy: expected block or spill, got "${policy}"`);
  }
  let outputs: OutputsConfig;
  try {
    outputs = resolveOutputs(flags, env);
  } catch (e) {
    if (e instanceof OutputSpecError) throw new ConfigError(e.message); // names the flag
    throw e;
  }
  const journalDir = (flags.journalDir ?? env.K2_JOURNAL_DIR ?? defaultJournalDir(db)).trim();
  if (journalDir === "") throw new ConfigError("--journal-dir: empty value");
  const timeoutRaw = String(flags.shutdownTimeout ?? env.K2_SHUTDOWN_TIMEOUT ?? "30").trim();
  const timeoutS = /^\d+(\.\d+)?$/.test(timeoutRaw) ? Number(timeoutRaw) : Number.NaN;
  if (!(timeoutS >= 0.1 && timeoutS <= 3600)) {
    throw new ConfigError(
      `--shutdown-timeout: expected seconds from 0.1 to 3600 (e.g. 30 or 2.5), got "${timeoutRaw}"`,
    );
  }
  return {
    storeBookChanges: flags.storeBookChanges ?? /^(1|true|yes)$/i.test(env.K2_STORE_BOOK_CHANGES ?? ""),
    bookSnapshots: {
      depth: parse(intIn("--book-depth", 1, 1000), flags.bookDepth ?? env.K2_BOOK_DEPTH ?? 10),
      intervalUs: parseBookInterval(flags.bookInterval ?? env.K2_BOOK_INTERVAL ?? "1s") * 1000,
    },
    maxBacklog,
    backlogPolicy: policy,
    journalDir,
    shutdownTimeoutMs: Math.round(timeoutS * 1000),
    storeStallMs: parse(intIn("K2_STORE_STALL_MS", 100, 86_400_000), env.K2_STORE_STALL_MS ?? 30_000),
    db,
    // a batch run (--exit-at-end) serves on any free port unless told: it never takes 8080 from a k2 that runs
    httpPort: parse(
      intIn("--http-port", 0, 65535),
      flags.httpPort ?? env.K2_HTTP_PORT ?? (flags.exitAtEnd ? 0 : 8080),
    ),
    httpHost: flags.httpHost ?? env.K2_HTTP_HOST ?? "127.0.0.1",
    speed,
    replayClock,
    exitAtEnd: flags.exitAtEnd ?? false,
    batchSize,
    batchMaxWaitMs: parse(
      intIn("--batch-max-wait-ms", 1, 3_600_000),
      flags.batchMaxWaitMs ?? env.K2_BATCH_MAX_WAIT_MS ?? 2000,
    ),
    maxBatchSize,
    bus: busSpec,
    group,
    candleGraceMs: parse(
      intIn("--candle-grace-ms", 0, 86_400_000),
      flags.candleGraceMs ?? env.K2_CANDLE_GRACE_MS ?? 2000,
    ),
    feeds,
    gateway,
    liveness,
    backoffMaxMs: parse(
      intIn("--backoff-max-ms", 100, 3_600_000),
      flags.backoffMaxMs ?? env.K2_BACKOFF_MAX_MS ?? 60_000,
    ),
    faults,
    restUrls: resolveRestUrls(flags.restUrl ?? env.K2_REST_URL, feeds.length),
    backfill: flags.backfill ?? true,
    outputs,
  };
}
