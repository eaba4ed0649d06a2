/**
 * scripts/doc-check.mjs: the checkout's own docs pass (without the replay run, which `npm run
 * doc-check` does), and a README seeded with one of each mistake fails naming each of them.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const repo = resolve(import.meta.dirname, "../..");
const script = join(repo, "scripts", "doc-check.mjs");

const dirs: string[] = [];
const cacheDir = mkdtempSync(join(tmpdir(), "k2-doc-check-cache-"));
dirs.push(cacheDir);

/** Runs the script without the quick-start replay; the second run reuses the first's `--help` texts. */
function docCheck(env: Record<string, string> = {}): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [script, "--no-run"], {
    cwd: repo,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...process.env, DOC_CHECK_HELP_CACHE: join(cacheDir, "help.json"), ...env },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("doc-check", () => {
  it("passes on this checkout's README.md and docs/", { timeout: 120_000 }, () => {
    const r = docCheck();
    expect(r.out).toContain("all commands, paths and links check out");
    expect(r.status).toBe(0);
  });

  it("names each bad command, flag, path, link and anchor", { timeout: 120_000 }, () => {
    // a checkout-shaped folder: ../shared resolves as from the repository, src/ is the real one
    const parent = mkdtempSync(join(tmpdir(), "k2-doc-check-test-"));
    dirs.push(parent);
    const root = join(parent, "repo");
    mkdirSync(join(root, "docs"), { recursive: true });
    symlinkSync(join(repo, "src"), join(root, "src"));
    symlinkSync(resolve(repo, "../shared"), join(parent, "shared"));
    const fence = "```";
    writeFileSync(
      join(root, "README.md"),
      [
        "# T",
        "",
        "## Good heading",
        "",
        `${fence}bash`,
        "./k2 run --replay ../shared/data/binance-spot/btcusdt_20240808.gz --speed max --exit-at-end",
        "./k2 run --bogus-flag 1 --replay ../shared/data/binance-spot/nope.gz",
        "npm run k2 -- query --db /tmp/x.duckdb --colour red 'SELECT 1'",
        "./k2 frobnicate --db x",
        "./k2 load csv f.csv --mapping m.json --db x",
        "./k2 load parquet f.parquet",
        "npm start -- --speedy 2 \\",
        "  --symbols BTCUSDT",
        "./k2 run --not-a-flag   # doc-check: skip (an example of a skipped line)",
        "D=../shared/data/cryptofeed",
        "./k2 run --replay $D/BINANCE.jsonl.gz,$D/MISSING.jsonl.gz --exit-at-end",
        fence,
        "",
        "See `src/pipeline.ts`, `src/nowhere/gone.ts`, `src/venues/<venue>.ts`, [ok](#good-heading),",
        "[a](docs/A.md#there), [b](docs/A.md#not-there), [c](docs/MISSING.md), [web](https://example.com/x).",
        "",
        "| `src/serve/` | `http.ts`, `nope.ts` |",
        "| `k2 run [--db PATH] [--speed 1\\|max] [--nope N]` | `k2 load csv FILE --mapping M.json`, `k2 <command> --help` |",
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(root, "docs", "A.md"),
      "# A\n\n## There\n\nBack to the [README](../README.md#nope).\n",
    );
    const r = docCheck({ DOC_CHECK_ROOT: root });
    expect(r.status).toBe(1);
    const lines = r.out.split("\n");
    const has = (s: string) =>
      expect(
        lines.some((l) => l.includes(s)),
        `${s}\n${r.out}`,
      ).toBe(true);
    has("README.md:7: k2 run: no flag --bogus-flag in its --help");
    has("README.md:7: no such file: ../shared/data/binance-spot/nope.gz");
    has("README.md:8: k2 query: no flag --colour in its --help");
    has('README.md:9: k2 has no command "frobnicate"');
    has('README.md:11: k2 load has no command "parquet"');
    has("README.md:12: k2 run: no flag --speedy in its --help");
    has("README.md:16: no such file: ../shared/data/cryptofeed/MISSING.jsonl.gz");
    has("README.md:19: no such path: src/nowhere/gone.ts");
    has("README.md:20: broken anchor: docs/A.md#not-there");
    has("README.md:20: broken link: docs/MISSING.md");
    has("docs/A.md:5: broken anchor: ../README.md#nope");
    has("README.md:22: no such path: src/serve/nope.ts");
    has("README.md:23: k2 run: no flag --nope in its --help");
    // the good lines, the skipped line and the placeholder path raise nothing
    expect(r.out).not.toContain("README.md:6:");
    expect(r.out).not.toContain("README.md:10:");
    expect(r.out).not.toContain("--not-a-flag");
    expect(r.out).not.toContain("BINANCE.jsonl.gz");
    expect(r.out).not.toContain("<venue>");
    expect(r.out).not.toContain("src/pipeline.ts");
    expect(r.out).not.toContain("http.ts");
    expect(r.out).toContain("doc-check: 13 problem(s) in 2 files");
  });
});
