/**
 * The `--db` value parsed (see `index.ts` for the forms), without loading any store: DuckDB file or
 * PostgreSQL URL.
 */

/** A parsed `--db` value. */
export type StoreSpec =
  | { kind: "duckdb"; path: string }
  | { kind: "postgres"; url: string; max: number | undefined; display: string };

/** Thrown for an unusable `--db` value; the message starts with `--db:`. */
export class StoreSpecError extends Error {
  override name = "StoreSpecError";
}

const EXPECTED = "expected PATH, duckdb:PATH or postgres://USER@HOST:PORT/DATABASE";

/** The URL with its password masked, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i, "$1***@");
}

/**
 * Parses a `--db` value.
 * @throws {StoreSpecError} naming `--db`: empty value, `duckdb:` without a path, a URL scheme other than
 *   postgres/postgresql, a malformed PostgreSQL URL, or `max` not an integer from 1 to 1000
 */
export function parseStoreSpec(spec: string): StoreSpec {
  const s = spec.trim();
  if (s === "") throw new StoreSpecError(`--db: empty value (${EXPECTED})`);
  if (/^duckdb:/i.test(s)) {
    const path = s.slice("duckdb:".length);
    if (path.trim() === "") throw new StoreSpecError(`--db: "duckdb:" needs a path (duckdb:PATH)`);
    return { kind: "duckdb", path };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(s);
  if (!scheme) return { kind: "duckdb", path: s };
  const display = redactUrl(s);
  if (!/^postgres(ql)?$/i.test(scheme[1])) {
    throw new StoreSpecError(`--db: unsupported store "${scheme[1]}://" in "${display}" (${EXPECTED})`);
  }
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new StoreSpecError(`--db: not a valid PostgreSQL URL: "${display}" (${EXPECTED})`);
  }
  if (url.pathname.length <= 1) {
    throw new StoreSpecError(`--db: PostgreSQL URL names no database: "${display}" (${EXPECTED})`);
  }
  let max: number | undefined;
  const maxRaw = url.searchParams.get("max");
  if (maxRaw !== null) {
    max = /^\d+$/.test(maxRaw) ? Number(maxRaw) : Number.NaN;
    if (!Number.isSafeInteger(max) || max < 1 || max > 1000) {
      throw new StoreSpecError(`--db: max (pool size) must be an integer from 1 to 1000, got "${maxRaw}"`);
    }
  }
  return { kind: "postgres", url: s, max, display };
}
