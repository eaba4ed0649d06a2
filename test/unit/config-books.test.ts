/** `--book-depth`, `--book-interval`, `--store-book-changes`: defaults, env, errors naming the flag. */
import { describe, expect, it } from "vitest";
import { ConfigError, type RunFlags, resolveRunConfig } from "../../src/config.js";

const resolve = (flags: RunFlags, env: NodeJS.ProcessEnv = {}) => resolveRunConfig(flags, env);

describe("order-book storage configuration", () => {
  it("defaults: top 10 every second, book changes not stored", () => {
    expect(resolve({})).toMatchObject({
      storeBookChanges: false,
      bookSnapshots: { depth: 10, intervalUs: 1_000_000 },
    });
  });

  it("takes flags over the environment; intervals in ms, s or m", () => {
    const env = { K2_BOOK_DEPTH: "20", K2_BOOK_INTERVAL: "250ms", K2_STORE_BOOK_CHANGES: "1" };
    expect(resolve({}, env)).toMatchObject({
      storeBookChanges: true,
      bookSnapshots: { depth: 20, intervalUs: 250_000 },
    });
    expect(resolve({ bookDepth: "1", bookInterval: "1m", storeBookChanges: false }, env)).toMatchObject({
      storeBookChanges: false,
      bookSnapshots: { depth: 1, intervalUs: 60_000_000 },
    });
  });

  it.each([
    [{ bookDepth: "0" }, /^--book-depth: expected an integer from 1 to 1000, got "0"$/],
    [{ bookDepth: "10.5" }, /^--book-depth: expected an integer from 1 to 1000, got "10.5"$/],
    [{ bookInterval: "1" }, /^--book-interval: expected a duration from 10ms to 60m .*got "1"$/],
    [{ bookInterval: "5ms" }, /^--book-interval: .*got "5ms"$/],
    [{ bookInterval: "2h" }, /^--book-interval: .*got "2h"$/],
    [{ bookInterval: "61m" }, /^--book-interval: .*got "61m"$/],
  ] as [RunFlags, RegExp][])("refuses %o naming the flag", (flags, message) => {
    expect(() => resolve(flags)).toThrow(ConfigError);
    expect(() => resolve(flags)).toThrow(message);
  });
});
