/** Helpers shared by the loader tests: a fresh build of the CLI, spawning it, temp dirs, ZIPs. */
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import yazl from "yazl";

export const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const CLI = join(ROOT, "dist/src/cli.js");
export const DATA = resolve(ROOT, "../shared/data");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Builds dist/ (tsc) when the loader command is missing from it or older than src/. */
export function ensureBuilt(): void {
  const load = join(ROOT, "dist/src/commands/load.js");
  if (existsSync(CLI) && existsSync(load) && statSync(load).mtimeMs >= newestMtime(join(ROOT, "src"))) return;
  execFileSync(
    process.execPath,
    [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.build.json"],
    {
      cwd: ROOT,
      stdio: "inherit",
    },
  );
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/src/cli.js ...args` to completion (stdin closed). */
export function runCli(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, K2_LOG_LEVEL: "warn" },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => {
      stdout += c;
    });
    child.stderr.on("data", (c) => {
      stderr += c;
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`k2 ${args.join(" ")} timed out; stderr: ${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** The last stdout line as JSON (the summary line). */
export function summaryOf(r: CliResult): Record<string, unknown> {
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

/** A fresh temp directory. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `k2-${prefix}-`));
}

/** Writes a ZIP holding `entries` (name → file on disk), deflated. */
export function writeZip(zipPath: string, entries: Record<string, string>): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const zip = new yazl.ZipFile();
    for (const [name, file] of Object.entries(entries)) zip.addFile(file, name, { compress: true });
    const out = createWriteStream(zipPath);
    out.on("close", () => resolvePromise());
    out.on("error", reject);
    zip.outputStream.pipe(out);
    zip.end();
  });
}
