/**
 * Scale-out end to end on Apache Kafka: `k2 ingest --bus kafka://…` → two `k2 persist` (one consumer
 * group) → PostgreSQL, with `k2 serve` beside them, and two faults mid-replay: (a) a persist process
 * SIGKILLed and restarted, on the suite's broker; (b) on a private 3-node cluster (replication factor
 * 3, `min.insync.replicas=2`), one broker SIGKILLed and left down. Each time the store must end with
 * every record exactly once, reproducing ../shared/data/README.md; the redeliveries seen are printed.
 *
 * Uses a private PostgreSQL cluster on a free loopback port; the 3-node cluster is stopped even when a
 * test fails (afterAll, and at exit). (b) covers src/bus/kafka.ts's fixes of the client for a dead
 * broker: a node gone from the metadata fails as a network error (the client threw out of a socket
 * callback), and a consumer whose group coordinator died is replaced.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lastJsonLine, type RunningCli } from "../helpers/cli.js";
import { canRunKafka, type KafkaCluster, kafkaBootstrap, startKafkaCluster } from "../helpers/kafka.js";
import { waitFor } from "../helpers/run.js";
import {
  cliStarter,
  storeCounts as counts,
  newDatabase as createDatabase,
  exitedWithin,
  expectExactlyOnce,
  scaleOutExpected as expected,
  ingestArgs,
  persistArgs,
  stopPersistsCounting,
} from "../helpers/scale-out.js";
import { canRunPrivatePostgres, type PrivatePostgres, startPrivatePostgres } from "../helpers/servers.js";

const haveKafka = Boolean(process.env.K2_KAFKA_URL) || canRunKafka;

describe.skipIf(!haveKafka || !canRunPrivatePostgres)("scale-out over Kafka and PostgreSQL", () => {
  let pg: PrivatePostgres;
  let cluster: KafkaCluster | null = null;
  const children: RunningCli[] = [];
  const k2 = cliStarter(children);
  const run = randomBytes(3).toString("hex");

  beforeAll(async () => {
    pg = await startPrivatePostgres();
  }, 90_000);

  afterAll(async () => {
    for (const c of children) c.child.kill("SIGKILL");
    await cluster?.stop();
    pg?.stop();
  }, 90_000);

  it("ingest, two persists and serve reproduce the figures; a persist SIGKILLed mid-replay loses nothing", async () => {
    const bus = `kafka://${await kafkaBootstrap()}?prefix=e2ka${run}.`;
    const db = await createDatabase(pg.url, "k2_kafka_kill_persist");
    const p1 = k2(persistArgs(bus, db));
    const p2 = k2(persistArgs(bus, db));
    await Promise.all([p1.httpPort, p2.httpPort]);
    const serve = k2(["serve", "--bus", bus, "--db", db, "--http-port", "0"]);
    const servePort = await serve.httpPort;
    const ing = k2(ingestArgs(bus, "40"));
    await waitFor(
      async () => Number((await counts(db))?.trades.n ?? 0) > 1000,
      90_000,
      "first batches stored",
    );
    p1.child.kill("SIGKILL");
    await p1.exited;
    const p3 = k2(persistArgs(bus, db)); // restarted
    const ingExit = await exitedWithin(ing, 120_000);
    expect(ingExit.code, ingExit.stderr.slice(-1500)).toBe(0);
    expect(lastJsonLine(ingExit.stdout)).toMatchObject({ trades: expected.trades, quotes: expected.quotes });
    await expectExactlyOnce(db);
    const r = await fetch(`http://127.0.0.1:${servePort}/api/v1/trades?symbol=BTCUSDT&limit=1&order=asc`);
    expect(r.status).toBe(200);
    expect(JSON.stringify(await r.json())).toContain(`BINANCE-${expected.firstTradeId}`);
    expect((await fetch(`http://127.0.0.1:${servePort}/health`)).status).toBe(200);
    const { redeliveries, duplicates } = await stopPersistsCounting([p2, p3]);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
    console.log(
      `kafka, persist SIGKILL: redeliveries seen by the surviving and restarted persists: ${redeliveries}; records found already stored: ${duplicates}`,
    );
  }, 300_000);

  it("3 brokers (replication 3, min.insync.replicas 2), one SIGKILLed mid-replay and left down: every record exactly once", async () => {
    cluster = await startKafkaCluster(3);
    const bus = `kafka://${cluster.bootstrap}?replication=3&prefix=e2kc${run}.`;
    const db = await createDatabase(pg.url, "k2_kafka_kill_broker");
    const p1 = k2(persistArgs(bus, db));
    const p2 = k2(persistArgs(bus, db));
    await Promise.all([p1.httpPort, p2.httpPort]);
    const ing = k2(ingestArgs(bus, "30"));
    await waitFor(
      async () => Number((await counts(db))?.quotes.n ?? 0) > 2000,
      90_000,
      "first batches stored",
    );
    cluster.kill(2);
    const ingExit = await exitedWithin(ing, 180_000);
    expect(ingExit.code, ingExit.stderr.slice(-1500)).toBe(0);
    expect(lastJsonLine(ingExit.stdout)).toMatchObject({ trades: expected.trades, quotes: expected.quotes });
    await expectExactlyOnce(db);
    const { redeliveries, duplicates } = await stopPersistsCounting([p1, p2]);
    console.log(
      `kafka, broker SIGKILL (1 of 3 left down): redeliveries counted: ${redeliveries}; records found already stored: ${duplicates}`,
    );
  }, 420_000);
});
