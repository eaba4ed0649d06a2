import { describe, expect, it } from "vitest";
import { CoinbaseBookSync, parseCoinbaseL2Message } from "../../src/books/coinbase.js";
import { parseNonNegativeDecimal as exact } from "../../src/schema/decimal.js";
import { recvFrames } from "./data.js";

const frames = recvFrames("cryptofeed/COINBASE.jsonl.gz").map((f) => f.data);

interface Ticker {
  product_id: string;
  best_bid: string;
  best_bid_quantity: string;
  best_ask: string;
  best_ask_quantity: string;
}

describe("Coinbase level2 book against the ticker channel, on the recording", () => {
  it("of 154 tickers after the level2 snapshot: 114 agree at arrival, 28 within three l2_data messages, 12 never", () => {
    const sync = new CoinbaseBookSync();
    const agrees = (t: Ticker) => {
      const b = sync.books.get(t.product_id)!;
      const bid = b.bestBid();
      const ask = b.bestAsk();
      return (
        bid !== null &&
        ask !== null &&
        bid[0] === exact(t.best_bid) &&
        bid[1] === exact(t.best_bid_quantity) &&
        ask[0] === exact(t.best_ask) &&
        ask[1] === exact(t.best_ask_quantity)
      );
    };
    // a ticker that disagrees on arrival waits for the next three l2_data messages of its product
    let pending: { t: Ticker; left: number }[] = [];
    let tickers = 0;
    let atArrival = 0;
    let within3 = 0;
    let never = 0;
    let gaps = 0;
    for (const raw of frames) {
      const m = JSON.parse(raw);
      const l2 = parseCoinbaseL2Message(m);
      if (!l2) {
        if (sync.onSequence(m.sequence_num).gap) gaps++;
        if (m.channel !== "ticker") continue;
        for (const e of m.events) {
          for (const t of e.tickers as Ticker[]) {
            if (!sync.books.has(t.product_id)) continue; // before its level2 snapshot
            tickers++;
            if (agrees(t)) atArrival++;
            else pending.push({ t, left: 3 });
          }
        }
        continue;
      }
      if (sync.onL2Data(l2).gap) gaps++;
      const products = new Set(l2.events.map((e) => e.productId));
      pending = pending.filter((p) => {
        if (!products.has(p.t.product_id)) return true;
        if (agrees(p.t)) {
          within3++;
          return false;
        }
        if (--p.left === 0) {
          never++;
          return false;
        }
        return true;
      });
    }
    never += pending.length;
    console.log(
      `Coinbase tickers ${tickers}: at arrival ${atArrival}, within three l2_data ${within3}, never ${never}`,
    );
    expect(gaps).toBe(0);
    expect({ tickers, atArrival, within3, never }).toEqual({
      tickers: 154,
      atArrival: 114,
      within3: 28,
      never: 12,
    });
  });

  it("a sequence_num gap discards every book of the connection and asks to resubscribe them", () => {
    const sync = new CoinbaseBookSync();
    let dropped = false;
    const resubscribe: string[][] = [];
    let skipped = 0;
    for (const raw of frames) {
      const m = JSON.parse(raw);
      const l2 = parseCoinbaseL2Message(m);
      // lose one l2_data message after both snapshots
      if (l2 && !dropped && l2.sequence > 100) {
        dropped = true;
        continue;
      }
      const step = l2 ? sync.onL2Data(l2) : sync.onSequence(m.sequence_num);
      if (step.gap) resubscribe.push(step.resubscribe);
      skipped += step.skipped;
    }
    expect(resubscribe).toEqual([["BTC-USD", "ETH-USD"]]);
    expect(sync.resyncs).toBe(1);
    expect(skipped).toBeGreaterThan(0);
    expect([...sync.awaiting].sort()).toEqual(["BTC-USD", "ETH-USD"]);
    expect(sync.books.get("BTC-USD")!.depth("bid")).toBe(0);
  });
});
