/**
 * The WebSocket gateway protocol (`/ws`), shared by the server (`gateway.ts`) and the typed
 * client (`k2/client`). Every message is one JSON text frame.
 *
 * Client → server:
 *   {"op":"subscribe","channel":"trades","symbols":["BTCUSDT"],"id":1}           (optional "batch_ms":100)
 *   {"op":"subscribe","channel":"trades","symbols":["BTCUSDT"],"from":"2024-08-08T00:00:00Z","id":5}
 *   {"op":"subscribe","channel":"book.10","symbols":["BTCUSDT"],"from":1723161360000000,"id":6}
 *   {"op":"unsubscribe","channel":"trades","symbols":["BTCUSDT"],"id":2}
 *   {"op":"ping","id":3}
 * `channel` is `trades`, `quotes`, `ticks`, `candles.{1s|1m|5m|15m|1h|1d}` or `book.{N}` (N from 1 to
 * 1000); `symbols` are venue symbols (`BTCUSDT`) or `"*"` for every symbol. `id` (string or integer) is
 * echoed in the reply.
 *
 * `book.{N}` (issue #13): the best N levels of each order book the process maintains (`k2 run --streams
 * depth,bookTicker` on Binance). Every `book` message is a whole top-N (`LiveBookTop`,
 * `schema/live-book.ts`: bids highest first, asks lowest first, the last venue sequence applied, the time
 * of the last resync), never a set of changed levels: one on subscribe for each book already kept (the
 * snapshot), then one after each change of the book (each depth diff applied, a snapshot loaded, a
 * resync, when `state` turns `syncing` with no levels until the new snapshot). An update may repeat the
 * previous top-N when the change was deeper than N. A client that falls behind gets the latest top-N
 * per symbol: a newer `book` frame replaces the one waiting in its queue (conflated like quotes and
 * ticks), so it skips versions but never sees a torn book.
 * `from` (trades, quotes, candles.* and book.{N}; RFC 3339 text or µs since the epoch, 0 or from 10^14: seconds and ms are
 * refused as the REST API refuses them) asks for history then live: the
 * stored records from `from` on, in the store's order, at the client's pace, then the records received
 * but not stored yet, then live, with no gap and no duplicate (`replay.ts`); `replay_done` marks the
 * switch. On `candles.*` (named symbols, not `"*"`) it sends the stored closed candles from the
 * interval holding `from` on, then those closed lately and the open ones, then live, each closed
 * candle once (`candle-replay.ts`). On `book.{N}` (named symbols or `"*"`) it sends the stored top-N
 * snapshots (`book_snapshots_v2`, `--book-depth`/`--book-interval`) from `from` on in time order, each
 * cut to N and framed as a live `book` (`timestamp`: the snapshot's interval boundary), then each kept
 * book's current top-N when newer than the last snapshot sent, then live books; no book older than one
 * already sent follows the switch (`book-replay.ts`). N deeper than the depth stored is refused: the
 * replay ends with an error frame, code 400, naming the depth stored (never a shallower book than
 * asked for). How far back `from` may reach is bounded (`K2_REPLAY_MAX_RANGE`;
 * error code 416 beyond), and how many stored records one may be sent (`K2_REPLAY_MAX_RECORDS`; error
 * code 413 past it).
 *
 * Server → client:
 *   {"type":"subscribed","id":1,"channel":"trades","symbols":["BTCUSDT"],"batch_ms":0}
 *   {"type":"unsubscribed","id":2,"channel":"trades","symbols":[]}
 *   {"type":"pong","id":3,"ts":1723161254036059}
 *   {"type":"error","id":4,"field":"symbols.0","error":"symbols.0: expected a venue symbol ..."}
 *   {"type":"replay_done","event":"replay_done","id":5,"channel":"trades","replayed":4871}
 *   (errors of a `from` subscription also carry an HTTP-like "code": 400, 413, 416 or 503)
 *   {"type":"trade","channel":"trades","data":TradeV2}
 *   {"type":"quote","channel":"quotes","data":QuoteV2}
 *   {"type":"tick","channel":"ticks","data":Tick}
 *   {"type":"candle","channel":"candles.1m","data":LiveCandle}
 *   {"type":"book","channel":"book.10","data":LiveBookTop}
 *   {"type":"batch","channel":"trades","data":[TradeV2,...]}          (subscriptions with batch_ms)
 *   {"type":"heartbeat","ts":1723161254036059}                        (every 30 s; `ts` µs since epoch)
 *
 * Close codes: 1008 unauthorized (bad or missing token when `K2_API_TOKENS` is set), 4000 slow
 * consumer (send queue over its limit), 4001 idle (nothing received for the idle timeout), 1001
 * server shutting down. The close reason says why in words.
 */
import { z } from "zod";
import { type LiveBookTop, MAX_LIVE_BOOK_DEPTH } from "../../schema/live-book.js";
import type { QuoteV2, TradeV2 } from "../../schema/records.js";
import { parseIsoMicros } from "../../schema/time.js";
import type { QueryParamError } from "../../store/page.js";
import { parseNumericTime } from "../rest/params.js";
import type { LiveCandle, Tick } from "./feed.js";

/** Candle intervals a `candles.{interval}` channel can name. */
export const CANDLE_INTERVALS = ["1s", "1m", "5m", "15m", "1h", "1d"] as const;
/** Channels with a fixed name a client can subscribe to (besides `book.{N}`). */
export const CHANNELS = [
  "trades",
  "quotes",
  "ticks",
  "candles.1s",
  "candles.1m",
  "candles.5m",
  "candles.15m",
  "candles.1h",
  "candles.1d",
] as const;
/** A `book.{N}` channel: the top N levels of each kept book (N from 1 to {@link MAX_LIVE_BOOK_DEPTH}). */
export type BookChannel = `book.${number}`;
export type Channel = (typeof CHANNELS)[number] | BookChannel;

/** Levels per side of a `book.{N}` channel, or null when `channel` is not one. */
export function bookDepthOf(channel: string): number | null {
  return channel.startsWith("book.") ? Number(channel.slice(5)) : null;
}

/** Close codes used by the gateway (RFC 6455 §7.4: 4000–4999 are for applications). */
export const CLOSE_CODES = {
  goingAway: 1001,
  unauthorized: 1008,
  /** Refused by a connection limit (`conn-limit.ts`); the reason gives the count and the limit. */
  tryAgainLater: 1013,
  slowConsumer: 4000,
  idle: 4001,
} as const;

/** Most symbols one subscribe/unsubscribe request may name. */
export const MAX_SYMBOLS_PER_REQUEST = 200;

const requestId = z.union([z.string().max(128), z.number().int()]).optional();
const CHANNEL_ERROR = `expected one of ${CHANNELS.join(", ")} or book.{N} (N from 1 to ${MAX_LIVE_BOOK_DEPTH})`;
const channel = z.union([z.enum(CHANNELS), z.string()], { error: () => CHANNEL_ERROR }).check((ctx) => {
  const v = ctx.value;
  if ((CHANNELS as readonly string[]).includes(v)) return;
  const m = /^book\.([1-9]\d{0,3})$/.exec(v);
  if (!m || Number(m[1]) > MAX_LIVE_BOOK_DEPTH) {
    ctx.issues.push({ code: "custom", message: CHANNEL_ERROR, input: v });
  }
}) as unknown as z.ZodType<Channel>;
const symbols = z
  .array(
    // the REST API's rule (`ParamReader.symbol`): any case, upper-cased, as venue symbols are stored
    z
      .string()
      .regex(
        /^(\*|[A-Za-z0-9][A-Za-z0-9._/-]{0,31})$/,
        'expected a venue symbol such as "BTCUSDT" (any case; upper-cased) or "*"',
      )
      .transform((s) => s.toUpperCase()),
  )
  .min(1, "expected at least one symbol")
  .max(MAX_SYMBOLS_PER_REQUEST, `expected at most ${MAX_SYMBOLS_PER_REQUEST} symbols`);

/** zod schema of a client message. Unknown fields are rejected (named in the error). */
export const ClientMessageSchema = z.discriminatedUnion(
  "op",
  [
    z.strictObject({
      op: z.literal("subscribe"),
      id: requestId,
      channel,
      symbols,
      batch_ms: z
        .number()
        .int("expected an integer number of ms")
        .min(0)
        .max(60_000, "expected at most 60000 ms")
        .optional(),
      from: z
        .union([
          z.number().int().min(0),
          z.string().regex(/^\d{1,16}$/),
          z.string().regex(/^\d{4}-\d{2}-\d{2}T/, "expected RFC 3339 time or µs since the epoch"),
        ])
        .transform((v, ctx) => {
          if (typeof v === "number" || /^\d+$/.test(v)) {
            // the REST API's rule (`parseNumericTime`): a bare integer too small to be µs is refused
            let reason = "time out of range";
            try {
              const us = parseNumericTime("from", String(v));
              if (us !== undefined) return us;
            } catch (e) {
              reason = (e as QueryParamError).reason;
            }
            ctx.addIssue({ code: "custom", message: reason });
            return z.NEVER;
          }
          try {
            return parseIsoMicros(v);
          } catch {
            ctx.addIssue({ code: "custom", message: "expected RFC 3339 time or µs since the epoch" });
            return z.NEVER;
          }
        })
        .optional(),
    }),
    z.strictObject({ op: z.literal("unsubscribe"), id: requestId, channel, symbols }),
    z.strictObject({ op: z.literal("ping"), id: requestId }),
  ],
  { error: () => 'expected "subscribe", "unsubscribe" or "ping"' },
);

/** A validated client message. */
export type ClientMessage = z.infer<typeof ClientMessageSchema>;
export type SubscribeRequest = Extract<ClientMessage, { op: "subscribe" }>;

/** Request id as sent by the client (string or integer), or null when it sent none. */
export type RequestId = string | number | null;

/** Server messages (see the module comment for examples). */
export type ServerMessage =
  | {
      type: "subscribed";
      id: RequestId;
      channel: Channel;
      symbols: string[];
      batch_ms: number;
      from?: number;
    }
  | { type: "unsubscribed"; id: RequestId; channel: Channel; symbols: string[] }
  | { type: "pong"; id: RequestId; ts: number }
  | { type: "error"; id: RequestId; field: string | null; error: string; code?: number }
  | { type: "replay_done"; event: "replay_done"; id: RequestId; channel: Channel; replayed: number }
  | { type: "heartbeat"; ts: number }
  | { type: "trade"; channel: "trades"; data: TradeV2 }
  | { type: "quote"; channel: "quotes"; data: QuoteV2 }
  | { type: "tick"; channel: "ticks"; data: Tick }
  | { type: "candle"; channel: Channel; data: LiveCandle }
  | { type: "book"; channel: BookChannel; data: LiveBookTop }
  | { type: "batch"; channel: "trades"; data: TradeV2[] }
  | { type: "batch"; channel: "quotes"; data: QuoteV2[] }
  | { type: "batch"; channel: "ticks"; data: Tick[] }
  | { type: "batch"; channel: Channel; data: LiveCandle[] }
  | { type: "batch"; channel: BookChannel; data: LiveBookTop[] };

/**
 * Parses and validates one client frame.
 * @returns the message, or an error naming the offending field (`field` null for malformed JSON)
 *   together with the request id when one could be read
 */
export function parseClientMessage(
  text: string,
): { ok: true; message: ClientMessage } | { ok: false; id: RequestId; field: string | null; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, id: null, field: null, error: "invalid JSON" };
  }
  const id =
    raw &&
    typeof raw === "object" &&
    "id" in raw &&
    (typeof raw.id === "string" || typeof raw.id === "number")
      ? (raw.id as string | number)
      : null;
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    return { ok: false, id, field: null, error: "expected a JSON object" };
  }
  const r = ClientMessageSchema.safeParse(raw);
  if (r.success) return { ok: true, message: r.data };
  const issue = r.error.issues[0];
  let field = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") field = issue.keys.join(",");
  const label = field === "" ? "message" : field;
  const message =
    issue.code === "unrecognized_keys" ? `unknown field(s) ${issue.keys.join(", ")}` : issue.message;
  return { ok: false, id, field: field || null, error: `${label}: ${message}` };
}
