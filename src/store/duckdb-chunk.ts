/**
 * Column-wise appends to DuckDB's staging tables: records are written into a data chunk one column
 * at a time (≤ 2048 rows per chunk, DuckDB's vector size) and the chunk is handed to the appender in one
 * native call, instead of one native call per value.
 *
 * Numbers go straight into the vectors' memory: integers (`micros`, `bigint`) as DOUBLE (exact below
 * 2^53, cast to BIGINT by the move), DECIMAL(18,8) as its scaled 64-bit integer parsed from the exact
 * decimal string (no float on the way), UUIDs as their 128 bits. Text, JSON and the wide decimals are
 * strings (one native call each when the chunk is flushed). A value that does not fit its column
 * throws an `Error` whose message starts `Conversion Error:` as DuckDB's own casts do, so the batch
 * fails whole and the persist stage isolates the record (`poison.ts`).
 *
 * The code filling a chunk is generated from the table catalogue's columns, each value read by its
 * literal property name.
 */
import type { DuckDBAppender, DuckDBDataChunk } from "@duckdb/node-api";
import type { Column, LogicalType } from "../schema/tables.js";
import { ident, levelsJson, valueExpression } from "./sql.js";

/** Rows per data chunk: DuckDB's standard vector size, the most a chunk holds. */
export const CHUNK_ROWS = 2048;

/** How a column is staged: its staging SQL type, and how its values reach the vector. */
type StageKind = "double" | "decimal18" | "uuid" | "varchar" | "boolean";
/** How a column reaches a vector: as staged, or `int64` (a table's own BIGINT column, appended directly). */
type VectorKind = StageKind | "int64";

const KIND: Record<LogicalType, StageKind> = {
  uuid: "uuid",
  text: "varchar",
  "decimal(18,8)": "decimal18",
  "decimal(38,8)": "varchar",
  "decimal(38,16)": "varchar",
  micros: "double",
  bigint: "double",
  "text[]": "varchar",
  "string map": "varchar",
  boolean: "boolean",
  levels: "varchar",
};

const STAGE_SQL: Record<StageKind, string> = {
  double: "DOUBLE",
  decimal18: "DECIMAL(18,8)",
  uuid: "UUID",
  varchar: "VARCHAR",
  boolean: "BOOLEAN",
};

/** The SQL type of a column in its staging table. */
export function stageType(col: Column): string {
  return STAGE_SQL[KIND[col.type]];
}

/** The cast from the staging column to the table's (empty when the types are the same). */
export function stageCast(col: Column): string {
  switch (col.type) {
    case "micros":
    case "bigint":
      return "BIGINT";
    case "decimal(38,8)":
      return "DECIMAL(38,8)";
    case "decimal(38,16)":
      return "DECIMAL(38,16)";
    case "text[]":
      return "JSON::VARCHAR[]";
    case "string map":
    case "levels":
      return "JSON";
    default:
      return "";
  }
}

/**
 * Compiles the column-wise append of `columns` (a staging table's, in its column order): the returned
 * function appends every record to `appender` in chunks of ≤ {@link CHUNK_ROWS} rows, then flushes it.
 * `newChunk` makes the (reused) data chunk from the appender's column types on first use.
 * @throws Error `Conversion Error: …` for a value that does not fit its column
 */
export function compileChunkAppend(
  columns: readonly Column[],
  newChunk: (appender: DuckDBAppender) => DuckDBDataChunk,
  target: "stage" | "table" = "stage",
): (appender: DuckDBAppender, records: readonly object[]) => void {
  const body = columns
    .map((c, ci) => {
      const kind: VectorKind = target === "table" ? tableKind(c) : KIND[c.type];
      const value = valueExpression(c, "records[off + j]");
      const conv =
        c.type === "text[]"
          ? "jsonArray(v)"
          : c.type === "string map"
            ? target === "table"
              ? `checkedJsonObject(v, ${JSON.stringify(c.name)})`
              : "jsonObject(v)"
            : c.type === "levels"
              ? "levelsJson(v)"
              : "v";
      let write: string;
      let head = "";
      switch (kind) {
        case "int64":
          // a safe integer's two 32-bit halves, little-endian: no BigInt per value
          head = "const i32 = new Int32Array(items.buffer, items.byteOffset, n * 2);";
          write = `putInt64(i32, j, v, ${JSON.stringify(c.name)});${c.nullable ? " valid.setItemValid(j, true);" : ""}`;
          break;
        case "double":
          write = c.nullable ? "vec.setItem(j, v);" : "items[j] = v;";
          break;
        case "decimal18":
          write = `putDecimal18(dv, j * 8, v, ${JSON.stringify(c.name)});${c.nullable ? " valid.setItemValid(j, true);" : ""}`;
          break;
        case "uuid":
          write = `putUuid(dv, j * 16, v, ${JSON.stringify(c.name)});${c.nullable ? " valid.setItemValid(j, true);" : ""}`;
          break;
        default:
          write = `vec.setItem(j, ${conv});`;
      }
      const nullCheck = c.nullable
        ? kind === "int64"
          ? `if (v === null) { valid.setItemValid(j, false); continue; }`
          : `if (v === null) { vec.setItem(j, null); continue; }`
        : `if (v === null || v === undefined) throw notNull(${JSON.stringify(ident(c.name))});`;
      return `{
        const vec = chunk.getColumnVector(${ci});
        const dv = vec.dataView, items = vec.items, valid = vec.validity;
        ${head}
        for (let j = 0; j < n; j++) {
          const v = ${value};
          ${nullCheck}
          ${write}
        }
        vec.flush();
      }`;
    })
    .join("\n");
  const src = `let chunk = null;
    return function (appender, records) {
      if (chunk === null) chunk = newChunk(appender);
      for (let off = 0; off < records.length; off += ${CHUNK_ROWS}) {
        const n = Math.min(${CHUNK_ROWS}, records.length - off);
        chunk.reset();
        chunk.rowCount = n;
        ${body}
        appender.appendDataChunk(chunk);
      }
      appender.flushSync();
    };`;
  const helpers: Record<string, unknown> = {
    newChunk,
    putDecimal18,
    putInt64,
    putUuid,
    jsonArray,
    jsonObject,
    checkedJsonObject,
    levelsJson,
    notNull: (name: string) => new Error(`Conversion Error: NULL in the NOT NULL column ${name}`),
  };
  const names = Object.keys(helpers);
  // code built from the catalogue's checked identifiers only, never from a record or request
  const make = new Function(...names, src);
  return make(...names.map((n) => helpers[n])) as (
    appender: DuckDBAppender,
    records: readonly object[],
  ) => void;
}

const TWO_32 = 4294967296;

/**
 * How a column is appended straight to its table (no staging): integers (`micros`, `bigint`) into the
 * table's BIGINT vector, the rest as staged (JSON and VARCHAR columns take text alike).
 * @throws Error for a column type that has no direct append here (lists, wide decimals, levels)
 */
function tableKind(c: Column): VectorKind {
  switch (c.type) {
    case "micros":
    case "bigint":
      return "int64";
    case "text[]":
    case "decimal(38,8)":
    case "decimal(38,16)":
    case "levels":
      throw new Error(
        `compileChunkAppend: column ${c.name} (${c.type}) cannot be appended to its table directly`,
      );
    default:
      return KIND[c.type];
  }
}

/**
 * Writes the safe integer `v` as a little-endian 64-bit integer at item `j` of a BIGINT vector seen
 * as 32-bit halves (`i32`).
 * @throws Error `Conversion Error: …` when `v` is not a safe integer
 */
export function putInt64(i32: Int32Array, j: number, v: unknown, column = "value"): void {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) throw conversion(v, column);
  const hi = Math.floor(v / TWO_32);
  i32[2 * j] = v - hi * TWO_32;
  i32[2 * j + 1] = hi;
}

/**
 * Writes the exact decimal string `s` as the scaled 64-bit integer of a DECIMAL(18,8) (value × 10^8,
 * little-endian) at `offset` of `dv`. Accepts an optional sign, up to 10 integer digits (leading zeros
 * aside) and any number of fractional digits past the 8th as long as they are zeros.
 * @throws Error `Conversion Error: …` for anything else (not a decimal, out of range, a 9th place)
 */
export function putDecimal18(dv: DataView, offset: number, s: unknown, column = "value"): void {
  if (typeof s !== "string") throw conversion(s, column);
  const len = s.length;
  let i = 0;
  let neg = false;
  const first = s.charCodeAt(0);
  if (first === 45 || first === 43) {
    neg = first === 45;
    i = 1;
  }
  let int = 0;
  let intDigits = 0;
  let digits = 0;
  for (; i < len; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) break;
    if (intDigits > 0 || d !== 0) intDigits++;
    int = int * 10 + d;
    digits++;
  }
  let frac = 0;
  let places = 0;
  if (i < len) {
    if (s.charCodeAt(i) !== 46) throw conversion(s, column);
    for (i++; i < len; i++) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) throw conversion(s, column);
      digits++;
      if (places < 8) {
        frac = frac * 10 + d;
        places++;
      } else if (d !== 0) throw conversion(s, column);
    }
  }
  if (digits === 0 || intDigits > 10) throw conversion(s, column);
  for (; places < 8; places++) frac *= 10;
  if (int < 90_000_000) {
    // int·10^8 + frac < 2^53: exact in a double
    const v = neg ? -(int * 1e8 + frac) : int * 1e8 + frac;
    const hi = Math.floor(v / TWO_32);
    dv.setUint32(offset, v - hi * TWO_32, true);
    dv.setInt32(offset + 4, hi, true);
  } else {
    const b = BigInt(int) * 100_000_000n + BigInt(frac);
    dv.setBigInt64(offset, neg ? -b : b, true);
  }
}

/** Hex digit values by char code (-1: not a hex digit). */
const HEX = new Int8Array(128).fill(-1);
for (let c = 0; c < 10; c++) HEX[48 + c] = c;
for (let c = 0; c < 6; c++) {
  HEX[65 + c] = 10 + c;
  HEX[97 + c] = 10 + c;
}

/**
 * Writes the UUID text `s` (`8-4-4-4-12` hex digits, or 32 hex digits) at `offset` of `dv` as DuckDB
 * stores a UUID: a 128-bit integer (lower 64 bits first, little-endian) with its top bit flipped.
 * @throws Error `Conversion Error: …` for any other text
 */
export function putUuid(dv: DataView, offset: number, s: unknown, column = "value"): void {
  if (typeof s !== "string") throw conversion(s, column);
  const dashed = s.length === 36;
  if (!dashed && s.length !== 32) throw conversion(s, column);
  if (dashed && (s[8] !== "-" || s[13] !== "-" || s[18] !== "-" || s[23] !== "-"))
    throw conversion(s, column);
  // four 32-bit words, most significant first
  let w0 = 0;
  let w1 = 0;
  let w2 = 0;
  let w3 = 0;
  let nib = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (dashed && (i === 8 || i === 13 || i === 18 || i === 23)) continue;
    const h = c < 128 ? HEX[c] : -1;
    if (h < 0) throw conversion(s, column);
    const w = nib >> 3;
    if (w === 0) w0 = w0 * 16 + h;
    else if (w === 1) w1 = w1 * 16 + h;
    else if (w === 2) w2 = w2 * 16 + h;
    else w3 = w3 * 16 + h;
    nib++;
  }
  dv.setUint32(offset, w3, true);
  dv.setUint32(offset + 4, w2, true);
  dv.setUint32(offset + 8, w1, true);
  dv.setUint32(offset + 12, (w0 ^ 0x80000000) >>> 0, true);
}

function conversion(v: unknown, column: string): Error {
  const text = typeof v === "string" ? `"${v.length > 64 ? `${v.slice(0, 64)}…` : v}"` : String(v);
  return new Error(`Conversion Error: ${column}: ${text} does not fit its column`);
}

/** JSON text of a vendor_data map (`{}` without serializing when empty, as bookTicker's is). */
function jsonObject(o: Record<string, string>): string {
  for (const _ in o) return JSON.stringify(o);
  return "{}";
}

/** A UTF-16 surrogate without its pair: text that has no UTF-8 form, which DuckDB's JSON type rejects. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * {@link jsonObject} for a JSON column appended directly (no staging cast to JSON to check it): the
 * same text, or a `Conversion Error` where that cast would fail, a key or value with a lone surrogate.
 * @throws Error `Conversion Error: …`
 */
function checkedJsonObject(o: Record<string, string>, column: string): string {
  for (const k in o) {
    const v = o[k];
    if (LONE_SURROGATE.test(k) || (typeof v === "string" && LONE_SURROGATE.test(v)))
      throw conversion(k, column);
  }
  return jsonObject(o);
}

/** JSON text of a text array (`[]` without serializing when empty). */
function jsonArray(a: string[]): string {
  return a.length === 0 ? "[]" : JSON.stringify(a);
}
