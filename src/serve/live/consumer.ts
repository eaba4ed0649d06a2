/**
 * Bus → live feed: a consumer group of each serving process's own (`k2-live-{pid}-{tag}-{host}`, a
 * transient group: two `k2 serve` on one bus each relay every record, rather than sharing one group's
 * messages between them) on every `market.` topic
 * relays each record to the in-process {@link LiveFeed} (`feed.ts`) as the bus delivers it, so data
 * keeps flowing one way (venue → normalize → bus → store | serve) whether the bus is in-process or
 * networked.
 */
import type { Bus, Consumer } from "../../bus/bus.js";
import { processGroupName, topicKind } from "../../bus/bus.js";
import type { CandleV2 } from "../../schema/candles.js";
import type { DeadLetter, QuoteV2, SequenceGap, TradeV2 } from "../../schema/records.js";
import type { LiveFeed } from "./feed.js";

/** Options of {@link startLiveConsumer}. */
export interface LiveConsumerOptions {
  bus: Bus;
  live: LiveFeed;
  /**
   * Consumer group (default `k2-live-{pid}-{tag}-{host}`, this process's alone): its own queue,
   * independent of the store's `k2-persist` and of every other serving process's. Transient: the bus
   * removes it when the consumer stops.
   */
  group?: string;
  /**
   * Which data types to relay (default all: trades, quotes, candles, gaps, dlq). `aggtrades` are
   * never relayed as trades (they are the same executions grouped per taker order).
   */
  kinds?: string[];
}

/**
 * Subscribes the live feed to the bus: every message on a `market.` topic is relayed to `live` as it
 * is acknowledged by the bus (batch size 1: delivered as soon as it is published, in order), from when
 * the group joined (`ready()`); a restarted process joins anew at the bus's end (what it missed is
 * history, served from the store). Stop the returned consumer (`stop({ drain: true })`) before closing
 * the bus: that also removes its group from the bus.
 */
export function startLiveConsumer(opts: LiveConsumerOptions): Consumer {
  const { live } = opts;
  const kinds = new Set(opts.kinds ?? ["trades", "quotes", "candles", "gaps", "dlq"]);
  const kindOf = new Map<string, string>(); // topic → data type, parsed once per topic
  return opts.bus.consume(
    {
      group: opts.group ?? processGroupName("k2-live"),
      topicPrefixes: ["market."],
      // live data: a new group starts at the bus's end (what a durable bus kept from before is history,
      // served from the store), not at the beginning of its retention
      from: "now",
      transient: true,
      batchSize: 1,
      maxWaitMs: 50,
      maxBatchSize: 10_000,
    },
    async (batch) => {
      for (const m of batch) {
        let kind = kindOf.get(m.topic);
        if (kind === undefined) {
          kind = topicKind(m.topic);
          kindOf.set(m.topic, kind);
        }
        if (!kinds.has(kind)) continue;
        switch (kind) {
          case "trades":
            live.publishTrade(m.value as TradeV2);
            break;
          case "quotes":
            live.publishQuote(m.value as QuoteV2);
            break;
          case "candles":
            live.emit("candle", m.value as CandleV2);
            break;
          case "gaps":
            live.emit("gap", m.value as SequenceGap);
            break;
          case "dlq":
            live.emit("deadLetter", m.value as DeadLetter);
            break;
        }
      }
    },
  );
}
