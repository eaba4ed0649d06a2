/** `K2_REPLAY_MAX_RANGE` and `K2_REPLAY_MAX_RECORDS`: a value for every token, then per-token pairs. */
import { describe, expect, it } from "vitest";
import { replayLimitOf, replayRecordsOf, resolveGatewayConfig } from "../../src/serve/ws/config.js";

describe("replay limits per token", () => {
  it("reads a count for every token and token=count pairs, the pair winning for its token", () => {
    const c = resolveGatewayConfig({ K2_REPLAY_MAX_RECORDS: "500000,research-token=0,small-token=1000" });
    expect(replayRecordsOf(c.replayMaxRecords, null)).toBe(500_000);
    expect(replayRecordsOf(c.replayMaxRecords, "other-token")).toBe(500_000);
    expect(replayRecordsOf(c.replayMaxRecords, "research-token")).toBe(0);
    expect(replayRecordsOf(c.replayMaxRecords, "small-token")).toBe(1000);
    const r = resolveGatewayConfig({ K2_REPLAY_MAX_RANGE: "24h,small-token=30m" });
    expect(replayLimitOf(r.replayMaxRange, null)).toBe(86_400_000_000);
    expect(replayLimitOf(r.replayMaxRange, "small-token")).toBe(1_800_000_000);
  });

  it("defaults to no limit", () => {
    const c = resolveGatewayConfig({});
    expect(replayRecordsOf(c.replayMaxRecords, "any-token-1")).toBe(0);
    expect(replayLimitOf(c.replayMaxRange, null)).toBe(0);
  });

  it("names the variable on a bad value", () => {
    expect(() => resolveGatewayConfig({ K2_REPLAY_MAX_RECORDS: "lots" })).toThrow(
      'K2_REPLAY_MAX_RECORDS: expected a number of records such as 1000000, got "lots"',
    );
    expect(() => resolveGatewayConfig({ K2_REPLAY_MAX_RECORDS: "10,t0ken-abc=-1" })).toThrow(
      /^K2_REPLAY_MAX_RECORDS: /,
    );
    expect(() => resolveGatewayConfig({ K2_REPLAY_MAX_RANGE: "1w" })).toThrow(/^K2_REPLAY_MAX_RANGE: /);
  });
});
