/**
 * zod validators of the V2 records, derived from the table catalogue (`tables.ts`): used at boundaries
 * (loaders' mapped rows) and in tests, never per record on the hot path. Kept apart from the catalogue
 * so that what only reads the catalogue (the stores, `k2 query`) does not load zod.
 */
import { z } from "zod";
import { type Column, QUOTE_COLUMNS, type RecordOf, TRADE_COLUMNS } from "./tables.js";

/** A canonical DECIMAL(18,8) string (`61707.68000000`; see `decimal.ts`). */
const decimalString = z.string().regex(/^-?(0|[1-9]\d{0,9})\.\d{8}$/, "DECIMAL(18,8) canonical string");
const nonNegativeInt = z.number().int().nonnegative();

/** The validator of one column's values: its logical type, narrowed by its `values`, `pattern`, `minLength`, `nonNegative`. */
function zodOf(col: Column): z.ZodType {
  let t: z.ZodType;
  if (col.values) t = z.enum(col.values as [string, ...string[]]);
  else {
    switch (col.type) {
      case "uuid":
        t = z.uuid();
        break;
      case "decimal(18,8)":
        t = decimalString;
        break;
      case "micros":
        t = nonNegativeInt;
        break;
      case "bigint":
        t = col.nonNegative ? nonNegativeInt : z.number().int();
        break;
      case "text[]":
        t = z.array(z.string());
        break;
      case "string map":
        t = z.record(z.string(), z.string());
        break;
      case "boolean":
        t = z.boolean();
        break;
      case "levels":
        t = z.array(z.tuple([decimalString, decimalString]));
        break;
      default: {
        let s = z.string();
        if (col.pattern) s = s.regex(col.pattern);
        if (col.minLength !== undefined) s = s.min(col.minLength);
        t = s;
      }
    }
  }
  if (col.nullable) t = t.nullable();
  if (col.addedIn !== undefined) t = t.optional();
  return t;
}

/** zod validator of the records of `columns`. */
export function recordSchema<Cs extends readonly Column[]>(columns: Cs): z.ZodType<RecordOf<Cs>> {
  return z.object(Object.fromEntries(columns.map((col) => [col.name, zodOf(col)]))) as never;
}

/** zod validator for `TradeV2` (trades_v2 and agg_trades_v2 rows). */
export const TradeV2Schema = recordSchema(TRADE_COLUMNS);

/** zod validator for `QuoteV2`. */
export const QuoteV2Schema = recordSchema(QUOTE_COLUMNS);
