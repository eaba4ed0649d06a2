/**
 * `--zmq-pub tcp://HOST:PORT`: every trade, aggregate trade and quote on a ZeroMQ PUB socket (the
 * `zeromq` package, v6; semantics from the ZeroMQ guide and `zmq_socket(3)`, ZMQ_PUB). Each record is
 * one two-frame message: the subject (`market.crypto.trades.binance.BTCUSDT`: the bus topic, then the
 * symbol), then the record as JSON. Subscribers filter by prefix: `market.crypto.trades.binance.` for
 * one venue's trades, `market.crypto.quotes.binance.BTCUSDT` for one symbol's quotes, `market.` for
 * everything.
 *
 * The socket's send high-water mark (`--zmq-hwm`, default 10,000 messages) bounds what is held for
 * each subscriber: a subscriber that does not keep up loses the messages past it (ZMQ_PUB drops them
 * for that subscriber alone; libzmq does not count them), while every other subscriber and the feed go
 * on at their pace. Records wait for the socket in a bounded queue of 10,000 (drops counted in
 * `k2_output_dropped_total{output="zmq"}`).
 */
import { Publisher } from "zeromq";
import type { Logger } from "../ops/logger.js";
import type { Metrics } from "../ops/metrics.js";
import {
  type Output,
  type OutputKind,
  OutputQueue,
  type OutputRecord,
  OutputStartError,
  outputMetrics,
} from "./output.js";
import { DEFAULT_OUTPUT_QUEUE, type ZmqPubSpec } from "./spec.js";

const KINDS: ReadonlySet<OutputKind> = new Set(["trades", "aggtrades", "quotes"]);
/** Longest wait at close for the socket to hand over what it holds, ms. */
const MAX_LINGER_MS = 2000;

/** The ZeroMQ PUB output; create with {@link ZmqOutput.bind}. */
export class ZmqOutput implements Output {
  readonly name = "zmq";
  readonly kinds = KINDS;
  readonly queue: OutputQueue;
  private bound = true;

  private constructor(
    private readonly socket: Publisher,
    readonly spec: ZmqPubSpec,
    private readonly metrics: Metrics,
  ) {
    this.queue = new OutputQueue({
      name: this.name,
      capacity: DEFAULT_OUTPUT_QUEUE,
      maxBatch: 1000,
      send: (batch) => this.send(batch),
      ready: () => this.bound,
      metrics,
      onError: () => undefined,
    });
    outputMetrics(metrics).connected.labels(this.name).set(1);
  }

  /**
   * Binds a PUB socket on `spec.endpoint` with the send high-water mark `spec.hwm`.
   * @throws {OutputStartError} naming `--zmq-pub` when the endpoint cannot be bound (address in use,
   *   an address not of this host)
   */
  static async bind(spec: ZmqPubSpec, metrics: Metrics, logger: Logger): Promise<ZmqOutput> {
    const socket = new Publisher({ sendHighWaterMark: spec.hwm, linger: 0 });
    try {
      await socket.bind(spec.endpoint);
    } catch (e) {
      socket.close();
      throw new OutputStartError(`--zmq-pub: cannot bind ${spec.endpoint}: ${(e as Error).message}`);
    }
    logger.info({ output: "zmq", endpoint: spec.endpoint, hwm: spec.hwm }, "zmq output: PUB socket bound");
    return new ZmqOutput(socket, spec, metrics);
  }

  push(record: OutputRecord): void {
    this.queue.push(record);
  }

  async close(timeoutMs: number): Promise<void> {
    if (!(await this.queue.drained(timeoutMs))) this.queue.clear("shutdown");
    this.bound = false;
    outputMetrics(this.metrics).connected.labels(this.name).set(0);
    // what the socket still holds for subscribers keeping up goes out within the linger time
    this.socket.linger = Math.min(MAX_LINGER_MS, Math.max(0, Math.round(timeoutMs)));
    this.socket.close();
  }

  private async send(batch: OutputRecord[]): Promise<void> {
    // PUB never blocks: past a subscriber's high-water mark its copy is dropped
    for (const r of batch) await this.socket.send([r.subject, r.json]);
  }
}
