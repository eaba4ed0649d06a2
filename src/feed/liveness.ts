/**
 * Feed liveness: a read-idle watchdog per WebSocket (client pings when the venue is quiet, a deadline
 * for the pong and for the first frame after subscribing), full-jitter backoff, and the `/health`
 * problems of feeds judged silent.
 *
 * Any frame or pong proves a connection alive. A quiet market whose server answers pings stays
 * healthy; a venue that keeps the TCP connection open but sends nothing and answers no ping is
 * judged dead after `pingIntervalMs + pongTimeoutMs` of silence, and the connection is terminated
 * and reconnected (see `VenueConnection`).
 */
import type WebSocket from "ws";

/** Liveness deadlines of one venue connection, ms. */
export interface LivenessOptions {
  /** Send a WebSocket ping after this long without any frame or pong (default 10000). */
  pingIntervalMs: number;
  /** Judge the connection dead when neither a frame nor the pong arrives this long after a ping (default 10000). */
  pongTimeoutMs: number;
  /** The venue must send its first frame (subscription ack or data) this long after open (default 10000). */
  firstFrameTimeoutMs: number;
}

export const DEFAULT_LIVENESS: LivenessOptions = {
  pingIntervalMs: 10_000,
  pongTimeoutMs: 10_000,
  firstFrameTimeoutMs: 10_000,
};

/** "20.0 s" */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Watches one open socket. The owner calls {@link activity} for every frame (cheap: one store of a
 * timestamp, no timer re-armed per frame); pongs are watched here. `onDead(reason)` is called at
 * most once, with a sentence such as `silent for 20.0 s: no frames and no pong`; the owner then
 * terminates the socket. {@link stop} cancels the timer (on close).
 */
export class SocketWatchdog {
  /** `performance.now()` of the last frame or pong, ms. */
  private lastActivity: number;
  /** `performance.now()` of the last frame (pongs excluded), ms; 0 before the first frame. */
  lastFrameAt = 0;
  private readonly openedAt: number;
  private pingSentAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private dead = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly opts: LivenessOptions,
    private readonly onDead: (reason: string) => void,
  ) {
    this.openedAt = this.lastActivity = performance.now();
    ws.on("pong", () => {
      this.lastActivity = performance.now();
    });
    this.arm(opts.firstFrameTimeoutMs, () => this.checkFirstFrame());
  }

  /** Records a frame received at `nowMs` (`performance.now()` time). */
  activity(nowMs: number): void {
    this.lastActivity = nowMs;
    if (this.lastFrameAt === 0) {
      this.lastFrameAt = nowMs;
      // the first frame arrived: from now on, ping when idle
      this.arm(this.opts.pingIntervalMs, () => this.checkIdle());
    } else this.lastFrameAt = nowMs;
  }

  /**
   * Stops judging while the owner does not read the socket (backlog push-back): nothing read is not
   * the venue's silence. {@link resume} restarts the deadlines from then.
   */
  suspend(): void {
    this.suspended = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Judges again after {@link suspend}, counting silence from now. */
  resume(): void {
    if (!this.suspended || this.dead) return;
    this.suspended = false;
    this.lastActivity = performance.now();
    if (this.lastFrameAt === 0) this.arm(this.opts.firstFrameTimeoutMs, () => this.checkFirstFrame());
    else this.arm(this.opts.pingIntervalMs, () => this.checkIdle());
  }

  private suspended = false;

  /** Cancels the timer; no further `onDead`. */
  stop(): void {
    this.dead = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number, fn: () => void): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.dead || this.suspended) return;
    this.timer = setTimeout(fn, Math.max(1, ms));
    this.timer.unref();
  }

  private kill(reason: string): void {
    if (this.dead) return;
    this.stop();
    this.onDead(reason);
  }

  private checkFirstFrame(): void {
    if (this.lastFrameAt !== 0) return;
    this.kill(
      `no first frame within ${seconds(performance.now() - this.openedAt)} after subscribing: no answer from the venue`,
    );
  }

  private checkIdle(): void {
    const now = performance.now();
    const idle = now - this.lastActivity;
    if (idle < this.opts.pingIntervalMs) {
      this.arm(this.opts.pingIntervalMs - idle, () => this.checkIdle());
      return;
    }
    this.pingSentAt = now;
    try {
      this.ws.ping();
    } catch {
      // the socket is closing; its close event ends this watchdog
    }
    this.arm(this.opts.pongTimeoutMs, () => this.checkPong());
  }

  private checkPong(): void {
    if (this.lastActivity >= this.pingSentAt) {
      this.checkIdle();
      return;
    }
    const silent = performance.now() - Math.max(this.lastFrameAt, this.openedAt);
    this.kill(`silent for ${seconds(silent)}: no frames and no pong`);
  }
}

/**
 * Full-jitter backoff (AWS "Exponential Backoff And Jitter"): a delay drawn uniformly in
 * [0, min(capMs, baseMs · 2^(attempt−1))], ms, so that processes dropped together do not reconnect
 * together. `random` returns a number in [0, 1) (Math.random, or a seeded source in tests).
 */
export function fullJitterDelay(
  attempt: number,
  baseMs: number,
  capMs: number,
  random: () => number = Math.random,
): number {
  return Math.floor(random() * (backoffCeiling(attempt, baseMs, capMs) + 1));
}

/** Upper bound of the delay before reconnect attempt `attempt` (1-based): min(cap, base · 2^(n−1)), ms. */
export function backoffCeiling(attempt: number, baseMs: number, capMs: number): number {
  return Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

/** A seeded PRNG (mulberry32) returning numbers in [0, 1): reproducible jitter and fault injection. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What `/health` needs of a feed's connection. */
export interface LivenessSource {
  venue: { exchange: string };
  connection: { liveness(): string | null };
}

/**
 * `/health` problems of feeds judged silent or dead: one sentence per feed, naming the exchange and
 * the silence, e.g. `feed BINANCE silent for 23.4 s, reconnecting (last connection: silent for 20.0 s:
 * no frames and no pong)`.
 */
export function feedLivenessProblems(feeds: readonly LivenessSource[]): string[] {
  const problems: string[] = [];
  for (const f of feeds) {
    const p = f.connection.liveness();
    if (p) problems.push(`feed ${f.venue.exchange} ${p}`);
  }
  return problems;
}
