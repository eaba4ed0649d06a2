/**
 * The column-wise staging append (`src/store/duckdb-chunk.ts`) against DuckDB's own casts: every
 * DECIMAL(18,8) and UUID text written straight into a data chunk reads back as DuckDB's cast of the
 * same text gives it, and text that DuckDB's cast refuses (or that would need rounding) is refused
 * with a `Conversion Error`.
 */
import { createRequire } from "node:module";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unitsToString } from "../../src/schema/decimal.js";
import type { Column } from "../../src/schema/tables.js";
import { compileChunkAppend, putDecimal18, putInt64, putUuid } from "../../src/store/duckdb-chunk.js";

const { DuckDBInstance, DuckDBDataChunk } = createRequire(import.meta.url)(
  "@duckdb/node-api",
) as typeof import("@duckdb/node-api");

type Conn = Awaited<ReturnType<Awaited<ReturnType<typeof DuckDBInstance.create>>["connect"]>>;
let instance: Awaited<ReturnType<typeof DuckDBInstance.create>>;
let conn: Conn;

beforeAll(async () => {
  instance = await DuckDBInstance.create(":memory:");
  conn = await instance.connect();
});
afterAll(() => {
  conn.closeSync();
  instance.closeSync();
});

const COLUMNS: Column[] = [
  { name: "id", type: "bigint" },
  { name: "price", type: "decimal(18,8)" },
  { name: "maybe", type: "decimal(18,8)", nullable: true },
  { name: "message_id", type: "uuid" },
  { name: "note", type: "text", nullable: true },
  { name: "tags", type: "text[]" },
];

/** Appends `rows` through the generated column-wise append; returns them as stored, by id. */
async function roundTrip(rows: object[]): Promise<Record<string, string | null>[]> {
  await conn.run("DROP TABLE IF EXISTS t");
  await conn.run(
    "CREATE TABLE t (id DOUBLE, price DECIMAL(18,8), maybe DECIMAL(18,8), message_id UUID, note VARCHAR, tags VARCHAR)",
  );
  const appender = await conn.createAppender("t");
  const append = compileChunkAppend(COLUMNS, (a) =>
    DuckDBDataChunk.create(Array.from({ length: a.columnCount }, (_, i) => a.columnType(i))),
  );
  append(appender, rows);
  appender.closeSync();
  const r = await conn.runAndReadAll(
    "SELECT id::BIGINT::VARCHAR AS id, price::VARCHAR AS price, maybe::VARCHAR AS maybe, message_id::VARCHAR AS message_id, note, tags FROM t ORDER BY t.id",
  );
  return r.getRowObjectsJson() as Record<string, string | null>[];
}

/** DuckDB's own cast of `text` to `type`, as text; null when DuckDB refuses it. */
async function duckCast(text: string, type: string): Promise<string | null> {
  try {
    const r = await conn.runAndReadAll(`SELECT $1::${type}::VARCHAR AS v`, [text]);
    return String(r.getRowObjectsJson()[0].v);
  } catch {
    return null;
  }
}

/** Ours: the stored text of `text` written as a DECIMAL(18,8), or null when refused. */
async function ours(text: string): Promise<string | null> {
  const dv = new DataView(new ArrayBuffer(8));
  try {
    putDecimal18(dv, 0, text);
  } catch (e) {
    expect((e as Error).message).toMatch(/^Conversion Error: /);
    return null;
  }
  return unitsToString(dv.getBigInt64(0, true), 8);
}

describe("column-wise staging append", () => {
  it("stores a chunk's rows as DuckDB's casts of their text would, nulls and chunk boundaries included", async () => {
    const rows = Array.from({ length: 4100 }, (_, i) => ({
      id: i,
      price:
        i === 7
          ? "9999999999.99999999"
          : i === 8
            ? "-90000000.00000001"
            : `${61_707 + i}.${String(i % 100).padStart(2, "0")}`,
      maybe: i % 3 === 0 ? null : `0.${String(i).padStart(8, "0")}`,
      message_id: `0189${String(i).padStart(4, "0")}-aBcD-7000-8000-${String(i).padStart(12, "f")}`,
      note: i % 5 === 0 ? null : `n${i}`,
      tags: i % 2 ? [] : ["x"],
    }));
    const got = await roundTrip(rows);
    expect(got).toHaveLength(4100);
    for (const i of [0, 1, 7, 8, 2047, 2048, 2049, 4095, 4099]) {
      const src = rows[i];
      expect(got[i]).toEqual({
        id: String(i),
        price: await duckCast(src.price, "DECIMAL(18,8)"),
        maybe: src.maybe === null ? null : await duckCast(src.maybe, "DECIMAL(18,8)"),
        message_id: await duckCast(src.message_id, "UUID"),
        note: src.note,
        tags: src.tags.length ? '["x"]' : "[]",
      });
    }
  });

  it("writes every decimal text DuckDB casts exactly as DuckDB does, and refuses exponents, spaces and rounding", async () => {
    const digits = (min: number, max: number) =>
      fc.array(fc.integer({ min: 0, max: 9 }), { minLength: min, maxLength: max }).map((d) => d.join(""));
    const text = fc
      .tuple(fc.constantFrom("", "-", "+"), digits(0, 12), fc.boolean(), digits(0, 10))
      .map(([sign, int, dot, frac]) => `${sign}${int}${dot ? "." : ""}${dot ? frac : ""}`);
    const edge = fc.constantFrom(
      "0",
      "-0",
      "0.00000000",
      "89999999.99999999",
      "90000000.00000000",
      "90071992.54740991",
      "9999999999.99999999",
      "-9999999999.99999999",
      "10000000000",
      "1.000000000",
      "1.000000001",
      "00000000001.5",
      "1e5",
      " 1",
      ".",
      "",
      "1.",
      ".5",
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(text, edge), async (t) => {
        const mine = await ours(t);
        const duck = await duckCast(t, "DECIMAL(18,8)");
        // plain decimal text (sign, digits, a point): DuckDB's cast, or refused where DuckDB would round
        // away a non-zero 9th place; anything else (exponents, spaces) is refused
        const plain = /^[+-]?(\d+(\.\d*)?|\.\d+)$/.test(t);
        const rounds = /[1-9]/.test((t.split(".")[1] ?? "").slice(8));
        if (!plain || (rounds && duck !== null)) expect(mine).toBeNull();
        else expect(mine).toBe(duck);
      }),
      { numRuns: 300 },
    );
  });

  it("writes UUID text as DuckDB stores it and refuses what is not a UUID", async () => {
    const uuids = [
      "00000000-0000-0000-0000-000000000000",
      "ffffffff-ffff-ffff-ffff-ffffffffffff",
      "7fffffff-ffff-ffff-8000-000000000000",
      "80000000-0000-0000-7fff-ffffffffffff",
      "0189aBcD-ef01-7234-9567-89abcdef0123",
      "0189abcdef017234956789abcdef0123",
    ];
    const got = await roundTrip(
      uuids.map((u, i) => ({ id: i, price: "1", maybe: null, message_id: u, note: null, tags: [] })),
    );
    for (const [i, u] of uuids.entries()) expect(got[i].message_id).toBe(await duckCast(u, "UUID"));
    const dv = new DataView(new ArrayBuffer(16));
    for (const bad of [
      "",
      "0189abcd-ef01-7234-9567-89abcdef012",
      "0189abcd_ef01-7234-9567-89abcdef0123",
      "g189abcd-ef01-7234-9567-89abcdef0123",
      42,
    ]) {
      expect(() => putUuid(dv, 0, bad)).toThrow(/^Conversion Error: /);
    }
  });

  it("refuses a null in a NOT NULL column with a Conversion Error", async () => {
    await expect(
      roundTrip([
        {
          id: 1,
          price: null,
          maybe: null,
          message_id: "00000000-0000-0000-0000-000000000000",
          note: null,
          tags: [],
        },
      ]),
    ).rejects.toThrow(/^Conversion Error: /);
  });

  it("appends to a table's own BIGINT and JSON columns directly: exact integers, nulls, JSON checked", async () => {
    const columns: Column[] = [
      { name: "ts", type: "micros" },
      { name: "seq", type: "bigint", nullable: true },
      { name: "vendor_data", type: "string map" },
    ];
    const write = async (rows: object[]) => {
      await conn.run("DROP TABLE IF EXISTS d");
      await conn.run("CREATE TABLE d (ts BIGINT NOT NULL, seq BIGINT, vendor_data JSON NOT NULL)");
      const appender = await conn.createAppender("d");
      const append = compileChunkAppend(
        columns,
        (a) => DuckDBDataChunk.create(Array.from({ length: a.columnCount }, (_, i) => a.columnType(i))),
        "table",
      );
      append(appender, rows);
      appender.closeSync();
      const r = await conn.runAndReadAll(
        "SELECT ts::VARCHAR, seq::VARCHAR, vendor_data::VARCHAR FROM d ORDER BY rowid",
      );
      return r.getRows().map((x) => x.map((v) => (v === null ? null : String(v))));
    };
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            ts: fc.maxSafeInteger().filter((n) => n >= -Number.MAX_SAFE_INTEGER),
            seq: fc.option(fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), { nil: null }),
            vendor_data: fc.dictionary(fc.string(), fc.string()),
          }),
          { minLength: 1, maxLength: 3000 },
        ),
        async (rows) => {
          const got = await write(rows);
          expect(got).toEqual(
            rows.map((r) => [
              String(r.ts),
              r.seq === null ? null : String(r.seq),
              JSON.stringify(r.vendor_data),
            ]),
          );
        },
      ),
      { numRuns: 25 },
    );
    const i32 = new Int32Array(2);
    for (const bad of [1.5, Number.MAX_SAFE_INTEGER + 1, Number.NaN, "1", null]) {
      expect(() => putInt64(i32, 0, bad)).toThrow(/^Conversion Error: /);
    }
    // what a cast to JSON refuses (a lone surrogate) is refused here too, where there is no cast
    await expect(write([{ ts: 1, seq: null, vendor_data: { y: "\ud800" } }])).rejects.toThrow(
      /^Conversion Error: /,
    );
    expect(await write([{ ts: 1, seq: null, vendor_data: { y: "\ud83d\ude00" } }])).toEqual([
      ["1", null, '{"y":"😀"}'],
    ]);
  });
});
