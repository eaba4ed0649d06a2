import { describe, expect, it } from "vitest";
import { ParamReader, parseTime } from "../../src/serve/rest/params.js";
import { QueryParamError } from "../../src/store/page.js";

const US = Date.UTC(2024, 7, 8, 23, 56, 0) * 1000;

function paramError(fn: () => unknown): QueryParamError {
  try {
    fn();
  } catch (e) {
    if (e instanceof QueryParamError) return e;
    throw e;
  }
  throw new Error("expected a QueryParamError");
}

describe("parseTime", () => {
  it.each([
    [String(US), US],
    ["2024-08-08T23:56:00Z", US],
    ["2024-08-08T23:56Z", US],
    ["2024-08-08 23:56:00z", US],
    ["2024-08-09T01:56:00+02:00", US],
    ["2024-08-09T01:56:00 02:00", US], // '+' decoded to a space by form encoding
    ["2024-08-08T21:56:00-0200", US],
    ["2024-08-08T23:56:00.000001Z", US + 1],
    ["2024-08-08T23:56:00.5Z", US + 500_000],
    ["2024-08-08", Date.UTC(2024, 7, 8) * 1000],
    ["0", 0],
    ["1723161360s", US],
    ["1723161360000ms", US],
    ["1723161360000000us", US],
    ["1723161360000000µs", US],
    ["100000000000000", 100_000_000_000_000], // the smallest bare µs after 0 (1973-03-03)
    ["5s", 5_000_000],
  ])("%s → %d µs", (raw, us) => {
    expect(parseTime("from", raw)).toBe(us);
  });

  it.each([
    "abc",
    "2024-08-08T23:56:00", // no zone
    "2024-02-30",
    "2024-13-01T00:00:00Z",
    "2024-08-08T24:00:00Z",
    "2024-08-08T23:56:00.1234567Z",
    "1969-12-31T23:59:59Z",
    "99999999999999999",
    "-1",
    "1e15",
    "1723161360000000 OR 1=1",
    "1723161360", // seconds
    "1723161360000", // ms
    "99999999999999",
    "1723161360000000000", // ns: out of range
    "1723161360000000000ms",
    "17231613600.5s",
    "1723161360m",
  ])("rejects %j naming the parameter", (raw) => {
    const e = paramError(() => parseTime("to", raw));
    expect(e.parameter).toBe("to");
    expect(e.reason.length).toBeGreaterThan(5);
  });
});

describe("parseTime: bare integers too small to be µs", () => {
  it.each([
    ["1723161360", "seconds", "1723161360s", "1723161360000000"],
    ["1723161360000", "milliseconds", "1723161360000ms", "1723161360000000"],
  ])("%s is refused as %s with both ways to write it", (raw, unit, suffixed, micros) => {
    const e = paramError(() => parseTime("from", raw));
    expect(e.reason).toContain(`${raw} was read as µs since the epoch (1970-01-`);
    expect(e.reason).toContain(`looks like ${unit}: write ${suffixed}, or µs (${micros})`);
    expect(parseTime("from", suffixed)).toBe(Number(micros));
  });

  it("names nanoseconds beyond the µs range", () => {
    expect(paramError(() => parseTime("to", "1723161360000000000")).reason).toContain(
      "looks like nanoseconds: pass µs (1723161360000000)",
    );
  });
});

describe("ParamReader", () => {
  it("rejects unknown and repeated parameters, treats empty values as absent", () => {
    expect(paramError(() => new ParamReader({ symbl: "x" }, ["symbol"])).parameter).toBe("symbl");
    expect(paramError(() => new ParamReader({ symbol: ["a", "b"] }, ["symbol"])).reason).toMatch(
      /more than once/,
    );
    const p = new ParamReader({ symbol: "", exchange: "binance" }, ["symbol", "exchange"]);
    expect(p.symbol()).toBeUndefined();
    expect(p.exchange()).toBe("BINANCE");
  });

  it("validates symbols, limits, orders, intervals and ranges", () => {
    const r = (q: Record<string, string>) => new ParamReader(q, Object.keys(q));
    expect(r({ symbol: "btc-usd" }).symbol()).toBe("BTC-USD");
    expect(paramError(() => r({ symbol: "BTCUSDT' OR '1'='1" }).symbol()).parameter).toBe("symbol");
    expect(paramError(() => r({ limit: "0" }).int("limit", 1, 10, 5)).parameter).toBe("limit");
    expect(paramError(() => r({ limit: "11" }).int("limit", 1, 10, 5)).parameter).toBe("limit");
    expect(r({ limit: "10" }).int("limit", 1, 10, 5)).toBe(10);
    expect(paramError(() => r({ order: "up" }).order("asc")).parameter).toBe("order");
    expect(paramError(() => r({ interval: "2m" }).interval()).parameter).toBe("interval");
    expect(paramError(() => r({}).interval()).reason).toMatch(/required/);
    expect(paramError(() => r({ from: "2s", to: "1s" }).range()).parameter).toBe("to");
    expect(paramError(() => r({ cursor: "a b" }).cursor()).parameter).toBe("cursor");
  });
});
