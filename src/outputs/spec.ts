/**
 * The output flags, validated without connecting (for the configuration check at start):
 *
 * - `--redis-out redis://[user:password@]HOST[:6379][/DB][?prefix=NAME&queue=10000]` (or `rediss://`),
 *   with `--redis-ttl SECONDS` (default 60; 0 keeps the keys without expiry)
 * - `--zmq-pub tcp://HOST:PORT` (or `ipc://PATH`), with `--zmq-hwm N` (the PUB socket's send
 *   high-water mark, messages per subscriber; default 10,000)
 *
 * Every error is an {@link OutputSpecError} whose message starts with the flag (`config.ts` turns it
 * into a `ConfigError`, so the CLI exits 2).
 */

/** Thrown for an unusable output flag; the message starts with the flag (`--redis-out: …`). */
export class OutputSpecError extends Error {
  override name = "OutputSpecError";
}

/** A validated `--redis-out` (with `--redis-ttl`). */
export interface RedisOutSpec {
  /** Server URL without K2's query parameters: `redis://127.0.0.1:6379/0`. */
  url: string;
  /** Namespace of every key and channel (`{prefix}:market:…`), or null. */
  prefix: string | null;
  /** Expiry of the latest-tick keys, seconds (0: none). */
  ttlSeconds: number;
  /** Records queued while Redis is slow or away before new ones are dropped (counted). */
  queue: number;
}

/** A validated `--zmq-pub` (with `--zmq-hwm`). */
export interface ZmqPubSpec {
  /** Endpoint the PUB socket binds: `tcp://127.0.0.1:5556`, `ipc:///tmp/k2.sock`. */
  endpoint: string;
  /** Send high-water mark per subscriber, messages. */
  hwm: number;
}

/** The outputs of a process (`RunConfig.outputs`). */
export interface OutputsConfig {
  redis: RedisOutSpec | null;
  zmq: ZmqPubSpec | null;
}

/** Default of `--redis-ttl`, seconds. */
export const DEFAULT_REDIS_TTL_S = 60;
/** Default of `--zmq-hwm`, messages. */
export const DEFAULT_ZMQ_HWM = 10_000;
/** Default queue of an output (records waiting for a slow or absent peer), records. */
export const DEFAULT_OUTPUT_QUEUE = 10_000;

/** The raw values of the output flags (strings from flags or the environment, or undefined). */
export interface OutputFlags {
  redisOut?: string;
  redisTtl?: string;
  zmqPub?: string;
  zmqHwm?: string;
}

/**
 * `n` as an integer from `min` to `max`.
 * @throws {OutputSpecError} naming `flag`
 */
function integer(flag: string, raw: string, min: number, max: number): number {
  const n = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new OutputSpecError(`${flag}: expected an integer from ${min} to ${max}, got "${raw}"`);
  }
  return n;
}

/**
 * Validates `--redis-out` and `--redis-ttl`.
 * @throws {OutputSpecError} naming `--redis-out` (not a redis:// URL, unknown or bad parameter) or
 *   `--redis-ttl` (not 0 to 2,592,000 seconds, or given without `--redis-out`)
 */
export function parseRedisOut(raw: string | undefined, ttlRaw: string | undefined): RedisOutSpec | null {
  if (raw === undefined || raw.trim() === "") {
    if (ttlRaw !== undefined) throw new OutputSpecError("--redis-ttl: only meaningful with --redis-out URL");
    return null;
  }
  const expected = `expected redis://HOST:6379[/DB][?prefix=NAME&queue=N], got "${raw}"`;
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new OutputSpecError(`--redis-out: ${expected}`);
  }
  if ((url.protocol !== "redis:" && url.protocol !== "rediss:") || url.hostname === "") {
    throw new OutputSpecError(`--redis-out: ${expected}`);
  }
  if (!/^\/?(\d{1,5})?$/.test(url.pathname)) {
    throw new OutputSpecError(`--redis-out: the path is a database number (/0), got "${url.pathname}"`);
  }
  let prefix: string | null = null;
  let queue = DEFAULT_OUTPUT_QUEUE;
  for (const [k, v] of url.searchParams) {
    if (k === "prefix") {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(v))
        throw new OutputSpecError(`--redis-out: prefix: letters, digits, _ or - (at most 64), got "${v}"`);
      prefix = v;
    } else if (k === "queue") queue = integer("--redis-out: queue", v, 1, 10_000_000);
    else throw new OutputSpecError(`--redis-out: unknown option "${k}" in "${raw}" (known: prefix, queue)`);
  }
  url.search = "";
  const ttlSeconds =
    ttlRaw === undefined ? DEFAULT_REDIS_TTL_S : integer("--redis-ttl", ttlRaw, 0, 30 * 86_400);
  return { url: url.toString(), prefix, ttlSeconds, queue };
}

/**
 * Validates `--zmq-pub` and `--zmq-hwm`.
 * @throws {OutputSpecError} naming `--zmq-pub` (not `tcp://HOST:PORT` or `ipc://PATH`) or `--zmq-hwm`
 *   (not 1 to 10,000,000, or given without `--zmq-pub`)
 */
export function parseZmqPub(raw: string | undefined, hwmRaw: string | undefined): ZmqPubSpec | null {
  if (raw === undefined || raw.trim() === "") {
    if (hwmRaw !== undefined) throw new OutputSpecError("--zmq-hwm: only meaningful with --zmq-pub ENDPOINT");
    return null;
  }
  const endpoint = raw.trim();
  const tcp = /^tcp:\/\/([A-Za-z0-9.*-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})$/.exec(endpoint);
  const ipc = /^ipc:\/\/\S+$/.test(endpoint);
  if (!ipc && (!tcp || Number(tcp[2]) < 1 || Number(tcp[2]) > 65535)) {
    throw new OutputSpecError(
      `--zmq-pub: expected tcp://HOST:PORT (port 1 to 65535) or ipc://PATH, got "${raw}"`,
    );
  }
  const hwm = hwmRaw === undefined ? DEFAULT_ZMQ_HWM : integer("--zmq-hwm", hwmRaw, 1, 10_000_000);
  return { endpoint, hwm };
}

/**
 * The outputs the flags (or `K2_REDIS_OUT`, `K2_REDIS_TTL`, `K2_ZMQ_PUB`, `K2_ZMQ_HWM`) ask for.
 * @throws {OutputSpecError} naming the flag at fault
 */
export function resolveOutputs(flags: OutputFlags, env: NodeJS.ProcessEnv): OutputsConfig {
  return {
    redis: parseRedisOut(flags.redisOut ?? env.K2_REDIS_OUT, flags.redisTtl ?? env.K2_REDIS_TTL),
    zmq: parseZmqPub(flags.zmqPub ?? env.K2_ZMQ_PUB, flags.zmqHwm ?? env.K2_ZMQ_HWM),
  };
}
