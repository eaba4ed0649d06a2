/**
 * Spill journal: bus messages kept on local disk instead of memory, when the store falls behind
 * (backlog policy `spill`) or when shutdown runs out of time before everything was stored.
 *
 * Layout: a directory of segment files `seg-0000000000000001.jsonl`, ... (numbered in write order),
 * one message per line as JSON `{"t":topic,"k":key,"i":id,"v":value}` (JSON.stringify escapes lone
 * surrogates, so every record round-trips). Appends are buffered and written with one `write` per
 * 64 KiB; a segment is fsync'd when it is rolled (full at `segmentRecords`), on {@link Journal.flush}
 * and on {@link Journal.close}. A process killed between fsyncs loses at most the unsynced tail.
 *
 * Reading back: {@link Journal.read} hands out the oldest records first (rolling the segment being
 * written when the reader reaches it). A segment file is deleted once every record of it was read back
 * and acknowledged ({@link Journal.ack}, called by whoever has made the record safe: the store for the
 * in-process memory bus, the bus for a durable one). Until then it stays on disk, and a journal opened
 * on the directory (the next start) reads it again whole; the store's idempotent keys absorb records
 * that had been stored already. A line that does not parse (a torn write) is skipped and counted.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import type { BusMessage } from "./bus.js";

/** Options of a journal. */
export interface JournalOptions {
  /** Records per segment file (default 10,000). */
  segmentRecords?: number;
}

interface Segment {
  seq: number;
  path: string;
  /** Records in the file. */
  total: number;
  /** Records handed out by read(). */
  read: number;
  /** Records handed out and not yet acknowledged. */
  outstanding: number;
  /** Open for appends. */
  fd: number | null;
  /** Lines of a segment being read (loaded on first read). */
  lines: string[] | null;
}

const SEGMENT = /^seg-(\d{16})\.jsonl$/;

export class Journal {
  /** Records waiting in the journal (appended, not yet read back). */
  records = 0;
  /** Lines skipped because they did not parse (torn writes). */
  skipped = 0;
  private readonly segments: Segment[] = [];
  private nextSeq = 1;
  private pending: string[] = [];
  private pendingBytes = 0;
  private readonly segmentRecords: number;
  /** The segment each handed-out message came from, until it is acknowledged. */
  private readonly owner = new WeakMap<BusMessage, Segment>();

  /**
   * Opens the journal in `dir`, counting the records of segments left by an earlier process (they are
   * read back first). The directory is created on the first append.
   */
  constructor(
    readonly dir: string,
    opts: JournalOptions = {},
  ) {
    this.segmentRecords = opts.segmentRecords ?? 10_000;
    if (!existsSync(dir)) return;
    const names = readdirSync(dir)
      .filter((n) => SEGMENT.test(n))
      .sort();
    for (const name of names) {
      const seq = Number(SEGMENT.exec(name)?.[1]);
      const path = join(dir, name);
      const text = readFileSync(path, "utf8");
      const lines = text.split("\n").filter((l) => l.length > 0);
      if (lines.length === 0) {
        unlinkSync(path);
        continue;
      }
      // lines are loaded again when the reader reaches the segment
      this.segments.push({ seq, path, total: lines.length, read: 0, outstanding: 0, fd: null, lines: null });
      this.records += lines.length;
      this.nextSeq = Math.max(this.nextSeq, seq + 1);
    }
  }

  /** Appends messages at the end of the journal (buffered; see the module doc for durability). */
  append(messages: Iterable<BusMessage>): number {
    let n = 0;
    for (const m of messages) {
      let seg = this.segments[this.segments.length - 1];
      if (!seg || seg.fd === null) seg = this.newSegment();
      const line = `${JSON.stringify({ t: m.topic, k: m.key, i: m.id, v: m.value })}\n`;
      this.pending.push(line);
      this.pendingBytes += line.length;
      seg.total++;
      this.records++;
      n++;
      if (this.pendingBytes >= 65_536) this.writePending(seg);
      if (seg.total >= this.segmentRecords) this.roll(seg);
    }
    return n;
  }

  /** Writes buffered appends and fsyncs the segment being written. */
  flush(): void {
    const seg = this.segments[this.segments.length - 1];
    if (!seg || seg.fd === null) return;
    this.writePending(seg);
    fsyncSync(seg.fd);
  }

  /**
   * Reads back up to `max` of the oldest waiting records. Each must later be passed to {@link ack}
   * once it is safe (stored, or acknowledged by a durable bus) so its segment can be deleted.
   */
  read(max: number): BusMessage[] {
    const out: BusMessage[] = [];
    for (const seg of this.segments) {
      if (out.length >= max) break;
      if (seg.read >= seg.total) continue;
      if (seg.fd !== null) this.roll(seg);
      if (!seg.lines)
        seg.lines = readFileSync(seg.path, "utf8")
          .split("\n")
          .filter((l) => l.length > 0);
      while (seg.read < seg.total && out.length < max) {
        const line = seg.lines[seg.read++];
        this.records--;
        let m: BusMessage | null = null;
        try {
          const o = JSON.parse(line) as { t: string; k: string; i: string; v: unknown };
          m = { topic: o.t, key: o.k, id: o.i, value: o.v };
        } catch {
          this.skipped++;
        }
        if (!m) continue;
        seg.outstanding++;
        this.owner.set(m, seg);
        out.push(m);
      }
      if (seg.read >= seg.total) seg.lines = null;
      this.maybeDelete(seg);
    }
    return out;
  }

  /** Whether `m` was read back from this journal and is not yet acknowledged. */
  owns(m: BusMessage): boolean {
    return this.owner.has(m);
  }

  /** Acknowledges messages (those not read from this journal are ignored); deletes finished segments. */
  ack(messages: Iterable<BusMessage>): void {
    for (const m of messages) {
      const seg = this.owner.get(m);
      if (!seg) continue;
      this.owner.delete(m);
      seg.outstanding--;
      this.maybeDelete(seg);
    }
  }

  /**
   * Records in the journal not yet acknowledged: waiting, plus read back and not yet made safe (a
   * process ending now leaves these for the next start).
   */
  get unacknowledged(): number {
    let n = this.records;
    for (const seg of this.segments) n += seg.outstanding;
    return n;
  }

  /** Segment files on disk. */
  get segmentCount(): number {
    return this.segments.length;
  }

  /** Writes and fsyncs what is buffered and closes the segment being written. */
  close(): void {
    const seg = this.segments[this.segments.length - 1];
    if (seg && seg.fd !== null) this.roll(seg);
  }

  private newSegment(): Segment {
    mkdirSync(this.dir, { recursive: true });
    const seq = this.nextSeq++;
    const path = join(this.dir, `seg-${String(seq).padStart(16, "0")}.jsonl`);
    const seg: Segment = {
      seq,
      path,
      total: 0,
      read: 0,
      outstanding: 0,
      fd: openSync(path, "a"),
      lines: null,
    };
    this.segments.push(seg);
    return seg;
  }

  private writePending(seg: Segment): void {
    if (seg.fd === null || this.pending.length === 0) return;
    writeSync(seg.fd, this.pending.join(""));
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Finishes the segment being written: write, fsync, close. */
  private roll(seg: Segment): void {
    if (seg.fd === null) return;
    this.writePending(seg);
    fsyncSync(seg.fd);
    closeSync(seg.fd);
    seg.fd = null;
  }

  private maybeDelete(seg: Segment): void {
    if (seg.fd !== null || seg.read < seg.total || seg.outstanding > 0) return;
    const i = this.segments.indexOf(seg);
    if (i < 0) return;
    this.segments.splice(i, 1);
    try {
      unlinkSync(seg.path);
    } catch {
      // already gone
    }
  }
}
