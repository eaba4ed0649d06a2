/**
 * What `k2 run --replay` needs of a replay server, whatever the capture format: listen on 127.0.0.1,
 * speak the venue's WebSocket protocol, report when a connection has been sent the whole capture.
 */
import type { EventEmitter } from "node:events";

export type ReplaySpeed = number | "max";

export interface ReplayServerOptions {
  /** Capture file. */
  file: string;
  /** 127.0.0.1 port; 0 picks a free one. */
  port?: number;
  /** Pace multiplier (1 = real time, 10 = ten times faster) or `max`. */
  speed?: ReplaySpeed;
  /** Continue a new connection from where the previous one broke (test mode). */
  resume?: boolean;
  /** With `resume`: the first frame to send (index among the subscribed streams' frames). */
  startAt?: number;
  /** Incoming message limit per second before the connection is closed (Binance: 5). */
  maxIncomingPerSecond?: number;
}

export interface ReplayServerEvents {
  /** A connection reached the end of the capture; `sent` counts every message sent on it. */
  end: [info: { sent: number; dataFrames: number }];
  connection: [path: string];
}

/** A running replay server. */
export interface ReplayServer extends EventEmitter<ReplayServerEvents> {
  /** Listens; resolves with the port. */
  start(): Promise<number>;
  /** `ws://127.0.0.1:<port>` */
  readonly url: string;
  /** Messages written to sockets over all connections (data frames and replies). */
  readonly totalSent: number;
  stop(): Promise<void>;
}
