/**
 * Scale-out end to end: `k2 ingest` → NATS JetStream → two `k2 persist` (one consumer group) →
 * PostgreSQL, with two `k2 serve` beside them (each relays every trade live) — and the faults the
 * issue names: SIGKILL of a persist process, SIGKILL of nats-server (JetStream on disk), and a
 * PostgreSQL restart, each mid-replay. Each time the store must end with every record exactly once,
 * reproducing ../shared/data/README.md.
 *
 * Uses a private nats-server and a private PostgreSQL cluster on free loopback ports, so killing them
 * disturbs nothing else.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lastJsonLine, type RunningCli } from "../helpers/cli.js";
import { contiguous } from "../helpers/outputs.js";
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
  stopPersists,
} from "../helpers/scale-out.js";
import {
  canRunPrivatePostgres,
  freePort,
  hasNatsServer,
  type PrivatePostgres,
  startNatsServer,
  startPrivatePostgres,
} from "../helpers/servers.js";
import { tradeClient } from "../serve/helpers.js";

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

    const newDatabase = (name: string) => createDatabase(pg.url, name);
    const k2 = cliStarter(children);
    const busUrl = (prefix: string) => `nats://127.0.0.1:${natsPort}?prefix=${prefix}`;
    const persist = (prefix: string, db: string) => k2(persistArgs(busUrl(prefix), db));
    const ingest = (prefix: string, speed: string) => k2(ingestArgs(busUrl(prefix), speed));

    it("ingest, two persists and two serves reproduce the figures, each serve relaying every trade live; a persist SIGKILLed mid-replay loses nothing", async () => {
      const db = await newDatabase("k2_scale_kill_persist");
      const prefix = "e2ea";
      const p1 = persist(prefix, db);
      const p2 = persist(prefix, db);
      await Promise.all([p1.httpPort, p2.httpPort]);
      // two serving processes on one bus: each one's live feed relays every trade (a live group shared
      // between them would hand each a part)
      const serve = k2(["serve", "--bus", busUrl(prefix), "--db", db, "--http-port", "0"]);
      const serve2 = k2(["serve", "--bus", busUrl(prefix), "--db", db, "--http-port", "0"]);
      const [servePort, serve2Port] = await Promise.all([serve.httpPort, serve2.httpPort]);
      const live = await Promise.all(
        [servePort, serve2Port].map((port) => tradeClient(`ws://127.0.0.1:${port}/ws`)),
      );
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
      const every = contiguous(expected.firstTradeId, expected.lastTradeId);
      for (const [i, { ids }] of live.entries()) {
        await waitFor(() => new Set(ids).size >= every.length, 30_000, `every trade live at serve ${i + 1}`);
        expect([...new Set(ids)].sort((a, b) => a - b)).toEqual(every);
      }
      for (const { c } of live) c.close();
      const redeliveries = await stopPersists([p2, p3]);
      for (const s of [serve, serve2]) {
        s.child.kill("SIGTERM");
        expect((await s.exited).code).toBe(0);
      }
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
