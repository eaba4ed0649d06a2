/**
 * Who the gateway serves: a {@link Client} (one connection's subscriptions, its `batch_ms` batches, its
 * send queue while it is behind (`backpressure.ts`), the frames written to it alone in this pass
 * (`flush.ts`)), and a {@link Group} of clients with identical subscriptions, served together from one
 * log of frames. Where each is served from (its group, or the subscription index) is `groups.ts`' job.
 */
import type { Socket } from "node:net";
import type { WebSocket } from "ws";
import type { BookFloor } from "./book-replay.js";
import type { Channel } from "./protocol.js";

/** What a client subscribed to on one channel. */
export interface ClientSubscription {
  /** Subscribed with `"*"`: every symbol. */
  all: boolean;
  symbols: Set<string>;
  /** Batch period asked for with `batch_ms`, ms (0: every record in a frame of its own). */
  batchMs: number;
}

/** A frame waiting in a client's send queue. */
export interface QueueItem {
  /** null once conflated away. */
  frame: Buffer | null;
  /** Conflation key (`channel|exchange|symbol` of a quote/tick/book, `heartbeat`), null: never conflated. */
  key: string | null;
}

/** The records of one channel collected for a client that asked for `batch_ms`. */
export interface Batch {
  /** Each record's JSON. */
  items: string[];
  /** Index in `items` of each symbol's latest entry (conflatable channels). */
  bySymbol: Map<string, number> | null;
  timer: NodeJS.Timeout;
}

/**
 * Quotes, ticks and `book.{N}` (whole top-N books): a newer one of the same symbol may replace a waiting
 * one.
 */
export function isConflatable(channel: Channel): boolean {
  return channel === "quotes" || channel === "ticks" || channel.startsWith("book.");
}

/** Conflation key of a record on `channel`, or null when the channel is not conflatable. */
export function conflationKey(channel: Channel, exchange: string, symbol: string): string | null {
  return isConflatable(channel) ? `${channel}|${exchange}|${symbol}` : null;
}

/** A connected client (see the fields for who reads and writes what). */
export class Client {
  readonly subs = new Map<Channel, ClientSubscription>();
  readonly batches = new Map<Channel, Batch>();
  /** The API token it presented (null: none), for its per-token limits. */
  token: string | null = null;
  /** `from` subscriptions still replaying history, by channel (`replay.ts`). */
  readonly replays = new Map<Channel, { cancel(): void }>();
  /** Replays waiting for its socket to drain: each checks and returns true once it went on. */
  readonly drainWaiters = new Set<() => boolean>();
  /**
   * After a `book.{N}` replay's switch, the books (`exchange|symbol`) whose live frames are held back
   * until one is newer than the book sent (`book-replay.ts`), by channel; a client with any is served
   * on its own (not in a group).
   */
  readonly bookFloors = new Map<Channel, Map<string, BookFloor>>();
  /** Send queue while behind: items from `head` on wait (`undefined`: already sent). */
  queue: (QueueItem | undefined)[] = [];
  head = 0;
  /** Frames waiting (conflated ones excluded). */
  queued = 0;
  /** The queued item of each conflation key. */
  readonly latest = new Map<string, QueueItem>();
  /**
   * When anything (message, ping or pong) last arrived, or its socket was last seen draining, ms since
   * epoch.
   */
  lastSeenMs: number;
  /**
   * At the last idle sweep: bytes its socket's completed writes handed to the kernel, bytes still
   * waiting in the socket, and bytes of those in libuv's write queue.
   */
  sweptSent = 0;
  sweptWaiting = 0;
  sweptUnsent = 0;
  /** Quotes/ticks/books conflated for this client. */
  conflated = 0;
  closed = false;
  /** Frames written to this client alone in this pass, sent as one socket write after it. */
  pending: Buffer[] = [];
  pendingBytes = 0;
  /** The group it belongs to, or null when served on its own (`indexed`) or not subscribed. */
  group: Group | null = null;
  /** In its group: index in `members`, and sequence number of the next group frame it needs. */
  slot = -1;
  seq = 0;
  /** Served on its own from the subscription index. */
  indexed = false;
  /** In a worker process: the interest keys it holds (`interest.ts`), those of its subscriptions and replays. */
  readonly interest = new Set<string>();
  /** The keys of its live subscribe waiting for its worker's interest to be confirmed, or null. */
  waitKeys: string[] | null = null;
  /** Its messages that arrived while a subscribe waits (handled after it, in order), or null. */
  inbox: string[] | null = null;
  /** The keys of its `from` replays, by channel (each replay's own array). */
  readonly replayKeys = new Map<Channel, string[]>();

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly socket: Socket | null,
    readonly remote: string,
  ) {
    this.lastSeenMs = Date.now();
  }
}

/**
 * Clients with identical subscriptions (no batching, not behind). The group's frames form a log; each
 * member has a cursor (`Client.seq`) into it, and a flush round writes to each member, in one socket
 * write, every frame from its cursor to the log's head (`flush.ts`).
 */
export class Group {
  /** Members in round order (a member knows its index as `slot`). */
  readonly members: Client[] = [];
  /** Frames not yet written to every member; `log[0]` has sequence number `base`. */
  log: Buffer[] = [];
  /** Conflation key of each frame in `log` (a member leaving the group takes them into its queue). */
  keys: (string | null)[] = [];
  base = 0;
  /** Index in `members` where the next flush slice goes on. */
  cursor = 0;
  /** In the list of groups to flush. */
  dirty = false;

  constructor(
    readonly sig: string,
    readonly subs: Map<Channel, ClientSubscription>,
  ) {}

  /** Sequence number of the next frame appended. */
  get head(): number {
    return this.base + this.log.length;
  }
}
