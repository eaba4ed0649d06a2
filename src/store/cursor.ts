/**
 * Opaque keyset cursors: base64url of `{"k":kind,"o":order,"v":[...sort key of the last row]}`.
 *
 * A page query continues strictly after (asc) or before (desc) the sort key in the cursor, so pages
 * never overlap or skip rows, even when many rows share a timestamp (the key always ends in a unique
 * column) and even while new rows are being written. The decoded values are only ever bound as query
 * parameters; a cursor that does not decode to the expected kind, order and value types is a 400
 * naming `cursor`.
 */
import { QueryParamError, type SortOrder } from "./page.js";

/** Type of one cursor value: a safe non-negative integer (µs, lengths, sequences) or a short string. */
export type CursorValueType = "int" | "str";

const MAX_CURSOR_CHARS = 1024;

/** Encodes the sort key of the last row of a page. */
export function encodeCursor(kind: string, order: SortOrder, values: (string | number)[]): string {
  return Buffer.from(JSON.stringify({ k: kind, o: order, v: values }), "utf8").toString("base64url");
}

/**
 * Decodes a cursor made by {@link encodeCursor} for the same kind and order.
 * @throws {QueryParamError} (parameter `cursor`) on anything else
 */
export function decodeCursor(
  cursor: string,
  kind: string,
  order: SortOrder,
  types: readonly CursorValueType[],
): (string | number)[] {
  const bad = (reason: string) => new QueryParamError("cursor", reason);
  if (cursor.length > MAX_CURSOR_CHARS || !/^[A-Za-z0-9_-]+$/.test(cursor)) {
    throw bad("not a cursor returned by this endpoint");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw bad("not a cursor returned by this endpoint");
  }
  if (typeof parsed !== "object" || parsed === null) throw bad("not a cursor returned by this endpoint");
  const { k, o, v } = parsed as { k?: unknown; o?: unknown; v?: unknown };
  if (k !== kind) throw bad("cursor of another endpoint");
  if (o !== order) throw bad(`cursor was made for order=${String(o)}; pass the same order`);
  if (!Array.isArray(v) || v.length !== types.length) throw bad("malformed cursor");
  v.forEach((value, i) => {
    const ok =
      types[i] === "int"
        ? typeof value === "number" && Number.isSafeInteger(value) && value >= 0
        : typeof value === "string" && value.length <= 256;
    if (!ok) throw bad("malformed cursor");
  });
  return v as (string | number)[];
}
