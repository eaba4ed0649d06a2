/**
 * `/ws` connection limits per client address and per API token (`serve/ws/conn-limit.ts`): the limiter's rules,
 * then a real `k2 run` (built CLI, gateway in worker processes, the limits counted in the main process
 * where sockets are handed over) and an in-process gateway (`K2_WS_WORKERS=0`). The N+1th connection
 * from one address, or with one token, is closed with 1013 and a reason naming the count and the limit
 * while the first N keep working; a client that leaves frees its place (the worker reports it gone);
 * refusals are counted in `k2_ws_connections_refused_total{limit}`. Other loopback addresses
 * (127.0.0.2, ...) stand for other hosts.
 */

import { readFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunningPipeline } from "../../src/run.js";
import { ConnectionLimiter, isLoopback, normalizeAddress } from "../../src/serve/ws/conn-limit.js";
import {
  CAPTURE,
  type K2Process,
  metricValue,
  spawnK2Run,
  startReplayRun,
  TestClient,
  tempDir,
} from "./helpers.js";

describe("ConnectionLimiter", () => {
  it("limits per address, exempts loopback unless told, and releases once", () => {
    const l = new ConnectionLimiter({ perIp: 2, perToken: 0, limitLoopback: false });
    const a = l.acquire("::ffff:203.0.113.7", null);
    const b = l.acquire("203.0.113.7", null);
    expect(a.ok && b.ok).toBe(true);
    const c = l.acquire("203.0.113.7", null);
    expect(c).toEqual({
      ok: false,
      by: "per_ip",
      reason: "try again later: 2 connections from 203.0.113.7 (limit 2)",
    });
    expect(l.acquire("198.51.100.1", null).ok).toBe(true);
    for (let i = 0; i < 10; i++) expect(l.acquire("127.0.0.1", null).ok).toBe(true);
    expect(l.acquire("::1", null).ok).toBe(true);
    if (a.ok) {
      a.release();
      a.release(); // idempotent
    }
    expect(l.countOf("203.0.113.7")).toBe(1);
    expect(l.acquire("203.0.113.7", null).ok).toBe(true);
    expect(l.acquire("203.0.113.7", null).ok).toBe(false);

    const strict = new ConnectionLimiter({ perIp: 1, perToken: 0, limitLoopback: true });
    expect(strict.acquire("127.0.0.1", null).ok).toBe(true);
    expect(strict.acquire("::ffff:127.0.0.1", null).ok).toBe(false);
  });

  it("limits per token across addresses, without naming the token", () => {
    const l = new ConnectionLimiter({ perIp: 0, perToken: 2, limitLoopback: false });
    expect(l.acquire("203.0.113.1", "tok-secret-1").ok).toBe(true);
    expect(l.acquire("203.0.113.2", "tok-secret-1").ok).toBe(true);
    const refused = l.acquire("203.0.113.3", "tok-secret-1");
    expect(refused).toMatchObject({ ok: false, by: "per_token" });
    if (!refused.ok) {
      expect(refused.reason).toBe("try again later: 2 connections with this API token (limit 2)");
      expect(refused.reason).not.toContain("secret");
    }
    expect(l.acquire("203.0.113.3", "tok-secret-2").ok).toBe(true);
    expect(l.acquire("203.0.113.3", null).ok).toBe(true);
  });

  it("normalizes IPv4-mapped addresses and knows loopback", () => {
    expect(normalizeAddress("::FFFF:10.0.0.1")).toBe("10.0.0.1");
    expect(normalizeAddress(undefined)).toBe("?");
    expect(isLoopback("127.0.0.2")).toBe(true);
    expect(isLoopback("::1")).toBe(true);
    expect(isLoopback("128.0.0.1")).toBe(false);
  });
});

const ONE = "tok-one-0123456789";
const TWO = "tok-two-0123456789";

/** Opens a client from `from` with `token`; resolves once it is open (or already closed). */
function open(port: number, from: string, token: string | null): Promise<TestClient> {
  const q = token ? `?token=${token}` : "";
  // a handshake nobody answers fails the test instead of hanging it
  return TestClient.open(`ws://127.0.0.1:${port}/ws${q}`, { localAddress: from, handshakeTimeout: 15_000 });
}

/** Resolves with the close code and reason once `c` is closed (fails after 10 s). */
async function closedWith(c: TestClient): Promise<[number | null, string]> {
  await Promise.race([
    c.closed,
    new Promise((_, rej) => setTimeout(() => rej(new Error("client not closed within 10 s")), 10_000)),
  ]);
  return [c.closeCode, c.closeReason];
}

/**
 * Opens clients from `from` until one is admitted and answers a ping (fails after 30 s: a worker
 * being restarted on a loaded machine takes a while).
 */
async function openWhenFree(port: number, from: string, token: string | null): Promise<TestClient> {
  const end = Date.now() + 30_000;
  for (;;) {
    const c = await open(port, from, token).catch(() => null);
    if (c && c.ws.readyState === c.ws.OPEN && (await works(c, "free").catch(() => false))) return c;
    c?.close(); // one that opened but did not answer would keep its place
    if (Date.now() > end) throw new Error(`no place freed for ${from} within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Whether `c` answers a ping with a pong. Fails naming the close code and reason when `c` is (or gets)
 * closed instead, and after 30 s without an answer: the gateway workers run at nice 10, and a CI
 * machine busy with other suites starved one for over 10 s (a pong is not what these tests time).
 */
async function works(c: TestClient, id: string): Promise<boolean> {
  const gone = () =>
    new Error(`client ${id} closed (${c.closeCode} "${c.closeReason}") instead of answering a ping`);
  if (c.ws.readyState !== c.ws.OPEN) throw gone();
  const reply = await Promise.race([
    c.next((x) => x.id === id && typeof x.type === "string", 30_000),
    c.closed.then(() => {
      throw gone();
    }),
    Promise.resolve().then(() => {
      c.send({ op: "ping", id });
      return new Promise<never>(() => {});
    }),
  ]);
  return reply.type === "pong";
}

describe("k2 run with gateway workers: limits counted where the socket is handed over", () => {
  let k2: K2Process;
  const tmp = tempDir();
  const clients: TestClient[] = [];

  beforeAll(async () => {
    k2 = await spawnK2Run(
      [
        "--replay",
        CAPTURE,
        "--speed",
        "max",
        "--http-port",
        "0",
        "--db",
        `${tmp.dir}/k2.duckdb`,
        "--symbols",
        "BTCUSDT",
        "--streams",
        "trade,bookTicker",
      ],
      {
        K2_API_TOKENS: `${ONE},${TWO}`,
        K2_WS_WORKERS: "2",
        K2_WS_MAX_CONN_PER_IP: "5",
        K2_WS_MAX_CONN_PER_TOKEN: "6",
        K2_WS_LIMIT_LOOPBACK: "true",
      },
    );
  }, 60_000);

  // a failure shows what k2 and its workers logged at warn or above (hand-offs, worker deaths)
  afterEach((ctx) => {
    if (ctx.task.result?.state !== "fail" || !k2) return;
    const lines = k2
      .stderr()
      .split("\n")
      .filter((l) => /"level":(40|50|60)/.test(l));
    console.error(`k2 warnings and errors (${lines.length}):\n${lines.slice(-30).join("\n")}`);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    if (k2 && k2.child.exitCode === null) {
      k2.child.kill("SIGTERM");
      await k2.exited;
    }
    tmp.cleanup();
  });

  it("refuses the 6th connection from one address with 1013 while the first 5 keep working", async () => {
    for (let i = 0; i < 5; i++) clients.push(await open(k2.port, "127.0.0.1", ONE));
    for (const [i, c] of clients.entries()) expect(await works(c, `a${i}`)).toBe(true);
    const sixth = await open(k2.port, "127.0.0.1", TWO);
    expect(await closedWith(sixth)).toEqual([
      1013,
      "try again later: 5 connections from 127.0.0.1 (limit 5)",
    ]);
    expect(sixth.messages).toEqual([]);
    // the first five are unaffected
    for (const [i, c] of clients.entries()) expect(await works(c, `b${i}`)).toBe(true);
    // another address is not
    const other = await open(k2.port, "127.0.0.2", TWO);
    clients.push(other);
    expect(await works(other, "other")).toBe(true);
  });

  it("refuses the 7th connection with one token from any address", async () => {
    const sixthOfOne = await open(k2.port, "127.0.0.3", ONE);
    clients.push(sixthOfOne);
    expect(await works(sixthOfOne, "c6")).toBe(true);
    const seventh = await open(k2.port, "127.0.0.4", ONE);
    expect(await closedWith(seventh)).toEqual([
      1013,
      "try again later: 6 connections with this API token (limit 6)",
    ]);
    const otherToken = await open(k2.port, "127.0.0.4", TWO);
    clients.push(otherToken);
    expect(await works(otherToken, "two")).toBe(true);
  });

  it("counts the refusals in /metrics", async () => {
    const text = await (await fetch(`http://127.0.0.1:${k2.port}/metrics`)).text();
    expect(metricValue(text, "k2_ws_connections_refused_total", '{limit="per_ip"}')).toBe(1);
    expect(metricValue(text, "k2_ws_connections_refused_total", '{limit="per_token"}')).toBe(1);
  });

  it("frees a place when a client leaves (reported by its worker)", async () => {
    const leaving = clients.shift() as TestClient;
    leaving.ws.close();
    await closedWith(leaving);
    const again = await openWhenFree(k2.port, "127.0.0.1", TWO);
    clients.push(again);
    // and the address is full again
    const over = await open(k2.port, "127.0.0.1", TWO);
    expect((await closedWith(over))[0]).toBe(1013);
  });

  // After every worker is SIGKILLed, a client handed to a worker that died before taking its socket
  // used to wait forever for a handshake (the pool kept its copy of the socket open): the killed
  // worker's untaken sockets are now closed, and the client retries.
  it("frees every place of a gateway worker that dies", async () => {
    const workers = childrenOf(k2.child.pid as number);
    expect(workers.length).toBeGreaterThanOrEqual(1);
    for (const pid of workers) process.kill(pid, "SIGKILL");
    await Promise.all(clients.map((c) => closedWith(c)));
    clients.length = 0;
    // five from 127.0.0.1 again (the next client starts the workers again)
    for (let i = 0; i < 5; i++) clients.push(await openWhenFree(k2.port, "127.0.0.1", ONE));
    const over = await open(k2.port, "127.0.0.1", ONE);
    expect((await closedWith(over))[0]).toBe(1013);
  });

  // Node keeps the sender's copy of a socket handed to a worker until the worker acknowledges it, and
  // queues the next ones: a worker that died first (here stopped, then killed) left the first of those
  // clients waiting for a handshake until its own timeout, its socket still open in the main process
  it("closes the clients handed to a worker that died before taking them, and frees their places", async () => {
    const workers = childrenOf(k2.child.pid as number);
    expect(workers.length).toBe(2);
    for (const pid of workers) process.kill(pid, "SIGSTOP");
    const handedOver: TestClient[] = [];
    for (let i = 0; i < 5; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${k2.port}/ws?token=${TWO}`, {
        localAddress: "127.0.0.5",
        handshakeTimeout: 120_000, // only the server can end it within the test
      });
      handedOver.push(new TestClient(ws));
    }
    // the sixth is refused: the five were admitted, hence handed over (to the stopped workers)
    const deadline = Date.now() + 20_000;
    for (;;) {
      const sixth = await open(k2.port, "127.0.0.5", null);
      const [code] = await closedWith(sixth);
      if (code === 1013) break;
      if (Date.now() > deadline) throw new Error("the five clients were not admitted within 20 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const pid of workers) process.kill(pid, "SIGKILL");
    for (const c of handedOver) expect((await closedWith(c))[0]).toBe(1006); // closed, no handshake
    await Promise.all(clients.map((c) => closedWith(c)));
    clients.length = 0;
    // every place of 127.0.0.5 is free again
    for (let i = 0; i < 5; i++) clients.push(await openWhenFree(k2.port, "127.0.0.5", TWO));
  });
});

/** Pids of the child processes of `pid` (Linux). */
function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}

describe("gateway in the main process (K2_WS_WORKERS=0)", () => {
  let run: RunningPipeline;
  const tmp = tempDir();

  beforeAll(async () => {
    run = await startReplayRun({
      db: `${tmp.dir}/k2.duckdb`,
      speed: "max",
      env: { K2_WS_WORKERS: "0", K2_WS_MAX_CONN_PER_IP: "2", K2_WS_LIMIT_LOOPBACK: "1" },
    });
  }, 60_000);

  afterAll(async () => {
    await run?.stop("test done");
    tmp.cleanup();
  });

  it("applies the same limit and frees the place when a client leaves", async () => {
    const port = run.httpPort;
    const a = await open(port, "127.0.0.1", null);
    const b = await open(port, "127.0.0.1", null);
    const c = await open(port, "127.0.0.1", null);
    expect(await closedWith(c)).toEqual([1013, "try again later: 2 connections from 127.0.0.1 (limit 2)"]);
    expect(await works(a, "a")).toBe(true);
    a.ws.close();
    await closedWith(a);
    const d = await openWhenFree(port, "127.0.0.1", null);
    b.close();
    d.close();
  });
});
