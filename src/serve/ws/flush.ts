/**
 * The write path: what a synchronous pass (one record's fan-out, one client message, a drain) writes
 * goes out right after it, in flush rounds.
 *
 *   - A client served on its own collects its frames in `pending` ({@link Flusher.write}) and gets them
 *     in one socket write after the pass (clients with the same frames share one concatenated buffer).
 *   - A group's frames go once to the group's log ({@link Flusher.groupPush}); a round gives each
 *     member, in one socket write, every frame from its cursor to the log's head (members at the same
 *     cursor share one buffer). So a burst of N records to C clients in G groups costs N·G appends and
 *     at most C writes per round, not N·C.
 *   - A round runs in slices of at most {@link FLUSH_SLICE_MS} with the event loop turning in between,
 *     so records that arrive during a round reach the members not yet written in the same round: with
 *     C clients a record waits at most about one round (C socket writes).
 *   - A member whose socket is over the high-water mark leaves its group (its frames follow it into its
 *     own send queue, `backpressure.ts`) until it has caught up.
 */
import { WebSocket } from "ws";
import type { SubscriptionIndex } from "./groups.js";
import type { Client, Group } from "./members.js";
import type { GatewayCounts } from "./metrics.js";

/** Longest a flush runs before the event loop gets a turn, ms. */
export const FLUSH_SLICE_MS = 2;

/** The flush rounds of one gateway. */
export class Flusher {
  private readonly flushList: Client[] = [];
  private readonly flushGroups: Group[] = [];
  private flushScheduled = false;

  /**
   * @param highWater `bufferedAmount` (bytes) at or above which a group member is moved out of its
   *   group
   */
  constructor(
    private readonly index: SubscriptionIndex,
    private readonly counts: GatewayCounts,
    private readonly highWater: number,
  ) {}

  /**
   * Adds one complete WebSocket frame to what the client alone gets after this synchronous pass.
   * Writing next to `ws` keeps order because `ws` (without permessage-deflate) writes synchronously
   * and the gateway sends every data frame and reply through here or its group.
   */
  write(c: Client, frame: Buffer): void {
    if (c.ws.readyState !== WebSocket.OPEN) return;
    if (c.pending.length === 0) {
      this.flushList.push(c);
      this.scheduleFlush();
    }
    c.pending.push(frame);
    c.pendingBytes += frame.length;
    this.counts.sent++;
  }

  /** Appends a frame (with its conflation key) to a group's log, for every member. */
  groupPush(g: Group, frame: Buffer, key: string | null): void {
    g.log.push(frame);
    g.keys.push(key);
    if (!g.dirty) {
      g.dirty = true;
      this.flushGroups.push(g);
    }
    this.scheduleFlush();
  }

  /**
   * Flushes right after the current synchronous pass (`process.nextTick`), or, when a flush ran out of
   * its time slice, after the event loop has had a turn (`setImmediate`): other work (ingest, client
   * messages) runs between slices, and frames that arrive meanwhile join the round in progress.
   */
  private scheduleFlush(afterIo = false): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    if (afterIo) setImmediate(() => this.flush());
    else process.nextTick(() => this.flush());
  }

  /**
   * After a pass: one socket write per client served on its own (drained queues, replies, batches),
   * then the groups' rounds ({@link flushGroup}) until done or the slice's time is up; what is left
   * goes on after the event loop has turned.
   */
  private flush(): void {
    this.flushScheduled = false;
    const started = performance.now();
    const shared = new Map<Buffer, { frames: Buffer[]; buf: Buffer }[]>();
    const clients = this.flushList.splice(0);
    for (const c of clients) {
      const frames = c.pending;
      c.pending = [];
      c.pendingBytes = 0;
      if (frames.length === 0 || c.closed || !c.socket || c.ws.readyState !== WebSocket.OPEN) continue;
      if (frames.length === 1) {
        c.socket.write(frames[0]);
        continue;
      }
      let candidates = shared.get(frames[0]);
      if (!candidates) {
        candidates = [];
        shared.set(frames[0], candidates);
      }
      let buf: Buffer | null = null;
      for (const cand of candidates) {
        if (sameFrames(cand.frames, frames)) {
          buf = cand.buf;
          break;
        }
      }
      if (!buf) {
        buf = Buffer.concat(frames);
        candidates.push({ frames, buf });
      }
      c.socket.write(buf);
    }
    // groups: round-robin over the members, in slices of at most FLUSH_SLICE_MS
    while (this.flushGroups.length > 0) {
      const g = this.flushGroups[0];
      if (!this.flushGroup(g, started)) break;
      g.dirty = false;
      this.flushGroups.shift();
    }
    if (this.flushList.length > 0 || this.flushGroups.length > 0) this.scheduleFlush(true);
  }

  /**
   * Continues a group's round from its cursor: each member gets every frame from its cursor to the
   * head in one socket write (members at the same cursor share one buffer). Frames appended between
   * slices reach the members not yet written in this round at once, the others in the next round, so a
   * frame waits at most about one round. A member whose socket is over the high-water mark takes its
   * frames into its own queue and leaves the group until it has caught up. Returns true when every
   * member is at the head (the log is then emptied), false when the slice's time ran out.
   */
  private flushGroup(g: Group, started: number): boolean {
    const members = g.members;
    const head = g.head;
    /** Concatenation of log[from..] by `from`, valid while the head does not move (this slice). */
    const tails = new Map<number, Buffer>();
    let clean = 0;
    let writes = 0;
    let i = g.cursor;
    while (clean < members.length) {
      if (i >= members.length) i = 0;
      const c = members[i];
      if (c.seq >= head) {
        clean++;
        i++;
        continue;
      }
      clean = 0;
      if (c.closed || !c.socket || c.ws.readyState !== WebSocket.OPEN) {
        c.seq = head;
        i++;
        continue;
      }
      if (c.ws.bufferedAmount >= this.highWater) {
        // its slot now holds another member: do not advance i
        this.index.displace(c);
        this.index.place(c);
        continue;
      }
      const from = c.seq - g.base;
      let buf = from === g.log.length - 1 ? g.log[from] : tails.get(from);
      if (!buf) {
        buf = Buffer.concat(g.log.slice(from));
        tails.set(from, buf);
      }
      c.socket.write(buf);
      this.counts.sent += head - c.seq;
      c.seq = head;
      i++;
      if ((++writes & 7) === 0 && performance.now() - started > FLUSH_SLICE_MS) {
        g.cursor = i;
        trimLog(g);
        return false;
      }
    }
    g.cursor = i >= members.length ? 0 : i;
    g.base = head;
    g.log = [];
    g.keys = [];
    return true;
  }
}

/** Drops the frames every member of the group has had. */
function trimLog(g: Group): void {
  if (g.log.length < 256) return;
  let min = g.head;
  for (const c of g.members) if (c.seq < min) min = c.seq;
  const drop = min - g.base;
  if (drop <= 0) return;
  g.log = g.log.slice(drop);
  g.keys = g.keys.slice(drop);
  g.base = min;
}

function sameFrames(a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
