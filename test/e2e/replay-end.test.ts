/**
 * The end of a replay says so (the built CLI, as a newcomer runs it): one log line
 * `replay finished: 37,797 frames in 0.9 s; still serving on http://…` with the recording's frame count
 * (the `../shared/data/README.md` table), `/health` 503 with the reason once no more data is arriving
 * (the stored figures still on `/api/v1/status`), and the pace: `k2 run --replay FILE` plays at the
 * recorded pace unless `--speed` is given, an `--exit-at-end` batch run at `max`.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readCryptofeed } from "../../src/replay/cryptofeed.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, type RunningCli, runCli, startCli, tempDir } from "../helpers/cli.js";
import { expectedFigures } from "../helpers/expected.js";
import { waitFor } from "../helpers/run.js";

const FINISHED = /replay finished: ([\d,]+) frames in (\d+\.\d) s; (.*)$/;

/** The JSON log lines of a k2 child's stderr. */
function logLines(stderr: string): { msg: string; [k: string]: unknown }[] {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l));
}

/** The `replay finished: …` log line, parsed; null until it is there. */
function finishedLine(stderr: string): { frames: number; seconds: number; next: string } | null {
  for (const l of logLines(stderr)) {
    const m = FINISHED.exec(l.msg);
    if (m) return { frames: Number(m[1].replace(/,/g, "")), seconds: Number(m[2]), next: m[3] };
  }
  return null;
}

/** `speed` of the `replay server started` log line. */
function replaySpeed(stderr: string): unknown {
  return logLines(stderr).find((l) => l.msg === "replay server started")?.speed;
}

const running: RunningCli[] = [];
afterEach(async () => {
  for (const k2 of running.splice(0)) if (k2.child.exitCode === null) k2.child.kill("SIGKILL");
});

describe("the end of a replay", () => {
  it("is logged with the recording's frame count, and /health says no more data is arriving", async () => {
    const file = "btcusdt_20240808.gz";
    const exp = expectedFigures().find((e) => e.file === file)!;
    const path = sharedData(`binance-spot/${file}`);
    const k2 = startCli(
      ["run", "--replay", path, "--speed", "max", "--db", join(tempDir(), "k2.duckdb")].concat([
        "--http-port",
        "0",
        "--ws-workers",
        "0",
        "--log-format",
        "json",
      ]),
    );
    running.push(k2);
    const port = await k2.httpPort;
    const base = `http://127.0.0.1:${port}`;
    await waitFor(() => finishedLine(k2.stderr()) !== null, 60_000, "the replay finished log line");
    const line = finishedLine(k2.stderr())!;
    // trade and bookTicker frames of the recording (the default streams; it holds no aggTrade)
    expect(line.frames).toBe(exp.trades + exp.quotes);
    expect(line.frames.toLocaleString("en-US")).toBe("37,797");
    expect(line.seconds).toBeGreaterThan(0);
    expect(line.next).toBe(`still serving on ${base}/ (dashboard; API docs at ${base}/docs) until Ctrl-C`);

    const health = await fetch(`${base}/health`);
    const reasons = await health.text();
    expect(health.status).toBe(503);
    expect(reasons).toMatch(
      new RegExp(
        `^replay of ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} finished at \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z; no live data$`,
        "m",
      ),
    );
    // the figures stay visible: the feed is connected, its replay ended, every frame counted
    const status = (await (await fetch(`${base}/api/v1/status`)).json()) as {
      status: string;
      problems: string[];
      feeds: Record<string, unknown>[];
    };
    expect(status.status).toBe("degraded");
    expect(status.problems).toEqual(reasons.trim().split("\n"));
    expect(status.feeds[0]).toMatchObject({
      exchange: "BINANCE",
      state: "CONNECTED",
      replay: "ended",
      frames: exp.trades + exp.quotes,
      trades: exp.trades,
      quotes: exp.quotes,
    });

    k2.child.kill("SIGTERM");
    const exit = await k2.exited;
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0);
    expect(lastJsonLine(exit.stdout)).toMatchObject({ frames: exp.trades + exp.quotes, trades: exp.trades });
  });

  it("of an --exit-at-end batch run is logged too; such a run plays at max speed by default", async () => {
    const file = "ethusdt_20240808.gz";
    const exp = expectedFigures().find((e) => e.file === file)!;
    const r = await runCli([
      "run",
      "--replay",
      sharedData(`binance-spot/${file}`),
      "--symbols",
      "ETHUSDT",
      "--exit-at-end",
      "--db",
      join(tempDir(), "k2.duckdb"),
      "--http-port",
      "0",
      "--ws-workers",
      "0",
      "--log-format",
      "json",
    ]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(replaySpeed(r.stderr)).toBe("max");
    const line = finishedLine(r.stderr);
    expect(line).toMatchObject({ frames: exp.trades + exp.quotes, next: "flushing and exiting" });
    expect(lastJsonLine(r.stdout)).toMatchObject({ frames: exp.trades + exp.quotes });
  });

  it("without --speed (the dashboard demo) comes at the recorded pace", async () => {
    // the shortest recording: Coinbase, its frames spread over about 24 s
    const path = sharedData("cryptofeed/COINBASE.jsonl.gz");
    const times: number[] = [];
    for await (const l of readCryptofeed(path))
      if (l.t === "recv" && typeof l.ts === "number") times.push(l.ts);
    const spanS = Math.max(...times) - Math.min(...times);
    expect(spanS).toBeGreaterThan(10);
    const k2 = startCli(
      ["run", "--exchange", "coinbase", "--replay", path, "--db", join(tempDir(), "k2.duckdb")].concat([
        "--http-port",
        "0",
        "--ws-workers",
        "0",
        "--log-format",
        "json",
      ]),
    );
    running.push(k2);
    await k2.httpPort;
    expect(replaySpeed(k2.stderr())).toBe(1);
    await waitFor(() => finishedLine(k2.stderr()) !== null, spanS * 1000 + 60_000, "the end of the replay");
    const line = finishedLine(k2.stderr())!;
    // at --speed max the same recording takes well under a second
    expect(line.seconds).toBeGreaterThan(spanS * 0.5);
    k2.child.kill("SIGTERM");
    expect((await k2.exited).code).toBe(0);
  });
});
