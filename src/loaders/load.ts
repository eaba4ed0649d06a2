/**
 * The shared driver of the historical batch loaders (`k2 load ...`): reads a file line by line
 * ({@link openLineSource}), hands each line to a format's {@link RowParser}, and writes trades_v2
 * records and dead letters through the {@link Store} contract in batches, one write in flight while
 * the next batch is parsed, so memory is bounded by two batches whatever the file size.
 *
 * Writes are idempotent (the store's unique key (exchange, symbol, trade_id)): loading a file again
 * stores nothing new and counts every row as a duplicate. A row that cannot be normalized becomes a
 * dead letter with source `<file>:<line>`, the reason and the raw line; nothing is dropped silently.
 * Blank lines are skipped and not counted.
 */
import { basename } from "node:path";
import cliProgress from "cli-progress";
import { deterministicMessageId } from "../schema/message-id.js";
import type { DeadLetter, TradeV2 } from "../schema/records.js";
import { emptyBatch, type Store, type WriteBatch } from "../store/store.js";
import { DEFAULT_LOAD_BATCH } from "./defaults.js";
import type { LineSource } from "./source.js";

/** A row that cannot be normalized; `message` is the dead-letter reason. */
export class RowRejected extends Error {
  override name = "RowRejected";
}

// in a module of its own, so `k2 load --help` shows it without loading the loader
export { DEFAULT_LOAD_BATCH } from "./defaults.js";

/** Turns one line into a trade. Implementations keep whatever state the format needs (the header). */
export interface RowParser {
  /**
   * @param line the line without its terminator (never blank)
   * @param lineNo 1-based line number in the file
   * @param nowUs load time, µs since epoch (for `ingestion_timestamp`)
   * @returns the trade, or null when the line is not a data row (a header)
   * @throws {RowRejected} with the dead-letter reason when the row is bad; any other error aborts the load
   */
  parse(line: string, lineNo: number, nowUs: number): TradeV2 | null;
}

/** What a load did; printed as one JSON line by the CLI. `rows = loaded + duplicates + rejected`. */
export interface LoadSummary {
  /** Data rows read (header and blank lines excluded). */
  rows: number;
  /** Trades newly stored. */
  loaded: number;
  /** Trades the store already held (an earlier load or the live stream), not stored again. */
  duplicates: number;
  /** Rows written to `dead_letters`. */
  rejected: number;
  /** The first {@link FIRST_REJECTS} rejected rows: 1-based line number and why (not in the JSON line). */
  firstRejects: { line: number; reason: string }[];
  /** Table the trades went to (`trades_v2` or `agg_trades_v2`). */
  table: "trades_v2" | "agg_trades_v2";
  elapsed_ms: number;
}

/** How many rejected rows a load keeps the reasons of, for the CLI to print. */
export const FIRST_REJECTS = 5;

export interface LoadOptions {
  /** Path as given by the user; dead-letter sources are `<file>:<line>`. */
  file: string;
  source: LineSource;
  parser: RowParser;
  store: Store;
  /** `trades` → trades_v2; `aggTrades` → agg_trades_v2 (Binance aggregate trades). */
  target: "trades" | "aggTrades";
  /** Exchange code written on dead letters (`BINANCE`, `ASX`). */
  exchange: string;
  /** Records (trades + dead letters) per store write; default {@link DEFAULT_LOAD_BATCH}. */
  batchSize?: number;
  /** Draw a progress bar on stderr (the CLI passes `process.stderr.isTTY`). */
  progress?: boolean;
}

/**
 * Loads every line of `opts.source` into the store.
 * @returns the counts; `rows = loaded + duplicates + rejected`
 * @throws whatever the parser throws other than {@link RowRejected}, the source's read errors, and
 *   store write failures (a failed batch is not stored: batches are atomic)
 */
export async function loadTrades(opts: LoadOptions): Promise<LoadSummary> {
  const started = performance.now();
  const batchSize = opts.batchSize ?? DEFAULT_LOAD_BATCH;
  const { parser, store, source } = opts;
  const fileTag = basename(opts.file);
  const summary: LoadSummary = {
    rows: 0,
    loaded: 0,
    duplicates: 0,
    rejected: 0,
    firstRejects: [],
    table: opts.target === "trades" ? "trades_v2" : "agg_trades_v2",
    elapsed_ms: 0,
  };
  let batch: WriteBatch = emptyBatch();
  const trades = () => (opts.target === "trades" ? batch.trades : batch.aggTrades);
  // One store write in flight while the next batch is read and parsed (the store works on its own
  // threads meanwhile), so memory holds at most two batches; batches are still written in order, one
  // at a time, and the first failure stops the load.
  let inFlight: Promise<void> | null = null;
  let failure: { error: unknown } | null = null;
  const settle = async () => {
    if (inFlight) await inFlight;
    inFlight = null;
    if (failure) throw failure.error;
  };
  const flush = async () => {
    const n = trades().length;
    if (n + batch.deadLetters.length === 0) return;
    const sent = batch;
    batch = emptyBatch();
    await settle();
    inFlight = store.write(sent).then(
      (r) => {
        const stored = opts.target === "trades" ? r.trades : r.aggTrades;
        summary.loaded += stored;
        summary.duplicates += n - stored;
      },
      (error: unknown) => {
        failure = { error };
      },
    );
  };

  const bar = opts.progress ? startBar(opts.file, source.totalBytes) : null;
  let lineNo = 0;
  try {
    for await (const lines of source.chunks()) {
      const nowUs = Date.now() * 1000;
      for (let i = 0; i < lines.length; i++) {
        lineNo++;
        let line = lines[i];
        if (lineNo === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
        if (isBlank(line)) continue;
        let trade: TradeV2 | null;
        try {
          trade = parser.parse(line, lineNo, nowUs);
        } catch (e) {
          if (!(e instanceof RowRejected)) throw e;
          summary.rows++;
          summary.rejected++;
          if (summary.firstRejects.length < FIRST_REJECTS) {
            summary.firstRejects.push({ line: lineNo, reason: e.message });
          }
          batch.deadLetters.push(
            deadLetter(opts.exchange, opts.file, fileTag, lineNo, e.message, line, nowUs),
          );
          continue;
        }
        if (trade === null) continue;
        summary.rows++;
        trades().push(trade);
        if (trades().length + batch.deadLetters.length >= batchSize) {
          await flush();
          bar?.update(source.bytesRead(), { rows: summary.rows });
        }
      }
      bar?.update(source.bytesRead(), { rows: summary.rows });
    }
    await flush();
    await settle();
    bar?.update(source.totalBytes, { rows: summary.rows });
  } finally {
    // a write still running finishes (or fails) before the caller closes the store
    await inFlight;
    bar?.stop();
    source.close();
  }
  summary.elapsed_ms = Math.round(performance.now() - started);
  return summary;
}

/** True for an empty line or one of whitespace only (`line.trim() === ""` without the copy). */
function isBlank(line: string): boolean {
  const c = line.charCodeAt(0);
  if (c > 32 && c < 127) return false;
  return line.trim() === "";
}

/**
 * The dead letter of a bad row. Its message_id is deterministic from the file's base name, the line
 * number and the raw line, so loading the same file again stores it once.
 */
export function deadLetter(
  exchange: string,
  file: string,
  fileTag: string,
  lineNo: number,
  reason: string,
  raw: string,
  nowUs: number,
): DeadLetter {
  return {
    message_id: deterministicMessageId(`${exchange}/dlq/${fileTag}:${lineNo}/${raw}`),
    exchange,
    source: `${file}:${lineNo}`,
    reason,
    raw,
    received_at: nowUs,
  };
}

function startBar(file: string, total: number): cliProgress.SingleBar {
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${basename(file)} [{bar}] {percentage}% | {rows} rows | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(Math.max(total, 1), 0, { rows: 0 });
  return bar;
}

/**
 * Splits one CSV line into fields (RFC 4180 quoting within a line: `"a,b"`, `"say ""hi"""`).
 * Unquoted fields are taken verbatim (no trimming). A record spanning lines is not supported.
 * @throws {RowRejected} on an unterminated quoted field or text after a closing quote
 */
export function splitCsvLine(line: string, delimiter = ","): string[] {
  if (line.indexOf('"') < 0) return line.split(delimiter);
  const out: string[] = [];
  const n = line.length;
  let i = 0;
  for (;;) {
    if (line.charCodeAt(i) === 34 /* " */) {
      let value = "";
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new RowRejected(`unterminated quoted field (field ${out.length + 1})`);
        value += line.slice(i, q);
        if (line.charCodeAt(q + 1) === 34) {
          value += '"';
          i = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      out.push(value);
      if (i >= n) return out;
      if (line[i] !== delimiter) {
        throw new RowRejected(`text after the closing quote of field ${out.length}`);
      }
      i++;
    } else {
      const d = line.indexOf(delimiter, i);
      if (d < 0) {
        out.push(line.slice(i));
        return out;
      }
      out.push(line.slice(i, d));
      i = d + 1;
    }
  }
}
