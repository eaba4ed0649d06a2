import { describe, expect, it } from "vitest";
import { parseEpochSecondsMicros, parseIsoMicros, TimeError } from "../../src/schema/time.js";

describe("parseIsoMicros", () => {
  it("reads µs exactly and truncates ns", () => {
    const base = Date.UTC(2026, 7, 9, 21, 5, 42) * 1000;
    expect(parseIsoMicros("2026-08-09T21:05:42.514318Z")).toBe(base + 514318);
    expect(parseIsoMicros("2026-08-09T21:05:42.228568804Z")).toBe(base + 228568);
    expect(parseIsoMicros("2026-08-09T21:05:42.50436Z")).toBe(base + 504360);
    expect(parseIsoMicros("2026-08-09T21:05:42Z")).toBe(base);
    expect(parseIsoMicros("2026-08-09T23:05:42.000001+02:00")).toBe(base + 1);
  });

  it("rejects what it cannot read exactly", () => {
    for (const bad of [
      "2026-08-09",
      "1786309542",
      "2026-13-09T21:05:42Z",
      "2026-08-09T21:05:42.1234567890Z",
      5,
    ]) {
      expect(() => parseIsoMicros(bad)).toThrow(TimeError);
    }
  });
});

describe("parseEpochSecondsMicros", () => {
  it("reads Kraken's seconds.micros strings exactly", () => {
    // 1618678142.557535 * 1e6 in binary floating point is 1618678142557535.2 or so; the string path is exact
    expect(parseEpochSecondsMicros("1618678142.557535")).toBe(1618678142557535);
    expect(parseEpochSecondsMicros("1618678142.5")).toBe(1618678142500000);
    expect(parseEpochSecondsMicros("1618678142")).toBe(1618678142000000);
    expect(() => parseEpochSecondsMicros("1.6e9")).toThrow(TimeError);
    expect(() => parseEpochSecondsMicros(1618678142.5)).toThrow(TimeError);
  });
});
