/**
 * Property-based fuzzing (fast-check) of every venue normalizer: Binance, Coinbase, Kraken v1 and v2.
 *
 * Inputs: arbitrary JSON values of any depth and size, venue-shaped objects with arbitrary values,
 * real frames from the recordings (../shared/data) mutated — fields dropped, retyped, duplicated,
 * reordered, made huge or deep, strings given lone surrogates, the text cut or spliced — and random
 * strings (any UTF-16 code units).
 *
 * Properties, for every frame fed to a normalizer:
 * - `normalize` never throws;
 * - the frame has an outcome: Binance exactly one (one trade, one quote, one control frame or one dead
 *   letter: its frames carry one record each); Coinbase and Kraken at least one (a frame carries
 *   several records, each a record or a dead letter; a frame without records is a control frame);
 * - every record fits its columns: DECIMAL(18,8) canonical strings (price and quantity of a trade above
 *   zero), the venue's symbol charset and a subscribed symbol, well-formed strings everywhere, µs times
 *   and sequences safe non-negative integers (so within int64), vendor_data bounded (64 entries, 4096
 *   characters a value);
 * - every dead letter has a reason and a bounded, well-formed raw text and source;
 * - every control kind is short and from a fixed charset (metric labels stay bounded).
 *
 * `npm test` runs a fixed seed and a bounded number of runs; `npm run fuzz` sets K2_FUZZ_RUNS (many
 * more runs) and a random seed (printed by fast-check on failure; K2_FUZZ_SEED replays one).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { QuoteV2, TradeV2 } from "../../src/schema/records.js";
import { QuoteV2Schema, TradeV2Schema } from "../../src/schema/validators.js";
import { BinanceNormalizer } from "../../src/venues/binance.js";
import { CoinbaseNormalizer } from "../../src/venues/coinbase.js";
import { KrakenNormalizer } from "../../src/venues/kraken.js";
import {
  MAX_DEAD_LETTER_RAW_CHARS,
  MAX_VENDOR_FIELDS,
  MAX_VENDOR_VALUE_CHARS,
} from "../../src/venues/mapping.js";
import type { FrameNormalizer, NormalizedSink, Subscription } from "../../src/venues/venue.js";
import { framesWhere, sharedData } from "../helpers/capture.js";
import { BINANCE_FILE, COINBASE_FILE, KRAKEN_FILE, recvFrames } from "./recording.js";

const FUZZ_RUNS = Number(process.env.K2_FUZZ_RUNS ?? 0);
/** Runs per property: bounded in `npm test`, K2_FUZZ_RUNS under `npm run fuzz`. */
const RUNS = FUZZ_RUNS > 0 ? FUZZ_RUNS : 150;
const SEED = process.env.K2_FUZZ_SEED
  ? Number(process.env.K2_FUZZ_SEED)
  : FUZZ_RUNS > 0
    ? Date.now() % 2 ** 31
    : 20_261_126;
const params = {
  numRuns: RUNS,
  seed: SEED,
  endOnFailure: true,
  // counterexamples can be megabytes: report them cut
  // biome-ignore lint/suspicious/noExplicitAny: one reporter for properties of every input type
  reporter: (r: fc.RunDetails<any>) => {
    if (r.failed) {
      throw new Error(
        `property failed (seed ${r.seed}, path ${r.counterexamplePath}): ${String(r.errorInstance).slice(0, 600)}\n` +
          `counterexample: ${fc.stringify(r.counterexample).slice(0, 1500)}`,
      );
    }
  },
};
const TIMEOUT = FUZZ_RUNS > 0 ? 3_600_000 : 60_000;

const wellFormed = (s: string) => (s as unknown as { isWellFormed(): boolean }).isWellFormed();
const DEC = /^(0|[1-9]\d{0,9})\.\d{8}$/;
const AT = 1_795_000_000_000_000;

interface Target {
  name: string;
  sub: Subscription;
  make(sink: NormalizedSink): FrameNormalizer;
  symbol: RegExp;
  /** Exactly one outcome per frame (else at least one). */
  exactlyOne: boolean;
  corpus: string[];
}

/** Checks one record's columns; returns a description of the first problem, or null. */
function recordProblem(r: TradeV2 | QuoteV2, t: Target, trade: boolean): string | null {
  const parsed = trade ? TradeV2Schema.safeParse(r) : QuoteV2Schema.safeParse(r);
  if (!parsed.success) return `schema: ${parsed.error.message}`;
  if (!t.symbol.test(r.symbol)) return `symbol charset: ${r.symbol}`;
  if (!t.sub.symbols.includes(r.symbol)) return `unsubscribed symbol ${r.symbol}`;
  const decimals = trade
    ? [(r as TradeV2).price, (r as TradeV2).quantity]
    : [
        (r as QuoteV2).bid_price,
        (r as QuoteV2).bid_quantity,
        (r as QuoteV2).ask_price,
        (r as QuoteV2).ask_quantity,
      ];
  for (const d of decimals) if (!DEC.test(d)) return `decimal ${d}`;
  if (trade && decimals.some((d) => d === "0.00000000")) return "zero price or quantity on a trade";
  for (const n of [r.timestamp, r.ingestion_timestamp, r.platform_sequence, r.source_sequence ?? 0]) {
    if (!Number.isSafeInteger(n) || n < 0) return `integer ${n}`;
  }
  const entries = Object.entries(r.vendor_data);
  if (entries.length > MAX_VENDOR_FIELDS + 4) return `vendor_data has ${entries.length} entries`;
  for (const [k, v] of entries) {
    if (typeof v !== "string" || v.length > MAX_VENDOR_VALUE_CHARS) return `vendor value ${k}`;
  }
  const strings = JSON.stringify(r, (_k, v) => v); // any lone surrogate would show as an escape
  if (/\\u[dD][89a-fA-F]/.test(strings) && !wellFormedDeep(r)) return "lone surrogate in record";
  return null;
}

function wellFormedDeep(v: unknown): boolean {
  if (typeof v === "string") return wellFormed(v);
  if (v && typeof v === "object") {
    return Object.entries(v).every(([k, x]) => wellFormed(k) && wellFormedDeep(x));
  }
  return true;
}

/** Feeds `frames` to a fresh normalizer; throws (failing the property) on any violation. */
function check(t: Target, frames: string[]): void {
  let outcomes = 0;
  const problems: string[] = [];
  const sink: NormalizedSink = {
    trade(r) {
      outcomes++;
      const p = recordProblem(r, t, true);
      if (p) problems.push(`trade: ${p}`);
    },
    quote(r) {
      outcomes++;
      const p = recordProblem(r, t, false);
      if (p) problems.push(`quote: ${p}`);
    },
    deadLetter(d) {
      outcomes++;
      if (typeof d.reason !== "string" || d.reason.length === 0 || d.reason.length > 2000) {
        problems.push(`dead letter reason ${String(d.reason).slice(0, 100)}`);
      }
      if (d.raw.length > MAX_DEAD_LETTER_RAW_CHARS || !wellFormed(d.raw)) problems.push("dead letter raw");
      if (d.source.length > 80 || !wellFormed(d.source) || !wellFormed(d.reason)) {
        problems.push("dead letter source/reason");
      }
    },
    bookChange(c) {
      outcomes++;
      if (!t.sub.symbols.includes(c.symbol)) problems.push(`book change of unsubscribed symbol ${c.symbol}`);
      for (const [p, q] of [...c.bids, ...c.asks]) {
        if (!DEC.test(p) || !DEC.test(q)) problems.push(`book level ${p} ${q}`);
      }
      for (const n of [c.timestamp, c.ingestion_timestamp, c.last_source_sequence ?? 0]) {
        if (!Number.isSafeInteger(n) || n < 0) problems.push(`book integer ${n}`);
      }
    },
    gap(g) {
      if (!Number.isSafeInteger(g.from_sequence) || g.to_sequence < g.from_sequence) problems.push("gap");
    },
    control(kind) {
      outcomes++;
      if (!/^[a-z0-9_:]{1,40}$/.test(kind)) problems.push(`control kind ${kind.slice(0, 80)}`);
    },
  };
  const n = t.make(sink);
  for (const raw of frames) {
    const before = outcomes;
    n.normalize(raw, AT); // a throw fails the property
    const k = outcomes - before;
    if (t.exactlyOne ? k !== 1 : k < 1) problems.push(`${k} outcomes for ${raw.slice(0, 120)}`);
  }
  if (problems.length > 0) throw new Error(`${t.name}: ${problems.slice(0, 5).join("; ")}`);
}

// ---- targets -------------------------------------------------------------------------------------

const binanceSpot = await framesWhere(
  sharedData("binance-spot/btcusdt_20240808.gz"),
  (r) => r.includes("@trade") || r.includes("@bookTicker"),
  200,
);
const binanceCryptofeed = recvFrames(BINANCE_FILE).filter((f) => /@(aggTrade|bookTicker)"/.test(f));
const binanceSymbols = [
  ...new Set(
    [...binanceSpot, ...binanceCryptofeed].map((f) =>
      (JSON.parse(f) as { stream: string }).stream.split("@")[0].toUpperCase(),
    ),
  ),
];
const small = (f: string) => f.length < 20_000;
const krakenV1 = recvFrames(KRAKEN_FILE).filter(small);
const krakenPairs = [
  ...new Set(
    krakenV1.flatMap((f) => {
      const o = JSON.parse(f);
      return Array.isArray(o) ? [o[o.length - 1] as string] : [];
    }),
  ),
];
/** Kraken WebSocket v2 frames in the documented shapes (no v2 recording exists). */
const krakenV2 = [
  '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.0"}]}',
  '{"method":"subscribe","result":{"channel":"trade","snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2026-01-01T00:00:00.000000Z","time_out":"2026-01-01T00:00:00.000100Z","req_id":1}',
  '{"channel":"heartbeat"}',
  '{"channel":"trade","type":"snapshot","data":[{"symbol":"BTC/USD","side":"sell","price":65000.1,"qty":0.00120000,"ord_type":"limit","trade_id":7001,"timestamp":"2026-01-01T00:00:00.100000Z"},{"symbol":"BTC/USD","side":"buy","price":65000.2,"qty":1.5e-3,"ord_type":"market","trade_id":7002,"timestamp":"2026-01-01T00:00:00.200000Z"}]}',
  '{"channel":"trade","type":"update","data":[{"symbol":"ETH/USD","side":"buy","price":3000.55,"qty":2,"ord_type":"market","trade_id":9001,"timestamp":"2026-01-01T00:00:01.000000Z"}]}',
  '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":65000.1,"bid_qty":0.5,"ask":65000.2,"ask_qty":1.25,"last":65000.2,"volume":1234.5,"vwap":64000,"low":63000,"high":66000,"change":10,"change_pct":0.01,"timestamp":"2026-01-01T00:00:01.500000Z"}]}',
];

const TARGETS: Target[] = [
  {
    name: "binance",
    sub: { symbols: binanceSymbols, streams: ["trade", "aggTrade", "bookTicker"] },
    make: (s) => new BinanceNormalizer(s, TARGETS[0].sub),
    symbol: /^[A-Z0-9]{2,20}$/,
    exactlyOne: true,
    corpus: [...binanceSpot, ...binanceCryptofeed],
  },
  {
    name: "coinbase",
    sub: { symbols: ["BTC-USD", "ETH-USD"], streams: ["market_trades", "ticker", "heartbeats"] },
    make: (s) => new CoinbaseNormalizer(s, TARGETS[1].sub),
    symbol: /^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$/,
    exactlyOne: false,
    corpus: recvFrames(COINBASE_FILE).filter(small),
  },
  {
    name: "kraken v1",
    sub: { symbols: krakenPairs, streams: ["trade", "ticker"] },
    make: (s) => new KrakenNormalizer(s, TARGETS[2].sub),
    symbol: /^[A-Z0-9.]{1,20}\/[A-Z0-9.]{1,20}$/,
    exactlyOne: false,
    corpus: krakenV1,
  },
  {
    name: "kraken v2",
    sub: { symbols: ["BTC/USD", "ETH/USD"], streams: ["trade", "ticker"] },
    make: (s) => new KrakenNormalizer(s, TARGETS[3].sub),
    symbol: /^[A-Z0-9.]{1,20}\/[A-Z0-9.]{1,20}$/,
    exactlyOne: false,
    corpus: krakenV2,
  },
  {
    name: "coinbase level2",
    sub: { symbols: ["BTC-USD", "ETH-USD"], streams: ["ticker", "level2"] },
    make: (s) => new CoinbaseNormalizer(s, TARGETS[4].sub),
    symbol: /^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}$/,
    exactlyOne: false,
    // l2_data updates (the snapshots are megabytes) and tickers
    corpus: recvFrames(COINBASE_FILE)
      .filter(small)
      .filter((f) => /"channel":"(l2_data|ticker)"/.test(f)),
  },
];

// ---- arbitraries ---------------------------------------------------------------------------------

const deepText = (depth: number, open: "[" | "{") =>
  open === "["
    ? `${"[".repeat(depth)}1${"]".repeat(depth)}`
    : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;

/** A JSON text of a value that may be huge or deep. */
const hostileValueText = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v) ?? "null"),
  fc
    .tuple(fc.integer({ min: 1, max: 30_000 }), fc.constantFrom<"[" | "{">("[", "{"))
    .map(([d, o]) => deepText(d, o)),
  fc.integer({ min: 4000, max: 80_000 }).map((n) => JSON.stringify("x".repeat(n))),
  fc.constantFrom(
    '"\\ud800"',
    '"a\\udc00"',
    '"\\ud83d\\ude00"',
    "0",
    '"0"',
    '"0.00000000"',
    "-1",
    "1e400",
    '""',
  ),
  fc.constantFrom("1.123456789", '"99999999999.5"', "9007199254740993", "true", "null", "{}", "[]"),
);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every (container, key) of a parsed frame, outermost first. */
function slots(v: Json): { parent: Json[] | { [k: string]: Json }; key: string | number }[] {
  const out: { parent: Json[] | { [k: string]: Json }; key: string | number }[] = [];
  const stack: Json[] = [v];
  while (stack.length) {
    const x = stack.pop()!;
    if (Array.isArray(x)) {
      for (let i = 0; i < x.length; i++) {
        out.push({ parent: x, key: i });
        stack.push(x[i]);
      }
    } else if (x && typeof x === "object") {
      for (const k of Object.keys(x)) {
        out.push({ parent: x, key: k });
        stack.push(x[k]);
      }
    }
  }
  return out;
}

type Op = "drop" | "retype" | "duplicate" | "reorder" | "replace";

/** A real frame with one structural mutation (the value, as JSON text, from {@link hostileValueText}). */
function mutate(raw: string, op: Op, at: number, valueText: string): string {
  const frame = JSON.parse(raw) as Json;
  const all = slots(frame);
  if (all.length === 0) return valueText;
  const { parent, key } = all[at % all.length];
  const MARK = "__K2_FUZZ_VALUE__";
  if (op === "drop") {
    if (Array.isArray(parent)) parent.splice(key as number, 1);
    else delete parent[key as string];
    return JSON.stringify(frame);
  }
  if (op === "reorder") {
    if (Array.isArray(parent)) parent.reverse();
    else {
      const entries = Object.entries(parent).reverse();
      for (const [k] of entries) delete parent[k];
      for (const [k, v] of entries) parent[k] = v;
    }
    return JSON.stringify(frame);
  }
  if (op === "duplicate" && !Array.isArray(parent)) {
    // the same key twice in the text: `{"p":<new>,"p":"1.0",...}` (JSON.parse keeps the last)
    const text = JSON.stringify(frame);
    const needle = `${JSON.stringify(key)}:`;
    const i = text.indexOf(needle);
    return i < 0 ? text : `${text.slice(0, i)}${needle}${valueText},${text.slice(i)}`;
  }
  // retype / replace: the value at the slot becomes another JSON value (any type, size, depth)
  (parent as Record<string | number, Json>)[key] = MARK;
  return JSON.stringify(frame).replace(`"${MARK}"`, valueText);
}

const mutatedFrame = (t: Target) =>
  fc
    .tuple(
      fc.constantFrom(...t.corpus),
      fc.constantFrom<Op>("drop", "retype", "duplicate", "reorder", "replace"),
      fc.nat(),
      hostileValueText,
    )
    .map(([raw, op, at, v]) => mutate(raw, op, at, v));

/** Text-level damage to a real frame: cut, spliced with random characters, or a lone surrogate. */
const damagedText = (t: Target) =>
  fc
    .tuple(fc.constantFrom(...t.corpus), fc.nat(), fc.string({ unit: "binary", maxLength: 8 }), fc.nat(3))
    .map(([raw, at, s, kind]) => {
      const i = at % (raw.length + 1);
      if (kind === 0) return raw.slice(0, i);
      if (kind === 1) return raw.slice(0, i) + s + raw.slice(i);
      if (kind === 2) return raw.replace(/"([^"\\]*)"/, '"$1\\ud801"');
      return raw.replace(/"s":"[A-Z0-9]+"/, '"s":"BTC\'; DROP TABLE trades_v2;--USDT"');
    });

/** Objects with the venue's own keys and arbitrary values (reaches the mappers' inner paths). */
const venueShaped = (t: Target) => {
  const keys = [
    ...new Set(t.corpus.slice(0, 50).flatMap((f) => slots(JSON.parse(f) as Json).map((s) => String(s.key)))),
  ];
  const value = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom<Json>(
      ...t.sub.symbols,
      "trade",
      "ticker",
      "market_trades",
      "l2_data",
      "update",
      "snapshot",
      "0",
      "1.5",
    ),
  );
  const obj = fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 12 });
  return fc.oneof(
    obj,
    fc.array(fc.oneof(obj, value), { maxLength: 5 }),
    fc.record({ channel: value, data: fc.array(obj) }),
  );
};

/** A sequence of frames mixing real ones with one kind of hostile input. */
const withReal = (t: Target, hostile: fc.Arbitrary<string>) =>
  fc.array(
    fc.oneof({ weight: 1, arbitrary: fc.constantFrom(...t.corpus) }, { weight: 3, arbitrary: hostile }),
    {
      minLength: 1,
      maxLength: 6,
    },
  );

// ---- properties ----------------------------------------------------------------------------------

describe.each(TARGETS)("fuzz: $name normalizer", (t) => {
  it("reads every corpus frame with an outcome and well-formed records", () => {
    check(t, t.corpus);
  });

  it(
    "arbitrary JSON values and random strings: never throws, always an outcome, only valid records",
    () => {
      const anyText = fc.oneof(
        fc.jsonValue().map((v) => JSON.stringify(v) ?? ""),
        fc.string({ unit: "binary", maxLength: 200 }),
        fc.string({ maxLength: 200 }),
        hostileValueText,
      );
      fc.assert(
        fc.property(fc.array(anyText, { minLength: 1, maxLength: 4 }), (frames) => check(t, frames)),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    "venue-shaped objects with arbitrary values",
    () => {
      fc.assert(
        fc.property(fc.array(venueShaped(t), { minLength: 1, maxLength: 4 }), (objs) =>
          check(
            t,
            objs.map((o) => JSON.stringify(o)),
          ),
        ),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    "mutated real frames: fields dropped, retyped, duplicated, reordered, huge or deep",
    () => {
      fc.assert(
        fc.property(withReal(t, mutatedFrame(t)), (frames) => check(t, frames)),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    "damaged frame text: cut, spliced, lone surrogates, garbage symbols",
    () => {
      fc.assert(
        fc.property(withReal(t, damagedText(t)), (frames) => check(t, frames)),
        params,
      );
    },
    TIMEOUT,
  );
});

it("rejects what the properties forbid (the checker itself can fail)", () => {
  const t = TARGETS[0];
  const zero = t.corpus.find((f) => f.includes("@trade"))!.replace(/"p":"[^"]+"/, '"p":"0.00000000"');
  // a zero-price trade is a dead letter, so the check passes...
  expect(() => check(t, [zero])).not.toThrow();
  // ...while a normalizer emitting it as a trade fails it
  const bad: Target = {
    ...t,
    make: (s) => ({
      normalize: () => s.trade({ ...(JSON.parse('{"price":"0.00000000"}') as TradeV2) }, "trades"),
    }),
  };
  expect(() => check(bad, [zero])).toThrow(/trade: schema/);
});
