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

/**
 * Creates the server. Every unknown path answers one body, 404 `{"error":"not_found","reason":...}`
 * (the API's, the dashboard's and the server's own paths alike); a known path asked with a method it
 * does not serve (`POST /api/v1/trades`) answers 405 with an `Allow` header listing the methods it does.
 */
export async function createHttpServer(opts: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  const routes = new RouteMethods();
  app.addHook("onRoute", (r) => routes.add(r.url, r.method));
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0];
    const allow = routes.allowed(path);
    if (allow.length > 0) {
      reply.code(405).header("allow", allow.join(", "));
      return reply.send({
        error: "method_not_allowed",
        reason: `${req.method} ${path}: use ${allow.join(" or ")}`,
      });
    }
    return reply.code(404).send({ error: "not_found", reason: `no such path: ${path} (see /docs)` });
  });
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

/** The methods registered per route pattern (`/api/v1/dead-letters/:message_id`, `/docs/*`). */
class RouteMethods {
  private readonly byPattern = new Map<string, { re: RegExp; methods: Set<string> }>();

  /** Records `methods` for a Fastify route pattern. */
  add(pattern: string, methods: string | string[]): void {
    let e = this.byPattern.get(pattern);
    if (!e) {
      const re = pattern
        .split(/(:[A-Za-z0-9_]+|\*)/)
        .map((part) =>
          part === "*" ? ".*" : part.startsWith(":") ? "[^/]+" : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"),
        )
        .join("");
      e = { re: new RegExp(`^${re}$`), methods: new Set() };
      this.byPattern.set(pattern, e);
    }
    for (const m of Array.isArray(methods) ? methods : [methods]) e.methods.add(m.toUpperCase());
  }

  /** The methods some route serves at a concrete `path`, sorted; empty when no route matches it. */
  allowed(path: string): string[] {
    const out = new Set<string>();
    for (const { re, methods } of this.byPattern.values()) {
      if (re.test(path)) for (const m of methods) out.add(m);
    }
    return [...out].sort();
  }
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
