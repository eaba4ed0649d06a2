/**
 * The dead-letter reads of `StoreMarketDataSource` on both SQL dialects (a real PostgreSQL database on
 * loopback and a DuckDB file): list items cut to 4,096 characters with `raw_truncated` / `raw_bytes`
 * (UTF-8 bytes, `strlen` on DuckDB, `octet_length` on PostgreSQL), and the full text read back in
 * chunks that join up exactly, across chunk boundaries falling inside multi-byte characters.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DeadLetter } from "../../src/schema/records.js";
import { LiveFeed } from "../../src/serve/live/feed.js";
import { StoreMarketDataSource } from "../../src/serve/rest/store-source.js";
import { DuckDBStore } from "../../src/store/duckdb.js";
import { PostgresStore } from "../../src/store/postgres.js";
import { DEAD_LETTER_CHUNK_CHARS } from "../../src/store/reads.js";
import type { Store } from "../../src/store/store.js";
import { createTestDatabase, type TestDatabase } from "../store/pg.js";
import { tempDir } from "./helpers.js";

/** Two and a half chunks of 1-, 2-, 3- and 4-byte characters (the 4-byte ones are JS surrogate pairs). */
const BIG = `{"x":"${'aé€😀\\"\n'.repeat(Math.ceil((DEAD_LETTER_CHUNK_CHARS * 2.5) / 7))}"}`;
const SMALL = '{"e":"trade","p":"abc"}';
const letters: DeadLetter[] = [BIG, SMALL, ""].map((raw, i) => ({
  message_id: randomUUID(),
  exchange: "BINANCE",
  source: "test:stores",
  reason: `test ${i}`,
  raw,
  received_at: 1_723_075_200_000_000 + i,
}));

const tmp = tempDir();
let pg: TestDatabase;
const stores: [string, Store][] = [];

beforeAll(async () => {
  pg = await createTestDatabase();
  const p = new PostgresStore({ url: pg.url, premakeDays: 0 });
  const d = new DuckDBStore({ path: `${tmp.dir}/k2.duckdb` });
  for (const s of [p, d]) {
    await s.init();
    await s.write({ trades: [], aggTrades: [], quotes: [], deadLetters: letters, gaps: [] });
  }
  stores.push(["postgres", p], ["duckdb", d]);
}, 60_000);

afterAll(async () => {
  for (const [, s] of stores) await s.close();
  await pg?.drop();
  tmp.cleanup();
});

describe.each(["postgres", "duckdb"])("dead letters on %s", (name) => {
  const source = () => {
    const store = stores.find(([n]) => n === name)?.[1] as Store;
    return new StoreMarketDataSource({ store, live: new LiveFeed() });
  };

  it("lists raw cut to 4,096 characters with its full size in UTF-8 bytes", async () => {
    const page = await source().deadLetters({ limit: 10, order: "asc" });
    expect(page.next_cursor).toBeNull();
    expect(page.data.map((d) => d.message_id)).toEqual(letters.map((d) => d.message_id));
    const [big, small, empty] = page.data;
    expect(big.raw).toBe([...BIG].slice(0, 4096).join(""));
    expect(big).toMatchObject({ raw_truncated: true, raw_bytes: Buffer.byteLength(BIG) });
    expect(small).toMatchObject({ raw: SMALL, raw_truncated: false, raw_bytes: SMALL.length });
    expect(empty).toMatchObject({ raw: "", raw_truncated: false, raw_bytes: 0 });
    expect(big.raw_url).toBe(`/api/v1/dead-letters/${letters[0].message_id}`);
  });

  it("stops a page at the byte budget and continues after it", async () => {
    const first = await source().deadLetters({ limit: 10, order: "asc", maxBytes: 1000 });
    expect(first.data).toHaveLength(1); // the first row always, even over the budget
    expect(first.next_cursor).not.toBeNull();
    const rest = await source().deadLetters({
      limit: 10,
      order: "asc",
      maxBytes: 1000,
      cursor: first.next_cursor as string,
    });
    expect(rest.data.map((d) => d.message_id)).toEqual(letters.slice(1).map((d) => d.message_id));
    expect(rest.next_cursor).toBeNull();
  });

  it("reads a dead letter back in full, chunk by chunk", async () => {
    for (const stored of letters) {
      const full = await source().deadLetter(stored.message_id);
      expect(full).not.toBeNull();
      if (!full) continue;
      const chunks: string[] = [];
      for await (const c of full.rawChunks()) chunks.push(c);
      expect(chunks.length).toBe(Math.ceil([...stored.raw].length / DEAD_LETTER_CHUNK_CHARS));
      expect(chunks.join("") === stored.raw).toBe(true);
      expect(full).toMatchObject({
        message_id: stored.message_id,
        reason: stored.reason,
        received_at: stored.received_at,
        raw_bytes: Buffer.byteLength(stored.raw),
        raw_chars: [...stored.raw].length,
      });
    }
    expect(await source().deadLetter(randomUUID())).toBeNull();
  });
});
