import { describe, expect, it } from "vitest";
import { ConfigError, resolveRunConfig } from "../../src/config.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { createStore, parseStoreSpec, redactUrl, StoreSpecError } from "../../src/store/index.js";
import { PostgresStore } from "../../src/store/postgres.js";

describe("--db store spec", () => {
  it.each([
    ["k2.duckdb", { kind: "duckdb", path: "k2.duckdb" }],
    ["/tmp/x/k2.duckdb", { kind: "duckdb", path: "/tmp/x/k2.duckdb" }],
    ["duckdb:/tmp/k2.duckdb", { kind: "duckdb", path: "/tmp/k2.duckdb" }],
    [":memory:", { kind: "duckdb", path: ":memory:" }],
    ["duckdb::memory:", { kind: "duckdb", path: ":memory:" }],
  ])("%s is DuckDB", (spec, expected) => {
    expect(parseStoreSpec(spec)).toEqual(expected);
    expect(createStore(spec)).toBeInstanceOf(DuckDBStore);
  });

  it.each([
    ["postgres://postgres@127.0.0.1:5432/test", undefined],
    ["postgresql://u:pw@db.internal/k2?sslmode=require", undefined],
    ["postgres://postgres@127.0.0.1/test?max=25", 25],
  ])("%s is PostgreSQL", (spec, max) => {
    expect(parseStoreSpec(spec)).toMatchObject({ kind: "postgres", url: spec, max });
    expect(createStore(spec)).toBeInstanceOf(PostgresStore);
  });

  it.each([
    ["", /^--db: empty value/],
    ["   ", /^--db: empty value/],
    ["duckdb:", /^--db: "duckdb:" needs a path/],
    ["mysql://h/db", /^--db: unsupported store "mysql:\/\/"/],
    ["kafka://h:9092", /^--db: unsupported store "kafka:\/\/"/],
    ["postgres://h:5432", /^--db: PostgreSQL URL names no database/],
    ["postgres://[::1/db", /^--db: not a valid PostgreSQL URL/],
    ["postgres://h/db?max=0", /^--db: max \(pool size\) must be an integer from 1 to 1000, got "0"/],
    ["postgres://h/db?max=x", /^--db: max \(pool size\)/],
  ])("rejects %j", (spec, message) => {
    expect(() => parseStoreSpec(spec)).toThrowError(StoreSpecError);
    expect(() => parseStoreSpec(spec)).toThrowError(message);
  });

  it("never shows a password in a message", () => {
    expect(redactUrl("postgres://k2:s3cret@h:5432/db")).toBe("postgres://k2:***@h:5432/db");
    expect(() => parseStoreSpec("postgres://k2:s3cret@h:5432")).toThrowError(/k2:\*\*\*@h/);
    expect(() => parseStoreSpec("postgres://k2:s3cret@h:5432")).not.toThrowError(/s3cret/);
  });

  it("k2 run configuration accepts a PostgreSQL URL and names --db for a bad value", () => {
    expect(resolveRunConfig({ db: "postgres://postgres@127.0.0.1:5432/test" }, {}).db).toBe(
      "postgres://postgres@127.0.0.1:5432/test",
    );
    expect(resolveRunConfig({}, { K2_DB: "duckdb:/tmp/a.duckdb" }).db).toBe("duckdb:/tmp/a.duckdb");
    expect(() => resolveRunConfig({ db: "redis://127.0.0.1:6379" }, {})).toThrowError(ConfigError);
    expect(() => resolveRunConfig({ db: "redis://127.0.0.1:6379" }, {})).toThrowError(/^--db: /);
  });
});
