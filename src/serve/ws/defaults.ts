/**
 * The serving layer's settings ({@link GatewayConfig}) and their defaults, apart from their validation
 * (`config.ts`, zod) so the CLI's help text can show them without loading zod.
 */

/** Validated gateway and API settings. */
export interface GatewayConfig {
  /** Accepted tokens; empty = no authentication. */
  apiTokens: string[];
  /** ms */
  heartbeatMs: number;
  /** ms */
  idleTimeoutMs: number;
  /** Messages. */
  maxQueue: number;
  /** Bytes. */
  highWaterBytes: number;
  /** Worker processes serving `/ws` (`pool.ts`); 0 serves it in the main process. */
  workers: number;
  /** CPU niceness of the worker processes (0–19; higher yields the CPU to ingest and the store). */
  workerNice: number;
  /** Most open `/ws` connections from one client address; 0 = no limit (`conn-limit.ts`). */
  maxConnPerIp: number;
  /** Most open `/ws` connections presenting one API token; 0 = no limit. */
  maxConnPerToken: number;
  /** Whether loopback clients count against {@link maxConnPerIp} (default false: they are exempt). */
  limitLoopback: boolean;
  /** Byte budget of one REST list response, bytes (pages stop early and return a cursor). */
  apiMaxResponseBytes: number;
  /** How far back a `from` subscription may reach (`K2_REPLAY_MAX_RANGE`). */
  replayMaxRange: ReplayMaxRange;
  /** How many stored records one `from` subscription may be sent (`K2_REPLAY_MAX_RECORDS`). */
  replayMaxRecords: ReplayMaxRecords;
}

/** How far back a `from` subscription may reach, µs: for every token, and per token. 0 = no limit. */
export interface ReplayMaxRange {
  us: number;
  /** Limits of single tokens (API token → µs), over {@link us}. */
  byToken: Record<string, number>;
}

/** The replay limit of a client presenting `token` (null: none), µs; 0 = no limit. */
export function replayLimitOf(range: ReplayMaxRange, token: string | null): number {
  return token !== null && Object.hasOwn(range.byToken, token) ? (range.byToken[token] as number) : range.us;
}

/**
 * How many stored records one `from` subscription may be sent before its switch to live: for every
 * token, and per token. 0 = no limit.
 */
export interface ReplayMaxRecords {
  records: number;
  /** Limits of single tokens (API token → records), over {@link records}. */
  byToken: Record<string, number>;
}

/** The record limit of one replay of a client presenting `token` (null: none); 0 = no limit. */
export function replayRecordsOf(limit: ReplayMaxRecords, token: string | null): number {
  return token !== null && Object.hasOwn(limit.byToken, token)
    ? (limit.byToken[token] as number)
    : limit.records;
}

/** Shortest API token accepted, characters. */
export const MIN_TOKEN_LENGTH = 8;

/** Defaults of {@link GatewayConfig}. */
export const GATEWAY_DEFAULTS: GatewayConfig = {
  apiTokens: [],
  heartbeatMs: 30_000,
  idleTimeoutMs: 90_000,
  maxQueue: 10_000,
  highWaterBytes: 512 * 1024,
  workers: 2,
  workerNice: 10,
  maxConnPerIp: 256,
  maxConnPerToken: 1024,
  limitLoopback: false,
  apiMaxResponseBytes: 4 * 1024 * 1024,
  replayMaxRange: { us: 0, byToken: {} },
  replayMaxRecords: { records: 0, byToken: {} },
};
