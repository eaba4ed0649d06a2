/**
 * The table catalogue (`src/schema/tables.ts`) against the Avro schemas (`schema/*.avsc`): same field
 * names in the same order, same types and nullability. A column added to one and not the other fails here.
 */
import { describe, expect, it } from "vitest";
import { avroSchemaText } from "../../src/schema/avro.js";
import { type Column, TABLES } from "../../src/schema/tables.js";
import { QuoteV2Schema, TradeV2Schema } from "../../src/schema/validators.js";

/** The Avro type a catalogue column must have (without the null union). */
function avroTypeOf(col: Column): unknown {
  if (col.values) return { type: "enum", symbols: [...col.values] };
  switch (col.type) {
    case "uuid":
      return { type: "string", logicalType: "uuid" };
    case "text":
      return "string";
    case "decimal(18,8)":
      return { type: "bytes", logicalType: "decimal", precision: 18, scale: 8 };
    case "micros":
      return { type: "long", logicalType: "timestamp-micros" };
    case "bigint":
      return "long";
    case "text[]":
      return { type: "array", items: "string" };
    case "string map":
      return { type: "map", values: "string" };
    case "boolean":
      return "boolean";
    case "levels": {
      const decimal = { type: "bytes", logicalType: "decimal", precision: 18, scale: 8 };
      return { type: "array", items: { type: "array", items: decimal } };
    }
    default:
      throw new Error(`no Avro type for ${col.type}`);
  }
}

/** An Avro field type without the parts the catalogue does not describe (enum names). */
function comparable(t: unknown): unknown {
  if (Array.isArray(t)) return t.map(comparable);
  if (t && typeof t === "object") {
    const { name: _name, namespace: _ns, doc: _doc, ...rest } = t as Record<string, unknown>;
    return rest;
  }
  return t;
}

describe("table catalogue", () => {
  for (const name of ["trades_v2", "quotes_v2", "book_changes_v2", "book_snapshots_v2"] as const) {
    it(`agrees with schema/${name}.avsc: field names, order, types and nullability`, () => {
      const avsc = JSON.parse(avroSchemaText(name)) as { fields: { name: string; type: unknown }[] };
      const columns = TABLES[name].columns as readonly Column[];
      expect(avsc.fields.map((f) => f.name)).toEqual(columns.map((c) => c.name));
      for (const [i, col] of columns.entries()) {
        const want = col.nullable ? ["null", avroTypeOf(col)] : avroTypeOf(col);
        expect({ field: col.name, type: comparable(avsc.fields[i].type) }).toEqual({
          field: col.name,
          type: want,
        });
      }
    });
  }

  it("keys name columns of their table", () => {
    for (const t of Object.values(TABLES)) {
      const names = new Set((t.columns as readonly Column[]).map((c) => c.name));
      for (const k of t.key) expect(names.has(k), `${t.name}.${k}`).toBe(true);
    }
  });

  it("derives validators that accept a record and reject a float price", () => {
    const trade = {
      message_id: "0190f3a4-0000-8000-8000-000000000001",
      trade_id: "BINANCE-1",
      symbol: "BTCUSDT",
      exchange: "BINANCE",
      asset_class: "crypto",
      timestamp: 1,
      price: "61707.68000000",
      quantity: "0.00100000",
      currency: "USDT",
      side: "BUY",
      trade_conditions: [],
      source_sequence: null,
      ingestion_timestamp: 2,
      platform_sequence: 0,
      vendor_data: {},
    };
    expect(TradeV2Schema.safeParse(trade).success).toBe(true);
    expect(TradeV2Schema.safeParse({ ...trade, price: 61707.68 }).success).toBe(false);
    expect(QuoteV2Schema.safeParse(trade).success).toBe(false);
  });
});
