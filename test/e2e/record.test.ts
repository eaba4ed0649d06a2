/**
 * `k2 record` writes raw frames with receive times in the capture format, and a recording replays
 * through `k2 run --replay` to the same figures as the original.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BinanceReplayServer } from "../../src/replay/binance-replay-server.js";
import { readCapture } from "../../src/replay/capture.js";
import { framesWhere, sharedData } from "../helpers/capture.js";
import { lastJsonLine, runCli, tempDir } from "../helpers/cli.js";

describe("k2 record", () => {
  it("records every frame in order with ns receive times, and the recording replays identically", async () => {
    const source = sharedData("binance-spot/ethusdt_20240808.gz");
    const expected = await framesWhere(
      source,
      (r) => r.startsWith('{"stream":"ethusdt@trade"') || r.startsWith('{"stream":"ethusdt@bookTicker"'),
    );
    const server = new BinanceReplayServer({ file: source, speed: "max" });
    await server.start();
    const dir = tempDir();
    const out = join(dir, "ethusdt-recorded.gz");
    try {
      const r = await runCli([
        "record",
        "--out",
        out,
        "--ws-url",
        server.url,
        "--symbols",
        "ETHUSDT",
        "--streams",
        "trade,bookTicker",
        // stop once every frame is in (+ the SUBSCRIBE ack), however slow the machine; the duration
        // is only a bound
        "--frames",
        String(expected.length + 1),
        "--duration",
        "100",
      ]);
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(lastJsonLine(r.stdout).frames).toBe(expected.length + 1); // + the SUBSCRIBE ack
    } finally {
      await server.stop();
    }
    const recorded: { ns: string; raw: string }[] = [];
    for await (const f of readCapture(out)) recorded.push(f);
    // the SUBSCRIBE ack is recorded too (where it falls among the data frames depends on the server)
    expect(recorded.filter((f) => f.raw === '{"result":null,"id":1}')).toHaveLength(1);
    const data = recorded.filter((f) => f.raw.startsWith('{"stream"'));
    expect(data.map((f) => f.raw)).toEqual(expected);
    // receive times: ns since epoch, non-decreasing, within this test's run
    let prev = 0n;
    for (const f of recorded) {
      expect(f.ns).toMatch(/^\d{19}$/);
      const ns = BigInt(f.ns);
      expect(ns >= prev).toBe(true);
      prev = ns;
    }
    expect(Number(prev / 1_000_000n)).toBeGreaterThan(Date.now() - 120_000);

    const replay = await runCli([
      "run",
      "--replay",
      out,
      "--exit-at-end",
      "--db",
      join(dir, "k2.duckdb"),
      "--http-port",
      "0",
      "--symbols",
      "ETHUSDT",
      "--streams",
      "trade,bookTicker",
    ]);
    expect(replay.code, replay.stderr.slice(-2000)).toBe(0);
    const trades = expected.filter((r) => r.includes("@trade")).length;
    expect(lastJsonLine(replay.stdout)).toMatchObject({
      frames: expected.length,
      trades,
      quotes: expected.length - trades,
      rejected: 0,
    });
  });
});
