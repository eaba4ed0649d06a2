/**
 * Defaults of the serving layer's settings ({@link GatewayConfig}), apart from their validation
 * (`gateway-config.ts`, zod) so the CLI's help text can show them without loading zod.
 */
import type { GatewayConfig } from "./gateway-config.js";

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
};
