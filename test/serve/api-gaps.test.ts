/**
 * /api/v1/gaps and /api/v1/dead-letters with content: a real `k2 run` replays a capture derived (in a
 * temp directory) from the first frames of btcusdt_20240808.gz with two consecutive trades removed
 * (one sequence gap) and two bookTicker frames given bad prices (two dead letters).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CaptureWriter, readCapture } from "../../src/replay/capture.js";
import type { DeadLetter, SequenceGap } from "../../src/schema/records.js";
import { DATA, getJson, type K2Process, startK2Run, waitFor } from "./k2-process.js";

interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

let k2: K2Process;
let api: string;
let dir: string;
let dropped: number[] = [];
const corrupted: string[] = [];
let storedTrades = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "k2-gaps-test-"));
  const file = join(dir, "derived.gz");
  const writer = new CaptureWriter(file);
  let trades = 0;
  let quotes = 0;
  for await (const f of readCapture(join(DATA, "binance-spot/btcusdt_20240808.gz"))) {
    let raw = f.raw;
    if (raw.includes('"stream":"btcusdt@trade"')) {
      trades++;
      if (trades === 100 || trades === 101) {
        dropped.push(Number(/"t":(\d+)/.exec(raw)![1]));
        continue;
      }
      storedTrades++;
    } else if (raw.includes('"stream":"btcusdt@bookTicker"')) {
      quotes++;
      if (quotes === 10) raw = raw.replace(/"b":"[^"]*"/, '"b":"abc"');
      if (quotes === 20) raw = raw.replace(/"a":"[^"]*"/, '"a":"1e5"');
      if (quotes === 10 || quotes === 20) corrupted.push(raw);
    }
    writer.write(raw, Number(f.ns.slice(0, -3)));
    if (trades >= 400) break;
  }
  await writer.close();
  dropped = dropped.sort((a, b) => a - b);
  k2 = await startK2Run(["--replay", file, "--speed", "max", "--symbols", "BTCUSDT"]);
  api = `${k2.baseUrl}/api/v1`;
  await waitFor("the derived replay stored", async () => {
    const { body } = await getJson<{ data: { trades: number }[] }>(`${api}/symbols`);
    const dl = await getJson<Page<DeadLetter>>(`${api}/dead-letters`);
    return body.data[0]?.trades === storedTrades && dl.body.data.length === 2;
  });
}, 90_000);

afterAll(async () => {
  await k2?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("GET /api/v1/gaps", () => {
  it("reports the missing trade ids as one sequence gap", async () => {
    expect(dropped).toHaveLength(2);
    const { status, body } = await getJson<Page<SequenceGap>>(`${api}/gaps?symbol=btcusdt`);
    expect(status).toBe(200);
    expect(body.next_cursor).toBeNull();
    expect(body.data).toEqual([
      {
        exchange: "BINANCE",
        symbol: "BTCUSDT",
        data_type: "trades",
        from_sequence: dropped[0],
        to_sequence: dropped[1],
        detected_at: expect.any(Number),
      },
    ]);
    const at = body.data[0].detected_at;
    const later = await getJson<Page<SequenceGap>>(`${api}/gaps?from=${at + 1}`);
    expect(later.body.data).toEqual([]);
    const inRange = await getJson<Page<SequenceGap>>(`${api}/gaps?from=${at}&to=${at + 1}&exchange=BINANCE`);
    expect(inRange.body.data).toHaveLength(1);
    // a symbol never stored or live is a 404 that says so (#17), not an empty page
    const unknown = await getJson<{ error: string; parameter: string }>(`${api}/gaps?symbol=ETHUSDT`);
    expect(unknown).toMatchObject({ status: 404, body: { error: "not_found", parameter: "symbol" } });
  });
});

describe("GET /api/v1/dead-letters", () => {
  it("pages the rejected frames newest first with reason, source and the raw text", async () => {
    const first = await getJson<Page<DeadLetter>>(`${api}/dead-letters?limit=1`);
    expect(first.status).toBe(200);
    expect(first.body.data).toHaveLength(1);
    expect(first.body.next_cursor).not.toBeNull();
    const second = await getJson<Page<DeadLetter>>(
      `${api}/dead-letters?limit=1&cursor=${first.body.next_cursor}`,
    );
    expect(second.body.data).toHaveLength(1);
    expect(second.body.next_cursor).toBeNull();
    const letters = [...second.body.data, ...first.body.data]; // oldest first
    expect(letters[0].received_at).toBeLessThanOrEqual(letters[1].received_at);
    expect(letters.map((d) => d.raw)).toEqual(corrupted);
    expect(letters[0]).toMatchObject({ exchange: "BINANCE", source: "binance:btcusdt@bookTicker" });
    expect(letters[0].reason).toMatch(/bid price/);
    expect(letters[1].reason).toMatch(/ask price/);
    // oldest first is the same two, in the other order
    const asc = await getJson<Page<DeadLetter>>(`${api}/dead-letters?order=asc&exchange=binance`);
    expect(asc.body.data.map((d) => d.message_id)).toEqual(letters.map((d) => d.message_id));
  });
});
