// @ts-expect-error: the reference implementation ships no types
import reference from "murmurhash3js-revisited";
import { describe, expect, it } from "vitest";
import { deterministicMessageId, murmur3x86_128, randomMessageId } from "../../src/schema/message-id.js";

const hex = (words: number[]) => words.map((w) => w.toString(16).padStart(8, "0")).join("");

describe("murmur3x86_128", () => {
  it("matches the reference implementation for every tail length", () => {
    const enc = new TextEncoder();
    for (let len = 0; len <= 70; len++) {
      const s = "BINANCE/trades/BTCUSDT/3735683259-éx".repeat(3).slice(0, len);
      const bytes = enc.encode(s);
      expect(hex(murmur3x86_128(bytes))).toBe(reference.x86.hash128(bytes));
    }
  });
});

describe("deterministicMessageId", () => {
  it("is a UUID v8 (RFC 9562) and stable for a name", () => {
    const a = deterministicMessageId("BINANCE/trades/BTCUSDT/3735683259");
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(deterministicMessageId("BINANCE/trades/BTCUSDT/3735683259")).toBe(a);
    // the 122 free bits are the reference hash's bits
    const ref = reference.x86.hash128(new TextEncoder().encode("BINANCE/trades/BTCUSDT/3735683259"));
    expect(a.replace(/-/g, "").slice(0, 12)).toBe(ref.slice(0, 12));
    expect(a.replace(/-/g, "").slice(20)).toBe(ref.slice(20));
  });

  it("differs across ids, symbols, data types and exchanges", () => {
    const names = [
      "BINANCE/trades/BTCUSDT/1",
      "BINANCE/trades/BTCUSDT/2",
      "BINANCE/trades/ETHUSDT/1",
      "BINANCE/aggtrades/BTCUSDT/1",
      "COINBASE/trades/BTCUSDT/1",
    ];
    expect(new Set(names.map(deterministicMessageId)).size).toBe(names.length);
  });

  it("has no collision over 200k sequential trade ids", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200_000; i++)
      seen.add(deterministicMessageId(`BINANCE/trades/BTCUSDT/${3735683259 + i}`));
    expect(seen.size).toBe(200_000);
  });

  it("random ids are v4", () => {
    expect(randomMessageId()).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
  });
});
