/**
 * Generic trade CSV (e.g. an ASX trade file: date, time, symbol, price, volume, condition codes) →
 * trades_v2, described by a mapping JSON validated with zod ({@link MappingSchema}):
 *
 * ```json
 * {
 *   "exchange": "ASX", "currency": "AUD", "asset_class": "equities",
 *   "delimiter": ",", "header": true,
 *   "columns": {
 *     "symbol": "Symbol", "price": "Price", "quantity": "Volume",
 *     "timestamp": { "date": "Date", "time": "Time", "format": "yyyyMMdd HH:mm:ss.SSS",
 *                    "timezone": "Australia/Sydney" },
 *     "side": { "column": "Side", "buy": ["B"], "sell": ["S"] },
 *     "trade_id": "TradeNo",
 *     "conditions": { "column": "Cond", "separator": " " }
 *   }
 * }
 * ```
 *
 * - Columns are header names, or 0-based indexes (the only choice with `"header": false`).
 * - `timestamp` is either `{date, time?, format, timezone}` — the date column, a space and the time
 *   column (when given) are parsed with `format` (tokens `yyyy MM M dd d HH H mm ss`, `S`×1..9 for a
 *   fraction of a second, `'text'` for literal letters, other characters literal) as wall-clock time
 *   in the IANA `timezone` (offsets and DST from luxon) — or `{epoch, unit}` with unit `s`, `ms`, `us`
 *   or `ns` (`s` and `ms` may carry a fraction). Digits finer than a µs are truncated, and then the
 *   raw timestamp column is also kept in vendor_data, so nothing is lost.
 * - `side` values are compared case-insensitively after trimming (defaults `B`/`BUY`, `S`/`SELL`);
 *   anything else is `UNKNOWN` (e.g. auction trades have no aggressor).
 * - `conditions` are split on `separator` (default a space) into `trade_conditions`.
 * - Every column not mapped goes to `vendor_data` under its header name (`column_<i>` without one).
 * - Trade id: with `trade_id` mapped, trade_id is `<EXCHANGE>-<id>`, message_id is deterministic from
 *   `EXCHANGE/trades/SYMBOL/<id>`, and source_sequence is the id when it is an integer. Without it,
 *   the id is derived from the row's content: message_id from `EXCHANGE/trades/SYMBOL/row/<timestamp
 *   µs>/<price>/<quantity>/<side>/<conditions>/<n>`, where n counts earlier rows of the same symbol
 *   and timestamp with the same content (0 for the first), and trade_id is `<EXCHANGE>-h<those 32
 *   hex digits>`. Reloading the same file therefore gives the same ids; the count assumes the rows of
 *   one symbol and timestamp are contiguous (files sorted by time), as exchange trade files are.
 */
import { readFile } from "node:fs/promises";
import { DateTime, IANAZone } from "luxon";
import { z } from "zod";
import { DecimalError, parseNonNegativeDecimal } from "../schema/decimal.js";
import { deterministicMessageId } from "../schema/message-id.js";
import { ASSET_CLASSES, type AssetClass, type Side, type TradeV2 } from "../schema/records.js";
import { SequenceTracker } from "../venues/venue.js";
import { type RowParser, RowRejected, splitCsvLine } from "./load.js";

/** Thrown for an invalid mapping (or one that does not fit the file's header); the CLI exits 2. */
export class MappingError extends Error {
  override name = "MappingError";
}

const column = z.union([z.string().min(1), z.number().int().nonnegative()]);
/** A column reference: a header name or a 0-based index. */
export type ColumnRef = z.infer<typeof column>;

/** A compiled date-time format. */
export interface CompiledFormat {
  regex: RegExp;
  /** Component per capture group. */
  parts: ("year" | "month" | "day" | "hour" | "minute" | "second" | "fraction")[];
}

const TOKENS: Record<string, { re: string; part: CompiledFormat["parts"][number] }> = {
  yyyy: { re: "(\\d{4})", part: "year" },
  MM: { re: "(\\d{2})", part: "month" },
  M: { re: "(\\d{1,2})", part: "month" },
  dd: { re: "(\\d{2})", part: "day" },
  d: { re: "(\\d{1,2})", part: "day" },
  HH: { re: "(\\d{2})", part: "hour" },
  H: { re: "(\\d{1,2})", part: "hour" },
  mm: { re: "(\\d{2})", part: "minute" },
  ss: { re: "(\\d{2})", part: "second" },
};

/**
 * Compiles a date-time format (tokens `yyyy MM M dd d HH H mm ss`, `S`×1..9, `'literal'`).
 * @throws {Error} naming the unknown token, or a missing year/month/day
 */
export function compileFormat(format: string): CompiledFormat {
  let re = "^";
  const parts: CompiledFormat["parts"] = [];
  let i = 0;
  while (i < format.length) {
    const c = format[i];
    if (c === "'") {
      const end = format.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quoted literal at position ${i + 1}`);
      re += escapeRe(format.slice(i + 1, end));
      i = end + 1;
      continue;
    }
    if (!/[A-Za-z]/.test(c)) {
      re += escapeRe(c);
      i++;
      continue;
    }
    let j = i;
    while (j < format.length && format[j] === c) j++;
    const tok = format.slice(i, j);
    if (c === "S") {
      if (tok.length > 9) throw new Error(`fraction "${tok}" has more than 9 digits`);
      re += `(\\d{${tok.length}})`;
      parts.push("fraction");
    } else {
      const t = TOKENS[tok];
      if (!t) throw new Error(`unknown token "${tok}" (known: yyyy MM M dd d HH H mm ss S…, 'literal')`);
      re += t.re;
      parts.push(t.part);
    }
    i = j;
  }
  for (const need of ["year", "month", "day"] as const) {
    if (!parts.includes(need)) throw new Error(`no ${need} token (yyyy, MM or dd)`);
  }
  for (const p of new Set(parts)) {
    if (parts.indexOf(p) !== parts.lastIndexOf(p)) throw new Error(`${p} appears twice`);
  }
  return { regex: new RegExp(`${re}$`), parts };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const timestampSchema = z
  .object({
    date: column.optional(),
    time: column.optional(),
    format: z.string().min(1).optional(),
    timezone: z.string().min(1).optional(),
    epoch: column.optional(),
    unit: z.enum(["s", "ms", "us", "ns"]).optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.epoch !== undefined) {
      for (const k of ["date", "time", "format", "timezone"] as const) {
        if (t[k] !== undefined)
          ctx.addIssue({ code: "custom", path: [k], message: "not allowed with epoch" });
      }
      if (t.unit === undefined)
        ctx.addIssue({ code: "custom", path: ["unit"], message: "required with epoch (s, ms, us or ns)" });
      return;
    }
    if (t.unit !== undefined) ctx.addIssue({ code: "custom", path: ["unit"], message: "only with epoch" });
    if (t.date === undefined) {
      ctx.addIssue({ code: "custom", message: "give {date, time?, format, timezone} or {epoch, unit}" });
      return;
    }
    if (t.format === undefined)
      ctx.addIssue({ code: "custom", path: ["format"], message: "required with date" });
    else {
      try {
        compileFormat(t.format);
      } catch (e) {
        ctx.addIssue({ code: "custom", path: ["format"], message: (e as Error).message });
      }
    }
    if (t.timezone === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["timezone"],
        message: "required with date (e.g. Australia/Sydney, UTC)",
      });
    } else if (!IANAZone.isValidZone(t.timezone)) {
      ctx.addIssue({ code: "custom", path: ["timezone"], message: `unknown IANA time zone "${t.timezone}"` });
    }
  });

const sideSchema = z.union([
  column.transform((c) => ({ column: c, buy: ["B", "BUY"], sell: ["S", "SELL"] })),
  z
    .object({
      column,
      buy: z.array(z.string().min(1)).min(1).default(["B", "BUY"]),
      sell: z.array(z.string().min(1)).min(1).default(["S", "SELL"]),
    })
    .strict(),
]);

const conditionsSchema = z.union([
  column.transform((c) => ({ column: c, separator: " " })),
  z.object({ column, separator: z.string().min(1).default(" ") }).strict(),
]);

/** The mapping file's schema (see the module comment). */
export const MappingSchema = z
  .object({
    exchange: z.string().regex(/^[A-Z0-9_]+$/, "upper-case exchange code, e.g. ASX"),
    currency: z.string().regex(/^[A-Z0-9]{1,12}$/, "upper-case currency code, e.g. AUD"),
    asset_class: z.enum(ASSET_CLASSES as [AssetClass, ...AssetClass[]]).default("equities"),
    delimiter: z.string().length(1).default(","),
    header: z.boolean().default(true),
    columns: z
      .object({
        symbol: column,
        price: column,
        quantity: column,
        timestamp: timestampSchema,
        side: sideSchema.optional(),
        trade_id: column.optional(),
        conditions: conditionsSchema.optional(),
      })
      .strict(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.header) return;
    const check = (v: unknown, path: (string | number)[]) => {
      if (typeof v === "string") {
        ctx.addIssue({
          code: "custom",
          path,
          message: `"header" is false: use a 0-based column index, not "${v}"`,
        });
      }
    };
    const c = m.columns;
    check(c.symbol, ["columns", "symbol"]);
    check(c.price, ["columns", "price"]);
    check(c.quantity, ["columns", "quantity"]);
    check(c.trade_id, ["columns", "trade_id"]);
    check(c.side?.column, ["columns", "side", "column"]);
    check(c.conditions?.column, ["columns", "conditions", "column"]);
    for (const k of ["date", "time", "epoch"] as const) check(c.timestamp[k], ["columns", "timestamp", k]);
  });

/** A validated mapping. */
export type Mapping = z.output<typeof MappingSchema>;

/**
 * Validates a parsed mapping object.
 * @throws {MappingError} `--mapping: <field path>: <problem>` for the first problem
 */
export function parseMapping(value: unknown): Mapping {
  const r = MappingSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue.path.length ? issue.path.join(".") : "(mapping)";
    throw new MappingError(`--mapping: ${path}: ${issue.message}`);
  }
  return r.data;
}

/**
 * Reads and validates a mapping JSON file.
 * @throws {MappingError} when unreadable, not JSON, or invalid (naming the field)
 */
export async function readMapping(file: string): Promise<Mapping> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new MappingError(`--mapping: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new MappingError(`--mapping: ${file} is not JSON: ${(e as Error).message}`);
  }
  return parseMapping(json);
}

interface Resolved {
  symbol: number;
  price: number;
  quantity: number;
  date: number;
  time: number;
  epoch: number;
  side: number;
  tradeId: number;
  conditions: number;
  /** Column count the rows must have (header) or at least have (no header). */
  width: number;
  exact: boolean;
  /** vendor_data key per column, null for mapped columns. */
  vendorKeys: (string | null)[] | null;
  header: string[] | null;
}

const SYMBOL_RE = /^[A-Z0-9][A-Z0-9._/-]*$/;
const MAX_CACHE = 4096;

/** Row parser for a mapped trade CSV. */
export class MappedCsvParser implements RowParser {
  private resolved: Resolved | null = null;
  private readonly sequences = new SequenceTracker();
  private readonly format: CompiledFormat | null;
  private readonly zone: string | null;
  private readonly epochScale: number;
  private readonly buy: Set<string>;
  private readonly sell: Set<string>;
  /** Local minute → UTC ms of its start, per the zone. */
  private readonly minuteCache = new Map<string, number>();
  /** Per symbol: the current timestamp and the content keys seen at it (content-derived ids). */
  private readonly occurrences = new Map<string, { ts: number; seen: Map<string, number> }>();

  /** @param file the data file, for error messages */
  constructor(
    readonly mapping: Mapping,
    private readonly file: string,
  ) {
    const ts = mapping.columns.timestamp;
    this.format = ts.format ? compileFormat(ts.format) : null;
    this.zone = ts.timezone ?? null;
    this.epochScale = { s: 6, ms: 3, us: 0, ns: -3 }[ts.unit ?? "us"];
    const side = mapping.columns.side;
    this.buy = new Set((side?.buy ?? []).map((s) => s.trim().toUpperCase()));
    this.sell = new Set((side?.sell ?? []).map((s) => s.trim().toUpperCase()));
    if (!mapping.header) this.resolved = this.resolve(null);
  }

  /** The exchange code records are written with. */
  get exchange(): string {
    return this.mapping.exchange;
  }

  private resolve(header: string[] | null): Resolved {
    const c = this.mapping.columns;
    const used = new Set<number>();
    const idx = (ref: ColumnRef | undefined, path: string): number => {
      if (ref === undefined) return -1;
      let i: number;
      if (typeof ref === "number") {
        i = ref;
        if (header && i >= header.length) {
          throw new MappingError(
            `--mapping: ${path}: column index ${i} but the header of ${this.file} has ${header.length} columns`,
          );
        }
      } else {
        i = header ? header.findIndex((h) => h.trim() === ref) : -1;
        if (i < 0) {
          throw new MappingError(
            `--mapping: ${path}: column "${ref}" is not in the header of ${this.file} (${(header ?? [])
              .map((h) => h.trim())
              .join(", ")})`,
          );
        }
      }
      used.add(i);
      return i;
    };
    const r: Resolved = {
      symbol: idx(c.symbol, "columns.symbol"),
      price: idx(c.price, "columns.price"),
      quantity: idx(c.quantity, "columns.quantity"),
      date: idx(c.timestamp.date, "columns.timestamp.date"),
      time: idx(c.timestamp.time, "columns.timestamp.time"),
      epoch: idx(c.timestamp.epoch, "columns.timestamp.epoch"),
      side: idx(c.side?.column, "columns.side.column"),
      tradeId: idx(c.trade_id, "columns.trade_id"),
      conditions: idx(c.conditions?.column, "columns.conditions.column"),
      width: header ? header.length : Math.max(...used) + 1,
      exact: header !== null,
      vendorKeys: null,
      header,
    };
    if (header) {
      const taken = new Set<string>();
      r.vendorKeys = header.map((h, i) => {
        if (used.has(i)) return null;
        let key = h.trim() || `column_${i}`;
        if (taken.has(key)) key = `${key}_${i}`;
        taken.add(key);
        return key;
      });
    }
    return r;
  }

  parse(line: string, _lineNo: number, nowUs: number): TradeV2 | null {
    const f = splitCsvLine(line, this.mapping.delimiter);
    if (this.resolved === null) {
      this.resolved = this.resolve(f);
      return null;
    }
    const r = this.resolved;
    if (r.exact ? f.length !== r.width : f.length < r.width) {
      throw new RowRejected(
        r.exact
          ? `expected ${r.width} fields (as the header), got ${f.length}`
          : `expected at least ${r.width} fields, got ${f.length}`,
      );
    }
    const exchange = this.mapping.exchange;
    const symbol = f[r.symbol].trim().toUpperCase();
    if (!SYMBOL_RE.test(symbol))
      throw new RowRejected(`symbol: not a symbol: ${JSON.stringify(f[r.symbol])}`);
    const price = decimal(f[r.price], "price");
    const quantity = decimal(f[r.quantity], "quantity");
    const vendor_data: Record<string, string> = {};
    const timestamp = this.timestamp(f, vendor_data);
    let side: Side = "UNKNOWN";
    if (r.side >= 0) {
      const v = f[r.side].trim().toUpperCase();
      if (this.buy.has(v)) side = "BUY";
      else if (this.sell.has(v)) side = "SELL";
    }
    let trade_conditions: string[] = [];
    if (r.conditions >= 0) {
      const sep = this.mapping.columns.conditions!.separator;
      trade_conditions = f[r.conditions]
        .split(sep)
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    }
    if (r.vendorKeys) {
      for (let i = 0; i < f.length; i++) {
        const k = r.vendorKeys[i];
        if (k !== null) vendor_data[k] = f[i];
      }
    } else {
      const mapped = [
        r.symbol,
        r.price,
        r.quantity,
        r.date,
        r.time,
        r.epoch,
        r.side,
        r.tradeId,
        r.conditions,
      ];
      for (let i = 0; i < f.length; i++) if (!mapped.includes(i)) vendor_data[`column_${i}`] = f[i];
    }
    let message_id: string;
    let trade_id: string;
    let source_sequence: number | null = null;
    if (r.tradeId >= 0) {
      const id = f[r.tradeId].trim();
      if (id === "") throw new RowRejected("trade id: empty");
      message_id = deterministicMessageId(`${exchange}/trades/${symbol}/${id}`);
      trade_id = `${exchange}-${id}`;
      if (/^\d+$/.test(id) && Number.isSafeInteger(Number(id))) source_sequence = Number(id);
    } else {
      const content = `${price}/${quantity}/${side}/${trade_conditions.join(" ")}`;
      const n = this.occurrence(symbol, timestamp, content);
      message_id = deterministicMessageId(`${exchange}/trades/${symbol}/row/${timestamp}/${content}/${n}`);
      trade_id = `${exchange}-h${message_id.replace(/-/g, "")}`;
    }
    return {
      message_id,
      trade_id,
      symbol,
      exchange,
      asset_class: this.mapping.asset_class,
      timestamp,
      price,
      quantity,
      currency: this.mapping.currency,
      side,
      trade_conditions,
      source_sequence,
      ingestion_timestamp: nowUs,
      platform_sequence: this.sequences.nextPlatformSequence(symbol),
      vendor_data,
    };
  }

  /** How many earlier rows of `symbol` at `ts` had this content (resets when the timestamp moves). */
  private occurrence(symbol: string, ts: number, content: string): number {
    let o = this.occurrences.get(symbol);
    if (!o || o.ts !== ts) {
      o = { ts, seen: new Map() };
      this.occurrences.set(symbol, o);
    }
    const n = o.seen.get(content) ?? 0;
    o.seen.set(content, n + 1);
    return n;
  }

  private timestamp(f: string[], vendor: Record<string, string>): number {
    const r = this.resolved!;
    if (r.epoch >= 0) {
      const raw = f[r.epoch];
      const { us, truncated } = epochToMicros(raw, this.epochScale);
      if (truncated) vendor[this.columnName(r.epoch)] = raw;
      return us;
    }
    const raw = r.time >= 0 ? `${f[r.date].trim()} ${f[r.time].trim()}` : f[r.date].trim();
    const m = this.format!.regex.exec(raw);
    if (!m) {
      throw new RowRejected(
        `timestamp: ${JSON.stringify(raw)} does not match format "${this.mapping.columns.timestamp.format}"`,
      );
    }
    let year = 0;
    let month = 0;
    let day = 0;
    let hour = 0;
    let minute = 0;
    let second = 0;
    let fraction = "";
    const parts = this.format!.parts;
    for (let i = 0; i < parts.length; i++) {
      const v = m[i + 1];
      switch (parts[i]) {
        case "year":
          year = Number(v);
          break;
        case "month":
          month = Number(v);
          break;
        case "day":
          day = Number(v);
          break;
        case "hour":
          hour = Number(v);
          break;
        case "minute":
          minute = Number(v);
          break;
        case "second":
          second = Number(v);
          break;
        case "fraction":
          fraction = v;
          break;
      }
    }
    if (hour > 23 || minute > 59 || second > 59)
      throw new RowRejected(`timestamp: time out of range: ${JSON.stringify(raw)}`);
    const key = `${year}-${month}-${day}-${hour}-${minute}`;
    let minuteMs = this.minuteCache.get(key);
    if (minuteMs === undefined) {
      const dt = DateTime.fromObject({ year, month, day, hour, minute }, { zone: this.zone! });
      if (!dt.isValid) throw new RowRejected(`timestamp: invalid date: ${JSON.stringify(raw)}`);
      minuteMs = dt.toMillis();
      if (this.minuteCache.size >= MAX_CACHE) this.minuteCache.clear();
      this.minuteCache.set(key, minuteMs);
    }
    let fracUs = 0;
    if (fraction.length > 0) {
      fracUs = Number(fraction.slice(0, 6).padEnd(6, "0"));
      if (fraction.length > 6 && /[1-9]/.test(fraction.slice(6))) {
        if (r.date >= 0) vendor[this.columnName(r.date)] = f[r.date];
        if (r.time >= 0) vendor[this.columnName(r.time)] = f[r.time];
      }
    }
    return minuteMs * 1000 + second * 1_000_000 + fracUs;
  }

  private columnName(i: number): string {
    const h = this.resolved?.header?.[i]?.trim();
    return h ? h : `column_${i}`;
  }
}

function decimal(v: string, name: string): string {
  try {
    return parseNonNegativeDecimal(v.trim());
  } catch (e) {
    if (e instanceof DecimalError) throw new RowRejected(`${name}: ${e.reason}: ${JSON.stringify(v)}`);
    throw e;
  }
}

/**
 * Epoch text → µs since epoch, exactly (string arithmetic, no float).
 * @param scale decimal digits from the unit to µs: s 6, ms 3, us 0, ns −3
 * @returns µs and whether non-zero digits finer than a µs were truncated
 * @throws {RowRejected} when not a non-negative number (a fraction only for s and ms) or ≥ 2^53 µs
 */
export function epochToMicros(raw: string, scale: number): { us: number; truncated: boolean } {
  const s = raw.trim();
  const m = /^(\d+)(?:\.(\d+))?$/.exec(s);
  if (!m || (m[2] !== undefined && scale <= 0)) {
    throw new RowRejected(
      `timestamp: not an epoch value${scale <= 0 ? " (integer)" : ""}: ${JSON.stringify(raw)}`,
    );
  }
  let digits: string;
  let dropped: string;
  if (scale >= 0) {
    const frac = m[2] ?? "";
    digits = m[1] + frac.slice(0, scale).padEnd(scale, "0");
    dropped = frac.slice(scale);
  } else {
    const cut = Math.max(0, m[1].length + scale);
    digits = m[1].slice(0, cut) || "0";
    dropped = m[1].slice(cut);
  }
  const us = Number(digits);
  if (!Number.isSafeInteger(us)) throw new RowRejected(`timestamp: out of range: ${JSON.stringify(raw)}`);
  return { us, truncated: /[1-9]/.test(dropped) };
}
