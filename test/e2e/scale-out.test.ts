/**
 * Scale-out end to end: `k2 ingest` → NATS JetStream → two `k2 persist` (one consumer group) →
 * PostgreSQL, with `k2 serve` beside them — and the faults the issue names: SIGKILL of a persist
 * process, SIGKILL of nats-server (JetStream on disk), and a PostgreSQL restart, each mid-replay. Each
 * time the store must end with every record exactly once, reproducing ../shared/data/README.md.
 *
 * Uses a private nats-server and a private PostgreSQL cluster on free loopback ports, so killing them
 * disturbs nothing else.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vwapFromSums } from "../../src/schema/decimal.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, type RunningCli, startCli } from "../helpers/cli.js";
import { expectedFigures } from "../helpers/expected.js";
import { waitFor } from "../helpers/run.js";
import {
  canRunPrivatePostgres,
  freePort,
  hasNatsServer,
  type PrivatePostgres,
  startNatsServer,
  startPrivatePostgres,
} from "../helpers/servers.js";

const FILE = "btcusdt_20240808.gz";
const expected = expectedFigures().find((f) => f.file === FILE)!;

describe.skipIf(!hasNatsServer || !canRunPrivatePostgres)(
  "scale-out over NATS JetStream and PostgreSQL",
  () => {
    let natsPort = 0;
    const natsDir = mkdtempSync(join(tmpdir(), "k2-nats-e2e-"));
    let nats: ChildProcess;
    let pg: PrivatePostgres;
    const children: RunningCli[] = [];

    beforeAll(async () => {
      natsPort = await freePort();
      nats = await startNatsServer(natsPort, natsDir);
      pg = await startPrivatePostgres();
    }, 90_000);

    afterAll(() => {
      for (const c of children) c.child.kill("SIGKILL");
      nats?.kill("SIGKILL");
      pg?.stop();
      rmSync(natsDir, { recursive: true, force: true });
    });

    async function newDatabase(name: string): Promise<string> {
      const admin = postgres(pg.url, { max: 1, onnotice: () => undefined });
      await admin.unsafe(`CREATE DATABASE ${name}`);
      await admin.end();
      return pg.url.replace(/\/postgres$/, `/${name}`);
    }

    function k2(args: string[]): RunningCli {
      const c = startCli(args);
      children.push(c);
      return c;
    }

    const busUrl = (prefix: string) => `nats://127.0.0.1:${natsPort}?prefix=${prefix}`;

    function persist(prefix: string, db: string): RunningCli {
      return k2([
        "persist",
        "--bus",
        busUrl(prefix),
        "--db",
        db,
        "--http-port",
        "0",
        "--batch-max-wait-ms",
        "200",
      ]);
    }

    function ingest(prefix: string, speed: string): RunningCli {
      return k2([
        "ingest",
        "--bus",
        busUrl(prefix),
        "--replay",
        sharedData(`binance-spot/${FILE}`),
        "--speed",
        speed,
        "--exit-at-end",
        "--http-port",
        "0",
        "--symbols",
        "BTCUSDT",
        "--streams",
        "trade,bookTicker",
      ]);
    }

    /** The process's exit, or a failure showing its last log lines. */
    async function exitedWithin(c: RunningCli, ms: number) {
      let timer: NodeJS.Timeout | undefined;
      const t = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`did not exit in ${ms} ms:\n${c.stderr().slice(-3000)}`)),
          ms,
        );
      });
      try {
        return await Promise.race([c.exited, t]);
      } finally {
        clearTimeout(timer);
      }
    }

    async function counts(db: string) {
      const sql = postgres(db, { max: 1, onnotice: () => undefined });
      try {
        const [t] = await sql`SELECT count(*)::text AS n, count(DISTINCT trade_id)::text AS u,
        min(source_sequence)::text AS lo, max(source_sequence)::text AS hi, sum(quantity)::text AS volume,
        sum(price::numeric(38,8) * quantity::numeric(38,8))::text AS notional FROM trades_v2`;
        const [q] =
          await sql`SELECT count(*)::text AS n, count(DISTINCT message_id)::text AS u FROM quotes_v2`;
        return { trades: t, quotes: q };
      } catch {
        return null; // tables not created yet, or the server is restarting
      } finally {
        await sql.end({ timeout: 1 });
      }
    }

    async function expectExactlyOnce(db: string) {
      await waitFor(
        async () => {
          const c = await counts(db);
          return c !== null && Number(c.trades.n) >= expected.trades && Number(c.quotes.n) >= expected.quotes;
        },
        90_000,
        "every record in PostgreSQL",
      );
      await new Promise((r) => setTimeout(r, 500)); // anything extra would land now
      const c = (await counts(db))!;
      expect({
        trades: Number(c.trades.n),
        uniqueTrades: Number(c.trades.u),
        first: c.trades.lo,
        last: c.trades.hi,
        volume: c.trades.volume,
        vwap: vwapFromSums(c.trades.notional, c.trades.volume),
        quotes: Number(c.quotes.n),
        uniqueQuotes: Number(c.quotes.u),
      }).toEqual({
        trades: expected.trades,
        uniqueTrades: expected.trades,
        first: expected.firstTradeId,
        last: expected.lastTradeId,
        volume: expected.volume,
        vwap: expected.vwap,
        quotes: expected.quotes,
        uniqueQuotes: expected.quotes,
      });
    }

    /** SIGTERM persist processes; their summary lines give the redeliveries they saw. */
    async function stopPersists(ps: RunningCli[]): Promise<number> {
      let redeliveries = 0;
      for (const p of ps) {
        p.child.kill("SIGTERM");
        const exit = await p.exited;
        expect(exit.code, exit.stderr.slice(-1500)).toBe(0);
        redeliveries += Number(lastJsonLine(exit.stdout).redeliveries);
      }
      return redeliveries;
    }

    it("ingest, two persists and serve reproduce the figures; a persist SIGKILLed mid-replay loses nothing", async () => {
      const db = await newDatabase("k2_scale_kill_persist");
      const prefix = "e2ea";
      const p1 = persist(prefix, db);
      const p2 = persist(prefix, db);
      await Promise.all([p1.httpPort, p2.httpPort]);
      const serve = k2(["serve", "--bus", busUrl(prefix), "--db", db, "--http-port", "0"]);
      const servePort = await serve.httpPort;
      const ing = ingest(prefix, "40");
      await waitFor(
        async () => Number((await counts(db))?.trades.n ?? 0) > 1000,
        60_000,
        "first batches stored",
      );
      p1.child.kill("SIGKILL");
      await p1.exited;
      const p3 = persist(prefix, db); // restarted
      const ingExit = await exitedWithin(ing, 90_000);
      expect(ingExit.code, ingExit.stderr.slice(-1500)).toBe(0);
      expect(lastJsonLine(ingExit.stdout)).toMatchObject({
        trades: expected.trades,
        quotes: expected.quotes,
      });
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
      console.log(
        `persist SIGKILL: redeliveries seen by the surviving and restarted persists: ${redeliveries}`,
      );
    });

    it("nats-server SIGKILLed mid-replay and restarted: every record exactly once", async () => {
      const db = await newDatabase("k2_scale_kill_nats");
      const prefix = "e2eb";
      const p1 = persist(prefix, db);
      const p2 = persist(prefix, db);
      await Promise.all([p1.httpPort, p2.httpPort]);
      const ing = ingest(prefix, "30");
      await ing.httpPort;
      await waitFor(
        async () => Number((await counts(db))?.quotes.n ?? 0) > 2000,
        60_000,
        "first batches stored",
      );
      nats.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 1500));
      nats = await startNatsServer(natsPort, natsDir);
      const ingExit = await exitedWithin(ing, 90_000);
      expect(ingExit.code, ingExit.stderr.slice(-1500)).toBe(0);
      await expectExactlyOnce(db);
      const redeliveries = await stopPersists([p1, p2]);
      console.log(`nats-server SIGKILL: redeliveries counted: ${redeliveries}`);
    });

    it("PostgreSQL restarted mid-replay: every record exactly once", async () => {
      const db = await newDatabase("k2_scale_restart_pg");
      const prefix = "e2ec";
      const p1 = persist(prefix, db);
      const p2 = persist(prefix, db);
      await Promise.all([p1.httpPort, p2.httpPort]);
      const ing = ingest(prefix, "30");
      await waitFor(
        async () => Number((await counts(db))?.quotes.n ?? 0) > 2000,
        60_000,
        "first batches stored",
      );
      pg.restart();
      const ingExit = await exitedWithin(ing, 90_000);
      expect(ingExit.code, ingExit.stderr.slice(-1500)).toBe(0);
      await expectExactlyOnce(db);
      const redeliveries = await stopPersists([p1, p2]);
      console.log(`PostgreSQL restart: redeliveries counted: ${redeliveries}`);
    });
  },
);
