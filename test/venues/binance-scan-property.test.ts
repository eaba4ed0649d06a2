/**
 * Property test of the Binance fast path (`src/venues/binance-scan.ts`): generated trade, aggTrade and
 * bookTicker combined-stream frames — 0–8 fractional digits (and more, zero or not), huge and tiny
 * values, reordered keys, extra unknown keys, escaped strings and unicode in unknown fields, JSON
 * whitespace — give the same records as the general path (`JSON.parse`, the exact decimal parser of
 * schema/decimal.ts and the readers of mapping.ts), field by field; malformed variants (missing or
 * mistyped fields, signs, exponents, a 9th significant decimal, zero prices, a wrong symbol or event
 * type, duplicate keys, cut frames) are dead-lettered with the same reason and id.
 *
 * K2_FUZZ_RUNS sets the number of runs (default 1500 per property); K2_FUZZ_SEED replays one.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BinanceNormalizer } from "../../src/venues/binance.js";
import { collectingSink } from "./recording.js";

const RUNS = Number(process.env.K2_FUZZ_RUNS ?? 1500);
const SEED = process.env.K2_FUZZ_SEED === undefined ? undefined : Number(process.env.K2_FUZZ_SEED);
const params = { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) };

const SUB = { symbols: ["BTCUSDT", "ETHUSDT"], streams: ["trade", "aggTrade", "bookTicker"] };

/** A decimal string: 0–10 integer digits (sometimes leading zeros), 0–8 fractional digits, edge values. */
const anyDecimalText = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.integer({ min: 0, max: 9_999_999_999 }),
        fc.integer({ min: 0, max: 8 }),
        fc.integer({ min: 0, max: 99_999_999 }),
      )
      .map(([i, n, f]) => (n === 0 ? String(i) : `${i}.${String(f).padStart(8, "0").slice(0, n)}`)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "9999999999.99999999",
      "0.00000001",
      "0.00000000",
      "0",
      "00012.5",
      ".5",
      "5.",
      "61837.63000000",
      "0.0020000000",
      "1.123456780000",
    ),
  },
);
/** Canonical DECIMAL(18,8) text, as Binance sends it: 1–10 integer digits, 8 fractional digits. */
const canonicalDecimalText = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 9_999_999_999 }), fc.integer({ min: 0, max: 99_999_999 }))
      .map(([i, f]) => `${i}.${String(f).padStart(8, "0")}`),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "9999999999.99999999",
      "0.00000001",
      "0.00000000",
      "1.00000000",
      "10.10000000",
    ),
  },
);
/** Decimal strings the general path rejects, or that sit at its edges. */
const badDecimalText = fc.constantFrom(
  "-1.5",
  "+1.5",
  "1e3",
  "1.123456789",
  "12345678901.5",
  "",
  ".",
  "abc",
  "1.2.3",
  "0x10",
  " 1.5",
  "1,5",
  "١.٥",
  "-0",
);
/** A JSON integer text: ids and times, small to beyond 2^53. */
const intText = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 2_000_000_000_000 }).map(String) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "0",
      "9007199254740",
      "9007199254741",
      "9007199254740991",
      "9007199254740993",
      "99999999999999999",
      "1723161256123",
    ),
  },
);
const badIntText = fc.constantFrom("-1", "1.5", "1e3", '"123"', "null", "true", "01", "1.0");
/** JSON text of an unknown field's value: escapes, unicode, nesting. */
const unknownValue = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.constantFrom(
    '"a\\"b"',
    '"\\u00e9t\\u00e9"',
    '"\\n\\t"',
    '"日本"',
    '"é"',
    '"\\ud83d\\ude00"',
    "[1,2]",
    '{"x":{"y":null}}',
    "null",
    "true",
    "-0.5",
    "1e21",
  ),
  fc.integer().map(String),
);
const unknownKey = fc.oneof(
  fc.constantFrom("x", "X", "Z", "ignore", "é", "ee", "M2"),
  fc.string({ minLength: 1, maxLength: 6 }).filter((k) => !["stream", "data"].includes(k)),
);
const ws = fc.constantFrom("", "", "", " ", "\n", "\t", " \r\n ");

type Field = [key: string, valueText: string];

/** The payload's documented fields of a stream, values as JSON text. */
function payloadFields(type: "trade" | "aggTrade" | "bookTicker", symbol: string, layout: boolean) {
  const str = (t: fc.Arbitrary<string>) => t.map((s) => JSON.stringify(s));
  // Binance's own layout: canonical decimals mostly, and spot's bookTicker without T, E, e
  const decimalText = layout
    ? fc.oneof({ weight: 8, arbitrary: canonicalDecimalText }, { weight: 1, arbitrary: anyDecimalText })
    : anyDecimalText;
  const absent = fc.constant(undefined);
  const flag = fc.boolean().map(String);
  if (type === "bookTicker") {
    return fc.record({
      u: intText,
      s: fc.constant(JSON.stringify(symbol)),
      b: str(decimalText),
      B: str(decimalText),
      a: str(decimalText),
      A: str(decimalText),
      T: layout ? absent : fc.option(intText, { nil: undefined }),
      E: layout ? absent : fc.option(intText, { nil: undefined }),
      e: layout ? absent : fc.option(fc.constant('"bookTicker"'), { nil: undefined }),
    });
  }
  return fc.record({
    e: fc.constant(JSON.stringify(type)),
    E: intText,
    s: fc.constant(JSON.stringify(symbol)),
    [type === "trade" ? "t" : "a"]: intText,
    p: str(decimalText),
    q: str(decimalText),
    ...(type === "aggTrade" ? { f: intText, l: intText } : {}),
    T: intText,
    m: flag,
    M: flag,
  });
}

/**
 * A whole frame: the envelope and payload fields in a generated order, with generated whitespace; or,
 * with `layout`, in Binance's own layout (compact, the documented key order, no unknown keys), which the
 * fast path matches whole against its layout pattern before its scanner.
 */
const frame = (mutate: boolean, layout = false) =>
  fc
    .tuple(
      fc.constantFrom("trade", "aggTrade", "bookTicker") as fc.Arbitrary<"trade" | "aggTrade" | "bookTicker">,
      fc.constantFrom("BTCUSDT", "ETHUSDT"),
    )
    .chain(([type, symbol]) =>
      fc.record({
        type: fc.constant(type),
        symbol: fc.constant(symbol),
        fields: payloadFields(type, symbol, layout),
        extra: layout
          ? fc.constant([])
          : fc.array(fc.tuple(unknownKey, unknownValue), { maxLength: mutate ? 3 : 2 }),
        order: fc.array(fc.nat(), { minLength: 16, maxLength: 16 }),
        dataFirst: fc.boolean(),
        spaces: fc.array(ws, { minLength: 64, maxLength: 64 }),
        mutation: mutate ? mutation : fc.constant(null),
      }),
    )
    .map(({ type, symbol, fields, extra, order, dataFirst, spaces, mutation: mut }) => {
      let list: Field[] = Object.entries(fields).filter((f): f is Field => f[1] !== undefined);
      list.push(...(extra as Field[]));
      // a generated key order: sort by generated ranks
      if (!layout)
        list = list
          .map((f, i) => [f, order[i % order.length] * 100 + i] as const)
          .sort((x, y) => x[1] - y[1])
          .map((x) => x[0]);
      let stream = `${symbol.toLowerCase()}@${type}`;
      if (mut) [list, stream] = mut(list, stream);
      let sp = 0;
      const w = () => (layout ? "" : spaces[sp++ % spaces.length]);
      const payload = `{${w()}${list.map(([k, v]) => `${JSON.stringify(k)}${w()}:${w()}${v}`).join(`${w()},${w()}`)}${w()}}`;
      const env = [`"stream"${w()}:${w()}${JSON.stringify(stream)}`, `"data"${w()}:${w()}${payload}`];
      if (dataFirst && !layout) env.reverse();
      return `${w()}{${w()}${env.join(`${w()},${w()}`)}${w()}}${w()}`;
    });

type Mutation = (list: Field[], stream: string) => [Field[], string];
const set = (list: Field[], key: string, value: string): Field[] =>
  list.some(([k]) => k === key) ? list.map(([k, v]) => [k, k === key ? value : v]) : [...list, [key, value]];
/** Changes that make a frame one the general path rejects, or reads differently. */
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constantFrom("p", "q", "b", "B", "a", "A", "t", "u", "T", "m", "s", "e", "E").map(
    (key): Mutation =>
      (l, s) => [l.filter(([k]) => k !== key), s],
  ),
  fc.tuple(fc.constantFrom("p", "q", "b", "B", "a", "A"), badDecimalText).map(
    ([key, v]): Mutation =>
      (l, s) => [set(l, key, JSON.stringify(v)), s],
  ),
  fc.tuple(fc.constantFrom("p", "q", "b", "a"), fc.constantFrom("0", "0.0", "0.00000000", "000")).map(
    ([key, v]): Mutation =>
      (l, s) => [set(l, key, JSON.stringify(v)), s],
  ),
  fc.tuple(fc.constantFrom("t", "a", "u", "T", "E", "p", "m"), badIntText).map(
    ([key, v]): Mutation =>
      (l, s) => [set(l, key, v), s],
  ),
  fc.constantFrom('"btcusdt"', '"ETHBTC"', '""', "1", '"BTC\\u0055SDT"').map(
    (v): Mutation =>
      (l, s) => [set(l, "s", v), s],
  ),
  fc.constantFrom('"trade"', '"aggTrade"', '"bookTicker"', '"depthUpdate"', "null", '"Trade"').map(
    (v): Mutation =>
      (l, s) => [set(l, "e", v), s],
  ),
  fc.constantFrom("btcusdt@depth", "xrpusdt@trade", "BTCUSDT@trade", "btcusdt@bookticker").map(
    (st): Mutation =>
      (l) => [l, st],
  ),
  fc.nat().map(
    (n): Mutation =>
      (l, s) => [l.length ? [...l, l[n % l.length]] : l, s],
  ), // duplicate key
  fc.constant<Mutation>((l, s) => [[...l, ["p", '"1.5\\u0000"']], s]),
);

/** Both paths on one frame: what each reported, and whether the fast path took it. */
function both(raw: string, sub = SUB) {
  const f = collectingSink();
  const g = collectingSink();
  const fast = new BinanceNormalizer(f.sink, sub);
  const general = new BinanceNormalizer(g.sink, sub, { fastPath: false });
  fast.normalize(raw, 1_723_161_256_000_000);
  general.normalize(raw, 1_723_161_256_000_000);
  return {
    fast: f.out,
    general: g.out,
    hit: (fast.fast?.hits ?? 0) > 0,
    exact: (fast.fast?.exactHits ?? 0) > 0,
  };
}

/** Field by field, then whole (key order included: what the bus serialises). */
function expectSame(raw: string, sub = SUB) {
  const { fast, general, hit, exact } = both(raw, sub);
  const records = [...general.trades, ...general.quotes] as unknown as Record<string, unknown>[];
  const fastRecords = [...fast.trades, ...fast.quotes] as unknown as Record<string, unknown>[];
  expect(fastRecords.length).toBe(records.length);
  records.forEach((r, i) => {
    for (const k of Object.keys(r))
      expect({ field: k, value: fastRecords[i][k] }).toEqual({ field: k, value: r[k] });
  });
  expect(fast.deadLetters).toEqual(general.deadLetters);
  expect(JSON.stringify(fast)).toBe(JSON.stringify(general));
  return { hit, exact, records: records.length, dead: general.deadLetters.length };
}

describe("Binance fast path, property", () => {
  it("gives the general path's record for generated well-formed frames", () => {
    let hits = 0;
    let runs = 0;
    fc.assert(
      fc.property(frame(false), (raw) => {
        const r = expectSame(raw);
        runs++;
        if (r.hit) hits++;
      }),
      params,
    );
    // the fast path must actually be taken: frames without escapes or odd values are its to read
    expect(hits).toBeGreaterThan(runs / 10);
  });

  it("dead-letters malformed variants with the general path's reason and id", () => {
    let dead = 0;
    fc.assert(
      fc.property(frame(true), (raw) => {
        dead += expectSame(raw).dead;
      }),
      params,
    );
    expect(dead).toBeGreaterThan(RUNS / 4);
  });

  it("dead-letters frames cut anywhere with the general path's reason", () => {
    fc.assert(
      fc.property(frame(false), fc.nat(), (raw, at) => {
        expectSame(raw.slice(0, at % raw.length));
      }),
      { ...params, numRuns: Math.ceil(RUNS / 3) },
    );
  });

  it("gives the general path's record for frames in Binance's own layout, matched whole by its pattern", () => {
    let exact = 0;
    let runs = 0;
    fc.assert(
      fc.property(frame(false, true), (raw) => {
        const r = expectSame(raw);
        runs++;
        if (r.exact) exact++;
        // what the layout reader leaves (a non-canonical decimal, a zero price) the scanner or the
        // general path reads; what it takes is never a dead letter
        if (r.exact) expect(r).toMatchObject({ hit: true, records: 1, dead: 0 });
      }),
      params,
    );
    expect(exact).toBeGreaterThan(runs / 4);
  });

  it("finds the stream of a frame in Binance's own layout by its name among more than 8", () => {
    // 4 symbols × 3 streams: the stream is looked up by name instead of tried in turn
    const many = { symbols: ["BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"], streams: SUB.streams };
    let exact = 0;
    fc.assert(
      fc.property(frame(false, true), (raw) => {
        if (expectSame(raw, many).exact) exact++;
      }),
      { ...params, numRuns: Math.ceil(RUNS / 3) },
    );
    expect(exact).toBeGreaterThan(RUNS / 12);
  });

  it("dead-letters malformed variants of Binance's own layout with the general path's reason and id", () => {
    let dead = 0;
    fc.assert(
      fc.property(frame(true, true), (raw) => {
        dead += expectSame(raw).dead;
      }),
      params,
    );
    expect(dead).toBeGreaterThan(RUNS / 4);
  });

  it("dead-letters frames in Binance's own layout cut anywhere with the general path's reason", () => {
    fc.assert(
      fc.property(frame(false, true), fc.nat(), (raw, at) => {
        expectSame(raw.slice(0, at % raw.length));
      }),
      { ...params, numRuns: Math.ceil(RUNS / 3) },
    );
  });

  it("takes Binance's own frame shapes whatever the key order and whitespace", () => {
    const frames = [
      '{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256123,"s":"BTCUSDT","t":3735693016,"p":"61837.63000000","q":"0.00200000","T":1723161256122,"m":true,"M":true}}',
      '{"data":{"M":false,"m":false,"T":1723161256122,"q":"0.002","p":"61837.63","t":3735693016,"s":"BTCUSDT","E":1723161256123,"e":"trade"},"stream":"btcusdt@trade"}',
      '{ "stream" : "ethusdt@bookTicker" ,\n "data" : { "u" : 48123456789 , "s" : "ETHUSDT" , "b" : "2682.7" , "B" : "1.5" , "a" : "2682.71" , "A" : "0.00000001" } }\n',
      '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"9999999999.99999999","q":"1","f":100,"l":105,"T":2,"m":false,"M":true}}',
    ];
    for (const raw of frames) expect(expectSame(raw)).toMatchObject({ hit: true, records: 1, dead: 0 });
    // the first, in Binance's own layout, is matched whole by its pattern; the others go to the scanner
    expect(frames.map((raw) => expectSame(raw).exact)).toEqual([true, false, false, false]);
  });
});
