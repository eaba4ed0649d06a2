/** Runs the built CLI (`node dist/src/cli.js`) as a child process, as a user would. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../../dist/src/cli.js", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `k2 ...args` to completion. */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, K2_LOG_LEVEL: "info", ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`k2 ${args.join(" ")} timed out\n${stderr.slice(-2000)}`));
    }, opts.timeoutMs ?? 120_000);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running `k2` child with its output collected. */
export interface RunningCli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the port from the `http listening on http://127.0.0.1:PORT` log line. */
  httpPort: Promise<number>;
  exited: Promise<CliResult>;
}

/**
 * Starts `k2 ...args` in the background. `detached`: in a process group of its own, as a shell starts a
 * foreground job (signal the group with `process.kill(-pid, …)`, as a terminal's Ctrl-C does).
 */
export function startCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; detached?: boolean } = {},
): RunningCli {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, K2_LOG_LEVEL: "info", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: opts.detached ?? false,
  });
  let stdout = "";
  let stderr = "";
  let portResolve: (p: number) => void;
  let portReject: (e: Error) => void;
  const httpPort = new Promise<number>((res, rej) => {
    portResolve = res;
    portReject = rej;
  });
  // a test that stops k2 before it listens never awaits this: its rejection is not an unhandled error
  httpPort.catch(() => undefined);
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => {
    stderr += d;
    const m = /http listening on http:\/\/[^:]+:(\d+)/.exec(stderr);
    if (m) portResolve(Number(m[1]));
  });
  const exited = new Promise<CliResult>((resolve) => {
    child.on("exit", (code, signal) => {
      portReject(new Error(`k2 exited (${code ?? signal}) before listening:\n${stderr.slice(-2000)}`));
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, httpPort, exited };
}

/** The last non-empty stdout line parsed as JSON (the `--exit-at-end` summary). */
export function lastJsonLine(stdout: string): Record<string, number | string> {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** Folders made by {@link tempDir} in this process, removed at its exit. */
const madeDirs: string[] = [];

/** A fresh temporary directory, removed when the test process (one per test file) exits. */
export function tempDir(prefix = "k2-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (madeDirs.length === 0) {
    // each test file runs in its own process: its folders go when it exits
    process.once("exit", () => {
      for (const d of madeDirs) rmSync(d, { recursive: true, force: true });
    });
  }
  madeDirs.push(dir);
  return dir;
}

/**
 * `condition`, after printing why the test is skipped when it is true (a skip must say why in the
 * suite's output): `it.skipIf(skipping(!x, "why"))(...)`.
 */
export function skipping(condition: boolean, reason: string): boolean {
  if (condition) console.warn(`skipped: ${reason}`);
  return condition;
}

/** `k2 query --format json` rows. */
export async function query(db: string, sql: string): Promise<Record<string, string | null>[]> {
  const r = await runCli(["query", "--db", db, "--format", "json", sql]);
  if (r.code !== 0) throw new Error(`query failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
