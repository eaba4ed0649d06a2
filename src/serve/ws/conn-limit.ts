/**
 * Limits on open `/ws` connections per client address and per API token, enforced in the process
 * that takes the HTTP upgrade (the main `k2` process; with gateway workers, before the socket is handed
 * over), so a flood of connections from one host or one token cannot crowd out the other clients.
 *
 * A connection over a limit is not handed to the gateway: the handshake is completed here and the
 * socket closed at once with code 1013 ("try again later", RFC 6455 §7.4.1 / IANA registry) and a
 * reason such as `try again later: 256 connections from 203.0.113.7 (limit 256)`; the `k2/client`
 * reconnects with backoff. Refusals are counted in `k2_ws_connections_refused_total{limit}`.
 *
 * Loopback clients (127.0.0.0/8, ::1) are exempt from the per-address limit unless `limitLoopback`:
 * behind a reverse proxy on the same host every client is 127.0.0.1, and a local process can load
 * the host anyway. The per-token limit applies to every address.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { Counter } from "prom-client";
import { WebSocketServer } from "ws";
import type { Metrics } from "../../ops/metrics.js";
import { TokenAuth } from "../auth.js";
import { CLOSE_CODES } from "./protocol.js";

/** Close code of a connection refused for a connection limit ("try again later"). */
export const CLOSE_TRY_AGAIN_LATER = CLOSE_CODES.tryAgainLater;

/** Limits of a {@link ConnectionLimiter}; 0 = no limit. */
export interface ConnLimits {
  /** Most open connections per client address. */
  perIp: number;
  /** Most open connections per (valid) API token. */
  perToken: number;
  /** Apply `perIp` to loopback addresses too. */
  limitLoopback: boolean;
}

/** Which limit refused a connection (the metric's `limit` label). */
export type RefusedBy = "per_ip" | "per_token";

/** Result of {@link ConnectionLimiter.acquire}. */
export type Admission =
  | { ok: true; release: () => void }
  | { ok: false; by: RefusedBy /** close reason, ≤ 123 bytes */; reason: string };

/** Counts open connections per address and per token. */
export class ConnectionLimiter {
  private readonly byIp = new Map<string, number>();
  private readonly byToken = new Map<string, number>();

  constructor(readonly limits: ConnLimits) {}

  /**
   * Admits a connection from `address` presenting `token` (null when none, or when it is not a valid
   * token: invalid tokens are refused by the gateway with 1008 and count only per address).
   * @returns `release` to call exactly once when the connection is gone (later calls do nothing)
   */
  acquire(address: string, token: string | null): Admission {
    const ip = normalizeAddress(address);
    const { perIp, perToken, limitLoopback } = this.limits;
    const ipLimited = perIp > 0 && (limitLoopback || !isLoopback(ip));
    const ipCount = this.byIp.get(ip) ?? 0;
    if (ipLimited && ipCount >= perIp) {
      return {
        ok: false,
        by: "per_ip",
        reason: `try again later: ${ipCount} connections from ${ip.slice(0, 45)} (limit ${perIp})`,
      };
    }
    const tokenKey = token === null || perToken === 0 ? null : tokenDigest(token);
    const tokenCount = tokenKey === null ? 0 : (this.byToken.get(tokenKey) ?? 0);
    if (tokenKey !== null && tokenCount >= perToken) {
      return {
        ok: false,
        by: "per_token",
        reason: `try again later: ${tokenCount} connections with this API token (limit ${perToken})`,
      };
    }
    this.byIp.set(ip, ipCount + 1);
    if (tokenKey !== null) this.byToken.set(tokenKey, tokenCount + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        decrement(this.byIp, ip);
        if (tokenKey !== null) decrement(this.byToken, tokenKey);
      },
    };
  }

  /** Open connections counted for `address` (after normalization). */
  countOf(address: string): number {
    return this.byIp.get(normalizeAddress(address)) ?? 0;
  }

  /** Open connections counted in all. */
  get total(): number {
    let n = 0;
    for (const v of this.byIp.values()) n += v;
    return n;
  }
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 0) - 1;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else as given (`?` when unknown). */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return "?";
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1] : address.toLowerCase();
}

/** 127.0.0.0/8 or ::1 (after {@link normalizeAddress}). */
export function isLoopback(ip: string): boolean {
  return ip === "::1" || /^127\.\d+\.\d+\.\d+$/.test(ip);
}

function tokenDigest(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("base64");
}

/**
 * Admission control of `/ws` upgrades in the process that receives them: {@link admit} counts the
 * connection or refuses it (handshake, then close 1013 with the reason), and counts refusals in
 * `k2_ws_connections_refused_total{limit="per_ip"|"per_token"}`.
 */
export class UpgradeGuard {
  readonly limiter: ConnectionLimiter;
  private wss: WebSocketServer | null = null;
  private readonly refused: Counter<"limit"> | null;

  /**
   * @param auth the API tokens (only a valid token is counted per token)
   * @param metrics registry for the refusal counter (omit in tests)
   */
  constructor(
    limits: ConnLimits,
    private readonly auth: TokenAuth,
    metrics?: Metrics,
  ) {
    this.limiter = new ConnectionLimiter(limits);
    this.refused = metrics ? refusedCounter(metrics) : null;
  }

  /**
   * Counts the upgrade request `req` on `socket` against the limits. Returns the release function
   * when admitted; otherwise answers the client (1013 with the reason) and returns null.
   */
  admit(req: IncomingMessage, socket: Socket, head: Buffer): (() => void) | null {
    const token = TokenAuth.tokenOf(req);
    const valid = token !== null && !this.auth.open && this.auth.accepts(token) ? token : null;
    const a = this.limiter.acquire(socket.remoteAddress ?? "?", valid);
    if (a.ok) return a.release;
    this.refused?.labels(a.by).inc();
    this.refuse(req, socket, head, a.reason);
    return null;
  }

  /** Completes the handshake and closes with 1013 and `reason`; a broken handshake just ends. */
  private refuse(req: IncomingMessage, socket: Socket, head: Buffer, reason: string): void {
    this.wss ??= new WebSocketServer({ noServer: true, maxPayload: 1024, perMessageDeflate: false });
    socket.on("error", () => {});
    try {
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on("error", () => {});
        ws.close(CLOSE_TRY_AGAIN_LATER, reason);
        setTimeout(() => ws.terminate(), 2000).unref();
      });
    } catch {
      socket.destroy();
    }
  }

  /** Stops the handshake server used for refusals. */
  close(): void {
    this.wss?.close();
    this.wss = null;
  }
}

const counters = new WeakMap<Metrics, Counter<"limit">>();

/** `k2_ws_connections_refused_total{limit}` on `metrics`' registry (created once per registry). */
function refusedCounter(metrics: Metrics): Counter<"limit"> {
  let c = counters.get(metrics);
  if (!c) {
    c = new Counter({
      name: "k2_ws_connections_refused_total",
      help: "WebSocket connections refused at upgrade (close 1013) by a connection limit: per_ip or per_token",
      labelNames: ["limit"],
      registers: [metrics.registry],
    });
    counters.set(metrics, c);
  }
  return c;
}
