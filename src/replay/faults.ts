/**
 * Fault injection in the replay servers, for drills and tests: `--faults SPEC` on `k2 replay-server`
 * and `k2 run --replay`. SPEC is a comma list of:
 *
 * - `drop-every=N[:lost=M]`: cut TCP (terminate) after every N data frames sent; the next M frames of
 *   the capture are never sent to anybody (a live venue does not resend them);
 * - `stall=DUR@FRAME` (DUR `90s`, `500ms`, `2m`): at data frame FRAME (0-based position in the
 *   capture's subscribed frames) the connection goes silent for DUR: socket open, nothing sent, pings
 *   unanswered;
 * - `garbage=RATE`: with probability RATE per data frame, an extra text frame that is not JSON is sent
 *   before the real one (seeded PRNG, `--faults-seed N`);
 * - `close=CODE@FRAME`: a WebSocket close with CODE (1000..4999) at data frame FRAME;
 * - `no-pong`: pings are never answered.
 *
 * With faults the server acts as a live venue: one position in the capture shared by successive
 * connections, so a reconnecting client continues from where the previous connection stopped (minus
 * the lost frames). `stall` and `close` happen once.
 */
import { seededRandom } from "../feed/liveness.js";

/** Parsed `--faults` SPEC. */
export interface FaultSpec {
  /** Cut the connection after every `n` data frames; the next `lost` frames are skipped. */
  dropEvery?: { n: number; lost: number };
  /** Silence of `durationMs` ms at data frame `atFrame`. */
  stall?: { durationMs: number; atFrame: number };
  /** Probability in [0, 1] of a garbage frame before each data frame. */
  garbageRate?: number;
  /** WebSocket close with `code` at data frame `atFrame`. */
  close?: { code: number; atFrame: number };
  /** Never answer pings. */
  noPong?: boolean;
  /** Seed of the garbage PRNG (`--faults-seed`, default 1). */
  seed: number;
}

/** What a replay server injected, as `k2 run --exit-at-end` reports it under `faults`. */
export interface FaultCounts {
  /** Connections cut by `drop-every`. */
  drops: number;
  /** Capture frames never sent (`lost=M` after each drop). */
  frames_lost: number;
  /** The lost frames by venue stream (e.g. `btcusdt@trade`). */
  lost_by_stream: Record<string, number>;
  stalls: number;
  garbage_frames: number;
  closes: number;
  /** Pings left unanswered (`no-pong`, or during a stall). */
  pings_unanswered: number;
}

/** Invalid SPEC; the message names `--faults`. */
export class FaultSpecError extends Error {
  override name = "FaultSpecError";
}

/** `90s`, `500ms`, `2m`, `1.5s` → ms. */
function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!m) return null;
  const n = Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "s" ? 1000 : 60_000);
  return Number.isFinite(n) && n > 0 && n <= 86_400_000 ? Math.round(n) : null;
}

const isCount = (t: string) => /^\d{1,12}$/.test(t);

/**
 * Parses a `--faults` SPEC (see the module doc).
 * @throws {FaultSpecError} naming `--faults` and the item at fault
 */
export function parseFaults(spec: string, seed = 1): FaultSpec {
  const out: FaultSpec = { seed };
  const bad = (item: string, why: string): never => {
    throw new FaultSpecError(
      `--faults: "${item}": ${why} (expected a comma list of drop-every=N[:lost=M], stall=DUR@FRAME, garbage=RATE, close=CODE@FRAME, no-pong)`,
    );
  };
  const items = spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) bad(spec, "empty");
  for (const item of items) {
    const eq = item.indexOf("=");
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? "" : item.slice(eq + 1);
    const seen = (k: keyof FaultSpec) => out[k] !== undefined && bad(item, `${key} given twice`);
    if (key === "drop-every") {
      seen("dropEvery");
      const m = /^(\d+)(?::lost=(\d+))?$/.exec(value);
      if (!m || !isCount(m[1]) || Number(m[1]) < 1 || (m[2] !== undefined && !isCount(m[2])))
        bad(item, "N must be a positive integer and M a non-negative integer");
      out.dropEvery = { n: Number(m![1]), lost: Number(m![2] ?? 0) };
    } else if (key === "stall") {
      seen("stall");
      const [dur, at] = value.split("@");
      const durationMs = parseDuration(dur ?? "");
      if (durationMs === null || at === undefined || !isCount(at))
        bad(item, "expected DUR@FRAME, DUR like 90s or 500ms, FRAME a frame number");
      out.stall = { durationMs: durationMs!, atFrame: Number(at) };
    } else if (key === "garbage") {
      seen("garbageRate");
      const r = Number(value);
      if (value === "" || !Number.isFinite(r) || r < 0 || r > 1) bad(item, "RATE must be from 0 to 1");
      out.garbageRate = r;
    } else if (key === "close") {
      seen("close");
      const [code, at] = value.split("@");
      const c = Number(code);
      // 1005, 1006 and 1015 must not be sent on the wire (RFC 6455 §7.4.1)
      if (
        !isCount(code ?? "") ||
        !(
          c === 1000 ||
          (c >= 1001 && c <= 1014 && ![1004, 1005, 1006].includes(c)) ||
          (c >= 3000 && c <= 4999)
        ) ||
        at === undefined ||
        !isCount(at)
      )
        bad(item, "expected CODE@FRAME, CODE a sendable close code (1000, 1001-1014, 3000-4999)");
      out.close = { code: c, atFrame: Number(at) };
    } else if (key === "no-pong" && eq < 0) {
      seen("noPong");
      out.noPong = true;
    } else bad(item, "unknown fault");
  }
  return out;
}

/**
 * Parses `--faults-seed`.
 * @throws {FaultSpecError} naming `--faults-seed`
 */
export function parseFaultsSeed(text: string): number {
  if (!/^\d{1,10}$/.test(text.trim()) || Number(text) > 0xffffffff)
    throw new FaultSpecError(`--faults-seed: expected an integer from 0 to 4294967295, got "${text}"`);
  return Number(text);
}

/** A fault decided for the next data frame (see {@link FaultState.next}). */
export type FaultAction =
  | { kind: "close"; code: number }
  | { kind: "stall"; durationMs: number }
  | { kind: "drop"; lost: number }
  | null;

/**
 * The fault state of one replay server, shared by its connections: decides, data frame by data frame,
 * what to inject, and counts what was injected.
 */
export class FaultState {
  readonly counts: FaultCounts = emptyFaultCounts();
  private readonly random: () => number;
  private sinceDrop = 0;
  private stallDone = false;
  private closeDone = false;
  /** Called after every change of {@link counts} (the worker thread forwards them). */
  onChange: (() => void) | null = null;

  constructor(readonly spec: FaultSpec) {
    this.random = seededRandom(spec.seed);
  }

  /** True when pings must be answered by the server itself (`ws` option `autoPong: false`). */
  get answersPings(): boolean {
    return !this.spec.noPong;
  }

  /**
   * The fault to inject before data frame `position` (0-based in the capture's subscribed frames),
   * or null: send it. A drop is due once N frames were sent since the last one.
   */
  next(position: number): FaultAction {
    const { close, stall, dropEvery } = this.spec;
    if (close && !this.closeDone && position >= close.atFrame) {
      this.closeDone = true;
      this.counts.closes++;
      this.changed();
      return { kind: "close", code: close.code };
    }
    if (stall && !this.stallDone && position >= stall.atFrame) {
      this.stallDone = true;
      this.counts.stalls++;
      this.changed();
      return { kind: "stall", durationMs: stall.durationMs };
    }
    if (dropEvery && this.sinceDrop >= dropEvery.n) {
      this.sinceDrop = 0;
      this.counts.drops++;
      this.changed();
      return { kind: "drop", lost: dropEvery.lost };
    }
    return null;
  }

  /** Records data frame sent (counts towards `drop-every`). */
  sent(): void {
    this.sinceDrop++;
  }

  /** A frame of `stream` that is never sent (lost after a drop). */
  lost(stream: string): void {
    this.counts.frames_lost++;
    this.counts.lost_by_stream[stream] = (this.counts.lost_by_stream[stream] ?? 0) + 1;
  }

  /** After the lost frames of a drop were skipped. */
  lostDone(): void {
    this.changed();
  }

  /** A garbage frame to send before the next data frame, or null (draws from the seeded PRNG). */
  garbage(): string | null {
    const rate = this.spec.garbageRate;
    if (!rate || this.random() >= rate) return null;
    this.counts.garbage_frames++;
    this.changed();
    return `garbage ${this.counts.garbage_frames} {not json`;
  }

  /** A ping left unanswered. */
  unansweredPing(): void {
    this.counts.pings_unanswered++;
    this.changed();
  }

  private changed(): void {
    this.onChange?.();
  }
}

/** Counts of a server that injected nothing yet. */
export function emptyFaultCounts(): FaultCounts {
  return {
    drops: 0,
    frames_lost: 0,
    lost_by_stream: {},
    stalls: 0,
    garbage_frames: 0,
    closes: 0,
    pings_unanswered: 0,
  };
}

/** A copy of `counts` (safe to post to another thread or print). */
export function snapshotCounts(counts: FaultCounts): FaultCounts {
  return { ...counts, lost_by_stream: { ...counts.lost_by_stream } };
}

/** The plain counters of {@link FaultCounts}. */
const SCALAR_COUNTS = [
  "drops",
  "frames_lost",
  "stalls",
  "garbage_frames",
  "closes",
  "pings_unanswered",
] as const satisfies readonly Exclude<keyof FaultCounts, "lost_by_stream">[];

/** Fault counts of several replay servers, added up; null when none injects faults (all null). */
export function sumFaultCounts(all: readonly (FaultCounts | null)[]): FaultCounts | null {
  let total: FaultCounts | null = null;
  for (const c of all) {
    if (!c) continue;
    if (!total) {
      total = snapshotCounts(c);
      continue;
    }
    for (const k of SCALAR_COUNTS) total[k] += c[k];
    for (const [k, n] of Object.entries(c.lost_by_stream))
      total.lost_by_stream[k] = (total.lost_by_stream[k] ?? 0) + n;
  }
  return total;
}
