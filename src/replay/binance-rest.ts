/**
 * Binance REST emulation from a capture, so the gap backfill runs against a replay server exactly as
 * against `https://api.binance.com`:
 *
 * - `GET /api/v3/historicalTrades?symbol=&fromId=&limit=` (weight 25): the recorded `@trade` frames as
 *   `[{id,price,qty,quoteQty,time,isBuyerMaker,isBestMatch}]` (`quoteQty` = price × qty, exact);
 * - `GET /api/v3/aggTrades?symbol=&fromId=&limit=` (weight 4): the recorded `@aggTrade` frames as
 *   `[{a,p,q,f,l,T,m,M}]`;
 * `limit` 1..1000 (default 500); `fromId` inclusive, else the most recent `limit` records; in id order.
 * - `GET /api/v3/depth?symbol=&limit=` (weight by `limit`: 5 up to 100, 25 to 500, 50 to 1000, 250 to
 *   5000): the recorded REST depth snapshots (`{"lastUpdateId":…}` lines without `stream`), the latest
 *   recorded at or before the replay position (the receive time of the last frame sent; the capture's
 *   first snapshot while none is that old yet), cut to `limit` levels a side. A snapshot line does not
 *   name its symbol: it is the symbol whose recorded depth diffs' update ids are nearest its
 *   `lastUpdateId` (update ids are per symbol and far apart).
 * Prices and quantities are the recorded strings, unchanged. The capture is indexed on the first
 * request (whatever the replay's `startAt`: the venue's history holds what the stream skipped).
 *
 * Request weight, as Binance (rest-api.md, "LIMITS"): every answer carries `X-MBX-USED-WEIGHT-1M`, the
 * weight used in the current window; a request that would exceed the window's budget gets HTTP 429
 * with `Retry-After` (seconds to the window's end); after `banAfter` requests made while rate-limited,
 * HTTP 418 with `Retry-After` for the ban. Errors are Binance's `{"code":-1121,"msg":"Invalid symbol."}`
 * shapes with HTTP 400.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { binanceDepthWeight } from "../venues/binance.js";
import type { RestLimits } from "./replay-server.js";

/** Request weights of the emulated endpoints (Binance spot). */
export const REST_WEIGHTS = { historicalTrades: 25, aggTrades: 4 } as const;

/** One recorded record in its REST shape, by venue id. */
interface Entry {
  id: number;
  json: string;
}

/** Recorded trades and aggregate trades per symbol, sorted by id, duplicates removed. */
export interface RestIndex {
  trades: Map<string, Entry[]>;
  aggTrades: Map<string, Entry[]>;
}

/** A recorded REST depth snapshot: receive time (ms) and the parsed body. */
interface DepthEntry {
  ms: number;
  lastUpdateId: number;
  bids: unknown[];
  asks: unknown[];
}

/** Recorded depth snapshots per symbol, in recording order. */
export type DepthIndex = Map<string, DepthEntry[]>;

/**
 * Indexes the REST depth snapshots of a capture (see the file header for how a snapshot's symbol is
 * found); frames are `{ms, raw}` in recording order.
 */
export async function indexDepthSnapshots(
  frames: AsyncIterable<{ ms: number; raw: string }>,
): Promise<DepthIndex> {
  const snapshots: DepthEntry[] = [];
  const ranges = new Map<string, [number, number]>();
  for await (const { ms, raw } of frames) {
    if (raw.startsWith('{"lastUpdateId":')) {
      try {
        const b = JSON.parse(raw) as { lastUpdateId?: unknown; bids?: unknown; asks?: unknown };
        if (typeof b.lastUpdateId === "number" && Array.isArray(b.bids) && Array.isArray(b.asks)) {
          snapshots.push({ ms, lastUpdateId: b.lastUpdateId, bids: b.bids, asks: b.asks });
        }
      } catch {
        // not a snapshot
      }
      continue;
    }
    if (!raw.includes('"e":"depthUpdate"')) continue;
    const m = /"s":"([A-Za-z0-9]+)","U":(\d+),"u":(\d+)/.exec(raw);
    if (!m) continue;
    const symbol = m[1].toUpperCase();
    const r = ranges.get(symbol);
    const U = Number(m[2]);
    const u = Number(m[3]);
    if (!r) ranges.set(symbol, [U, u]);
    else {
      if (U < r[0]) r[0] = U;
      if (u > r[1]) r[1] = u;
    }
  }
  const out: DepthIndex = new Map();
  for (const snap of snapshots) {
    let best: string | null = null;
    let bestDistance = Number.POSITIVE_INFINITY;
    for (const [symbol, [lo, hi]] of ranges) {
      const d =
        snap.lastUpdateId < lo ? lo - snap.lastUpdateId : snap.lastUpdateId > hi ? snap.lastUpdateId - hi : 0;
      if (d < bestDistance) {
        bestDistance = d;
        best = symbol;
      }
    }
    if (best === null) continue;
    let list = out.get(best);
    if (!list) {
      list = [];
      out.set(best, list);
    }
    list.push(snap);
  }
  return out;
}

/** Exact product of two non-negative decimal strings, without trailing zeros (`"0.00100000"` × 2 → `"0.002"`). */
export function decimalProduct(a: string, b: string): string {
  const parse = (x: string): [bigint, number] => {
    const [i, f = ""] = x.split(".");
    return [BigInt(i + f), f.length];
  };
  const [ua, sa] = parse(a);
  const [ub, sb] = parse(b);
  const scale = sa + sb;
  const digits = (ua * ub).toString().padStart(scale + 1, "0");
  let int = digits.slice(0, digits.length - scale);
  let frac = digits.slice(digits.length - scale).replace(/0+$/, "");
  int = int.replace(/^0+(?=\d)/, "");
  if (frac === "") frac = "0";
  return `${int}.${frac}`;
}

/**
 * Builds the index from raw frames (combined-stream envelopes `{"stream","data"}` or bare payloads);
 * frames other than `trade` / `aggTrade` events are skipped.
 */
export async function indexRestRecords(frames: AsyncIterable<string>): Promise<RestIndex> {
  const trades = new Map<string, Map<number, string>>();
  const aggs = new Map<string, Map<number, string>>();
  const put = (m: Map<string, Map<number, string>>, symbol: string, id: number, json: string) => {
    let s = m.get(symbol);
    if (!s) {
      s = new Map();
      m.set(symbol, s);
    }
    if (!s.has(id)) s.set(id, json);
  };
  for await (const raw of frames) {
    if (!raw.includes('"e":"trade"') && !raw.includes('"e":"aggTrade"')) continue;
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(raw);
    } catch {
      continue;
    }
    const d = (msg && typeof msg.data === "object" && msg.data !== null ? msg.data : msg) as Record<
      string,
      unknown
    >;
    const symbol = typeof d.s === "string" ? d.s.toUpperCase() : null;
    if (!symbol) continue;
    if (d.e === "trade" && typeof d.t === "number" && typeof d.p === "string" && typeof d.q === "string") {
      put(
        trades,
        symbol,
        d.t,
        JSON.stringify({
          id: d.t,
          price: d.p,
          qty: d.q,
          quoteQty: decimalProduct(d.p, d.q),
          time: d.T,
          isBuyerMaker: d.m,
          isBestMatch: d.M ?? true,
        }),
      );
    } else if (d.e === "aggTrade" && typeof d.a === "number") {
      put(
        aggs,
        symbol,
        d.a,
        JSON.stringify({ a: d.a, p: d.p, q: d.q, f: d.f, l: d.l, T: d.T, m: d.m, M: d.M }),
      );
    }
  }
  const sorted = (m: Map<string, Map<number, string>>) =>
    new Map(
      [...m].map(([symbol, ids]) => [
        symbol,
        [...ids].map(([id, json]) => ({ id, json })).sort((x, y) => x.id - y.id),
      ]),
    );
  return { trades: sorted(trades), aggTrades: sorted(aggs) };
}

/** First index in `entries` (sorted by id) whose id is ≥ `id`. */
function lowerBound(entries: Entry[], id: number): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (entries[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Counters of the emulation (tests read them). */
export interface RestStats {
  requests: number;
  /** Answers 429. */
  rateLimited: number;
  /** Answers 418. */
  banned: number;
}

/** Answers the emulated Binance REST endpoints (see the file header). */
export class BinanceRestEmulator {
  readonly stats: RestStats = { requests: 0, rateLimited: 0, banned: 0 };
  private index: Promise<RestIndex> | null = null;
  private window = -1;
  private used = 0;
  /** Requests made in this window after a 429 in it. */
  private violations = 0;
  private limitedInWindow = false;
  private bannedUntil = 0;

  private depthIndex: Promise<DepthIndex> | null = null;

  /**
   * @param frames every raw frame of the capture (read once, on the first request)
   * @param limits request-weight budget (defaults: Binance spot's 6000 per minute)
   * @param depth the capture's frames with their receive times (ms) and the replay position (receive
   *   time of the last frame sent, ms), for `/api/v3/depth`; without it that endpoint is not emulated
   */
  constructor(
    private readonly frames: () => AsyncIterable<string>,
    private readonly limits: RestLimits = {},
    private readonly depth?: {
      frames: () => AsyncIterable<{ ms: number; raw: string }>;
      position: () => number;
    },
  ) {}

  /** Handles one HTTP request; never throws (errors become HTTP 500). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.answer(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: -1000, msg: (err as Error).message }));
    });
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++;
    const u = new URL(req.url ?? "/", "http://127.0.0.1");
    const endpoint =
      u.pathname === "/api/v3/historicalTrades"
        ? "historicalTrades"
        : u.pathname === "/api/v3/aggTrades"
          ? "aggTrades"
          : u.pathname === "/api/v3/depth" && this.depth
            ? "depth"
            : null;
    const json = (status: number, body: string, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json;charset=UTF-8", ...headers }).end(body);
    };
    if (req.method !== "GET" || endpoint === null) {
      json(404, JSON.stringify({ code: -1, msg: `not emulated: ${req.method} ${u.pathname}` }));
      return;
    }
    // request weight, per window
    const now = (this.limits.clock ?? Date.now)();
    const windowMs = this.limits.windowMs ?? 60_000;
    const budget = this.limits.weightPerWindow ?? 6000;
    const w = Math.floor(now / windowMs);
    if (w !== this.window) {
      this.window = w;
      this.used = 0;
      this.violations = 0;
      this.limitedInWindow = false;
    }
    /** Binance's 418 answer to a banned IP, `Retry-After` in whole seconds. */
    const banned = (retryAfterMs: number, headers: Record<string, string> = {}) => {
      this.stats.banned++;
      json(
        418,
        JSON.stringify({
          code: -1003,
          msg: `Way too much request weight used; IP banned until ${this.bannedUntil}.`,
        }),
        { "retry-after": String(Math.ceil(retryAfterMs / 1000)), ...headers },
      );
    };
    if (now < this.bannedUntil) {
      banned(this.bannedUntil - now);
      return;
    }
    const limitRaw = u.searchParams.get("limit");
    const limit =
      limitRaw === null
        ? endpoint === "depth"
          ? 100
          : 500
        : /^\d+$/.test(limitRaw)
          ? Number(limitRaw)
          : Number.NaN;
    const weight =
      endpoint === "depth" ? binanceDepthWeight(limit >= 1 ? limit : 100) : REST_WEIGHTS[endpoint];
    if (this.used + weight > budget) {
      if (this.limitedInWindow) this.violations++;
      this.limitedInWindow = true;
      if (this.violations >= (this.limits.banAfter ?? 3)) {
        const banMs = this.limits.banMs ?? 120_000;
        this.bannedUntil = now + banMs;
        banned(banMs, { "x-mbx-used-weight-1m": String(this.used) });
        return;
      }
      this.stats.rateLimited++;
      const retry = Math.max(1, Math.ceil(((w + 1) * windowMs - now) / 1000));
      json(
        429,
        JSON.stringify({
          code: -1003,
          msg: `Too much request weight used; current limit is ${budget} request weight per window.`,
        }),
        { "retry-after": String(retry), "x-mbx-used-weight-1m": String(this.used) },
      );
      return;
    }
    this.used += weight;
    const headers = { "x-mbx-used-weight-1m": String(this.used) };
    const symbol = (u.searchParams.get("symbol") ?? "").toUpperCase();
    if (!symbol) {
      json(400, JSON.stringify({ code: -1102, msg: "Mandatory parameter 'symbol' was not sent." }), headers);
      return;
    }
    if (endpoint === "depth") {
      if (!(limit >= 1 && limit <= 5000)) {
        json(400, JSON.stringify({ code: -1130, msg: "Invalid data sent for a parameter: limit" }), headers);
        return;
      }
      await this.answerDepth(symbol, limit, headers, json);
      return;
    }
    if (!(limit >= 1 && limit <= 1000)) {
      json(400, JSON.stringify({ code: -1130, msg: "Invalid data sent for a parameter: limit" }), headers);
      return;
    }
    const fromRaw = u.searchParams.get("fromId");
    if (fromRaw !== null && !/^\d{1,16}$/.test(fromRaw)) {
      json(
        400,
        JSON.stringify({ code: -1100, msg: "Illegal characters found in parameter 'fromId'." }),
        headers,
      );
      return;
    }
    this.index ??= indexRestRecords(this.frames());
    const index = await this.index;
    if (!index.trades.has(symbol) && !index.aggTrades.has(symbol)) {
      json(400, JSON.stringify({ code: -1121, msg: "Invalid symbol." }), headers);
      return;
    }
    const entries = (endpoint === "historicalTrades" ? index.trades : index.aggTrades).get(symbol) ?? [];
    const start =
      fromRaw === null ? Math.max(0, entries.length - limit) : lowerBound(entries, Number(fromRaw));
    const page = entries.slice(start, start + limit);
    json(200, `[${page.map((e) => e.json).join(",")}]`, headers);
  }

  /** `/api/v3/depth`: the symbol's latest recorded snapshot at or before the replay position. */
  private async answerDepth(
    symbol: string,
    limit: number,
    headers: Record<string, string>,
    json: (status: number, body: string, headers?: Record<string, string>) => void,
  ): Promise<void> {
    const depth = this.depth!;
    this.depthIndex ??= indexDepthSnapshots(depth.frames());
    const list = (await this.depthIndex).get(symbol);
    if (!list?.length) {
      json(400, JSON.stringify({ code: -1121, msg: "Invalid symbol." }), headers);
      return;
    }
    const at = depth.position();
    let snap = list[0];
    for (const s of list) if (s.ms <= at) snap = s;
    json(
      200,
      JSON.stringify({
        lastUpdateId: snap.lastUpdateId,
        bids: snap.bids.slice(0, limit),
        asks: snap.asks.slice(0, limit),
      }),
      headers,
    );
  }
}
