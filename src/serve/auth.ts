/**
 * API token authentication for `/api/*` and `/ws`, on when `K2_API_TOKENS` lists tokens.
 *
 * A token is read from `Authorization: Bearer <token>` or the query parameter `token=` (browsers cannot
 * set headers on a WebSocket). Tokens are compared as SHA-256 digests in constant time. A request
 * without a valid token gets 401 `{"error":"unauthorized"}` and nothing else (no data, no hint of
 * which tokens exist); a WebSocket upgrade is accepted and closed at once with code 1008 (see
 * `gateway.ts`). `/health`, `/metrics` and the dashboard's static files stay open.
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

/** `/api` or below, judged on the decoded, lower-cased path so `/%61pi/..` or `//api` cannot slip by. */
function isApiPath(url: string): boolean {
  let path = url.split("?", 1)[0];
  try {
    path = decodeURIComponent(path);
  } catch {
    // keep the raw path
  }
  path = path.toLowerCase().replace(/\/{2,}/g, "/");
  return path === "/api" || path.startsWith("/api/");
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

/**
 * Adds a root-level `onRequest` hook answering 401 to any `/api` request without a valid token; it
 * covers every route under `/api`, including routes registered by other modules after this call.
 */
export function registerApiAuth(app: FastifyInstance, auth: TokenAuth, onReject?: () => void): void {
  if (auth.open) return;
  app.addHook("onRequest", async (req, reply) => {
    if (!isApiPath(req.url) && !isApiPath(req.routeOptions.url ?? "")) return;
    if (auth.acceptsRequest(req.raw)) return;
    onReject?.();
    return reply
      .code(401)
      .header("www-authenticate", 'Bearer realm="k2"')
      .header("cache-control", "no-store")
      .send({ error: "unauthorized", reason: "missing or invalid API token" });
  });
}
