/**
 * The HTTP server (Fastify): `/health` and Prometheus `/metrics`; the serving layer registers the API,
 * WebSocket gateway and dashboard on the same instance.
 *
 * `/health`: 200 `ok` when every feed is connected and the store is writable; 503 with the reasons
 * otherwise (one per line).
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { Metrics } from "../ops/metrics.js";

export interface HttpOptions {
  metrics: Metrics;
  /** Returns the reasons the process is unhealthy; empty when healthy. */
  health: () => Promise<string[]>;
  /** Extra routes (API, gateway, dashboard). */
  register?: (app: FastifyInstance) => Promise<void> | void;
}

export async function createHttpServer(opts: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get("/health", async (_req, reply) => {
    const problems = await opts.health();
    reply.type("text/plain; charset=utf-8");
    if (problems.length === 0) return reply.code(200).send("ok\n");
    return reply.code(503).send(`${problems.join("\n")}\n`);
  });
  app.get("/metrics", async (_req, reply) => {
    reply.type(opts.metrics.registry.contentType);
    return reply.send(await opts.metrics.registry.metrics());
  });
  if (opts.register) await opts.register(app);
  return app;
}

/** The HTTP server cannot bind the configured address; the message names the flag (CLI exit 2). */
export class ListenError extends Error {
  override name = "ListenError";
}

/**
 * Binds `app` to `host:port` (0 = any free port) and resolves with the port actually bound.
 * @throws {ListenError} when the address is in use or cannot be bound, naming `--http-port`
 */
export async function listen(app: FastifyInstance, port: number, host = "127.0.0.1"): Promise<number> {
  try {
    await app.listen({ port, host });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") {
      throw new ListenError(
        `--http-port: ${host}:${port} is in use (another k2?); pass --http-port 0 for any free port`,
      );
    }
    if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EACCES") {
      throw new ListenError(`--http-host/--http-port: cannot listen on ${host}:${port} (${code})`);
    }
    throw e;
  }
  const addr = app.server.address();
  return typeof addr === "object" && addr ? addr.port : port;
}
