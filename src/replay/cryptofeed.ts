/**
 * cryptofeed raw-data recordings (`../shared/data/cryptofeed/*.jsonl.gz`, format of cryptofeed's
 * raw-data recorder, github.com/bmoscon/cryptofeed): one JSON object per line,
 *
 *     {"t":"header"|"http"|"connect"|"send"|"recv", "conn":"KRAKEN.ws.48", "ts":<unix seconds>,
 *      "addr"?:"wss://...", "url"?:"https://...", "data"?:"<raw frame text>"}
 *
 * The header line names the `exchange` (`COINBASE`). `connect` opens a recorded WebSocket connection
 * (`addr` is its URL), `send` lines are what the client sent on it (subscriptions), `recv` lines what
 * the venue sent. Read as a stream, so a recording of any size is read in bounded memory.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { createGunzip } from "node:zlib";
import type { ReplayDialect } from "../venues/venue.js";
import { readCaptureHead } from "./capture.js";

/** One line of a recording. */
export interface CryptofeedLine {
  t: "header" | "http" | "connect" | "send" | "recv" | string;
  /** Connection id, e.g. `COINBASE.ws.2`. */
  conn?: string;
  /** Unix seconds (float) of the line. */
  ts?: number;
  /** WebSocket URL of a `connect` (and of `send`/`recv` lines in some versions). */
  addr?: string;
  url?: string;
  /** Raw frame text of `send` / `recv` lines. */
  data?: string;
  /** Header: the exchange recorded, upper case. */
  exchange?: string;
}

/** The `conn` of a raw recording line without parsing it (`"conn":"KRAKEN.ws.48"`), or null. */
export function connOfLine(line: string): string | null {
  const i = line.indexOf('"conn":"');
  if (i < 0 || i > 40) return null;
  const end = line.indexOf('"', i + 8);
  return end > i + 8 ? line.slice(i + 8, end) : null;
}

/** True when a raw recording line is a `recv` line (cheap prefix test, no parse). */
export function isRecvLine(line: string): boolean {
  return line.startsWith('{"t":"recv"') || line.startsWith('{"t": "recv"');
}

/**
 * Streams the lines of a recording (gzip when the name ends in `.gz`). Blank lines are skipped, and
 * so are lines `accept` returns false for (before they are parsed).
 * @throws {Error} naming the file and line number when a line is not a JSON object
 */
export async function* readCryptofeed(
  path: string,
  accept?: (line: string) => boolean,
): AsyncGenerator<CryptofeedLine> {
  const input = createReadStream(path, { highWaterMark: 1 << 20 });
  const stream = path.endsWith(".gz") ? input.pipe(createGunzip()) : input;
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  try {
    for await (const line of rl) {
      n++;
      if (line.length === 0 || (accept && !accept(line))) continue;
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        throw new Error(`${path}:${n}: not a JSON line`);
      }
      if (o === null || typeof o !== "object" || typeof (o as CryptofeedLine).t !== "string") {
        throw new Error(`${path}:${n}: not a cryptofeed record (no "t")`);
      }
      yield o as CryptofeedLine;
    }
  } finally {
    rl.close();
    input.destroy();
  }
}

/** A recorded WebSocket connection and what it subscribed to. */
export interface RecordedConnection {
  conn: string;
  /** URL it connected to. */
  url: string;
  /** Subscription keys (`<stream>|<SYMBOL>`, see {@link ReplayDialect}) from its URL and `send` lines. */
  keys: Set<string>;
  /** `recv` frames recorded on it. */
  frames: number;
}

/** What a recording holds, without its frames. */
export interface RecordingIndex {
  /** Upper-case exchange of the header (`COINBASE`), or "" without a header. */
  exchange: string;
  connections: Map<string, RecordedConnection>;
}

/**
 * Reads a recording once and indexes its WebSocket connections (URL, subscription keys, frame count),
 * keeping none of the frames. `dialectOf` gives the venue's replay dialect for the header's exchange.
 * @throws {Error} when the file cannot be read or has no dialect for its exchange
 */
export async function indexRecording(
  path: string,
  dialectOf: (exchange: string) => ReplayDialect | undefined,
): Promise<RecordingIndex & { dialect: ReplayDialect }> {
  let exchange = "";
  let dialect: ReplayDialect | undefined;
  const connections = new Map<string, RecordedConnection>();
  const connOf = (line: CryptofeedLine): RecordedConnection | null => {
    if (!line.conn) return null;
    let c = connections.get(line.conn);
    if (!c) {
      c = { conn: line.conn, url: line.addr ?? "", keys: new Set(), frames: 0 };
      connections.set(line.conn, c);
    }
    return c;
  };
  const accept = (raw: string): boolean => {
    if (!isRecvLine(raw)) return true;
    const conn = connOfLine(raw);
    if (conn === null) return true;
    const c = connections.get(conn);
    if (c) c.frames++;
    else connections.set(conn, { conn, url: "", keys: new Set(), frames: 1 });
    return false;
  };
  for await (const line of readCryptofeed(path, accept)) {
    if (line.t === "header") {
      exchange = String(line.exchange ?? "").toUpperCase();
      dialect = dialectOf(exchange);
      if (!dialect)
        throw new Error(`${path}: recordings of ${exchange || "an unnamed exchange"} cannot be replayed`);
    } else if (line.t === "connect") {
      const c = connOf(line);
      if (c && dialect) {
        c.url = line.addr ?? line.url ?? c.url;
        for (const k of dialect.urlKeys(c.url)) c.keys.add(k);
      }
    } else if (line.t === "send") {
      const c = connOf(line);
      const sub = c && dialect && typeof line.data === "string" ? dialect.subscription(line.data) : null;
      if (c && sub) for (const k of sub.keys) sub.subscribe ? c.keys.add(k) : c.keys.delete(k);
    } else if (line.t === "recv") {
      const c = connOf(line);
      if (c) c.frames++;
    }
  }
  if (!dialect) throw new Error(`${path}: no cryptofeed header line naming the exchange`);
  return { exchange, connections, dialect };
}

/**
 * True when a set of subscription keys asks for `key`: the key itself, or `<stream>|` (every symbol of
 * the stream) on either side.
 */
export function keyRequested(requested: ReadonlySet<string>, key: string): boolean {
  if (requested.has(key)) return true;
  const bar = key.indexOf("|");
  if (bar < 0) return false;
  if (requested.has(key.slice(0, bar + 1))) return true;
  if (bar === key.length - 1) {
    for (const r of requested) if (r.startsWith(key)) return true;
  }
  return false;
}

/** Symbols of a set of keys whose stream is one of `streams` (`trade|XBT/USD` → `XBT/USD`). */
export function symbolsOfKeys(keys: Iterable<string>, streams: readonly string[]): string[] {
  const out = new Set<string>();
  for (const k of keys) {
    const bar = k.indexOf("|");
    if (bar <= 0 || bar === k.length - 1) continue;
    if (streams.includes(k.slice(0, bar))) out.add(k.slice(bar + 1));
  }
  return [...out];
}

/**
 * The exchange named by a recording's header line (`COINBASE`), read from the first 64 KiB only.
 * @throws {Error} when the file cannot be read or does not start with a cryptofeed header line
 */
export function recordingExchangeSync(path: string): string {
  const head = readCaptureHead(path);
  const text = head.toString("utf8");
  const nl = text.indexOf("\n");
  let header: CryptofeedLine;
  try {
    header = JSON.parse(nl < 0 ? text : text.slice(0, nl));
  } catch {
    throw new Error(`${path}: no cryptofeed header line`);
  }
  if (header.t !== "header" || typeof header.exchange !== "string") {
    throw new Error(`${path}: no cryptofeed header line naming the exchange`);
  }
  return header.exchange.toUpperCase();
}
