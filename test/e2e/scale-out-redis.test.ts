/**
 * Scale-out end to end over Redis Streams: `k2 ingest --bus redis://…` → two `k2 persist` (one
 * consumer group) → PostgreSQL, with `k2 serve` beside them; one persist is SIGKILLed mid-replay and
 * restarted. The store must end with every record exactly once, reproducing ../shared/data/README.md;
 * the entries the killed persist held are claimed (`XAUTOCLAIM`) by the others and counted as
 * redeliveries.
 *
 * Uses the machine's Redis (`REDIS_URL`, default redis://127.0.0.1:6379) under a key prefix of its own,
 * deleted after, and a private PostgreSQL cluster on a free loopback port.
 */
import { randomBytes } from "node:crypto";
import { createClient } from "redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RedisBus } from "../../src/bus/redis.js";
import { lastJsonLine, type RunningCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/run.js";
import {
  cliStarter,
  exitedWithin,
  expectExactlyOnce,
  scaleOutExpected as expected,
  ingestArgs,
  newDatabase,
  persistArgs,
  stopPersists,
  storeCounts,
} from "../helpers/scale-out.js";
import {
  canRunPrivatePostgres,
  type PrivatePostgres,
  redisReachable,
  startPrivatePostgres,
} from "../helpers/servers.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

const hasRedis = await redisReachable(REDIS_URL);
if (!hasRedis) console.warn(`scale-out over Redis Streams SKIPPED: no Redis at ${REDIS_URL}`);

describe.skipIf(!hasRedis || !canRunPrivatePostgres)("scale-out over Redis Streams and PostgreSQL", () => {
  const prefix = `e2e${randomBytes(4).toString("hex")}`;
  // a short claim time: the killed persist's entries are taken over 3 s after it last touched them
  const bus = `${REDIS_URL}?prefix=${prefix}&claim_idle=3s`;
  let pg: PrivatePostgres;
  const children: RunningCli[] = [];

  beforeAll(async () => {
    pg = await startPrivatePostgres();
  }, 90_000);

  afterAll(async () => {
    for (const c of children) c.child.kill("SIGKILL");
    pg?.stop();
    const cleaner = await RedisBus.connect({ url: REDIS_URL, prefix });
    await cleaner.deleteStreams();
    await cleaner.close();
  });

  /** Entries pending (delivered, not acknowledged) in group k2-persist for consumers whose name contains `part`. */
  async function pendingOf(part: string): Promise<number> {
    const c = createClient({ url: REDIS_URL });
    await c.connect();
    try {
      let n = 0;
      for (const topic of (await c.sendCommand(["SMEMBERS", `${prefix}:k2:bus:topics`])) as string[]) {
        type Summary = [number, string | null, string | null, [string, string][] | null];
        let summary: Summary;
        try {
          summary = (await c.sendCommand(["XPENDING", `${prefix}:${topic}`, "k2-persist"])) as Summary;
        } catch (e) {
          // a stream published to (candles, by serve) before the persists' topic refresh made their
          // group on it: nothing of the group is pending there yet
          if (/NOGROUP/.test(String(e))) continue;
          throw e;
        }
        for (const [consumer, count] of summary[3] ?? []) if (consumer.includes(part)) n += Number(count);
      }
      return n;
    } finally {
      await c.close();
    }
  }

  it("ingest, two persists and serve reproduce the figures; a persist SIGKILLed mid-replay loses nothing", async () => {
    const db = await newDatabase(pg.url, "k2_redis_kill_persist");
    const k2 = cliStarter(children);
    const p1 = k2(persistArgs(bus, db));
    const p2 = k2(persistArgs(bus, db));
    await Promise.all([p1.httpPort, p2.httpPort]);
    const serve = k2(["serve", "--bus", bus, "--db", db, "--http-port", "0"]);
    const servePort = await serve.httpPort;
    const ing = k2(ingestArgs(bus, "40"));
    await waitFor(
      async () => Number((await storeCounts(db))?.trades.n ?? 0) > 1000,
      60_000,
      "first batches stored",
    );
    p1.child.kill("SIGKILL");
    await p1.exited;
    const heldByKilled = await pendingOf(`-${p1.child.pid}-`);
    const p3 = k2(persistArgs(bus, db)); // restarted
    const ingExit = await exitedWithin(ing, 90_000);
    expect(ingExit.code, ingExit.stderr.slice(-1500)).toBe(0);
    expect(lastJsonLine(ingExit.stdout)).toMatchObject({ trades: expected.trades, quotes: expected.quotes });
    await expectExactlyOnce(db);
    // k2 serve reads the same store
    const r = await fetch(`http://127.0.0.1:${servePort}/api/v1/trades?symbol=BTCUSDT&limit=1&order=asc`);
    expect(r.status).toBe(200);
    expect(JSON.stringify(await r.json())).toContain(`BINANCE-${expected.firstTradeId}`);
    const health = await fetch(`http://127.0.0.1:${servePort}/health`);
    expect(health.status).toBe(200);
    const redeliveries = await stopPersists([p2, p3]);
    serve.child.kill("SIGTERM");
    expect((await serve.exited).code).toBe(0);
    // what the killed persist held came back to the others; the group has nothing left unacknowledged
    expect(redeliveries).toBeGreaterThanOrEqual(heldByKilled);
    expect(await pendingOf("")).toBe(0);
    console.log(
      `redis persist SIGKILL: entries the killed persist held: ${heldByKilled}; redeliveries seen by the surviving and restarted persists: ${redeliveries}`,
    );
  }, 240_000);
});
