/**
 * The replays of a run's feeds (`k2 run --replay FILE[,FILE…]`), from discovery to the end:
 *
 * - discovery: each feed given a recording gets an in-process replay server for the recording's
 *   format (`index.ts`), in a worker thread when it can; a recording replayed without `--symbols` for
 *   its exchange subscribes to the symbols it recorded, and one given `--symbols` it does not hold at
 *   all is refused before anything starts ({@link ReplaySymbolsError});
 * - the end: a replay is over once its feed has received everything the server wrote (frames written
 *   on a connection the feed then dropped never arrive: a long quiet spell ends it too); `/health`
 *   then says so, as no more data is arriving.
 *
 * A live feed (no recording) has no entry here beyond a null server.
 */

import { basename } from "node:path";
import { replayFinishedProblem } from "../ops/health-checks.js";
import type { Logger } from "../ops/logger.js";
import { getVenue } from "../venues/registry.js";
import type { Subscription, Venue } from "../venues/venue.js";
import { readCaptureHead } from "./capture.js";
import { indexRecording, symbolsOfKeys } from "./cryptofeed.js";
import { type FaultCounts, type FaultSpec, sumFaultCounts } from "./faults.js";
import { type CaptureFormat, detectCaptureFormat, REPLAY_SERVERS } from "./index.js";
import type { ReplayServer } from "./replay-server.js";
import { WorkerReplayServer } from "./replay-worker.js";

/** What a replay needs of one feed's configuration (`config-feeds.ts`' `FeedConfig` satisfies it). */
export interface ReplayFeedSpec {
  /** The recording to replay (the first, with `replayFiles`), or null for a live feed. */
  replay: string | null;
  /** Consecutive Binance captures played as one session, in order (optional; more than one). */
  replayFiles?: readonly string[];
  symbols: string[];
  streams: string[];
  /** True when `symbols` are the venue's defaults (a cryptofeed recording's own are used instead). */
  symbolsDefaulted: boolean;
}

/** What the end watch reads of a running feed (`pipeline.ts`' `FeedHandle` satisfies it). */
export interface ReplayedFeed {
  readonly venue: { readonly exchange: string };
  /** Every frame received over the feed's connections (control frames included), like `totalSent`. */
  readonly connection: { readonly framesReceived: number };
  /** Market data frames received. */
  readonly counts: { readonly frames: number };
}

/** Pace and faults of every replay server of a run, and test hooks. */
export interface FeedReplayOptions {
  /** A multiple of the recorded pace, or `max`. */
  speed: number | "max";
  faults: FaultSpec | null;
  /** The server resumes where a dropped connection broke (tests). */
  resume?: boolean;
  /** Keep the servers on the main thread (tests that drop their connections). */
  inProcess?: boolean;
  /** Send each frame's recorded receive time (`--replay-clock recorded`, see `feed/recorded-time.ts`). */
  stampReceiveTimes?: boolean;
}

/** Where a feed's replay is: `playing` until its feed has received the whole recording, then `ended`. */
export type ReplayState = "playing" | "ended";

/** Quiet time after a server has written everything before frames still missing are given up, ms. */
const END_IDLE_MS = 3000;

/** The replay servers of a run's feeds (null entries for live feeds), in feed order. */
export class FeedReplays {
  /**
   * When each feed's replay was fully received, ms since the epoch (0: not yet, or a live feed).
   */
  readonly finishedAt: number[];
  /** Resolve with the server's report when it has written the whole recording (listened from start). */
  private readonly written: (Promise<{ sent: number; dataFrames: number }> | null)[];

  private constructor(
    /** One per feed: its replay server, or null for a live feed. */
    readonly servers: (ReplayServer | null)[],
    /** One per feed: what it subscribes to (a cryptofeed recording's symbols when none were given). */
    readonly subscriptions: Subscription[],
    private readonly files: (string | null)[],
  ) {
    this.finishedAt = servers.map(() => 0);
    // listen for the end now: at --speed max a short recording can be written before the rest starts
    this.written = servers.map((s) => (s ? new Promise((resolve) => s.once("end", resolve)) : null));
  }

  /**
   * Starts a replay server for each feed given a recording (and reads the recorded symbols: the
   * subscription without `--symbols`, a check with them); `venues[i]` is `feeds[i]`'s venue.
   * @throws {ReplaySymbolsError} when a recording holds none of the `--symbols` given for it
   * @throws {Error} when a recording cannot be read or a server cannot listen
   */
  static async start(
    feeds: readonly ReplayFeedSpec[],
    venues: readonly Venue[],
    opts: FeedReplayOptions,
    logger: Logger,
  ): Promise<FeedReplays> {
    const servers: (ReplayServer | null)[] = [];
    const subscriptions: Subscription[] = [];
    for (const [i, f] of feeds.entries()) {
      const sub: Subscription = { symbols: f.symbols, streams: f.streams };
      subscriptions.push(sub);
      if (!f.replay) {
        servers.push(null);
        continue;
      }
      const format = detectCaptureFormat(f.replay);
      const recorded = await recordedSymbols(f.replay, format, venues[i], sub.streams, logger);
      if (f.symbolsDefaulted) {
        if (recorded.length > 0) {
          sub.symbols = recorded;
          logger.info(
            { exchange: venues[i].exchange, symbols: recorded },
            "replay subscribes to the recording's symbols",
          );
        }
      } else {
        checkRecordedSymbols(f.replay, sub.symbols, recorded, venues[i].exchange, logger);
      }
      const several = f.replayFiles && f.replayFiles.length > 1 ? f.replayFiles : null;
      const serverOpts = {
        file: f.replay,
        ...(several ? { files: [...several] } : {}),
        speed: opts.speed,
        resume: opts.resume,
        stampReceiveTimes: opts.stampReceiveTimes ?? false,
        ...(opts.faults ? { faults: opts.faults } : {}),
      };
      const server =
        opts.inProcess || !WorkerReplayServer.available()
          ? new REPLAY_SERVERS[format](serverOpts)
          : new WorkerReplayServer(format, serverOpts);
      await server.start();
      logger.info(
        { exchange: venues[i].exchange, files: several ?? [f.replay], speed: opts.speed, url: server.url },
        "replay server started",
      );
      servers.push(server);
    }
    return new FeedReplays(
      servers,
      subscriptions,
      feeds.map((f) => f.replay),
    );
  }

  /** True when at least one feed replays a recording. */
  get any(): boolean {
    return this.servers.some((s) => s !== null);
  }

  /** The endpoint feed `i` connects to: its replay server's `ws://127.0.0.1:PORT`, else `liveUrl`. */
  wsUrl(i: number, liveUrl: string): string {
    return this.servers[i]?.url ?? liveUrl;
  }

  /** The REST base of feed `i`'s replay server (its venue REST emulation), or null for a live feed. */
  restUrl(i: number): string | null {
    return this.servers[i]?.url.replace(/^ws:/, "http:") ?? null;
  }

  /** Each feed's replay state, null for a live feed. */
  states(): (ReplayState | null)[] {
    return this.servers.map((s, i) => (s ? (this.finishedAt[i] > 0 ? "ended" : "playing") : null));
  }

  /**
   * Resolves when every replay has been received in full by its feed (`feeds[i]` is the feed of
   * `servers[i]`), setting {@link finishedAt}; null without replays. Warns when a replay sent none of
   * the recorded frames (the subscription matches nothing in the recording) and when frames written
   * on a dropped connection never arrived.
   */
  whenReceived(feeds: readonly ReplayedFeed[], logger: Logger): Promise<void> | null {
    const ends: Promise<void>[] = [];
    for (const [i, server] of this.servers.entries()) {
      const written = this.written[i];
      if (!server || !written) continue;
      const feed = feeds[i];
      ends.push(
        written.then(async (info) => {
          // (with faults, the last connection may start at the end of the recording: frames came before)
          if (info.dataFrames === 0 && feed.counts.frames === 0) {
            logger.warn(
              {
                exchange: feed.venue.exchange,
                symbols: this.subscriptions[i].symbols,
                streams: this.subscriptions[i].streams,
              },
              "replay sent no recorded frames: the subscription matches nothing in the recording",
            );
          }
          const complete = await receivedAll(feed, server);
          if (!complete) {
            logger.warn(
              {
                exchange: feed.venue.exchange,
                sent: server.totalSent,
                received: feed.connection.framesReceived,
              },
              "replay ended: frames written on a dropped connection never arrived",
            );
          }
          this.finishedAt[i] = Date.now();
        }),
      );
    }
    return ends.length > 0 ? Promise.all(ends).then(() => undefined) : null;
  }

  /** `/health` sentences: one per finished replay (no more data is arriving from it). */
  problems(): string[] {
    const out: string[] = [];
    for (const [i, at] of this.finishedAt.entries()) {
      const file = this.files[i];
      if (at > 0 && file) out.push(replayFinishedProblem(file, at));
    }
    return out;
  }

  /** What the servers injected (`--faults`), added up; null without faults. */
  faultCounts(): FaultCounts | null {
    return sumFaultCounts(this.servers.map((s) => s?.faultCounts() ?? null));
  }

  /** Stops every server. */
  async stop(): Promise<void> {
    for (const server of this.servers) if (server) await server.stop();
  }
}

/**
 * The log line of the end of a run's replays, e.g. `replay finished: 37,797 frames in 0.9 s; still
 * serving on http://127.0.0.1:8080/`. `frames`: market data frames received; `ms`: from the first
 * frame to the end; `next`: what the process does now.
 */
export function replayFinishedMessage(frames: number, ms: number, next: string): string {
  return `replay finished: ${frames.toLocaleString("en-US")} frames in ${(ms / 1000).toFixed(1)} s; ${next}`;
}

/**
 * Resolves true once `feed` has received every frame `server` wrote, false when nothing more arrived
 * for {@link END_IDLE_MS} before that (idle over many turns of the event loop, so that one long
 * blocking turn is not mistaken for the end).
 */
function receivedAll(feed: ReplayedFeed, server: ReplayServer): Promise<boolean> {
  return new Promise((resolve) => {
    let seen = feed.connection.framesReceived;
    let idleSince = performance.now();
    let idleChecks = 0;
    const check = () => {
      const received = feed.connection.framesReceived;
      if (received >= server.totalSent) return resolve(true);
      if (received !== seen) {
        seen = received;
        idleSince = performance.now();
        idleChecks = 0;
      } else if (++idleChecks >= 100 && performance.now() - idleSince > END_IDLE_MS) {
        return resolve(false);
      }
      setTimeout(check, 5);
    };
    check();
  });
}

/**
 * A replay asked for symbols its recording does not hold: the run would receive nothing. The message
 * says which, e.g. `--symbols: btcusdt_20240808.gz holds BTCUSDT, not ETHUSDT`.
 */
export class ReplaySymbolsError extends Error {}

/**
 * Throws when none of the `wanted` symbols are in the recording (`recorded`; an empty list means they
 * could not be read, and nothing is checked); warns about each one missing when some are there.
 * @throws {ReplaySymbolsError} when none of `wanted` is recorded
 */
function checkRecordedSymbols(
  file: string,
  wanted: readonly string[],
  recorded: readonly string[],
  exchange: string,
  logger: Logger,
): void {
  if (recorded.length === 0) return;
  const missing = wanted.filter((s) => !recorded.includes(s));
  if (missing.length === 0) return;
  const holds = `${basename(file)} holds ${recorded.join(", ")}, not ${missing.join(", ")}`;
  if (missing.length === wanted.length) {
    throw new ReplaySymbolsError(
      `--symbols: ${holds}: the replay would send nothing (drop --symbols to replay what was recorded)`,
    );
  }
  logger.warn({ exchange, file, missing, recorded }, `${holds}: those symbols get no data`);
}

/**
 * The symbols a recording holds on the venue's streams, keeping those the venue accepts; empty when
 * they cannot be read cheaply. A cryptofeed recording is indexed whole (what its connections
 * subscribed to); a `<ns> <frame>` capture is read from its first 64 KiB (the stream names of its
 * first frames, `btcusdt@trade` → `BTCUSDT`).
 */
async function recordedSymbols(
  file: string,
  format: CaptureFormat,
  venue: Venue,
  streams: string[],
  logger: Logger,
): Promise<string[]> {
  let symbols: string[];
  if (format === "cryptofeed") {
    const index = await indexRecording(file, (exchange) => getVenue(exchange.toLowerCase())?.replay);
    const keys = [...index.connections.values()].flatMap((c) => [...c.keys]);
    symbols = symbolsOfKeys(keys, venue.streams);
  } else {
    symbols = captureHeadSymbols(file);
  }
  const accepted: string[] = [];
  for (const s of symbols) {
    try {
      venue.validate({ symbols: [s], streams });
      accepted.push(s);
    } catch (e) {
      logger.warn(
        { exchange: venue.exchange, symbol: s, reason: (e as Error).message },
        "recorded symbol skipped",
      );
    }
  }
  return accepted;
}

/** Upper-case symbols of the combined-stream frames in a capture's first 64 KiB, in order of first sight. */
function captureHeadSymbols(file: string): string[] {
  const text = readCaptureHead(file).toString("utf8");
  const out = new Set<string>();
  for (const m of text.matchAll(/"stream":"([a-z0-9]+)@/g)) out.add(m[1].toUpperCase());
  return [...out];
}
