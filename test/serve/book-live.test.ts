/**
 * The live L2 book served (issue #13, "Serving") by the real CLI: `k2 run --replay btcusdt_20240808.gz
 * --streams depth,bookTicker` with gateway worker processes. Checked against a reference book the test
 * builds itself from the capture (a Map per side: the REST snapshot, then every diff with `u` past its
 * `lastUpdateId`, in order):
 *   - `GET /api/v1/book`: 404 with a reason for a symbol without a book, 400 naming `depth`, and after
 *     the replay the top 1000 levels, the last applied sequence and no resync equal the reference; the
 *     top level equals the `@bookTicker` frame of the same update id when the capture has one;
 *   - `book.10`: a snapshot right after `subscribed`, then whole top-10 books, each equal to the
 *     reference at its sequence (so bids descending, asks ascending, never crossed), sequences rising;
 *   - a client that stops reading its socket on `book.1000` while the replay runs gets, once it reads
 *     again, fewer frames than books changed (conflated), each a whole book equal to the reference at its
 *     sequence, the last one the final book; it is not cut.
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CAPTURE, ensureBuilt, type K2Process, spawnK2Run, TestClient, tempDir } from "./helpers.js";

type Level = [string, string];
interface BookFrame {
  exchange: string;
  symbol: string;
  state: string;
  depth: number;
  bids: Level[];
  asks: Level[];
  last_source_sequence: number | null;
  last_resync_timestamp: number | null;
}

/**
 * One side of the reference book, kept sorted best first (bids descending, asks ascending), so the top-N
 * at a sequence is a slice (sorting the whole side at each of thousands of sequences took minutes of CPU
 * on a loaded machine).
 */
class Side {
  private readonly prices: number[] = [];
  private readonly levels: Level[] = [];

  constructor(private readonly descending: boolean) {}

  /** Sets a level (quantity 0 removes it). */
  set(p: string, q: string): void {
    const x = Number(p);
    const { prices, levels } = this;
    let lo = 0;
    let hi = prices.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.descending ? prices[mid] > x : prices[mid] < x) lo = mid + 1;
      else hi = mid;
    }
    const found = lo < prices.length && prices[lo] === x;
    if (Number(q) === 0) {
      if (found) {
        prices.splice(lo, 1);
        levels.splice(lo, 1);
      }
    } else if (found) levels[lo] = [p, q];
    else {
      prices.splice(lo, 0, x);
      levels.splice(lo, 0, [p, q]);
    }
  }

  top(depth: number): Level[] {
    return this.levels.slice(0, depth);
  }
}

/** The reference book: the capture's snapshot, then its diffs, with the top-N at chosen sequences. */
class Reference {
  readonly bids = new Side(true);
  readonly asks = new Side(false);
  /** Final update id `u` of each applied diff, in order. */
  readonly sequences: number[] = [];
  /** Best bid/ask of each `@bookTicker` frame by its update id. */
  readonly tickers = new Map<number, { b: string; B: string; a: string; A: string }>();
  private readonly diffs: { u: number; b: Level[]; a: Level[] }[] = [];
  lastUpdateId = 0;

  constructor(file: string) {
    const text = gunzipSync(readFileSync(file)).toString("utf8");
    for (const line of text.split("\n")) {
      if (line.length === 0) continue;
      const msg = JSON.parse(line.slice(line.indexOf(" ") + 1));
      if (!("stream" in msg)) {
        this.lastUpdateId = msg.lastUpdateId;
        for (const [p, q] of msg.bids as Level[]) this.bids.set(p, q);
        for (const [p, q] of msg.asks as Level[]) this.asks.set(p, q);
      } else if (msg.stream.endsWith("@depth@100ms")) {
        this.diffs.push({ u: msg.data.u, b: msg.data.b, a: msg.data.a });
      } else if (msg.stream.endsWith("@bookTicker")) {
        const d = msg.data;
        this.tickers.set(d.u, { b: d.b, B: d.B, a: d.a, A: d.A });
      }
    }
    expect(this.lastUpdateId).toBeGreaterThan(0);
  }

  /**
   * Applies the diffs in order (those at or before the snapshot skipped); returns the top-`depth` at
   * each sequence in `wanted` and at the end.
   */
  play(
    depth: number,
    wanted: Set<number>,
  ): { at: Map<number, { bids: Level[]; asks: Level[] }>; final: Top } {
    const at = new Map<number, Top>();
    if (wanted.has(this.lastUpdateId)) at.set(this.lastUpdateId, this.top(depth));
    for (const d of this.diffs) {
      if (d.u <= this.lastUpdateId) continue;
      for (const [p, q] of d.b) this.bids.set(p, q);
      for (const [p, q] of d.a) this.asks.set(p, q);
      this.sequences.push(d.u);
      if (wanted.has(d.u)) at.set(d.u, this.top(depth));
    }
    return { at, final: this.top(depth) };
  }

  top(depth: number): Top {
    return { bids: this.bids.top(depth), asks: this.asks.top(depth) };
  }
}

interface Top {
  bids: Level[];
  asks: Level[];
}

/** Bids strictly descending, asks strictly ascending, best bid below best ask. */
function expectOrdered(b: BookFrame): void {
  for (let i = 1; i < b.bids.length; i++) expect(Number(b.bids[i][0])).toBeLessThan(Number(b.bids[i - 1][0]));
  for (let i = 1; i < b.asks.length; i++)
    expect(Number(b.asks[i][0])).toBeGreaterThan(Number(b.asks[i - 1][0]));
  if (b.bids.length > 0 && b.asks.length > 0) expect(Number(b.bids[0][0])).toBeLessThan(Number(b.asks[0][0]));
}

const books = (c: TestClient) => c.messages.filter((m) => m.type === "book").map((m) => m.data as BookFrame);

describe("live L2 book served: REST and gateway book.{N} (real CLI, worker processes)", () => {
  let k2: K2Process;
  let base: string;
  let tmp: ReturnType<typeof tempDir>;
  let reader: TestClient;
  let stalled: TestClient;
  let ref: Reference;

  beforeAll(async () => {
    ensureBuilt();
    ref = new Reference(CAPTURE);
    tmp = tempDir();
    k2 = await spawnK2Run(
      [
        "--replay",
        CAPTURE,
        "--streams",
        "depth,bookTicker",
        "--symbols",
        "BTCUSDT",
        "--speed",
        "10",
        "--http-port",
        "0",
        "--db",
        `${tmp.dir}/k2.duckdb`,
      ],
      { K2_WS_HIGH_WATER_BYTES: "65536", K2_WS_WORKERS: "2" },
    );
    base = `http://127.0.0.1:${k2.port}`;
    const url = `ws://127.0.0.1:${k2.port}/ws`;
    // both connect while the replay runs: the stalled one first (it stops reading once it has a first
    // book), then the reader, which reads everything
    stalled = await TestClient.open(url);
    await stalled.request({ op: "subscribe", channel: "book.1000", symbols: ["*"], id: 1 });
    await stalled.next((m) => m.type === "book", 30_000);
    stalled.ws.pause();
    reader = await TestClient.open(url);
    const sub = await reader.request({ op: "subscribe", channel: "book.10", symbols: ["BTCUSDT"], id: 1 });
    expect(sub).toMatchObject({ type: "subscribed", channel: "book.10" });
  }, 60_000);

  afterAll(async () => {
    reader?.close();
    stalled?.close();
    k2?.child.kill("SIGTERM");
    await k2?.exited;
    tmp?.cleanup();
  });

  it("REST: 404 with a reason for a symbol without a book, 400 for a bad depth", async () => {
    const missing = await fetch(`${base}/api/v1/book?exchange=binance&symbol=ETHUSDT`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { reason: string }).reason).toMatch(
      /no book is kept for BINANCE ETHUSDT/,
    );
    for (const depth of ["0", "1001", "ten"]) {
      const bad = await fetch(`${base}/api/v1/book?symbol=BTCUSDT&depth=${depth}`);
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ error: "bad_request", parameter: "depth" });
    }
    const doc = (await (await fetch(`${base}/docs/json`)).json()) as { paths: Record<string, unknown> };
    expect(doc.paths["/api/v1/book"]).toBeDefined();
  });

  it("gateway and REST agree with the reference book; a stalled client gets conflated whole books", async () => {
    const t0 = performance.now();
    const phases: string[] = [];
    const phase = (name: string) => phases.push(`${name} ${Math.round(performance.now() - t0)} ms`);
    // the end of the replay
    const end = Date.now() + 120_000;
    while (!/still serving on/.test(k2.stderr())) {
      if (Date.now() > end) throw new Error(`replay did not end:\n${k2.stderr().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const rest = await fetch(`${base}/api/v1/book?exchange=binance&symbol=BTCUSDT&depth=1000`);
    expect(rest.status).toBe(200);
    const book = (await rest.json()) as BookFrame;
    const status = (await (await fetch(`${base}/api/v1/status`)).json()) as {
      gateway: { conflated: number };
    };
    const finalSeq = book.last_source_sequence as number;
    phase("replay ended");

    // the stalled client reads again: everything it was sent arrives, up to the final book
    stalled.ws.resume();
    const untilFinal = async (c: TestClient, who: string) => {
      const until = Date.now() + 60_000;
      while (books(c).at(-1)?.last_source_sequence !== finalSeq) {
        if (Date.now() > until) throw new Error(`${who} did not get the final book`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await untilFinal(reader, "the reader");
    await untilFinal(stalled, "the stalled client");
    phase("final books received");
    // still serving (the stalled client's queue did not take the process down); asked before the
    // references are played: that blocks this loop for a minute under load, past the server's keep-alive,
    // and the pooled connection would be found closed
    expect(k2.child.exitCode, k2.stderr().slice(-3000)).toBeNull();
    expect((await fetch(`${base}/api/v1/book?symbol=BTCUSDT&depth=1`)).status).toBe(200);
    // the reader: every frame (snapshot first) at a sequence the reference has
    const frames = books(reader);
    const seqs = new Set(frames.map((f) => f.last_source_sequence as number));
    const late = books(stalled);
    for (const f of late) seqs.add(f.last_source_sequence as number);
    const reference10 = new Reference(CAPTURE);
    const r10 = reference10.play(10, seqs);
    const r1000 = ref.play(1000, seqs);
    phase("reference played");

    // REST after the replay: the final book, no resync
    expect(book).toMatchObject({ exchange: "BINANCE", symbol: "BTCUSDT", state: "live", depth: 1000 });
    expect(book.last_resync_timestamp).toBeNull();
    expect(finalSeq).toBe(ref.sequences.at(-1));
    expect(book.bids).toEqual(r1000.final.bids);
    expect(book.asks).toEqual(r1000.final.asks);
    expectOrdered(book);
    const ticker = ref.tickers.get(finalSeq);
    if (ticker) {
      expect(book.bids[0]).toEqual([ticker.b, ticker.B]);
      expect(book.asks[0]).toEqual([ticker.a, ticker.A]);
    }
    // top levels of REST and the bookTicker frames agree wherever the gateway reported a sequence
    let tickerChecks = 0;
    for (const s of seqs) {
      const t = ref.tickers.get(s);
      const top = r10.at.get(s);
      if (!t || !top) continue;
      expect(top.bids[0]).toEqual([t.b, t.B]);
      expect(top.asks[0]).toEqual([t.a, t.A]);
      tickerChecks++;
    }

    // the reader: a snapshot right after subscribing, then top-10 books equal to the reference
    expect(frames.length).toBeGreaterThan(100);
    const firstAfterSub = reader.messages.findIndex((m) => m.type === "subscribed");
    expect(reader.messages[firstAfterSub + 1]?.type).toBe("book");
    let prev = 0;
    // before the book's first snapshot the snapshot on subscribe says so, with no levels
    const syncing = frames.findIndex((f) => f.state === "live");
    for (const f of frames.slice(0, syncing))
      expect(f).toMatchObject({ state: "syncing", bids: [], asks: [] });
    expect(syncing).toBeGreaterThanOrEqual(0);
    for (const f of frames.slice(syncing)) {
      expect(f.state).toBe("live");
      expect(f.depth).toBe(10);
      expectOrdered(f);
      const s = f.last_source_sequence as number;
      expect(s).toBeGreaterThanOrEqual(prev);
      prev = s;
      const want = r10.at.get(s);
      expect(want, `reference book at ${s}`).toBeDefined();
      expect(f.bids).toEqual(want?.bids);
      expect(f.asks).toEqual(want?.asks);
    }
    expect(prev).toBe(finalSeq);

    // the stalled client: conflated (fewer frames than books applied), each a whole, right book
    const applied = ref.sequences.length;
    expect(late.length).toBeGreaterThan(1);
    expect(late.length).toBeLessThan(applied);
    prev = 0;
    for (const f of late.filter((x) => x.state === "live")) {
      expectOrdered(f);
      const s = f.last_source_sequence as number;
      expect(s).toBeGreaterThanOrEqual(prev);
      prev = s;
      const want = r1000.at.get(s);
      expect(f.bids).toEqual(want?.bids);
      expect(f.asks).toEqual(want?.asks);
    }
    expect(stalled.closeCode).toBeNull();
    expect(status.gateway.conflated).toBeGreaterThan(0);
    console.log(
      `book: ${applied} diffs applied; reader got ${frames.length} book.10 frames; the stalled client ` +
        `${late.length} book.1000 frames (${status.gateway.conflated} conflated); ${tickerChecks} ` +
        `gateway sequences also checked against @bookTicker (${phases.join(", ")})`,
    );
  }, 180_000);
});
