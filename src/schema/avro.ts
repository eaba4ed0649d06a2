/**
 * Avro types for trades_v2, quotes_v2, book_changes_v2 and book_snapshots_v2 (`schema/*.avsc`), for Kafka users with a Confluent Schema
 * Registry. DECIMAL(18,8) uses Avro's `decimal` logical type (bytes, two's-complement big-endian
 * unscaled value, precision 18, scale 8), converted to and from K2's canonical decimal strings without
 * floats; `timestamp-micros` stays a long of µs.
 */
import { readFileSync } from "node:fs";
import avro from "avsc";
import { packageRoot } from "../paths.js";
import { parseDecimal, toUnits, unitsToString } from "./decimal.js";

/** Avro `decimal` (bytes) ↔ canonical DECIMAL(18,8) string. */
class DecimalType extends avro.types.LogicalType {
  private readonly scale: number;
  constructor(attrs: Record<string, unknown>, opts?: unknown) {
    super(attrs as never, opts as never);
    this.scale = Number(attrs.scale ?? 0);
    if (this.scale !== 8) throw new Error("K2 decimals are DECIMAL(18,8): scale must be 8");
  }
  override _fromValue(buf: Buffer): string {
    let v = 0n;
    for (const b of buf) v = (v << 8n) | BigInt(b);
    if (buf.length > 0 && buf[0] & 0x80) v -= 1n << BigInt(buf.length * 8);
    return unitsToString(v, this.scale);
  }
  override _toValue(value: unknown): Buffer {
    let v = toUnits(parseDecimal(value));
    const bytes: number[] = [];
    // minimal two's-complement big-endian
    for (;;) {
      const byte = Number(v & 0xffn);
      bytes.unshift(byte);
      v >>= 8n;
      if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
    }
    return Buffer.from(bytes);
  }
  override _resolve(type: avro.Type) {
    if (avro.Type.isType(type, "logical:decimal")) return (v: unknown) => v;
    return undefined;
  }
}

/** The tables with an Avro schema (`schema/{name}.avsc`). */
export type AvroTableName = "trades_v2" | "quotes_v2" | "book_changes_v2" | "book_snapshots_v2";

/** The text of `schema/{name}.avsc` (what a Schema Registry is given). */
export function avroSchemaText(name: AvroTableName): string {
  return readFileSync(`${packageRoot()}/schema/${name}.avsc`, "utf8");
}

/**
 * An Avro type for any schema (e.g. a writer schema fetched from a Schema Registry), with K2's
 * `decimal` logical type: DECIMAL(18,8) values come back as canonical strings.
 * @throws when the schema is invalid or declares a decimal with a scale other than 8
 */
export function avroTypeForSchema(schema: unknown): avro.Type {
  const parsed = typeof schema === "string" ? JSON.parse(schema) : schema;
  return avro.Type.forSchema(parsed as never, { logicalTypes: { decimal: DecimalType } as never });
}

function load(name: AvroTableName): avro.Type {
  return avroTypeForSchema(avroSchemaText(name));
}

let trades: avro.Type | null = null;
let quotes: avro.Type | null = null;

/** The Avro type of trades_v2 (from `schema/trades_v2.avsc`). */
export function tradeAvroType(): avro.Type {
  trades ??= load("trades_v2");
  return trades;
}

/** The Avro type of quotes_v2 (from `schema/quotes_v2.avsc`). */
export function quoteAvroType(): avro.Type {
  quotes ??= load("quotes_v2");
  return quotes;
}

let bookChanges: avro.Type | null = null;
let bookSnapshots: avro.Type | null = null;

/** The Avro type of book_changes_v2 (from `schema/book_changes_v2.avsc`); levels as decimal pairs. */
export function bookChangeAvroType(): avro.Type {
  bookChanges ??= load("book_changes_v2");
  return bookChanges;
}

/** The Avro type of book_snapshots_v2 (from `schema/book_snapshots_v2.avsc`). */
export function bookSnapshotAvroType(): avro.Type {
  bookSnapshots ??= load("book_snapshots_v2");
  return bookSnapshots;
}
