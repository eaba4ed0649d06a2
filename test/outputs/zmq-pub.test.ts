/**
 * `--zmq-pub`: real SUB sockets on a replay of btcusdt_20240808.gz at `--speed 10`. A subscriber to
 * `market.crypto.trades.binance.` receives every trade in order; at the same time a subscriber to
 * everything that never reads hits the high-water mark and loses messages, while the other subscriber
 * and ingest keep their pace. A port already bound is refused at start, naming the flag.
 */

import { describe, expect, it } from "vitest";
import { Publisher, Subscriber } from "zeromq";
import { lastJsonLine, runCli, startCli } from "../helpers/cli.js";
import {
  contiguous,
  outputExpected as expected,
  outputRunArgs,
  recordedSpanMs,
  tradeIds,
} from "../helpers/outputs.js";
import { waitFor } from "../helpers/run.js";
import { freePort } from "../helpers/servers.js";

/** Receives `[subject, json]` messages into `got` until the socket is closed. */
function collect(sub: Subscriber, got: { subject: string; json: string }[]): Promise<void> {
  return (async () => {
    try {
      for await (const [subject, json] of sub)
        got.push({ subject: subject.toString(), json: json.toString() });
    } catch {
      // closed
    }
  })();
}

describe("--zmq-pub", () => {
  it("refuses a bad endpoint and a port already bound, naming the flag", async () => {
    const bad = await runCli(outputRunArgs("max", "--zmq-pub", "tcp://127.0.0.1"));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--zmq-pub: expected tcp://HOST:PORT");
    const port = await freePort();
    const squatter = new Publisher();
    await squatter.bind(`tcp://127.0.0.1:${port}`);
    try {
      const busy = await runCli(outputRunArgs("max", "--zmq-pub", `tcp://127.0.0.1:${port}`));
      expect(busy.code).toBe(2);
      expect(busy.stderr).toContain(`k2: --zmq-pub: cannot bind tcp://127.0.0.1:${port}`);
    } finally {
      squatter.close();
    }
  });

  it("a SUB to one venue's trades receives every trade in order at --speed 10; one that never reads loses messages at the HWM while ingest keeps its pace", async () => {
    const port = await freePort();
    const endpoint = `tcp://127.0.0.1:${port}`;
    const hwm = 1000;
    const reader = new Subscriber({ reconnectInterval: 10 });
    reader.connect(endpoint);
    reader.subscribe("market.crypto.trades.binance.");
    const got: { subject: string; json: string }[] = [];
    const reading = collect(reader, got);
    // never reads during the run: a small receive queue and socket buffer, so the PUB side fills
    const stuck = new Subscriber({
      reconnectInterval: 10,
      receiveHighWaterMark: 100,
      receiveBufferSize: 65_536,
    });
    stuck.connect(endpoint);
    stuck.subscribe("market.");

    const speed = 10;
    const run = startCli(outputRunArgs(String(speed), "--zmq-pub", endpoint, "--zmq-hwm", String(hwm)));
    const exit = await run.exited;
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0);
    const summary = lastJsonLine(exit.stdout);
    expect(summary).toMatchObject({ trades: expected.trades, quotes: expected.quotes });
    await waitFor(() => got.length >= expected.trades, 10_000, "every trade").catch(() => undefined);
    reader.close();
    await reading;

    // the reader: every trade, in order, each under its subject
    expect(tradeIds(got.map((m) => m.json))).toEqual(contiguous(expected.firstTradeId, expected.lastTradeId));
    expect(new Set(got.map((m) => m.subject))).toEqual(new Set(["market.crypto.trades.binance.BTCUSDT"]));

    // the subscriber that never read: what it holds now is all it gets
    stuck.receiveTimeout = 1000;
    let held = 0;
    try {
      for (;;) {
        await stuck.receive();
        held++;
      }
    } catch {
      // receive timeout: nothing more
    }
    stuck.close();
    const published = expected.trades + expected.quotes;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(published);

    // ingest kept the recorded pace: receiving took the recording's span / speed, plus little
    const paceMs = (await recordedSpanMs()) / speed;
    expect(Number(summary.receive_ms)).toBeLessThan(paceMs * 1.05 + 1000);
    console.log(
      `zmq output at --speed ${speed}, --zmq-hwm ${hwm}: reader got ${got.length} of ${expected.trades} trades in order; the subscriber that never read got ${held} of ${published} records (lost ${published - held}); ingest receive_ms ${summary.receive_ms} for a recorded span / speed of ${Math.round(paceMs)} ms`,
    );
  }, 120_000);
});
