/**
 * The NATS transport across a nats-server crash: a private nats-server (JetStream on disk, loopback,
 * free port) is SIGKILLed mid-stream and restarted on the same store; the publisher retries as the
 * pipeline's Publisher does, and the consumer group ends up with every message. Skipped when no
 * `nats-server` binary is on PATH.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { BusMessage } from "../../src/bus/bus.js";
import { NatsBus } from "../../src/bus/nats.js";
import { freePort, hasNatsServer, startNatsServer } from "../helpers/servers.js";
import { tradeMessage, waitFor } from "./contract.js";

describe.skipIf(!hasNatsServer)("nats bus across a nats-server SIGKILL and restart", () => {
  const dir = mkdtempSync(join(tmpdir(), "k2-nats-"));
  let server: ChildProcess | null = null;
  afterAll(() => {
    server?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("loses nothing: every message published is consumed, redeliveries and retries are counted", async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    server = await startNatsServer(port, dir);
    const producer = await NatsBus.connect({ servers: url, publishTimeoutMs: 2000, ackWaitMs: 2000 });
    const consumerBus = await NatsBus.connect({ servers: url, ackWaitMs: 2000 });
    const seen = new Set<string>();
    let deliveries = 0;
    const consumer = consumerBus.consume(
      { group: "persist", topicPrefixes: ["market."], batchSize: 200, maxWaitMs: 1000, maxBatchSize: 2000 },
      async (batch: BusMessage[]) => {
        deliveries += batch.length;
        for (const m of batch) seen.add(m.id);
      },
    );
    const sent = Array.from({ length: 4000 }, (_, i) =>
      tradeMessage(i % 2 ? "BTCUSDT" : "ETHUSDT", i, "restart"),
    );
    let retries = 0;
    let killed = false;
    let downReported: string | null = null;
    for (let i = 0; i < sent.length; i += 100) {
      if (!killed && i >= 1500) {
        killed = true;
        server.kill("SIGKILL");
        const poll = setInterval(async () => {
          const why = await producer.check();
          if (why) {
            downReported = why;
            clearInterval(poll);
          }
        }, 50);
        setTimeout(async () => {
          clearInterval(poll);
          server = await startNatsServer(port, dir);
        }, 1500);
      }
      for (;;) {
        try {
          await producer.publish(sent.slice(i, i + 100));
          break;
        } catch {
          retries++; // as the Publisher does: back off, republish the same batch (dedupe by Nats-Msg-Id)
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor(() => seen.size >= sent.length, 30_000, "every message after the restart");
    expect(killed).toBe(true);
    expect(downReported).toMatch(/nats disconnected for \d+ s; reconnecting/);
    expect(await producer.check()).toBeNull();
    expect(new Set(sent.map((m) => m.id))).toEqual(seen);
    console.info(
      `nats-server SIGKILL + restart: ${sent.length} published, ${retries} publish retries, ` +
        `${producer.deduplicated} server-side duplicates, ${deliveries} deliveries, ` +
        `${consumer.redeliveries()} redeliveries`,
    );
    await consumer.stop({ drain: false });
    await consumerBus.close();
    await producer.close();
  });
});
