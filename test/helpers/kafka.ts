/**
 * Apache Kafka for tests, through `scripts/kafka.sh` (KRaft nodes on free 127.0.0.1 ports, jars resolved
 * with Maven into a cache outside the repository).
 *
 * - {@link kafkaBootstrap}: the broker the suite shares. `K2_KAFKA_URL` (`kafka://host:port[,host:port]`,
 *   exported by `.ci/run`) when set; otherwise the script's development node, started if it is not
 *   running (and left running for the next test file).
 * - {@link startKafkaCluster}: a private cluster (1 or 3 nodes) in a temporary folder, for tests that kill
 *   brokers; `stop()` kills it and removes the folder (call it in `afterAll`, and it runs on exit too).
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("../../scripts/kafka.sh", import.meta.url));

/** Java and Maven are on PATH (the script needs both, Maven only the first time). */
export const canRunKafka =
  spawnSync("java", ["-version"]).status === 0 && spawnSync("mvn", ["-v"]).status === 0;

/** `host:port,…` of a `kafka://host:port[,host:port]` URL (or of a bare list). */
export function bootstrapOf(url: string): string {
  return url.replace(/^kafka:\/\//, "").replace(/\/.*$/, "");
}

/**
 * Bootstrap address (`host:port,…`) of the suite's shared broker.
 * @throws when the script cannot start one (no java / mvn, jars not resolvable); its stderr is in the message
 */
export async function kafkaBootstrap(): Promise<string> {
  const url = process.env.K2_KAFKA_URL;
  if (url) return bootstrapOf(url);
  try {
    const { stdout } = await run("bash", [SCRIPT, "start"], { timeout: 600_000 });
    return stdout.trim().split("\n").pop()!;
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`scripts/kafka.sh start failed: ${err.stderr ?? err.message}`);
  }
}

/** A private Kafka cluster started by {@link startKafkaCluster}. */
export interface KafkaCluster {
  /** `host:port,…` of every node. */
  bootstrap: string;
  /** The cluster's folder (node-N/{pid,kafka.log,data}). */
  dir: string;
  /** Process id of node `n` (1-based). */
  pid(n: number): number;
  /** SIGKILLs node `n` (1-based) and leaves it down. */
  kill(n: number): void;
  /** Stops every node and removes the folder (idempotent). */
  stop(): Promise<void>;
}

const live = new Set<KafkaCluster>();
process.on("exit", () => {
  // a failing test still takes its brokers down with it
  for (const c of live) spawnSync("bash", [SCRIPT, "stop", "--dir", c.dir, "--clean"], { timeout: 30_000 });
});

/**
 * Starts `nodes` KRaft nodes (each broker and controller) in a new temporary folder; with 3 nodes,
 * topics default to replication factor 3 and `min.insync.replicas=2`.
 * @throws when the script fails (its stderr is in the message)
 */
export async function startKafkaCluster(nodes: 1 | 3): Promise<KafkaCluster> {
  const dir = mkdtempSync(join(tmpdir(), "k2-kafka-"));
  let stdout: string;
  try {
    ({ stdout } = await run("bash", [SCRIPT, "start", "--nodes", String(nodes), "--dir", dir], {
      timeout: 600_000,
    }));
  } catch (e) {
    const err = e as Error & { stderr?: string };
    spawnSync("bash", [SCRIPT, "stop", "--dir", dir, "--clean"]);
    throw new Error(`scripts/kafka.sh start --nodes ${nodes} failed: ${err.stderr ?? err.message}`);
  }
  const pid = (n: number) => Number(readFileSync(join(dir, `node-${n}`, "pid"), "utf8").trim());
  const cluster: KafkaCluster = {
    bootstrap: stdout.trim().split("\n").pop()!,
    dir,
    pid,
    kill: (n) => process.kill(pid(n), "SIGKILL"),
    stop: async () => {
      if (!live.delete(cluster)) return;
      await run("bash", [SCRIPT, "stop", "--dir", dir], { timeout: 60_000 }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      rmSync(`${dir}.lock`, { force: true });
    },
  };
  live.add(cluster);
  return cluster;
}
