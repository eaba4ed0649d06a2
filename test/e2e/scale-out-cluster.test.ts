/**
 * The pipeline on a 3-node JetStream cluster (streams with 3 replicas): `k2 ingest` replays
 * btcusdt_20240808.gz into the cluster while `k2 persist` stores it; one node is SIGKILLed mid-replay
 * and stays down. Ingestion continues and the store ends with every record exactly once.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, query, type RunningCli, startCli } from "../helpers/cli.js";
import { expectedFigures } from "../helpers/expected.js";
import { waitFor } from "../helpers/run.js";
import { hasNatsServer, type NatsCluster, startNatsCluster } from "../helpers/servers.js";

const FILE = "btcusdt_20240808.gz";
const expected = expectedFigures().find((f) => f.file === FILE)!;

describe.skipIf(!hasNatsServer)("pipeline on a 3-node JetStream cluster", () => {
  const dir = mkdtempSync(join(tmpdir(), "k2-cluster-e2e-"));
  const children: RunningCli[] = [];
  let cluster: NatsCluster | null = null;
  afterAll(() => {
    for (const c of children) c.child.kill("SIGKILL");
    for (const n of cluster?.nodes ?? []) n.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps ingesting with one node killed mid-replay; nothing is lost or doubled", async () => {
    cluster = await startNatsCluster(dir);
    const bus = `nats://${cluster.servers.map((s) => s.replace("nats://", "")).join(",")}?replicas=3&prefix=cl`;
    const db = join(dir, "k2.duckdb");
    const persist = startCli([
      "persist",
      "--bus",
      bus,
      "--db",
      db,
      "--http-port",
      "0",
      "--batch-max-wait-ms",
      "200",
    ]);
    children.push(persist);
    const port = await persist.httpPort;
    const ingest = startCli([
      "ingest",
      "--bus",
      bus,
      "--replay",
      sharedData(`binance-spot/${FILE}`),
      "--speed",
      "30",
      "--exit-at-end",
      "--http-port",
      "0",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
    ]);
    children.push(ingest);
    const stored = async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      let n = 0;
      for (const m of text.matchAll(/^k2_records_stored_total\{table="(trades_v2|quotes_v2)"\} (\d+)$/gm))
        n += Number(m[2]);
      return n;
    };
    await waitFor(async () => (await stored()) > 3000, 60_000, "first records stored");
    // the first node in both processes' server lists dies and stays down
    cluster.nodes[0].kill("SIGKILL");
    const exit = await ingest.exited;
    expect(exit.code, exit.stderr.slice(-2000)).toBe(0);
    expect(lastJsonLine(exit.stdout)).toMatchObject({ trades: expected.trades, quotes: expected.quotes });
    await waitFor(
      async () => (await stored()) >= expected.trades + expected.quotes,
      60_000,
      "every record stored",
    );
    persist.child.kill("SIGTERM");
    const pexit = await persist.exited;
    expect(pexit.code, pexit.stderr.slice(-2000)).toBe(0);
    const [c] = await query(
      db,
      `SELECT (SELECT count(*) FROM trades_v2) AS trades, (SELECT count(DISTINCT trade_id) FROM trades_v2) AS ut,
        (SELECT count(*) FROM quotes_v2) AS quotes, (SELECT sum(quantity) FROM trades_v2) AS volume`,
    );
    expect(c).toEqual({
      trades: String(expected.trades),
      ut: String(expected.trades),
      quotes: String(expected.quotes),
      volume: expected.volume,
    });
    console.log(`3-node cluster, one node killed: redeliveries ${lastJsonLine(pexit.stdout).redeliveries}`);
  });
});
