/** The spill journal: order, segment rolling and deletion after acks, reopening, torn lines. */
import { appendFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { BusMessage } from "../../src/bus/bus.js";
import { Journal } from "../../src/bus/journal.js";
import { tempDir } from "../helpers/cli.js";

const msg = (i: number, extra: Record<string, string> = {}): BusMessage => ({
  topic: "market.crypto.trades.binance",
  key: "BTCUSDT",
  id: `id-${i}`,
  value: { trade_id: `BINANCE-${i}`, price: "61000.01000000", vendor_data: extra },
});

describe("spill journal", () => {
  it("reads back in order, rolls segments, deletes a segment once all its records are acknowledged", () => {
    const dir = join(tempDir(), "journal");
    const j = new Journal(dir, { segmentRecords: 100 });
    expect(j.append(Array.from({ length: 250 }, (_, i) => msg(i)))).toBe(250);
    expect(j.records).toBe(250);
    expect(readdirSync(dir)).toHaveLength(3);
    const first = j.read(120);
    expect(first.map((m) => m.id)).toEqual(Array.from({ length: 120 }, (_, i) => `id-${i}`));
    expect(j.records).toBe(130);
    expect(j.owns(first[0])).toBe(true);
    expect(j.unacknowledged).toBe(250);
    j.ack(first.slice(0, 99));
    expect(j.unacknowledged).toBe(151);
    expect(readdirSync(dir)).toHaveLength(3); // one record of the first segment unacknowledged
    j.ack(first.slice(99));
    expect(readdirSync(dir)).toHaveLength(2);
    // appends while reading go after the waiting records
    j.append([msg(250)]);
    const rest = j.read(1000);
    expect(rest.map((m) => m.id)).toEqual(Array.from({ length: 131 }, (_, i) => `id-${120 + i}`));
    expect(j.records).toBe(0);
    j.ack(rest);
    expect(readdirSync(dir)).toEqual([]);
    j.close();
  });

  it("keeps unacknowledged records for the next process, skipping a torn last line; lone surrogates round-trip", () => {
    const dir = join(tempDir(), "journal");
    const a = new Journal(dir, { segmentRecords: 10 });
    a.append([msg(1, { note: "a\udc00b" }), msg(2), msg(3)]);
    a.read(2); // read back but never acknowledged (the process dies)
    a.close();
    const [seg] = readdirSync(dir);
    appendFileSync(join(dir, seg), '{"t":"market.crypto.trades.binance","k":"BTC'); // torn write
    const b = new Journal(dir);
    expect(b.records).toBe(4);
    const back = b.read(10);
    expect(back.map((m) => m.id)).toEqual(["id-1", "id-2", "id-3"]);
    expect(b.skipped).toBe(1);
    expect((back[0].value as { vendor_data: { note: string } }).vendor_data.note).toBe("a\udc00b");
    b.append([msg(4)]); // a new segment after the old ones
    b.ack(back);
    expect(readdirSync(dir)).toHaveLength(1);
    expect(b.read(10).map((m) => m.id)).toEqual(["id-4"]);
    b.close();
  });
});
