/**
 * Field readers shared by the venue mappers (Binance, Coinbase, Kraken): each either returns the exact
 * canonical value or throws {@link Reject} with the dead-letter reason. Nothing is guessed.
 */
import { DecimalError, parseNonNegativeDecimal } from "../schema/decimal.js";
import { deterministicMessageId } from "../schema/message-id.js";
import { type DeadLetter, quoteCurrency } from "../schema/records.js";
import { parseEpochSecondsMicros, parseIsoMicros, TimeError } from "../schema/time.js";

/** A record (or frame) that cannot be normalized; `message` is the dead-letter reason. */
export class Reject extends Error {}

/** Throws {@link Reject} with `reason`. */
export function fail(reason: string): never {
  throw new Reject(reason);
}

/**
 * A venue message as it arrives, before its fields are read: the documented fields of `T` (the venue's
 * message interface, which gives each field's meaning and units from the venue doc), each still
 * `unknown` until a reader of this file checks it. A field `T` does not document is a compile error.
 * A type only: it costs nothing at run time (no copy, no validation pass).
 */
export type Unchecked<T> = { readonly [K in keyof T]?: unknown };

/** A JSON object (not null, not an array), or null. */
export function asObject(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Deepest nesting of a venue value K2 keeps in `vendor_data` or writes into a reason or id (levels). */
export const MAX_VALUE_DEPTH = 32;
/** Longest `vendor_data` value, in characters (a longer one makes the record a dead letter). */
export const MAX_VENDOR_VALUE_CHARS = 4096;
/** Longest `vendor_data` key, in characters. */
export const MAX_VENDOR_KEY_CHARS = 64;
/** Most `vendor_data` entries of one record. */
export const MAX_VENDOR_FIELDS = 64;
/** Longest venue value quoted in a dead-letter reason, in characters (longer ones are cut, marked `…`). */
const MAX_SHOWN_CHARS = 200;
/**
 * Longest raw text kept in a dead letter, in characters (8 Mi; the reason says when it was cut). A
 * frame rejected for its size is kept whole up to this bound: the dead letter holds the exact text
 * for whoever investigates it (the API lists it cut, with a link to the whole).
 */
export const MAX_DEAD_LETTER_RAW_CHARS = 8 * 1024 * 1024;

/**
 * Why `v` may not be written as JSON: `nested deeper than 32 levels` or `larger than <max> values`,
 * or null when it may. Iterative (never recurses), stops at the first bound crossed, so its cost is
 * bounded by `maxValues` whatever the input.
 */
export function jsonShapeProblem(v: unknown, maxValues: number, maxDepth = MAX_VALUE_DEPTH): string | null {
  if (v === null || typeof v !== "object") return null;
  const stack: unknown[] = [v];
  const depths: number[] = [1];
  let values = 0;
  while (stack.length > 0) {
    const x = stack.pop() as object;
    const d = depths.pop() as number;
    if (d > maxDepth) return `nested deeper than ${maxDepth} levels`;
    const children = Array.isArray(x) ? x : Object.values(x);
    values += children.length;
    if (values > maxValues) return `larger than ${maxValues} values`;
    for (const c of children) {
      if (c !== null && typeof c === "object") {
        stack.push(c);
        depths.push(d + 1);
      }
    }
  }
  return null;
}

/** The JSON object a client message holds, or null when it is not JSON or not an object (replay dialects). */
export function jsonObjectOrNull(text: string): Record<string, unknown> | null {
  try {
    return asObject(JSON.parse(text));
  } catch {
    return null;
  }
}

/**
 * JSON text of a venue value that is nested at most {@link MAX_VALUE_DEPTH} levels and at most
 * `maxChars` long (`JSON.stringify` of a deeper value would overflow the stack).
 * @throws {Reject} `<what> is nested deeper than 32 levels` / `<what> is larger than <n> characters`
 */
export function boundedJson(v: unknown, what: string, maxChars: number): string {
  const problem = jsonShapeProblem(v, maxChars);
  if (problem) fail(`${what} is ${problem}`);
  const s = JSON.stringify(v);
  if (s !== undefined && s.length > maxChars) fail(`${what} is larger than ${maxChars} characters`);
  return s;
}

/**
 * Text of a venue value for `vendor_data` (strings as they are, anything else as JSON), bounded: a
 * value nested deeper than {@link MAX_VALUE_DEPTH} levels or longer than
 * {@link MAX_VENDOR_VALUE_CHARS} characters is not cut or guessed, the record is rejected.
 * @param field the vendor_data key, named in the reason
 * @throws {Reject} `vendor field <field> is nested deeper than 32 levels` / `... is larger than 4096 characters`
 */
export function vendorString(v: unknown, field = "value"): string {
  if (typeof v === "string") {
    if (v.length > MAX_VENDOR_VALUE_CHARS) {
      fail(`vendor field ${shown(field)} is larger than ${MAX_VENDOR_VALUE_CHARS} characters (${v.length})`);
    }
    return v;
  }
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  return boundedJson(v, `vendor field ${shown(field)}`, MAX_VENDOR_VALUE_CHARS);
}

/**
 * Copies the fields of `obj` not in `mapped` into `vendor` (renamed through `names`), each through
 * {@link vendorString}; at most {@link MAX_VENDOR_FIELDS} entries in all.
 * @throws {Reject} on a field rejected by {@link vendorString}, a key longer than 64 characters or too many fields
 */
export function addVendorFields(
  vendor: Record<string, string>,
  obj: Record<string, unknown>,
  mapped: ReadonlySet<string>,
  names?: ReadonlyMap<string, string>,
): Record<string, string> {
  let n = 0;
  // counts the entries already there without allocating
  for (const _ in vendor) n++;
  for (const k in obj) {
    if (mapped.has(k)) continue;
    if (++n > MAX_VENDOR_FIELDS) fail(`more than ${MAX_VENDOR_FIELDS} vendor fields`);
    if (k.length > MAX_VENDOR_KEY_CHARS)
      fail(`vendor field name longer than ${MAX_VENDOR_KEY_CHARS} characters`);
    vendor[names?.get(k) ?? k] = vendorString(obj[k], k);
  }
  return vendor;
}

/**
 * A venue value as shown in a dead-letter reason: JSON, at most 200 characters (cut with `…`), and
 * never throws (a value nested too deeply is shown as `<nested deeper than 32 levels>`).
 */
export function shown(v: unknown): string {
  let s: string | undefined;
  if (typeof v === "string") s = JSON.stringify(v.length > MAX_SHOWN_CHARS ? v.slice(0, MAX_SHOWN_CHARS) : v);
  else if (v !== null && typeof v === "object") {
    const problem = jsonShapeProblem(v, MAX_SHOWN_CHARS);
    s = problem ? `<value ${problem}>` : JSON.stringify(v);
  } else s = String(JSON.stringify(v));
  return s.length > MAX_SHOWN_CHARS ? `${wellFormedPrefix(s, MAX_SHOWN_CHARS)}…` : s;
}

/** A venue text for a reason (an error message): strings as they are, cut to 200 characters; else {@link shown}. */
export function reasonText(v: unknown): string {
  return typeof v === "string" ? wellFormedPrefix(v, MAX_SHOWN_CHARS) : shown(v);
}

/** The first `n` characters of `s`, one less when the cut would split a surrogate pair. */
export function wellFormedPrefix(s: string, n: number): string {
  if (s.length <= n) return s;
  const c = s.charCodeAt(n - 1);
  return s.slice(0, c >= 0xd800 && c <= 0xdbff ? n - 1 : n);
}

/** A dead-letter `source` (`binance:btcusdt@trade`): the venue-given part cut to 64 characters. */
export function sourceOf(venue: string, name: string): string {
  return `${venue}:${wellFormedPrefix(name, 64)}`;
}

// A JSON `\u` escape of a UTF-16 surrogate (D800-DFFF): the only way a lone surrogate gets into a frame
// that arrived as text (the connection decodes UTF-8 into well-formed strings).
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

interface WellFormed {
  isWellFormed(): boolean;
  toWellFormed(): string;
}
const wellFormed = (s: string) => (s as unknown as WellFormed).isWellFormed();

/**
 * Rejects a frame holding a string that is not well-formed UTF-16 (a lone surrogate, `"\ud800"`),
 * which no store accepts. Cheap on the hot path: the parsed value is walked only when the raw text
 * holds a `\u` escape of a surrogate.
 * @param raw the frame text; `msg` its parsed value
 * @throws {Reject} `field <path> is not well-formed UTF-16 (lone surrogate)`
 */
export function checkWellFormed(raw: string, msg: unknown): void {
  // a backslash is rare in venue frames, and looking for one character is the cheapest scan
  if (raw.indexOf("\\") < 0 || !SURROGATE_ESCAPE.test(raw)) return;
  // nodes by index with their parent and key; the path is spelled out only for the reason (memory
  // stays linear in the frame's size however deep it nests)
  const vals: unknown[] = [msg];
  const parents: number[] = [-1];
  const keys: (string | number)[] = [""];
  const pathOf = (n: number): string => {
    const parts: string[] = [];
    for (let x = n; x > 0 && parts.length < 40; x = parents[x]) {
      const k = keys[x];
      parts.push(typeof k === "number" ? `[${k}]` : `.${wellFormed(k) ? k : JSON.stringify(k)}`);
    }
    const cut = parts.length === 40 ? "…" : "";
    const path = parts.reverse().join("").replace(/^\./, "");
    return path.length > 200 ? `…${path.slice(-200)}` : `${cut}${path}` || "(frame)";
  };
  const stack: number[] = [0];
  while (stack.length > 0) {
    const n = stack.pop() as number;
    const v = vals[n];
    if (typeof v === "string") {
      if (!wellFormed(v)) fail(`field ${pathOf(n)} is not well-formed UTF-16 (lone surrogate)`);
    } else if (v !== null && typeof v === "object") {
      const isArray = Array.isArray(v);
      for (const k in v) {
        const c = vals.length;
        vals.push((v as Record<string, unknown>)[k]);
        parents.push(n);
        keys.push(isArray ? Number(k) : k);
        if (!isArray && !wellFormed(k))
          fail(`field name ${pathOf(c)} is not well-formed UTF-16 (lone surrogate)`);
        stack.push(c);
      }
    }
  }
}

/**
 * Parses a frame with the checks every venue applies before reading it: at most `maxChars`
 * characters, well-formed text, valid JSON, well-formed strings ({@link checkWellFormed}).
 * @param parse `JSON.parse`, or `parseJsonExact` for venues sending numbers as JSON numbers
 * @throws {Reject} `frame of <n> characters is larger than the <max>-character bound`, `malformed JSON`,
 *   or the lone-surrogate reason
 */
export function parseFrame(
  raw: string,
  maxChars: number,
  parse: (text: string) => unknown = JSON.parse,
): unknown {
  if (raw.length > maxChars)
    fail(`frame of ${raw.length} characters is larger than the ${maxChars}-character bound`);
  // the connection decodes UTF-8 into well-formed text; a lone surrogate in the text itself is refused
  if (!wellFormed(raw)) fail("frame text is not well-formed UTF-16 (lone surrogate)");
  let msg: unknown;
  try {
    msg = parse(raw);
  } catch {
    fail("malformed JSON");
  }
  checkWellFormed(raw, msg);
  return msg;
}

/**
 * A trade's price or quantity: as {@link decimalOf}, and not zero (a trade at price 0 or of quantity 0
 * did not happen as written).
 * @throws {Reject} as {@link decimalOf}, or `<name> (<key>) is zero`
 */
export function tradeDecimalOf(v: unknown, name: string, key: string): string {
  const d = decimalOf(v, name, key);
  if (d === "0.00000000") fail(`${name} (${key}) is zero`);
  return d;
}

/**
 * A required non-negative DECIMAL(18,8) from a venue decimal string (`"65083.67"` → `"65083.67000000"`).
 * @throws {Reject} `missing <name> (<key>)` or `<name> (<key>): <decimal reason>: <value>`
 */
export function decimalOf(v: unknown, name: string, key: string): string {
  try {
    return parseNonNegativeDecimal(v);
  } catch (e) {
    return rejectValue(e, v, name, key);
  }
}

/**
 * Why a required venue value could not be read, as a {@link Reject}: `missing <name> (<key>)` when it
 * is absent, else the schema/ parser's reason (`DecimalError`, `TimeError`) with the value; any other
 * error is rethrown. Called only on the error path, so the readers' hot path is the parser alone.
 */
function rejectValue(e: unknown, v: unknown, name: string, key: string): never {
  if (v === undefined || v === null) fail(`missing ${name} (${key})`);
  if (e instanceof DecimalError || e instanceof TimeError) fail(`${name} (${key}): ${e.reason}: ${shown(v)}`);
  throw e;
}

/**
 * A required RFC 3339 time → µs since epoch.
 * @throws {Reject} `missing <name> (<key>)` or `<name> (<key>): not an RFC 3339 time: <value>`
 */
export function isoMicrosOf(v: unknown, name: string, key: string): number {
  try {
    return parseIsoMicros(v);
  } catch (e) {
    return rejectValue(e, v, name, key);
  }
}

/**
 * A required epoch-seconds decimal string (`"1618678142.557535"`) → µs since epoch.
 * @throws {Reject} as {@link isoMicrosOf}
 */
export function epochSecondsMicrosOf(v: unknown, name: string, key: string): number {
  try {
    return parseEpochSecondsMicros(v);
  } catch (e) {
    return rejectValue(e, v, name, key);
  }
}

/**
 * A required venue symbol, upper case, matching `pattern`.
 * @throws {Reject} `missing symbol (<key>)` or `symbol (<key>) is not a <what>: <value>`
 */
export function symbolOf(v: unknown, key: string, pattern: RegExp, what: string): string {
  if (typeof v !== "string" || v.length === 0) fail(`missing symbol (${key})`);
  const s = v.toUpperCase();
  if (!pattern.test(s)) fail(`symbol (${key}) is not ${what}: ${shown(v)}`);
  return s;
}

const currencies = new Map<string, string>();

/**
 * Quote currency of a symbol (`BTCUSDT`, `BTC-USD`, `XBT/USD`), cached per symbol.
 * @throws {Reject} when none can be derived
 */
export function currencyOf(symbol: string): string {
  let c = currencies.get(symbol);
  if (c === undefined) {
    try {
      c = quoteCurrency(symbol);
    } catch (e) {
      fail((e as Error).message);
    }
    if (currencies.size < 100_000) currencies.set(symbol, c); // symbols are few; frames are many
  }
  return c;
}

/**
 * A non-negative integer sequence or id given as a JSON number or, unless `digitStrings` is false, a
 * digit string (`"1068572090"`; Binance sends its ids and times as JSON numbers only).
 * @throws {Reject} `missing <name> (<key>)` or `<name> (<key>) is not a non-negative integer: <value>`
 */
export function intOf(v: unknown, name: string, key: string, digitStrings = true): number {
  if (v === undefined || v === null) fail(`missing ${name} (${key})`);
  const n =
    typeof v === "number"
      ? v
      : digitStrings && typeof v === "string" && /^\d{1,16}$/.test(v)
        ? Number(v)
        : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) {
    fail(`${name} (${key}) is not a non-negative integer: ${shown(v)}`);
  }
  return n;
}

/**
 * Bounds a dead letter's raw text (a hostile frame may be megabytes): raw longer than
 * {@link MAX_DEAD_LETTER_RAW_CHARS} keeps its first 8 Mi characters and the reason says so; raw text
 * holding lone surrogates (which no store accepts) has them replaced by U+FFFD, and the reason says so. The
 * message_id, computed before, still names the whole frame. Mutates and returns `letter`.
 */
export function boundDeadLetter(letter: DeadLetter): DeadLetter {
  if (!wellFormed(letter.raw)) {
    letter.raw = (letter.raw as unknown as WellFormed).toWellFormed();
    letter.reason += " (lone surrogates of the raw text replaced by U+FFFD)";
  }
  const n = letter.raw.length;
  if (n > MAX_DEAD_LETTER_RAW_CHARS) {
    letter.raw = wellFormedPrefix(letter.raw, MAX_DEAD_LETTER_RAW_CHARS);
    letter.reason += ` (raw text cut to its first ${letter.raw.length} of ${n} characters)`;
  }
  return letter;
}

/**
 * A dead letter for `raw` (raw bounded by {@link boundDeadLetter}) with a deterministic message_id, so
 * a replayed frame's dead letters are stored once: the id names `<exchange>/dlq/<part>/<raw>`. `part`
 * distinguishes several rejected records of one frame (each keeps its own id); `null` names the whole
 * frame as `<exchange>/dlq/<raw>`, the form Binance's dead letters have always been stored under (kept
 * so their stored ids stay the same).
 */
export function deadLetterOf(
  exchange: string,
  source: string,
  reason: string,
  raw: string,
  receivedAtUs: number,
  part: string | null = "",
): DeadLetter {
  const letter: DeadLetter = {
    message_id: deterministicMessageId(
      part === null ? `${exchange}/dlq/${raw}` : `${exchange}/dlq/${part}/${raw}`,
    ),
    exchange,
    source,
    reason,
    raw,
    received_at: receivedAtUs,
  };
  return boundDeadLetter(letter);
}

/** Most dead letters one frame makes for its rejected records; the rest are counted in one more. */
export const MAX_DEAD_LETTERS_PER_FRAME = 16;

/**
 * Dead letters for the rejected records of one multi-record frame (Coinbase events, Kraken trade
 * arrays), bounded: the first {@link MAX_DEAD_LETTERS_PER_FRAME} each get their own (part `<i>`), the
 * rest one more dead letter counting them, with the first one's reason (a hostile frame of thousands
 * of bad records does not make thousands of copies of itself).
 */
export class FrameRejects {
  /** Records rejected so far. */
  count = 0;
  private more = 0;
  private firstMore = "";

  constructor(
    private readonly sink: { deadLetter(letter: DeadLetter): void },
    private readonly exchange: string,
    private readonly source: string,
    private readonly raw: string,
    private readonly receivedAtUs: number,
  ) {}

  /** One rejected record: `part` names it in the frame (`0.3`), `reason` is the dead-letter reason. */
  add(part: string, reason: string): void {
    this.count++;
    if (this.count <= MAX_DEAD_LETTERS_PER_FRAME) {
      this.sink.deadLetter(
        deadLetterOf(this.exchange, this.source, reason, this.raw, this.receivedAtUs, part),
      );
    } else if (this.more++ === 0) this.firstMore = reason;
  }

  /** Emits the dead letter counting the records past the bound, if any. */
  finish(): void {
    if (this.more === 0) return;
    this.sink.deadLetter(
      deadLetterOf(
        this.exchange,
        this.source,
        `${this.more} more records of this frame rejected; the first of them: ${this.firstMore}`,
        this.raw,
        this.receivedAtUs,
        "more",
      ),
    );
  }
}
