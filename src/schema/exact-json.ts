/**
 * JSON with exact numbers. Some venues send prices and quantities as JSON numbers (Kraken WebSocket v2:
 * `"price":0.5147,"qty":6423.46326`); `JSON.parse` would turn them into binary floats and lose digits.
 * {@link parseJsonExact} parses such text with every number kept as its decimal string, exactly as
 * written (exponent notation expanded), so it can go through `parseDecimal` like any venue string.
 */

const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * Expands a JSON number token in exponent notation into plain decimal digits, exactly
 * (`"1.5e-5"` → `"0.000015"`, `"2E+3"` → `"2000"`). Tokens without an exponent are returned as they are.
 */
export function expandExponent(token: string): string {
  const e = token.search(/[eE]/);
  if (e < 0) return token;
  const negative = token.startsWith("-");
  const mantissa = token.slice(negative ? 1 : 0, e);
  const exp = Number(token.slice(e + 1));
  const dot = mantissa.indexOf(".");
  const intPart = dot < 0 ? mantissa : mantissa.slice(0, dot);
  const frac = dot < 0 ? "" : mantissa.slice(dot + 1);
  const digits = intPart + frac;
  const point = intPart.length + exp;
  let out: string;
  if (point <= 0) out = `0.${"0".repeat(-point)}${digits}`;
  else if (point >= digits.length) out = digits + "0".repeat(point - digits.length);
  else out = `${digits.slice(0, point)}.${digits.slice(point)}`;
  out = out.replace(/^0+(?=\d)/, "");
  return negative ? `-${out}` : out;
}

/**
 * Rewrites JSON text so that every number outside a string becomes a string holding the number's
 * exact decimal text (`{"p":0.10},` → `{"p":"0.10"}`). Strings are copied untouched (escapes included).
 */
export function quoteJsonNumbers(text: string): string {
  let out = "";
  let from = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 92 /* \ */) i += 2;
        else if (d === 34) break;
        else i++;
      }
      i++;
    } else if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(text);
      if (!m) {
        i++;
        continue;
      }
      out += `${text.slice(from, i)}"${expandExponent(m[0])}"`;
      i += m[0].length;
      from = i;
    } else i++;
  }
  return from === 0 ? text : out + text.slice(from);
}

/**
 * `JSON.parse` keeping numbers exact: every JSON number comes back as its decimal string.
 * @throws {SyntaxError} on malformed JSON, as `JSON.parse`
 */
export function parseJsonExact(text: string): unknown {
  return JSON.parse(quoteJsonNumbers(text));
}
