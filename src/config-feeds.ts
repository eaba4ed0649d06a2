/**
 * The venue feeds of `k2 run`: one per exchange in `--exchange binance,coinbase,kraken`, each with its
 * symbols, streams, endpoint and (optionally) its replay file.
 *
 * - `--exchange a,b,c` (env `K2_EXCHANGE`): registered venues, each once.
 * - `--symbols` / `--streams` (env `K2_SYMBOLS` / `K2_STREAMS`): comma-separated; an entry written
 *   `<exchange>:<value>` (`coinbase:BTC-USD`, `kraken:XBT/USD`) applies to that exchange only, an
 *   unprefixed entry to every exchange (with one exchange, exactly the single-venue behaviour). An
 *   exchange given no entry gets its venue's defaults; when it replays a cryptofeed recording, its
 *   default symbols are the recording's (resolved by `k2 run` once the recording is read).
 * - `--replay fileA,fileB,fileC`: with several exchanges, one entry per exchange in `--exchange` order;
 *   with one exchange, consecutive captures of that venue played as one session (`btcusdt_20240808.gz,
 *   btcusdt_20240809.gz`; a value that is itself an existing file is that one path, commas included).
 *   With several exchanges, an entry joins consecutive captures with `+` (`a.gz+b.gz,KRAKEN.jsonl.gz`).
 *   Several captures are Binance `<ns> <frame>` captures (the cryptofeed replay plays one recording).
 * - `--ws-url` (env `K2_WS_URL`): with several exchanges, one URL per exchange in order, or none (each
 *   venue's default).
 */
import { existsSync } from "node:fs";
import { recordingExchangeSync } from "./replay/cryptofeed.js";
import { detectCaptureFormat } from "./replay/index.js";
import { getVenue, venueNames } from "./venues/registry.js";

/** One venue feed of a run. */
export interface FeedConfig {
  /** Lower-case registry name (`coinbase`). */
  exchange: string;
  symbols: string[];
  streams: string[];
  /** Venue base URL (ignored with `replay`). */
  wsUrl: string;
  /** The (first) replay capture, or null for a live feed. */
  replay: string | null;
  /** Every replay capture of this feed, in order (played as one session); empty for a live feed. */
  replayFiles: string[];
  /**
   * True when `symbols` are the venue's defaults (no `--symbols` entry for this exchange): a replay of
   * a cryptofeed recording then subscribes to the recording's symbols instead.
   */
  symbolsDefaulted: boolean;
}

/** Raw inputs (flags, else environment) of the feeds. */
export interface FeedFlags {
  exchange?: string;
  symbols?: string;
  streams?: string;
  wsUrl?: string;
  replay?: string;
}

const list = (v: string) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Splits `--symbols` / `--streams` entries per exchange.
 * @throws {Error} when an entry names an exchange that is not in `--exchange`
 */
function perExchange(
  raw: string | undefined,
  flag: string,
  exchanges: string[],
  transform: (s: string) => string,
): Map<string, string[]> {
  const out = new Map<string, string[]>(exchanges.map((e) => [e, []]));
  if (!raw) return out;
  const known = new Set(venueNames());
  for (const entry of list(raw)) {
    const colon = entry.indexOf(":");
    const prefix = colon > 0 ? entry.slice(0, colon).toLowerCase() : "";
    if (colon > 0 && known.has(prefix)) {
      const target = out.get(prefix);
      if (!target) throw new Error(`${flag}: "${entry}" names ${prefix}, which is not in --exchange`);
      const value = entry.slice(colon + 1).trim();
      if (value) target.push(transform(value));
    } else {
      for (const e of exchanges) out.get(e)!.push(transform(entry));
    }
  }
  return out;
}

/**
 * Resolves and validates the feeds.
 * @throws {Error} with a message naming the flag at fault (the caller turns it into a ConfigError)
 */
export function resolveFeeds(flags: FeedFlags, env: NodeJS.ProcessEnv = process.env): FeedConfig[] {
  const exchanges = list((flags.exchange ?? env.K2_EXCHANGE ?? "binance").toLowerCase());
  if (exchanges.length === 0) throw new Error("--exchange: no exchange given");
  for (const e of exchanges) {
    if (!getVenue(e))
      throw new Error(`--exchange: unknown exchange "${e}" (known: ${venueNames().join(", ")})`);
  }
  const dup = exchanges.find((e, i) => exchanges.indexOf(e) !== i);
  if (dup) throw new Error(`--exchange: ${dup} is listed twice`);
  const multi = exchanges.length > 1;
  const symbols = perExchange(flags.symbols ?? env.K2_SYMBOLS, "--symbols", exchanges, (s) =>
    s.toUpperCase(),
  );
  const streams = perExchange(flags.streams ?? env.K2_STREAMS, "--streams", exchanges, (s) => s);

  const urlsRaw = flags.wsUrl ?? env.K2_WS_URL;
  let urls: (string | undefined)[] = exchanges.map(() => undefined);
  if (urlsRaw !== undefined) {
    urls = multi ? list(urlsRaw) : [urlsRaw];
    if (urls.length !== exchanges.length) {
      throw new Error(
        `--ws-url: ${exchanges.length} exchanges need ${exchanges.length} URLs (one per exchange, in --exchange order), got ${urls.length}`,
      );
    }
  }
  let replays: string[][] = exchanges.map(() => []);
  if (flags.replay) {
    const whole = flags.replay.trim();
    replays = multi
      ? list(flags.replay).map((e) => e.split("+").map((s) => s.trim()))
      : [existsSync(whole) ? [whole] : list(whole)];
    if (replays.length !== exchanges.length) {
      throw new Error(
        `--replay: ${exchanges.length} exchanges need ${exchanges.length} replay files (one per exchange, in --exchange order), got ${replays.length}`,
      );
    }
  }

  return exchanges.map((exchange, i) => {
    const venue = getVenue(exchange)!;
    const given = symbols.get(exchange)!;
    const sub = {
      symbols: given.length ? given : [...venue.defaultSymbols],
      streams: streams.get(exchange)!.length ? streams.get(exchange)! : [...venue.defaultStreams],
    };
    try {
      venue.validate(sub);
    } catch (e) {
      const hint = multi
        ? ` (for ${exchange}; prefix an entry with its exchange, e.g. ${exchange}:VALUE)`
        : "";
      throw new Error(`${(e as Error).message}${hint}`);
    }
    const wsUrl = urls[i] ?? venue.defaultWsUrl;
    if (!/^wss?:\/\/[^\s/]+/.test(wsUrl))
      throw new Error(`--ws-url: expected ws:// or wss:// URL, got "${wsUrl}"`);
    const files = replays[i];
    for (const file of files) checkReplay(file, venue.exchange);
    if (files.length > 1 && detectCaptureFormat(files[0]) !== "binance-lines") {
      throw new Error(
        `--replay: several captures play as one session only for Binance "<ns> <frame>" captures; "${files[0]}" is a cryptofeed recording (one per exchange)`,
      );
    }
    return {
      exchange,
      ...sub,
      wsUrl,
      replay: files[0] ?? null,
      replayFiles: files,
      symbolsDefaulted: given.length === 0,
    };
  });
}

/**
 * A replay file must exist, have a known format and record the exchange it is given for.
 * @throws {Error} naming `--replay`
 */
function checkReplay(file: string, exchange: string): void {
  if (!existsSync(file)) throw new Error(`--replay: cannot read "${file}"`);
  let format: string;
  try {
    format = detectCaptureFormat(file);
  } catch (e) {
    throw new Error(`--replay: ${(e as Error).message}`);
  }
  let recorded: string;
  if (format === "cryptofeed") {
    try {
      recorded = recordingExchangeSync(file);
    } catch (e) {
      throw new Error(`--replay: ${(e as Error).message}`);
    }
  } else if (exchange !== "BINANCE") {
    throw new Error(
      `--replay: "${file}" is a "<ns> <frame>" capture, which only the Binance replay server serves; replay ${exchange} from a cryptofeed recording`,
    );
  } else recorded = "BINANCE";
  if (recorded !== exchange) {
    throw new Error(
      `--replay: "${file}" holds ${recorded} data, not ${exchange} (one replay per exchange, in --exchange order)`,
    );
  }
}
