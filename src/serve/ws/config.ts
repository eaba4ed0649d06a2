/**
 * Configuration of the live serving layer (API tokens, WebSocket gateway limits) from the environment:
 *
 * | env | default | meaning |
 * |---|---|---|
 * | `K2_API_TOKENS` | unset | comma-separated tokens; when set, every route but `/health`, `/metrics` and static files, and `/ws`, require one |
 * | `K2_WS_HEARTBEAT_MS` | 30000 | server heartbeat period (JSON `heartbeat` + WebSocket ping) |
 * | `K2_WS_IDLE_TIMEOUT_MS` | 90000 | a client that sent nothing (not even a pong) this long is closed |
 * | `K2_WS_MAX_QUEUE` | 10000 | messages queued for a client that fell behind before it is cut |
 * | `K2_WS_HIGH_WATER_BYTES` | 524288 | socket bytes not yet flushed above which a client counts as behind |
 * | `K2_WS_WORKERS` | 2 | gateway worker processes serving `/ws` (0: in the ingest process; flag `--ws-workers`) |
 * | `K2_WS_WORKER_NICE` | 10 | CPU niceness of the gateway worker processes, 0–19 |
 * | `K2_WS_MAX_CONN_PER_IP` | 256 | open `/ws` connections per client address (0 = no limit) |
 * | `K2_WS_MAX_CONN_PER_TOKEN` | 1024 | open `/ws` connections per API token (0 = no limit) |
 * | `K2_WS_LIMIT_LOOPBACK` | false | also apply the per-address limit to loopback clients (127.0.0.0/8, ::1) |
 * | `K2_API_MAX_RESPONSE_BYTES` | 4194304 | byte budget of one REST list response (16384 to 1 GiB) |
 * | `K2_REPLAY_MAX_RANGE` | 0 | how far back a `/ws` subscription `from` may reach: a duration (`3600`, `90s`, `30m`, `24h`, `7d`; 0 = no limit), then optional `token=duration` pairs for single tokens, comma-separated |
 * | `K2_REPLAY_MAX_RECORDS` | 0 | how many stored records one `/ws` subscription `from` may be sent before the switch to live: a count (0 = no limit), then optional `token=count` pairs, comma-separated |
 *
 * API tokens: at least {@link MIN_TOKEN_LENGTH} printable ASCII characters each, no spaces or commas.
 */
import { z } from "zod";
import {
  GATEWAY_DEFAULTS,
  type GatewayConfig,
  MIN_TOKEN_LENGTH,
  type ReplayMaxRange,
  type ReplayMaxRecords,
} from "./defaults.js";

// the settings' shape and defaults live in a module without zod, so `k2 --help` shows them without
// loading the validation
export {
  GATEWAY_DEFAULTS,
  type GatewayConfig,
  MIN_TOKEN_LENGTH,
  type ReplayMaxRange,
  type ReplayMaxRecords,
  replayLimitOf,
  replayRecordsOf,
} from "./defaults.js";

const int = (name: string, min: number, max: number) =>
  z.string().transform((v, ctx) => {
    const n = /^\d+$/.test(v.trim()) ? Number(v.trim()) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({
        code: "custom",
        message: `${name}: expected an integer from ${min} to ${max}, got "${v}"`,
      });
      return z.NEVER;
    }
    return n;
  });

/**
 * Reads the gateway settings from `env`.
 * @throws {Error} with a message naming the variable at fault (the CLI turns it into exit code 2)
 */
export function resolveGatewayConfig(
  env: NodeJS.ProcessEnv = process.env,
  flags: { wsWorkers?: string } = {},
): GatewayConfig {
  /** `name`'s value (or `flag`'s when given: flags win, and the error names the flag). */
  const read = (
    name: string,
    min: number,
    max: number,
    fallback: number,
    flag?: [string, string?],
  ): number => {
    const [label, v] = flag?.[1] !== undefined ? [flag[0], flag[1]] : [name, env[name]];
    if (v === undefined || v === "") return fallback;
    const r = int(label, min, max).safeParse(v);
    if (!r.success) throw new Error(r.error.issues[0]?.message ?? `${label}: invalid value`);
    return r.data;
  };
  const apiTokens = (env.K2_API_TOKENS ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of apiTokens) {
    if (t.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(t)) {
      throw new Error(
        `K2_API_TOKENS: each token needs at least ${MIN_TOKEN_LENGTH} printable ASCII characters without spaces (one has ${t.length})`,
      );
    }
  }
  const heartbeatMs = read("K2_WS_HEARTBEAT_MS", 100, 3_600_000, GATEWAY_DEFAULTS.heartbeatMs);
  const idleTimeoutMs = read("K2_WS_IDLE_TIMEOUT_MS", 200, 86_400_000, GATEWAY_DEFAULTS.idleTimeoutMs);
  if (idleTimeoutMs <= heartbeatMs) {
    throw new Error("K2_WS_IDLE_TIMEOUT_MS: must be longer than K2_WS_HEARTBEAT_MS");
  }
  return {
    apiTokens,
    heartbeatMs,
    idleTimeoutMs,
    maxQueue: read("K2_WS_MAX_QUEUE", 10, 10_000_000, GATEWAY_DEFAULTS.maxQueue),
    highWaterBytes: read("K2_WS_HIGH_WATER_BYTES", 1024, 1 << 30, GATEWAY_DEFAULTS.highWaterBytes),
    workers: read("K2_WS_WORKERS", 0, 64, GATEWAY_DEFAULTS.workers, ["--ws-workers", flags.wsWorkers]),
    workerNice: read("K2_WS_WORKER_NICE", 0, 19, GATEWAY_DEFAULTS.workerNice),
    maxConnPerIp: read("K2_WS_MAX_CONN_PER_IP", 0, 10_000_000, GATEWAY_DEFAULTS.maxConnPerIp),
    maxConnPerToken: read("K2_WS_MAX_CONN_PER_TOKEN", 0, 10_000_000, GATEWAY_DEFAULTS.maxConnPerToken),
    limitLoopback: bool("K2_WS_LIMIT_LOOPBACK", env.K2_WS_LIMIT_LOOPBACK, GATEWAY_DEFAULTS.limitLoopback),
    apiMaxResponseBytes: read(
      "K2_API_MAX_RESPONSE_BYTES",
      16 * 1024,
      1 << 30,
      GATEWAY_DEFAULTS.apiMaxResponseBytes,
    ),
    replayMaxRange: replayRange(env.K2_REPLAY_MAX_RANGE),
    replayMaxRecords: replayRecords(env.K2_REPLAY_MAX_RECORDS),
  };
}

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * `K2_REPLAY_MAX_RANGE`: `duration[,token=duration...]`, a duration being whole seconds with an
 * optional unit `s`, `m`, `h` or `d` (0: no limit); the first item may also be a `token=duration` pair.
 * @throws {Error} naming the variable on anything else
 */
function replayRange(v: string | undefined): ReplayMaxRange {
  const { all, byToken } = perToken(v, (text) => {
    const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
    if (!m) {
      throw new Error(`K2_REPLAY_MAX_RANGE: expected a duration such as 3600, 30m, 24h or 7d, got "${text}"`);
    }
    return Number(m[1]) * DURATION_UNITS[m[2] || "s"] * 1_000_000;
  });
  return { us: all, byToken };
}

/**
 * `K2_REPLAY_MAX_RECORDS`: `count[,token=count...]`, a count being a whole number of records up to
 * 10^12 (0: no limit); the first item may also be a `token=count` pair.
 * @throws {Error} naming the variable on anything else
 */
function replayRecords(v: string | undefined): ReplayMaxRecords {
  const { all, byToken } = perToken(v, (text) => {
    if (!/^\d{1,12}$/.test(text.trim())) {
      throw new Error(`K2_REPLAY_MAX_RECORDS: expected a number of records such as 1000000, got "${text}"`);
    }
    return Number(text.trim());
  });
  return { records: all, byToken };
}

/** `value[,token=value...]` read with `parse` (0 for all tokens when no plain value is given). */
function perToken(
  v: string | undefined,
  parse: (text: string) => number,
): { all: number; byToken: Record<string, number> } {
  const out = { all: 0, byToken: {} as Record<string, number> };
  if (v === undefined || v.trim() === "") return out;
  for (const item of v.split(",")) {
    const eq = item.indexOf("=");
    if (eq < 0) out.all = parse(item);
    else out.byToken[item.slice(0, eq).trim()] = parse(item.slice(eq + 1));
  }
  return out;
}

/**
 * A boolean setting: `1`/`true`/`yes`/`on` or `0`/`false`/`no`/`off` (any case); `fallback` when unset.
 * @throws {Error} naming `name` on anything else
 */
function bool(name: string, v: string | undefined, fallback: boolean): boolean {
  if (v === undefined || v.trim() === "") return fallback;
  const t = v.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(t)) return true;
  if (["0", "false", "no", "off"].includes(t)) return false;
  throw new Error(`${name}: expected true or false, got "${v}"`);
}
