/** `--rest-url` / `K2_REST_URL` and `--no-backfill`: validated at start, errors naming the flag. */
import { describe, expect, it } from "vitest";
import { ConfigError, resolveRunConfig } from "../../src/config.js";

const run = (flags: Parameters<typeof resolveRunConfig>[0], env: NodeJS.ProcessEnv = {}) =>
  resolveRunConfig(flags, env);
const err = (flags: Parameters<typeof resolveRunConfig>[0]) => {
  try {
    run(flags);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("no ConfigError");
};

describe("backfill configuration", () => {
  it("defaults to the venue's REST API (null per feed) with backfill on", () => {
    expect(run({})).toMatchObject({ restUrls: [null], backfill: true });
    expect(run({ backfill: false }).backfill).toBe(false);
  });

  it("takes one URL, or one per exchange in --exchange order, from the flag or K2_REST_URL", () => {
    expect(run({ restUrl: "http://127.0.0.1:9000" }).restUrls).toEqual(["http://127.0.0.1:9000"]);
    expect(run({}, { K2_REST_URL: "https://api.binance.us" }).restUrls).toEqual(["https://api.binance.us"]);
    expect(
      run({ exchange: "binance,coinbase", restUrl: "http://127.0.0.1:1,https://api.coinbase.com" }).restUrls,
    ).toEqual(["http://127.0.0.1:1", "https://api.coinbase.com"]);
  });

  it("rejects a URL that is not http(s) and a count that does not match the exchanges", () => {
    expect(err({ restUrl: "ws://127.0.0.1:1" })).toMatch(
      /^--rest-url: expected an http:\/\/ or https:\/\/ URL/,
    );
    expect(err({ exchange: "binance,kraken", restUrl: "http://127.0.0.1:1" })).toMatch(
      /^--rest-url: 2 exchanges need 2 URLs/,
    );
  });
});
