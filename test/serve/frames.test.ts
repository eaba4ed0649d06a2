import { describe, expect, it } from "vitest";
import { parseRecord, recordText, textFrame } from "../../src/serve/ws/frames.js";

describe("record text (gateway worker pass-through)", () => {
  const trade = {
    exchange: "BINANCE",
    symbol: "BTCUSDT",
    price: "61234.01000000",
    quantity: "0.00081000",
    timestamp: 1723075200123000,
    ingestion_timestamp: 1723075200125123,
    side: "sell",
    ratio: 0.1 + 0.2,
    tiny: 1e-7,
    note: 'quote " backslash \\ tab \t unicode é ✓ \u0001',
    nested: { "10": 1, "2": 2, b: [1.5, null, true] },
  };

  it("gives back the text a record was parsed from, byte for byte what JSON.stringify writes", () => {
    const text = JSON.stringify(trade);
    const value = parseRecord(text) as object;
    expect(value).toEqual(JSON.parse(text));
    expect(recordText(value)).toBe(text);
    expect(recordText(value)).toBe(JSON.stringify(value));
  });

  it("serializes records it did not parse", () => {
    const copy = structuredClone(trade);
    expect(recordText(copy)).toBe(JSON.stringify(trade));
  });

  it("keeps primitives working and rejects invalid text", () => {
    expect(parseRecord("42")).toBe(42);
    expect(() => parseRecord("{oops")).toThrow(SyntaxError);
  });

  it("frames the text once as an unmasked final text frame", () => {
    const text = recordText(parseRecord(JSON.stringify(trade)) as object);
    const frame = textFrame(text);
    expect(frame[0]).toBe(0x81);
    expect(frame[1]).toBe(126);
    expect(frame.readUInt16BE(2)).toBe(Buffer.byteLength(text));
    expect(frame.subarray(4).toString("utf8")).toBe(text);
  });
});
