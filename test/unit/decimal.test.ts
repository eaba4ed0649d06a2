import { describe, expect, it } from "vitest";
import {
  DecimalError,
  divRoundHalfEven,
  parseDecimal,
  parseNonNegativeDecimal,
  toUnits,
  unitsToString,
  vwapFromSums,
} from "../../src/schema/decimal.js";

describe("parseDecimal (DECIMAL(18,8))", () => {
  it.each([
    ["61837.63000000", "61837.63000000"],
    ["61837.63", "61837.63000000"],
    ["0.00200000", "0.00200000"],
    ["5", "5.00000000"],
    ["007.5", "7.50000000"],
    [".5", "0.50000000"],
    ["5.", "5.00000000"],
    ["-1.5", "-1.50000000"],
    ["-0.0", "0.00000000"],
    ["+2", "2.00000000"],
    ["1.1234567800", "1.12345678"],
    ["9999999999.99999999", "9999999999.99999999"],
    ["0.00000000", "0.00000000"],
    ["00.50000000", "0.50000000"],
    ["1234567890.12345678", "1234567890.12345678"],
  ])("%s → %s", (input, out) => {
    expect(parseDecimal(input)).toBe(out);
  });

  it.each([
    ["abc", "not a decimal string"],
    ["", "not a decimal string"],
    ["1e5", "not a decimal string"],
    ["1.2.3", "not a decimal string"],
    [" 1", "not a decimal string"],
    ["-", "not a decimal string"],
    ["12345678901", "too many integer digits for DECIMAL(18,8)"],
    ["12345678901.00000000", "too many integer digits for DECIMAL(18,8)"],
    ["1234.5678901a", "not a decimal string"],
    ["1.123456789", "more than 8 significant fractional digits for DECIMAL(18,8)"],
    ["0.000000001", "more than 8 significant fractional digits for DECIMAL(18,8)"],
  ])("rejects %j (%s)", (input, reason) => {
    expect(() => parseDecimal(input)).toThrowError(DecimalError);
    try {
      parseDecimal(input);
    } catch (e) {
      expect((e as DecimalError).reason).toBe(reason);
    }
  });

  it("rejects non-strings, never converting a float", () => {
    expect(() => parseDecimal(61837.63)).toThrowError(/not a decimal string/);
    expect(() => parseDecimal(null)).toThrowError(/not a decimal string/);
  });

  it("rejects negative prices and quantities", () => {
    expect(() => parseNonNegativeDecimal("-1")).toThrowError(/negative value/);
    expect(parseNonNegativeDecimal("0")).toBe("0.00000000");
  });
});

describe("exact arithmetic", () => {
  it("converts to and from units", () => {
    expect(toUnits("61837.63000000")).toBe(6183763000000n);
    expect(toUnits("-0.00000001")).toBe(-1n);
    expect(unitsToString(1n)).toBe("0.00000001");
    expect(unitsToString(-150000000n)).toBe("-1.50000000");
    expect(unitsToString(123n, 0)).toBe("123");
  });

  it("rounds half to even", () => {
    expect(divRoundHalfEven(5n, 2n)).toBe(2n); // 2.5 → 2
    expect(divRoundHalfEven(7n, 2n)).toBe(4n); // 3.5 → 4
    expect(divRoundHalfEven(-5n, 2n)).toBe(-2n); // -2.5 → -2
    expect(divRoundHalfEven(-7n, 2n)).toBe(-4n);
    expect(divRoundHalfEven(10n, 3n)).toBe(3n);
    expect(divRoundHalfEven(11n, 3n)).toBe(4n);
    expect(() => divRoundHalfEven(1n, 0n)).toThrowError(RangeError);
  });

  it("computes VWAP from exact sums", () => {
    // (1 × 100 + 3 × 200) / 4 = 175
    expect(vwapFromSums("700.0000000000000000", "4.00000000")).toBe("175.00000000");
    // 1/3 → 0.33333333; 2/3 → 0.66666667
    expect(vwapFromSums("1", "3")).toBe("0.33333333");
    expect(vwapFromSums("2", "3")).toBe("0.66666667");
    expect(vwapFromSums("1", "0")).toBeNull();
  });
});
