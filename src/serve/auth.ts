/**
 * API token authentication, on when `K2_API_TOKENS` lists tokens: every HTTP route except
 * {@link PUBLIC_ROUTES} (so `/api/*`, `/docs`, `/docs/json`), and `/ws`.
 *
 * A token is read from `Authorization: Bearer <token>` or the query parameter `token=` (browsers cannot
 * set headers on a WebSocket). Tokens are compared as SHA-256 digests in constant time. A request
 * without a valid token gets 401 `{"error":"unauthorized"}` and nothing else (no data, no hint of
 * which tokens exist); a WebSocket upgrade is accepted and closed at once with code 1008 (see
 * `ws/gateway.ts`). `/health`, `/metrics`, the dashboard's static files and Swagger UI's static assets
 * stay open. Tokens have at least 8 printable ASCII characters (`ws/config.ts`).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { FastifyInstance } from "fastify";

/** Checks presented tokens against the configured set. */
export class TokenAuth {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.map(digest);
  }

  /** True when no tokens are configured (authentication off). */
  get open(): boolean {
    return this.digests.length === 0;
  }

  /** True when authentication is off or `token` is one of the configured tokens. */
  accepts(token: string | null): boolean {
    if (this.open) return true;
    if (!token) return false;
    const d = digest(token);
    let ok = false;
    for (const k of this.digests) ok = timingSafeEqual(k, d) || ok;
    return ok;
  }

  /** Reads the token of a request (Authorization Bearer header first, then `?token=`). */
  static tokenOf(req: Pick<IncomingMessage, "headers" | "url">): string | null {
    const h = req.headers.authorization;
    if (typeof h === "string") {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
      if (m) return m[1];
    }
    const url = req.url ?? "";
    const q = url.indexOf("?");
    if (q < 0) return null;
    return new URLSearchParams(url.slice(q + 1)).get("token");
  }

  /** Checks a raw Node request (used for the WebSocket upgrade). */
  acceptsRequest(req: Pick<IncomingMessage, "headers" | "url">): boolean {
    return this.open || this.accepts(TokenAuth.tokenOf(req));
  }
}

/**
 * Routes anyone may read without a token (what the README lists as open): `/health`, `/metrics`, the
 * dashboard's static files, and Swagger UI's own static assets (its page and the API document need a
 * token). Matched on the *route* Fastify chose, never on the request text, so no spelling of a path
 * (`/%61pi`, `//api`, `/dashboard/../api`) reaches a closed route as an open one.
 */
export const PUBLIC_ROUTES: readonly string[] = [
  "/health",
  "/metrics",
  "/",
  "/dashboard/:file",
  "/vendor/lightweight-charts.mjs",
];
/** Route prefixes anyone may read: Swagger UI's bundled JavaScript, CSS and images. */
export const PUBLIC_ROUTE_PREFIXES: readonly string[] = ["/docs/static/"];

/** Whether the matched route `route` (a route pattern, undefined for a 404) is open. */
export function isPublicRoute(route: string | undefined): boolean {
  if (route === undefined) return false;
  return PUBLIC_ROUTES.includes(route) || PUBLIC_ROUTE_PREFIXES.some((p) => route.startsWith(p));
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/**
 * Adds a root-level `onRequest` hook answering 401 to every request without a valid token except the
 * {@link PUBLIC_ROUTES} (and unknown paths too, so a 404 says nothing either). It covers every route,
 * including routes registered by other modules before or after this call: `/api/*`, `/docs` and the
 * OpenAPI document `/docs/json` / `/docs/yaml`. The token is read from the `Authorization: Bearer`
 * header or the `token` query parameter (which the API's parameter check ignores, see `params.ts`).
 * Does nothing when no tokens are configured.
 */
export function registerApiAuth(app: FastifyInstance, auth: TokenAuth, onReject?: () => void): void {
  if (auth.open) return;
  app.addHook("onRequest", async (req, reply) => {
    if (isPublicRoute(req.routeOptions.url)) return;
    if (auth.acceptsRequest(req.raw)) return;
    onReject?.();
    return reply
      .code(401)
      .header("www-authenticate", 'Bearer realm="k2"')
      .header("cache-control", "no-store")
      .send({ error: "unauthorized", reason: "missing or invalid API token" });
  });
}
