/**
 * `npm run soak` shrunk to a few seconds (`node dist/bench/soak.js --minutes 0.2 --clients 5`): k2 on the
 * looped capture with drops (lost frames) and garbage, gateway clients subscribed. The report holds
 * what the tool promises: the identity stored == received − dead-lettered + backfilled for trades and
 * quotes, trade ids contiguous from the capture's first, the lost trades backfilled, samples of RSS and
 * fds, clients' messages in order; the temporary capture and database are removed. A bad option exits 2.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { tempDir } from "../helpers/cli.js";

const SOAK = fileURLToPath(new URL("../../dist/bench/soak.js", import.meta.url));

function runSoak(args: string[], timeoutMs = 90_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [SOAK, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`soak timed out\n${stderr.slice(-3000)}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const soakDirs = () => readdirSync(tmpdir()).filter((d) => d.startsWith("k2-soak-"));

describe("npm run soak (shrunk)", () => {
  it("reports the identity, contiguous ids, backfilled losses, RSS/fd samples and ordered client messages", async () => {
    const out = `${tempDir()}/soak.json`;
    const before = new Set(soakDirs());
    const r = await runSoak([
      "--minutes",
      "0.2",
      "--speed",
      "20",
      "--clients",
      "5",
      "--faults",
      "drop-every=2000:lost=100,garbage=0.002",
      "--sample-s",
      "1",
      "--out",
      out,
    ]);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const line = JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}");
    const file = JSON.parse(readFileSync(out, "utf8"));
    expect(file.ok).toBe(true);
    expect(file.series.length).toBe(file.samples);
    expect(line).toMatchObject({ bench: "soak", ok: true, ended_by: "duration", speed: 20 });
    const { trades, quotes, faults_injected: f } = line;
    expect(f.drops).toBeGreaterThanOrEqual(1);
    expect(f.frames_lost).toBe(f.drops * 100);
    expect(trades.identity_ok).toBe(true);
    expect(trades.stored).toBe(trades.received - trades.dead_lettered + trades.backfilled);
    expect(trades.ids_contiguous).toBe(true);
    expect(trades.first_id).toBe(3735683259);
    expect(trades.last_id - trades.first_id + 1).toBe(trades.stored);
    // every lost trade followed by a received one is a gap, filled from the REST emulation
    expect(trades.backfilled).toBeGreaterThan(0);
    expect(trades.backfilled).toBeLessThanOrEqual(trades.lost_by_faults);
    expect(trades.gaps_filled).toBe(trades.gaps);
    expect(quotes.identity_ok).toBe(true);
    expect(quotes.stored).toBeGreaterThan(0);
    expect(line.dead_letters).toBe(f.garbage_frames);
    expect(line.samples).toBeGreaterThanOrEqual(5);
    expect(line.rss_mb.first).toBeGreaterThan(10);
    expect(line.rss_mb.peak).toBeGreaterThanOrEqual(line.rss_mb.last);
    expect(line.fds.first).toBeGreaterThan(3);
    expect(line.clients.trades).toBeGreaterThan(0);
    expect(line.clients.per_client_min).toBeGreaterThan(0);
    expect(line.clients.ordering_violations).toBe(0);
    expect(line.k2_exit_code).toBe(0);
    expect(r.stderr).toMatch(/trades stored\s+\d+ {2}identity OK/);
    // the looped capture and the database went with the soak's temporary directory
    expect(soakDirs().filter((d) => !before.has(d))).toEqual([]);
    expect(existsSync(out)).toBe(true);
  });

  it("exits 2 naming the flag on a bad option", async () => {
    const r = await runSoak(["--minutes", "soon"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--minutes: expected a number/);
    const u = await runSoak(["--clients"]);
    expect(u.code).toBe(2);
    expect(u.stderr).toMatch(/missing value: --clients/);
  });
});
