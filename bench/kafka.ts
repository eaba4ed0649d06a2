/**
 * Where the benchmarks find a Kafka broker: `--kafka host:port[,…]`, else `K2_KAFKA_URL`
 * (`kafka://host:port[,…]`), else the development node of `scripts/kafka.sh` (its `bootstrap` file under
 * `$K2_KAFKA_CACHE/run`, default ~/.cache/k2-kafka/run). Null when none answers: the Kafka rows then
 * say "skipped: no broker".
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KafkaBus } from "../src/bus/kafka.js";

/** `host:port,…` of a reachable broker, or null. */
export async function benchKafkaBrokers(argv: string[] = process.argv): Promise<string | null> {
  const i = argv.indexOf("--kafka");
  const bootstrapFile = join(
    process.env.K2_KAFKA_CACHE ?? join(homedir(), ".cache", "k2-kafka"),
    "run",
    "bootstrap",
  );
  const candidate =
    (i > 0 ? argv[i + 1] : undefined) ??
    process.env.K2_KAFKA_URL?.replace(/^kafka:\/\//, "").replace(/[/?].*$/, "") ??
    (existsSync(bootstrapFile) ? readFileSync(bootstrapFile, "utf8").trim() : undefined);
  if (!candidate) return null;
  try {
    const bus = await KafkaBus.connect({ brokers: candidate.split(","), timeoutMs: 3000 });
    await bus.close();
    return candidate;
  } catch {
    return null;
  }
}
