/**
 * Poison records: a record the store refuses every time it is written (a value its column type
 * rejects, e.g. vendor_data JSON holding a lone surrogate escape `\udc00`, which DuckDB's JSON cast
 * and PostgreSQL's `jsonb` both reject). Left alone, one such record makes its whole batch fail and
 * be redelivered forever, and every later record waits behind it.
 *
 * {@link writeIsolatingPoison} writes a batch; when the write fails it tells a deterministic refusal
 * from a transient failure (I/O, connection, disk full, locks) by probing that the store is
 * otherwise writable (`Store.probeWrite`, a real write into a one-row table), then bisects the batch
 * (writes halves, recursively) down to the records that fail alone. Those go to `dead_letters` with
 * reason `store rejected <table> record: <store error>` and raw `JSON.stringify(record)` (ES2019
 * JSON.stringify escapes lone surrogates, so that text is storable); the rest is committed. A
 * transient failure is rethrown (the caller retries the batch with backoff) and never dead-letters
 * anything. Sub-batches already committed before a transient failure are written again on the retry,
 * where the store's idempotent keys count them as duplicates.
 */
import { deterministicMessageId } from "../schema/message-id.js";
import type { DeadLetter } from "../schema/records.js";
import { emptyBatch, type Store, type WriteBatch, type WriteResult } from "./store.js";

/** One record of a batch, with the store table it goes to. */
export interface PoisonItem {
  /** Store table: `trades_v2`, `agg_trades_v2`, `quotes_v2`, `dead_letters`, `sequence_gaps`, `candles_v2`. */
  table: string;
  /** Exchange of the record (for the dead letter). */
  exchange: string;
  /** The record as written. */
  record: unknown;
}

/** A record the store rejected deterministically, as stored in `dead_letters`. */
export interface PoisonRecord {
  item: PoisonItem;
  error: string;
  letter: DeadLetter;
}

/** Outcome of {@link writeIsolatingPoison}. */
export interface IsolatedWrite {
  /** Sum of the committed sub-writes, including the poison dead letters in `deadLetters`. */
  result: WriteResult;
  /** Records isolated as poison (empty when the batch was written whole). */
  poison: PoisonRecord[];
  /** Store writes made (1 when the batch was written whole). */
  writes: number;
}

/** How to turn items into a store batch and describe them. */
export interface PoisonOptions<T> {
  /** Store batch of some items (grouped by table). */
  toBatch(items: T[]): WriteBatch;
  /** Table and exchange of an item, and the record to dead-letter. */
  describe(item: T): PoisonItem;
  /** Receipt time of the dead letters, µs (default now). */
  nowUs?: () => number;
}

/**
 * SQLSTATE classes of PostgreSQL errors that are never the record's fault: 08 connection, 40
 * transaction rollback (serialization, deadlock), 53 insufficient resources (disk full), 54 program
 * limit, 55 object not in prerequisite state (lock not available), 57 operator intervention
 * (shutdown, query cancelled), 58 system error (I/O), XX internal.
 */
const TRANSIENT_SQLSTATE = /^(08|40|53|54|55|57|58|XX)/;
/** Error texts of I/O and connection trouble (DuckDB `IO Error`, Node socket errors, disk full). */
const TRANSIENT_TEXT =
  /\bIO Error\b|No space left|disk full|could not (write|extend|open|fsync)|read-only|ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|connection|timeout|timed out|terminat|shutting down|out of memory|too many clients|lock|deadlock|database is closed|not open/i;

/** True when `err` is an I/O, connection or resource failure (retry, never dead-letter). */
export function isTransientStoreError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return TRANSIENT_SQLSTATE.test(code);
  const text = errorText(err);
  // DuckDB names the kind of error first (`Conversion Error: ...`); the rest may quote the record
  const duck = DUCKDB_KIND.exec(text);
  if (duck) return DUCKDB_TRANSIENT.has(duck[1]);
  return TRANSIENT_TEXT.test(text);
}

/** `Conversion Error: Malformed JSON ...` → `Conversion`. */
const DUCKDB_KIND = /^([A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)*) Error: /;
/** DuckDB error kinds that are not the record's fault. */
const DUCKDB_TRANSIENT = new Set([
  "IO",
  "Connection",
  "Out of Memory",
  "Interrupt",
  "Fatal",
  "Internal",
  "Transaction",
  "Permission",
  "TransactionContext",
]);

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** Error text fit for a TEXT column and a log line: well-formed, no NUL, at most 500 chars. */
function cleanReason(s: string): string {
  const one = s.replace(/\s+/g, " ").trim();
  const text = one.length > 500 ? `${one.slice(0, 500)}…` : one;
  return text.replace(LONE_SURROGATE, "\uFFFD").replaceAll("\0", "\uFFFD");
}

function addResult(into: WriteResult, r: WriteResult): void {
  into.trades += r.trades;
  into.aggTrades += r.aggTrades;
  into.quotes += r.quotes;
  into.deadLetters += r.deadLetters;
  into.gaps += r.gaps;
  into.candles = (into.candles ?? 0) + (r.candles ?? 0);
  into.duplicates += r.duplicates;
}

function zero(): WriteResult {
  return { trades: 0, aggTrades: 0, quotes: 0, deadLetters: 0, gaps: 0, candles: 0, duplicates: 0 };
}

/**
 * Whether the store can write at all right now: its `probeWrite` (a real write) when it has one.
 * Without one, a store is presumed writable only when the error is not a transient one.
 */
async function storeWritable(store: Store): Promise<boolean> {
  if (!store.probeWrite) return true;
  try {
    await store.probeWrite();
    return true;
  } catch {
    return false;
  }
}

/**
 * Writes `items` to the store, isolating poison records (see the module doc).
 * @returns the summed write result (poison dead letters counted in `deadLetters`) and the poison
 * @throws the store's error when the failure is transient (store not writable, I/O, connection); the
 *   caller retries the whole batch. Nothing is dead-lettered in that case.
 */
export async function writeIsolatingPoison<T>(
  store: Store,
  items: T[],
  opts: PoisonOptions<T>,
): Promise<IsolatedWrite> {
  const out: IsolatedWrite = { result: zero(), poison: [], writes: 1 };
  try {
    out.result = await store.write(opts.toBatch(items));
    return out;
  } catch (err) {
    if (isTransientStoreError(err) || !(await storeWritable(store))) throw err;
  }
  // the store writes, but not this batch: bisect down to the records that fail alone
  const bisect = async (part: T[]): Promise<void> => {
    if (part.length === 0) return;
    let error: unknown;
    out.writes++;
    try {
      addResult(out.result, await store.write(opts.toBatch(part)));
      return;
    } catch (err) {
      if (isTransientStoreError(err)) throw err;
      error = err;
    }
    if (part.length > 1) {
      const mid = part.length >> 1;
      await bisect(part.slice(0, mid));
      await bisect(part.slice(mid));
      return;
    }
    // fails alone: poison only if the store still writes everything else
    if (!(await storeWritable(store))) throw error;
    const item = opts.describe(part[0]);
    const reason = cleanReason(`store rejected ${item.table} record: ${errorText(error)}`);
    const raw = JSON.stringify(item.record);
    const letter: DeadLetter = {
      message_id: deterministicMessageId(`${item.exchange}/poison/${item.table}/${raw}`),
      exchange: item.exchange,
      source: `store:${item.table}`,
      reason,
      raw,
      received_at: opts.nowUs ? opts.nowUs() : Date.now() * 1000,
    };
    out.poison.push({ item, error: errorText(error), letter });
  };
  await bisect(items);
  if (out.poison.length > 0) {
    const letters = emptyBatch();
    letters.deadLetters = out.poison.map((p) => p.letter);
    out.writes++;
    addResult(out.result, await store.write(letters));
  }
  return out;
}
