import { describe, expect, it } from "vitest";
import { expandExponent, parseJsonExact, quoteJsonNumbers } from "../../src/schema/exact-json.js";

describe("parseJsonExact", () => {
  it("keeps every number as its exact decimal text", () => {
    expect(parseJsonExact('{"p":0.1,"q":[1,-2.50,12345678.12345678],"s":"x"}')).toEqual({
      p: "0.1",
      q: ["1", "-2.50", "12345678.12345678"],
      s: "x",
    });
    // a float would print 0.30000000000000004 for 0.1 + 0.2; the text is untouched here
    expect(parseJsonExact("[9007199254740993]")).toEqual(["9007199254740993"]);
  });

  it("leaves digits inside strings alone, escapes included", () => {
    const text = '{"a":"1.5 \\"2\\" 3","b":2}';
    expect(quoteJsonNumbers(text)).toBe('{"a":"1.5 \\"2\\" 3","b":"2"}');
    expect(parseJsonExact(text)).toEqual({ a: '1.5 "2" 3', b: "2" });
    expect(quoteJsonNumbers('{"a":"no numbers"}')).toBe('{"a":"no numbers"}');
  });

  it("expands exponent notation exactly", () => {
    expect(expandExponent("1.5e-5")).toBe("0.000015");
    expect(expandExponent("2E+3")).toBe("2000");
    expect(expandExponent("-1.25e1")).toBe("-12.5");
    expect(expandExponent("123e-2")).toBe("1.23");
    expect(expandExponent("0.5")).toBe("0.5");
    expect(parseJsonExact("[1e-8]")).toEqual(["0.00000001"]);
  });

  it("throws on malformed JSON", () => {
    expect(() => parseJsonExact("{")).toThrow(SyntaxError);
  });
});
