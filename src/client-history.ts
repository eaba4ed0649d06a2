/**
 * History and history-then-live for `k2/client` ({@link replay}, {@link stream}), one async-iterator
 * API for both, yielding the same typed records:
 *
 *   for await (const r of replay({ url, symbols: ["BTCUSDT"], channels: ["trades", "quotes"], from, to }))
 *     console.log(r.channel, r.data.timestamp);
 *   for await (const r of stream({ url, symbols: ["BTCUSDT"], channels: ["trades"], from })) ...
 *
 * `replay` reads REST (`/api/v1/trades|quotes`, keyset pages of 1,000) per (channel, symbol) and merges
 * them k-way in time order (ties: venue sequence, then channel and symbol order). `stream` subscribes on
 * the gateway with `from` (history, then live after `replay_done`), and after a drop reconnects with
 * backoff (0.5 s doubling to 30 s by default) and subscribes again from the last record it yielded:
 * per (channel, exchange, symbol) it remembers the last record's sort key and skips anything at or
 * before it, so nothing is yielded twice and nothing is missed.
 */
import WebSocket from "ws";
import type { QuoteV2, TradeV2 } from "./schema/records.js";
import { compareKeys, type SortKey, sortKey } from "./serve/live/recent.js";
import { mergeSorted } from "./serve/ws/replay.js";

/** A record of a history or stream: its channel and the record (exact decimal strings, µs times). */
export type HistoryRecord = { channel: "trades"; data: TradeV2 } | { channel: "quotes"; data: QuoteV2 };

/** What to read. */
export interface HistoryQuery {
  /** Gateway URL (`ws://host:port/ws`); the REST API is found at the same host under `/api/v1`. */
  url: string;
  /** API token (sent as `Authorization: Bearer`). */
  token?: string;
  /** Venue (`BINANCE`); omitted: every venue. */
  exchange?: string;
  symbols: string[];
  channels: ("trades" | "quotes")[];
  /** Start, µs since epoch or RFC 3339 text (inclusive). */
  from: number | string;
  /** End, µs since epoch or RFC 3339 text (exclusive; `replay` only). */
  to?: number | string;
}

/** The REST base (`http://host:port/api/v1`) of a gateway URL. */
function apiBase(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.pathname = "/api/v1";
  u.search = "";
  return u.toString();
}

const venueSequence = (r: HistoryRecord) => r.data.source_sequence ?? -1;

/** Time order; ties by venue sequence. */
function compareRecords(a: HistoryRecord, b: HistoryRecord): number {
  if (a.data.timestamp !== b.data.timestamp) return a.data.timestamp - b.data.timestamp;
  return venueSequence(a) - venueSequence(b);
}

/**
 * The stored records of `q` in time order across channels, symbols and venues (ties: venue sequence),
 * read in REST pages as it is iterated (one page per (channel, symbol) in memory).
 * @throws {Error} on an HTTP error (its status and body)
 */
export async function* replay(q: HistoryQuery): AsyncGenerator<HistoryRecord> {
  const base = apiBase(q.url);
  const headers: Record<string, string> = q.token ? { Authorization: `Bearer ${q.token}` } : {};
  async function* pages(channel: "trades" | "quotes", symbol: string): AsyncGenerator<HistoryRecord> {
    let cursor: string | null = null;
    do {
      const p = new URLSearchParams({ symbol, from: String(q.from), order: "asc", limit: "1000" });
      if (q.to !== undefined) p.set("to", String(q.to));
      if (q.exchange) p.set("exchange", q.exchange);
      if (cursor) p.set("cursor", cursor);
      const res = await fetch(`${base}/${channel}?${p}`, { headers });
      if (!res.ok) throw new Error(`GET /api/v1/${channel}: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { data: (TradeV2 | QuoteV2)[]; next_cursor: string | null };
      for (const data of body.data) yield { channel, data } as HistoryRecord;
      cursor = body.next_cursor;
    } while (cursor);
  }
  const streams = q.channels.flatMap((c) => q.symbols.map((s) => pages(c, s)));
  yield* mergeSorted(streams, compareRecords);
}

/** Options of {@link stream}. */
export interface StreamOptions extends Omit<HistoryQuery, "to"> {
  /** First reconnect delay, ms (default 500). */
  backoffInitialMs?: number;
  /** Reconnect delay ceiling, ms (default 30000). */
  backoffMaxMs?: number;
  /** Called on each reconnect with the attempt number and its delay, ms. */
  onReconnect?: (attempt: number, delayMs: number) => void;
  /** Called when the gateway says `replay_done` for a channel. */
  onReplayDone?: (channel: "trades" | "quotes") => void;
  /** Stops the stream (the iterator returns). */
  signal?: AbortSignal;
}

/**
 * History from `from`, then live, over the gateway (see the module comment), until `signal` aborts.
 * @throws {Error} on an error frame from the gateway (bad request, `K2_REPLAY_MAX_RANGE` or
 *   `K2_REPLAY_MAX_RECORDS` exceeded) or an authentication failure (close 1008)
 */
export async function* stream(o: StreamOptions): AsyncGenerator<HistoryRecord> {
  const last = new Map<string, { ts: number; symbol: string; key: SortKey }>();
  const fromUs =
    typeof o.from === "number" ? o.from : /^\d+$/.test(o.from) ? Number(o.from) : Date.parse(o.from) * 1000;
  let attempt = 0;
  while (!o.signal?.aborted) {
    const queue: (HistoryRecord | Error | "closed")[] = [];
    let wake: (() => void) | null = null;
    const push = (x: HistoryRecord | Error | "closed") => {
      queue.push(x);
      wake?.();
    };
    const headers: Record<string, string> = o.token ? { Authorization: `Bearer ${o.token}` } : {};
    const ws = new WebSocket(o.url, { headers, perMessageDeflate: false });
    const onAbort = () => ws.terminate();
    o.signal?.addEventListener("abort", onAbort);
    ws.on("open", () => {
      attempt = 0;
      for (const channel of o.channels) {
        // resume from the oldest last record of the channel's symbols (each skips what it has had);
        // from the start while some symbol (or, with "*", any symbol) may not have had a record yet
        const seen = [...last].filter(([k]) => k.startsWith(`${channel}|`)).map(([, v]) => v);
        const symbolsSeen = new Set(seen.map((v) => v.symbol));
        const allSeen = !o.symbols.includes("*") && o.symbols.every((s) => symbolsSeen.has(s));
        const from = allSeen ? Math.min(...seen.map((v) => v.ts)) : fromUs;
        ws.send(JSON.stringify({ op: "subscribe", channel, symbols: o.symbols, from, id: channel }));
      }
    });
    ws.on("message", (d) => {
      const m = JSON.parse(d.toString()) as Record<string, unknown>;
      if (m.type === "trade" || m.type === "quote") {
        push({ channel: m.channel, data: m.data } as HistoryRecord);
        if (queue.length > 10_000) ws.pause(); // the consumer is behind: stop reading the socket
      } else if (m.type === "replay_done") o.onReplayDone?.(m.channel as "trades" | "quotes");
      else if (m.type === "error") push(new Error(`gateway: ${String(m.error)}`));
    });
    ws.on("error", () => undefined);
    ws.on("close", (code) => {
      if (code === 1008) push(new Error("gateway: unauthorized (1008)"));
      push("closed");
    });
    try {
      for (;;) {
        const x = queue.shift();
        if (x === undefined) {
          await new Promise<void>((r) => {
            wake = r;
          });
          wake = null;
          continue;
        }
        if (x === "closed") break;
        if (x instanceof Error) throw x;
        const id = `${x.channel}|${x.data.exchange}|${x.data.symbol}`;
        const key = sortKey(x.channel, x.data);
        const prev = last.get(id);
        if (prev && compareKeys(key, prev.key) <= 0) continue; // had it before the reconnect
        last.set(id, { ts: x.data.timestamp, symbol: x.data.symbol, key });
        if (queue.length < 1000) ws.resume();
        yield x;
      }
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
      ws.terminate();
    }
    if (o.signal?.aborted) return;
    attempt++;
    const delay = Math.min(o.backoffMaxMs ?? 30_000, (o.backoffInitialMs ?? 500) * 2 ** (attempt - 1));
    o.onReconnect?.(attempt, delay);
    await new Promise((r) => setTimeout(r, delay));
  }
}
