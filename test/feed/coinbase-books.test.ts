/**
 * Issue #13, Coinbase level2 books in the feed: the recording through the Coinbase normalizer into a
 * CoinbaseBookKeeper (real normalizer, metrics and snapshotter; no pipeline): the ticker cross-check
 * counts, and a lost frame's gap discarding both books and resubscribing level2 for each product.
 */
import { describe, expect, it } from "vitest";
import { BookSnapshotter } from "../../src/feed/book-snapshots.js";
import { CoinbaseBookKeeper } from "../../src/feed/coinbase-books.js";
import { Metrics } from "../../src/ops/metrics.js";
import type { BookSnapshotV2 } from "../../src/schema/books.js";
import { CoinbaseNormalizer } from "../../src/venues/coinbase.js";
import type { NormalizedSink } from "../../src/venues/venue.js";
import { silentLogger } from "../helpers/run.js";
import { COINBASE_FILE, recvFrames } from "../venues/recording.js";

const SUB = { symbols: ["BTC-USD", "ETH-USD"], streams: ["market_trades", "ticker", "level2"] };
const frames = recvFrames(COINBASE_FILE);

/** The frames through a normalizer whose sink feeds a keeper, as the pipeline wires them. */
function keep(raws: string[]) {
  const metrics = new Metrics();
  const resubscribed: string[] = [];
  const snapshots: BookSnapshotV2[] = [];
  const keeper = new CoinbaseBookKeeper({
    exchange: "COINBASE",
    resubscribe: (p) => resubscribed.push(p),
    snapshots: new BookSnapshotter({
      exchange: "COINBASE",
      depth: 5,
      intervalUs: 1_000_000,
      emit: (s) => snapshots.push(s),
    }),
    metrics,
    logger: silentLogger(),
  });
  const sink: NormalizedSink = {
    trade: () => undefined,
    quote: (q) => keeper.onQuote(q),
    deadLetter: (d) => {
      throw new Error(`dead letter: ${d.reason}`);
    },
    gap: (g) => keeper.onGap(g),
    control: () => undefined,
    bookChange: (c, m) => keeper.onChange(c, m),
  };
  const n = new CoinbaseNormalizer(sink, SUB);
  const feed = (frames: string[]) => {
    for (const r of frames) n.normalize(r, 1_800_000_000_000_000);
  };
  feed(raws);
  return { keeper, metrics, resubscribed, snapshots, normalizer: n, feed };
}

const counter = async (metrics: Metrics, name: string) =>
  (await metrics.registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels, v.value]);

describe("CoinbaseBookKeeper on the recording", () => {
  it("cross-checks the 154 tickers after the level2 snapshot: 114 at arrival, 28 within three l2_data messages, 12 never", async () => {
    const { keeper, metrics, resubscribed, snapshots } = keep(frames);
    const checks = keeper.tickerChecks();
    console.log(
      `Coinbase keeper: tickers ${checks.tickers}, at arrival ${checks.atArrival}, within three ${checks.late}, never ${checks.never}`,
    );
    expect(checks).toEqual({ tickers: 154, atArrival: 114, late: 28, never: 12 });
    expect(keeper.counts).toMatchObject({ applied: 775, skipped: 0, resyncs: 0, crossed: 0 });
    expect(resubscribed).toEqual([]);
    expect(keeper.problems()).toEqual([]);
    const views = keeper.books();
    expect(views.map((v) => [v.symbol, v.state])).toEqual([
      ["BTC-USD", "live"],
      ["ETH-USD", "live"],
    ]);
    for (const v of views) {
      expect(Number(v.levels("bid", 1)[0][0])).toBeLessThan(Number(v.levels("ask", 1)[0][0]));
      expect(v.last_source_sequence).toBeGreaterThan(0);
    }
    // a late agreement is a match: 114 + 28 matches, 12 mismatches
    expect(await counter(metrics, "k2_book_crosscheck_total")).toEqual([
      [{ exchange: "COINBASE", result: "match" }, 142],
      [{ exchange: "COINBASE", result: "mismatch" }, 12],
    ]);
    expect(snapshots.length).toBeGreaterThan(0);
    for (const s of snapshots) expect(s.bids.length).toBe(5);
  });

  it("a lost frame: both books discarded, level2 resubscribed for each product, updates skipped until a snapshot", async () => {
    const lost = frames.findIndex((f) => {
      const o = JSON.parse(f);
      return o.channel === "l2_data" && o.sequence_num > 100;
    });
    const { keeper, metrics, resubscribed } = keep(frames.filter((_, i) => i !== lost));
    expect(resubscribed).toEqual(["BTC-USD", "ETH-USD"]);
    expect(keeper.counts.resyncs).toBe(1);
    expect(keeper.counts.skipped).toBeGreaterThan(0);
    expect(keeper.problems()).toEqual([
      "book COINBASE BTC-USD resyncing (waiting for a level2 snapshot)",
      "book COINBASE ETH-USD resyncing (waiting for a level2 snapshot)",
    ]);
    for (const v of keeper.books()) {
      expect(v.state).toBe("syncing");
      expect(v.levels("bid", 10)).toEqual([]);
      expect(v.last_resync_timestamp).not.toBeNull();
    }
    expect(await counter(metrics, "k2_book_resyncs_total")).toEqual([
      [{ exchange: "COINBASE", symbol: "BTC-USD" }, 1],
      [{ exchange: "COINBASE", symbol: "ETH-USD" }, 1],
    ]);
    // no ticker is checked against a discarded book
    expect(keeper.tickerChecks().tickers).toBeLessThan(154);
  });

  it("a new connection: the books wait for its level2 snapshots (no resubscribe), then are live again", () => {
    const { keeper, normalizer, resubscribed, feed } = keep(frames);
    const before = keeper.books().map((v) => [v.symbol, v.levels("bid", 10), v.levels("ask", 10)]);
    normalizer.connectionOpened();
    keeper.connectionOpened();
    expect(keeper.books().map((v) => v.state)).toEqual(["syncing", "syncing"]);
    expect(keeper.problems()).toHaveLength(2);
    // the new connection sends the same session again, from its sequence_num 0 and its snapshots
    const firstL2 = frames.findIndex((f) => JSON.parse(f).channel === "l2_data");
    const beforeSnapshots = frames.slice(0, firstL2);
    feed(beforeSnapshots);
    expect(keeper.books().map((v) => v.state)).toEqual(["syncing", "syncing"]);
    feed(frames.slice(firstL2));
    expect(keeper.books().map((v) => v.state)).toEqual(["live", "live"]);
    expect(keeper.books().map((v) => [v.symbol, v.levels("bid", 10), v.levels("ask", 10)])).toEqual(before);
    expect(keeper.problems()).toEqual([]);
    expect(resubscribed).toEqual([]);
    expect(keeper.counts.resyncs).toBe(0);
  });
});
