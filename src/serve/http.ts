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

/** Listens on 127.0.0.1 or `host`; `port` 0 picks a free port. Resolves with the bound port. */
export async function listen(app: FastifyInstance, port: number, host = "127.0.0.1"): Promise<number> {
  await app.listen({ port, host });
  const addr = app.server.address();
  return typeof addr === "object" && addr ? addr.port : port;
}
