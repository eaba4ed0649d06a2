/**
 * The NATS transport on a 3-node JetStream cluster on loopback (streams with 3 replicas): one node is
 * SIGKILLed mid-stream and stays down; publishing and consuming continue on the other two and
 * nothing is lost. Skipped when no `nats-server` binary is on PATH.
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, describe, expect, it } from "vitest";
import type { BusMessage } from "../../src/bus/bus.js";
import { NatsBus } from "../../src/bus/nats.js";
import { startNatsCluster } from "../helpers/servers.js";
import { tradeMessage, waitFor } from "./contract.js";

const hasServer = spawnSync("nats-server", ["--version"]).status === 0;

describe.skipIf(!hasServer)("nats bus on a 3-node JetStream cluster", () => {
  const dir = mkdtempSync(join(tmpdir(), "k2-nats-cluster-"));
  const nodes: ChildProcess[] = [];
  afterAll(() => {
    for (const n of nodes) n.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps publishing and consuming with one node killed (replicas 3); nothing is lost", async () => {
    const cluster = await startNatsCluster(dir);
    nodes.push(...cluster.nodes);
    const client = cluster.ports;
    const servers = cluster.servers;
    // the cluster elects its JetStream meta leader: retry until the R3 streams can be created
    let producer: NatsBus | null = null;
    const until = Date.now() + 30_000;
    while (!producer) {
      try {
        producer = await NatsBus.connect({ servers, replicas: 3, publishTimeoutMs: 3000, ackWaitMs: 3000 });
      } catch (e) {
        if (Date.now() > until) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const consumerBus = await NatsBus.connect({
      servers: [...servers].reverse(),
      replicas: 3,
      ackWaitMs: 3000,
    });
    const seen = new Set<string>();
    const consumer = consumerBus.consume(
      { group: "persist", topicPrefixes: ["market."], batchSize: 200, maxWaitMs: 1000, maxBatchSize: 2000 },
      async (batch: BusMessage[]) => {
        for (const m of batch) seen.add(m.id);
      },
    );
    const sent = Array.from({ length: 3000 }, (_, i) => tradeMessage(`SYM${i % 3}`, i, "cluster"));
    const info = await (await jetstreamManager(producer.connection)).streams.info("MARKET_TRADES");
    expect(info.config.num_replicas).toBe(3);
    // the node the producer is connected to dies and stays down
    const victim = client.indexOf(Number(producer.connection.getServer().split(":").pop()));
    expect(victim).toBeGreaterThanOrEqual(0);
    let retries = 0;
    for (let i = 0; i < sent.length; i += 100) {
      if (i === 1000) nodes[victim].kill("SIGKILL");
      for (;;) {
        try {
          await producer.publish(sent.slice(i, i + 100));
          break;
        } catch {
          retries++;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    }
    await waitFor(() => seen.size >= sent.length, 40_000, "every message with one node down");
    expect(new Set(sent.map((m) => m.id))).toEqual(seen);
    console.info(
      `3-node cluster, node k2n${victim} (the producer's) killed: ${sent.length} published, ${retries} publish retries, ` +
        `${producer.deduplicated} duplicates dropped, ${consumer.redeliveries()} redeliveries`,
    );
    await consumer.stop({ drain: false });
    await consumerBus.close();
    await producer.close();
  });
});
