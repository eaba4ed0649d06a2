/**
 * Test helper: runs the built CLI (`node dist/src/cli.js run ...`) as a real process on loopback and
 * finds its HTTP port in the pino log line `"msg":"http listening on http://127.0.0.1:PORT"`.
 * Build first (`npm run build`; `npm test` does).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "dist/src/cli.js");
export const DATA = resolve(ROOT, "../shared/data");

/** A running `k2 run`. */
export interface K2Process {
  child: ChildProcess;
  /** `http://127.0.0.1:PORT` */
  baseUrl: string;
  /** Everything written on stderr so far (pino JSON lines). */
  stderr(): string;
  /** SIGTERM, wait for exit (SIGKILL after 15 s), remove the temp directory. */
  stop(): Promise<number | null>;
}

/** Starts `k2 run` with `args` (plus `--http-port 0 --db <temp>`), resolving once HTTP listens. */
export async function startK2Run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<K2Process> {
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run \`npm run build\` first`);
  const dir = mkdtempSync(join(tmpdir(), "k2-serve-test-"));
  const child = spawn(
    process.execPath,
    [CLI, "run", "--http-port", "0", "--db", join(dir, "k2.duckdb"), ...args],
    { cwd: ROOT, env: { ...process.env, K2_LOG_LEVEL: "info", ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let err = "";
  child.stdout?.resume();
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const baseUrl = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`k2 run did not listen in 30 s:\n${err}`)), 30_000);
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString("utf8");
      const m = /"msg":"http listening on (http:\/\/127\.0\.0\.1:\d+)"/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`k2 run exited with ${code}:\n${err}`));
    });
  });
  return {
    child,
    baseUrl,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
      const code = await exited;
      clearTimeout(kill);
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** GET `url` and parse the JSON body. */
export async function getJson<T = unknown>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as T };
}

/** Polls `check` every 100 ms until it returns true, failing after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 45_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
