/**
 * `GET /api/v1/status`: feed health as JSON for the dashboard and scripts (the same figures as
 * `/metrics`, in one small document):
 *
 *   {"status":"ok"|"degraded","problems":["store: writes failing for 12 s: ..."],"uptime_s":12,
 *    "feeds":[{"exchange":"BINANCE","state":"CONNECTED","reconnects":0,"frames":1234,"frames_per_s":98.5,
 *              "trades":300,"quotes":900,"dead_letters":0,"gaps":0,"replay":null,"error":null}],
 *    "store":{"lag":0},"gateway":{"clients":1,"behind":0,"messages_sent":..,"conflated":..,...},
 *    "symbols":["BTCUSDT"]}
 *
 * `frames_per_s` is the rate over the last sampling second. `replay` is null for a live feed, else
 * `playing` or `ended` (the whole recording received: no more data is arriving; the figures stay).
 * `error` names why a feed that is not connected cannot connect (DNS, refused, TLS, HTTP status).
 * `symbols` are the symbols the feeds subscribed to (a recording's own when it was replayed without
 * `--symbols`).
 * Behind the API token check when
 * `K2_API_TOKENS` is set.
 */
import type { FastifyInstance } from "fastify";
import type { GatewayStats } from "./ws/metrics.js";

/**
 * What the status reads of one venue feed. The ingest half's `FeedHandle` (`src/pipeline.ts`)
 * satisfies it structurally, so serving does not import the ingest half.
 */
export interface StatusFeed {
  readonly venue: { readonly exchange: string };
  /**
   * Connection state (`DISCONNECTED`, `CONNECTING`, `CONNECTED`, `ERROR`), reconnects scheduled so far,
   * and why the last attempt failed before it opened (null once a connection opens).
   */
  readonly connection: {
    readonly state: string;
    readonly reconnects: number;
    readonly lastFailure?: { readonly message: string } | null;
  };
  /** Counters since start: market data frames, trades, quotes, frames rejected as dead letters, gaps. */
  readonly counts: {
    readonly frames: number;
    readonly trades: number;
    readonly quotes: number;
    readonly rejected: number;
    readonly gaps: number;
  };
}

/** Where the status figures come from. */
export interface StatusSources {
  feeds: StatusFeed[];
  /** Symbols configured for ingestion. */
  symbols: string[];
  /** Store consumer lag (messages published, not yet stored). */
  storeLag: () => number;
  gateway: () => GatewayStats | Promise<GatewayStats>;
  /** The process's health problems (the sentences of `/health`); any makes the status `degraded`. */
  problems?: () => Promise<string[]>;
  /** Each feed's replay state, in `feeds` order (null: a live feed); without it every feed is live. */
  replays?: () => (ReplayStatus | null)[];
}

/** A replayed feed: `playing`, or `ended` once the whole recording has been received. */
export type ReplayStatus = "playing" | "ended";

/** Feed health of one venue connection. */
export interface FeedStatus {
  exchange: string;
  state: string;
  reconnects: number;
  frames: number;
  frames_per_s: number;
  trades: number;
  quotes: number;
  dead_letters: number;
  gaps: number;
  /** Replay state of a replayed feed, null for a live one. */
  replay: ReplayStatus | null;
  /**
   * Why the feed cannot connect while it is not connected, e.g. `DNS lookup failed for
   * stream.binance.com (getaddrinfo ENOTFOUND)`; null otherwise.
   */
  error: string | null;
}

/** Registers `GET /api/v1/status`; samples frame rates once a second until the app closes. */
export function registerStatus(app: FastifyInstance, src: StatusSources): void {
  const started = Date.now();
  const rates = new Map<StatusFeed, { frames: number; at: number; rate: number }>();
  const sample = () => {
    const now = performance.now();
    for (const f of src.feeds) {
      const prev = rates.get(f);
      const frames = f.counts.frames;
      if (!prev) rates.set(f, { frames, at: now, rate: 0 });
      else {
        const dt = (now - prev.at) / 1000;
        rates.set(f, { frames, at: now, rate: dt > 0 ? (frames - prev.frames) / dt : 0 });
      }
    }
  };
  sample();
  const timer = setInterval(sample, 1000);
  timer.unref();
  app.addHook("onClose", async () => clearInterval(timer));

  app.get("/api/v1/status", async (_req, reply) => {
    const replays = src.replays?.() ?? [];
    const feeds: FeedStatus[] = src.feeds.map((f, i) => ({
      exchange: f.venue.exchange,
      state: f.connection.state,
      reconnects: f.connection.reconnects,
      frames: f.counts.frames,
      frames_per_s: Math.round((rates.get(f)?.rate ?? 0) * 10) / 10,
      trades: f.counts.trades,
      quotes: f.counts.quotes,
      dead_letters: f.counts.rejected,
      gaps: f.counts.gaps,
      replay: replays[i] ?? null,
      error: f.connection.state === "CONNECTED" ? null : (f.connection.lastFailure?.message ?? null),
    }));
    reply.header("cache-control", "no-store");
    const problems = (await src.problems?.()) ?? [];
    return {
      status: feeds.every((f) => f.state === "CONNECTED") && problems.length === 0 ? "ok" : "degraded",
      problems,
      uptime_s: Math.round((Date.now() - started) / 1000),
      feeds,
      store: { lag: src.storeLag() },
      gateway: await src.gateway(),
      symbols: src.symbols,
    };
  });
}
