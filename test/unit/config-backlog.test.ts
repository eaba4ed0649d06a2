/** `--max-backlog`, `--backlog-policy`, `--journal-dir`, `--shutdown-timeout`: defaults, env, errors naming the flag. */
import { describe, expect, it } from "vitest";
import { ConfigError, type RunFlags, resolveRunConfig } from "../../src/config.js";

const resolve = (flags: RunFlags, env: NodeJS.ProcessEnv = {}) => resolveRunConfig(flags, env);

describe("backlog and shutdown configuration", () => {
  it("defaults: 200,000 records, spill, a journal next to the DuckDB file, 30 s", () => {
    const c = resolve({ db: "/data/k2.duckdb" });
    expect(c).toMatchObject({
      maxBacklog: 200_000,
      backlogPolicy: "spill",
      journalDir: "/data/k2.duckdb.journal",
      shutdownTimeoutMs: 30_000,
    });
    expect(resolve({ db: "postgres://k2@127.0.0.1:5432/k2" }).journalDir).toBe("k2-journal");
    expect(resolve({ db: ":memory:" }).journalDir).toBe("k2-journal");
  });

  it("takes flags over the environment", () => {
    const env = {
      K2_MAX_BACKLOG: "5000",
      K2_BACKLOG_POLICY: "block",
      K2_JOURNAL_DIR: "/j",
      K2_SHUTDOWN_TIMEOUT: "2.5",
    };
    expect(resolve({}, env)).toMatchObject({
      maxBacklog: 5000,
      backlogPolicy: "block",
      journalDir: "/j",
      shutdownTimeoutMs: 2500,
    });
    expect(resolve({ maxBacklog: "9000", backlogPolicy: "spill", shutdownTimeout: "10" }, env)).toMatchObject(
      { maxBacklog: 9000, backlogPolicy: "spill", shutdownTimeoutMs: 10_000 },
    );
  });

  it.each([
    [{ maxBacklog: "10" }, /^--max-backlog: expected an integer from 1000 to 100000000, got "10"$/],
    [{ backlogPolicy: "drop" }, /^--backlog-policy: expected block or spill, got "drop"$/],
    [{ shutdownTimeout: "soon" }, /^--shutdown-timeout: expected seconds from 0.1 to 3600/],
    [{ shutdownTimeout: "0" }, /^--shutdown-timeout: expected seconds/],
    [{ journalDir: " " }, /^--journal-dir: empty value$/],
  ])("rejects %j with a ConfigError naming the flag", (flags, message) => {
    expect(() => resolve(flags)).toThrow(ConfigError);
    expect(() => resolve(flags)).toThrow(message);
  });
});
