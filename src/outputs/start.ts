/**
 * Starts the outputs a process was asked for (`--redis-out`, `--zmq-pub`) and the one bus consumer
 * that relays every trade, aggregate trade and quote of the process's feeds to them. Each backend's
 * module (`redis.ts`, `zmq.ts`; the ZeroMQ one loads a native module) is imported only when asked for.
 */
import { type Bus, type Consumer, processGroupName, topicKind } from "../bus/bus.js";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import { type AssetClass, topicFor } from "../schema/records.js";
import type { Output, OutputKind, OutputRecord } from "./output.js";

export { OutputStartError } from "./output.js";

import type { OutputsConfig } from "./spec.js";

/** Options of {@link startOutputs}. */
export interface StartOutputsOptions {
  config: OutputsConfig;
  bus: Bus;
  /** The venues of this process's feeds: their trade, aggregate trade and quote topics are relayed. */
  feeds: readonly { exchange: string; assetClass: AssetClass }[];
  metrics: Metrics;
  logger: Logger;
}

/** The running outputs of a process. */
export interface RunningOutputs {
  outputs: Output[];
  consumer: Consumer;
  /**
   * Drains the bus consumer, sends what is queued and closes every output, within `timeoutMs` in all
   * (what is not sent by then is counted dropped, reason `shutdown`).
   */
  stop(timeoutMs: number): Promise<void>;
}

/**
 * Starts the configured outputs (binding the ZeroMQ socket, connecting to Redis in the background)
 * and their bus consumer; null when none is configured.
 * @throws {OutputStartError} naming the flag when an output cannot start (`--zmq-pub`: address in use)
 */
export async function startOutputs(opts: StartOutputsOptions): Promise<RunningOutputs | null> {
  const { config, metrics, logger } = opts;
  const outputs: Output[] = [];
  if (config.redis) {
    const { RedisOutput } = await import("./redis.js");
    outputs.push(new RedisOutput(config.redis, metrics, logger));
  }
  if (config.zmq) {
    // the native module loads only when asked for
    const { ZmqOutput } = await import("./zmq.js");
    try {
      outputs.push(await ZmqOutput.bind(config.zmq, metrics, logger));
    } catch (e) {
      await Promise.all(outputs.map((o) => o.close(0)));
      throw e;
    }
  }
  if (outputs.length === 0) return null;
  const topics = new Set<string>();
  for (const f of opts.feeds) {
    for (const kind of ["trades", "aggtrades", "quotes"] as const)
      topics.add(topicFor(f.assetClass, kind, f.exchange));
  }
  const exchanges = [...new Set(opts.feeds.map((f) => f.exchange.toLowerCase()))].sort();
  const parsed = new Map<string, { kind: OutputKind; exchange: string; to: Output[] } | null>();
  const route = (topic: string) => {
    let r = parsed.get(topic);
    if (r === undefined) {
      const kind = topicKind(topic) as OutputKind;
      const to = topics.has(topic) ? outputs.filter((o) => o.kinds.has(kind)) : [];
      r = to.length > 0 ? { kind, exchange: topic.slice(topic.lastIndexOf(".") + 1), to } : null;
      parsed.set(topic, r);
    }
    return r;
  };
  const consumer = opts.bus.consume(
    {
      // this process's own: two ingest processes of the same venues (a standby pair) each relay
      // everything, rather than sharing one group's messages between their sockets
      group: processGroupName(`k2-output-${exchanges.join("-")}`),
      topicPrefixes: [...topics],
      // a live relay: it starts at the bus's end, not at the beginning of its retention, and the bus
      // removes the group when the process stops (a restart relays from then on)
      from: "now",
      transient: true,
      batchSize: 1,
      maxWaitMs: 50,
      maxBatchSize: 10_000,
    },
    async (batch) => {
      for (const m of batch) {
        const r = route(m.topic);
        if (!r) continue;
        const record: OutputRecord = {
          subject: `${m.topic}.${m.key}`,
          kind: r.kind,
          exchange: r.exchange,
          symbol: m.key,
          json: JSON.stringify(m.value),
        };
        for (const o of r.to) o.push(record);
      }
    },
  );
  logger.info(
    { outputs: outputs.map((o) => o.name), topics: [...topics] },
    "outputs relay every trade and quote of this process's feeds",
  );
  return {
    outputs,
    consumer,
    async stop(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      const left = () => Math.max(0, deadline - performance.now());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        consumer.stop({ drain: true }),
        new Promise((r) => {
          timer = setTimeout(r, left());
        }),
      ]);
      clearTimeout(timer);
      await Promise.all(outputs.map((o) => o.close(left())));
      logger.info(
        Object.fromEntries(outputs.map((o) => [o.name, { sent: o.queue.sent, dropped: o.queue.dropped }])),
        "outputs closed",
      );
    },
  };
}
