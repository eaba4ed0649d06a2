/**
 * SQL derived from the table catalogue (`src/schema/tables.ts`) for both stores: column types per
 * dialect, CREATE TABLE and ADD COLUMN statements, column lists, SELECT lists and the row mappers that
 * turn a JSON-safe row (DECIMAL and BIGINT as strings, see {@link Row}) back into a record.
 *
 * Identifiers come from the catalogue only (checked against `[a-z_][a-z0-9_]*`), never from a request.
 */
import { decimalToScaledUnits, unitsToString } from "../schema/decimal.js";
import type { Column, LogicalType, Table } from "../schema/tables.js";
import type { Row } from "./store.js";

/** The SQL dialect of a store. */
export type Dialect = "duckdb" | "postgres";

/** Column names that are SQL keywords and must be quoted. */
const RESERVED = new Set(["timestamp", "interval"]);

/** A column name as SQL: quoted when it is a keyword (`"timestamp"`). */
export function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a catalogue identifier: ${name}`);
  return RESERVED.has(name) ? `"${name}"` : name;
}

const SQL_TYPES: Record<Dialect, Record<LogicalType, string>> = {
  duckdb: {
    uuid: "UUID",
    text: "VARCHAR",
    "decimal(18,8)": "DECIMAL(18,8)",
    "decimal(38,8)": "DECIMAL(38,8)",
    "decimal(38,16)": "DECIMAL(38,16)",
    micros: "BIGINT",
    bigint: "BIGINT",
    "text[]": "VARCHAR[]",
    "string map": "JSON",
    boolean: "BOOLEAN",
    levels: "JSON",
  },
  postgres: {
    uuid: "UUID",
    text: "TEXT",
    "decimal(18,8)": "NUMERIC(18,8)",
    "decimal(38,8)": "NUMERIC(38,8)",
    "decimal(38,16)": "NUMERIC(38,16)",
    micros: "BIGINT",
    bigint: "BIGINT",
    "text[]": "TEXT[]",
    "string map": "JSONB",
    boolean: "BOOLEAN",
    levels: "JSONB",
  },
};

/** SQL type of a column in `dialect` (`DECIMAL(18,8)` / `NUMERIC(18,8)`, `JSON` / `JSONB` …). */
export function sqlType(col: Column, dialect: Dialect): string {
  return SQL_TYPES[dialect][col.type];
}

/** The columns a table is created with (those added later by a migration excluded). */
export function baseColumns(table: Table): readonly Column[] {
  return table.columns.filter((c) => c.addedIn === undefined);
}

/**
 * `CREATE TABLE IF NOT EXISTS` of a table's base columns, in catalogue order.
 * @param opts.key the primary key (default the catalogue's; null for none)
 * @param opts.suffix text after the closing parenthesis (e.g. PostgreSQL's `PARTITION BY …`)
 */
export function createTableSql(
  table: Table,
  dialect: Dialect,
  opts: { key?: readonly string[] | null; suffix?: string } = {},
): string {
  const lines = baseColumns(table).map(
    (c) => `  ${ident(c.name)} ${sqlType(c, dialect)}${c.nullable ? "" : " NOT NULL"}`,
  );
  const key = opts.key === undefined ? table.key : opts.key;
  if (key) lines.push(`  PRIMARY KEY (${key.map(ident).join(", ")})`);
  return `CREATE TABLE IF NOT EXISTS ${table.name} (\n${lines.join(",\n")})${opts.suffix ?? ""}`;
}

/** A SQL literal of a column default. */
function literal(v: string | number): string {
  return typeof v === "number" ? String(v) : `'${v.replace(/'/g, "''")}'`;
}

/**
 * `ALTER TABLE … ADD COLUMN IF NOT EXISTS` of a column added after its table's creation, with its
 * default for the rows already held. DuckDB cannot add a column with a NOT NULL constraint: there the
 * column is left nullable (the store always writes a value).
 */
export function addColumnSql(table: Table, col: Column, dialect: Dialect): string {
  const notNull = !col.nullable && dialect === "postgres" ? " NOT NULL" : "";
  const dflt = col.default === undefined ? "" : ` DEFAULT ${literal(col.default)}`;
  return `ALTER TABLE ${table.name} ADD COLUMN IF NOT EXISTS ${ident(col.name)} ${sqlType(col, dialect)}${notNull}${dflt}`;
}

/** Every ADD COLUMN of `table` (or of the columns added by one migration `version`). */
export function addedColumnsSql(table: Table, dialect: Dialect, version?: number): string[] {
  return table.columns
    .filter((c) => c.addedIn !== undefined && (version === undefined || c.addedIn === version))
    .map((c) => addColumnSql(table, c, dialect));
}

/** The table's unique key as a SQL column list. */
export function keyList(table: Table): string {
  return table.key.map(ident).join(", ");
}

/** `col = excluded.col, …` for every column outside the table's key (an upsert replacing the row). */
export function setNonKeyColumns(table: Table): string {
  return table.columns
    .filter((c) => !table.key.includes(c.name))
    .map((c) => `${ident(c.name)} = excluded.${ident(c.name)}`)
    .join(", ");
}

/** Comma-separated column names (quoted where needed), optionally prefixed (`s.`). */
export function columnList(columns: readonly Column[], prefix = ""): string {
  return columns.map((c) => `${prefix}${ident(c.name)}`).join(", ");
}

/** The columns the typed reads return (those not marked `read: false`). */
export function readColumns(table: Table): readonly Column[] {
  return table.columns.filter((c) => c.read !== false);
}

/**
 * SELECT list of a table's read columns, as both stores accept it: UUIDs and JSON as text
 * (`message_id::VARCHAR AS message_id`), the rest as stored.
 */
export function selectList(table: Table): string {
  return readColumns(table)
    .map((c) =>
      c.type === "uuid" || c.type === "string map" || c.type === "levels"
        ? `${ident(c.name)}::VARCHAR AS ${c.name}`
        : ident(c.name),
    )
    .join(", ");
}

/** A DECIMAL value read back (exact text) as its canonical string with `scale` places. */
function decimalOf(scale: number): (v: unknown) => string {
  return (v) => unitsToString(decimalToScaledUnits(String(v), scale), scale);
}

const FROM_ROW: Record<LogicalType, (v: unknown) => unknown> = {
  uuid: String,
  text: String,
  "decimal(18,8)": decimalOf(8),
  "decimal(38,8)": decimalOf(8),
  "decimal(38,16)": decimalOf(16),
  micros: Number,
  bigint: Number,
  "text[]": (v) => v ?? [],
  "string map": (v) => (typeof v === "string" ? JSON.parse(v) : (v ?? {})),
  boolean: Boolean,
  // JSON text of [price, quantity] string pairs, written canonical (levelsJson)
  levels: (v) => (typeof v === "string" ? JSON.parse(v) : (v ?? [])),
};

/**
 * JSON text of order-book levels as stored (`[["61707.68000000","0.50000000"],…]`): the canonical
 * DECIMAL(18,8) strings as they are, so reading them back gives the same strings.
 */
export function levelsJson(levels: readonly (readonly [string, string])[]): string {
  return JSON.stringify(levels);
}

/**
 * The row mapper of a table's read columns: a row of {@link selectList} (DECIMAL and BIGINT as exact
 * strings or numbers, JSON as text or object) → the record, its properties in catalogue order, decimals
 * as canonical strings, integers as numbers, null where the column is null.
 */
export function rowMapper<T>(table: Table): (r: Row) => T {
  const cols = readColumns(table).map((c) => [c.name, FROM_ROW[c.type], c.nullable === true] as const);
  return (r) => {
    const out: Record<string, unknown> = {};
    for (const [name, from, nullable] of cols) {
      const v = r[name];
      out[name] = nullable && (v === null || v === undefined) ? null : from(v);
    }
    return out as T;
  };
}

/** What {@link compileRowLoop} generates. */
export interface RowLoopSpec {
  /** Parameters of the generated function; one of them must be `records`. */
  params: string[];
  /** Statements before the loop. */
  head?: string;
  /** The statement(s) for one column; `value` is the JS expression of the record's value. */
  column(value: string, col: Column, index: number): string;
  /** Statements after each record's columns. */
  rowEnd?: string;
  /** Statements after the loop (e.g. `return …`). */
  tail?: string;
  /** Names and values the generated code may use. */
  helpers?: Record<string, unknown>;
}

/**
 * The JS expression of column `col`'s value in the record named `record` of generated code: the
 * property read by its literal name, or the column's default (else null) when the record lacks a column
 * added after its table's creation.
 */
export function valueExpression(col: Column, record: string): string {
  const read = `${record}.${ident(col.name).replace(/"/g, "")}`;
  return col.addedIn === undefined
    ? read
    : `(${read} === undefined ? ${col.default === undefined ? "null" : JSON.stringify(col.default)} : ${read})`;
}

/**
 * Compiles a function that runs `spec.column(value, column, i)` for every column of every one of
 * `records`. The generated code reads each property by its literal name, so the write path stays as
 * fast as hand-written code. `value` applies the column's default when the record lacks an added column.
 */
export function compileRowLoop<F>(columns: readonly Column[], spec: RowLoopSpec): F {
  const body = columns.map((c, i) => spec.column(valueExpression(c, "r"), c, i)).join("\n      ");
  const src = `${spec.head ?? ""}
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      ${body}
      ${spec.rowEnd ?? ""}
    }
    ${spec.tail ?? ""}`;
  const helpers = spec.helpers ?? {};
  const names = Object.keys(helpers);
  // code built from the catalogue's checked identifiers only, never from a record or request
  const make = new Function(...names, `return function (${spec.params.join(", ")}) {\n${src}\n};`);
  return make(...names.map((n) => helpers[n])) as F;
}
