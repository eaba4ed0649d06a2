/**
 * Private servers for fault tests, on loopback and free ports, that a test may kill and restart without
 * disturbing the machine's shared services: nats-server (JetStream on disk), redis-server (nothing on
 * disk) and a PostgreSQL cluster; and a slow HTTP proxy.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "redis";

export const hasNatsServer = spawnSync("nats-server", ["--version"]).status === 0;

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/** Starts nats-server with JetStream storing in `dir`; resolves once it is ready. */
export function startNatsServer(port: number, dir: string, extraArgs: string[] = []): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir, ...extraArgs], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let out = "";
    const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${out}`)), 15_000);
    p.stderr!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Server is ready")) {
        clearTimeout(timer);
        resolve(p);
      }
    });
    p.on("exit", (code) => {
      clearTimeout(timer);
      if (!out.includes("Server is ready")) reject(new Error(`nats-server exited ${code}: ${out}`));
    });
  });
}

/** True when a Redis server answers at `url` (within 2 s). */
export async function redisReachable(url: string): Promise<boolean> {
  const c = createClient({ url, socket: { connectTimeout: 2000, reconnectStrategy: false } });
  c.on("error", () => undefined);
  try {
    await c.connect();
    await c.close();
    return true;
  } catch {
    return false;
  }
}

export const hasRedisServer = spawnSync("redis-server", ["--version"]).status === 0;

/** Starts redis-server on 127.0.0.1:`port` keeping nothing on disk; resolves once it accepts connections. */
export function startRedisServer(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(
      "redis-server",
      ["--bind", "127.0.0.1", "--port", String(port), "--save", "", "--appendonly", "no", "--dir", tmpdir()],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    let out = "";
    const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 15_000);
    p.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve(p);
      }
    });
    p.on("exit", (code) => {
      clearTimeout(timer);
      if (!out.includes("Ready to accept connections"))
        reject(new Error(`redis-server exited ${code}: ${out}`));
    });
  });
}

function pgBin(name: string): string | null {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return null;
  for (const v of readdirSync(root).sort().reverse()) {
    const p = join(root, v, "bin", name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** True when a private PostgreSQL cluster can be made here (initdb/pg_ctl and a `postgres` user). */
export const canRunPrivatePostgres =
  pgBin("initdb") !== null &&
  spawnSync("id", ["postgres"]).status === 0 &&
  spawnSync("runuser", ["--help"]).status === 0;

/** A private PostgreSQL cluster (trust auth) owned by the `postgres` user. */
export interface PrivatePostgres {
  port: number;
  url: string;
  /** `pg_ctl restart -m fast`: every connection is cut. */
  restart(): void;
  stop(): void;
}

/** Creates and starts a private PostgreSQL cluster on a free port. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), "k2-pg-"));
  chmodSync(dir, 0o777);
  const data = join(dir, "data");
  const port = await freePort();
  const asPostgres = (bin: string, args: string[]) =>
    execFileSync("runuser", ["-u", "postgres", "--", pgBin(bin)!, ...args], {
      stdio: "pipe",
      timeout: 60_000,
    });
  asPostgres("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const opts = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c max_connections=60`;
  asPostgres("pg_ctl", ["-D", data, "-o", opts, "-l", join(dir, "log"), "-w", "start"]);
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: () =>
      asPostgres("pg_ctl", ["-D", data, "-o", opts, "-l", join(dir, "log"), "-m", "fast", "-w", "restart"]),
    stop: () => {
      try {
        asPostgres("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A 3-node JetStream cluster on loopback ports. */
export interface NatsCluster {
  /** Client URLs, one per node. */
  servers: string[];
  nodes: ChildProcess[];
  /** Client ports, one per node. */
  ports: number[];
}

/** Starts a 3-node JetStream cluster storing under `dir` (nodes are ready shortly after; R3 stream creation waits for the meta leader). */
export async function startNatsCluster(dir: string, name = "k2test"): Promise<NatsCluster> {
  const client = [await freePort(), await freePort(), await freePort()];
  const route = [await freePort(), await freePort(), await freePort()];
  const routes = route.map((p) => `nats://127.0.0.1:${p}`).join(",");
  const nodes: ChildProcess[] = [];
  for (let i = 0; i < 3; i++) {
    nodes.push(
      spawn(
        "nats-server",
        [
          ["-a", "127.0.0.1", "-p", String(client[i]), "-n", `${name}${i}`, "-js", "-sd", join(dir, `n${i}`)],
          ["--cluster_name", name, "--cluster", `nats://127.0.0.1:${route[i]}`, "--routes", routes],
        ].flat(),
        { stdio: "ignore" },
      ),
    );
  }
  return { servers: client.map((p) => `nats://127.0.0.1:${p}`), nodes, ports: client };
}

/** A loopback HTTP proxy that holds every answer of `upstream` for `holdMs` before passing it on. */
export interface SlowProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  close(): Promise<void>;
}

/**
 * Starts a {@link SlowProxy} in front of `upstream` (an http base URL): each request is forwarded after
 * `holdMs` ms, its status, headers (but the body's framing) and body passed on as received.
 */
export async function startSlowProxy(upstream: string, holdMs: number): Promise<SlowProxy> {
  const server = createHttpServer((req, res) => {
    setTimeout(async () => {
      const answer = await fetch(`${upstream}${req.url}`);
      const headers: Record<string, string> = {};
      answer.headers.forEach((v, k) => {
        if (k !== "content-length" && k !== "content-encoding" && k !== "transfer-encoding") headers[k] = v;
      });
      res.writeHead(answer.status, headers);
      res.end(Buffer.from(await answer.arrayBuffer()));
    }, holdMs);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
