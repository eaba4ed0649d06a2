/**
 * Throwaway PostgreSQL databases for tests: `CREATE DATABASE k2_test_<random>` on the loopback server
 * (`K2_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), dropped afterwards, so test
 * runs never collide.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { PostgresStore } from "../../src/store/postgres.js";
import type { StoreHarness } from "./contract.js";

export const ADMIN_URL = process.env.K2_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  name: string;
  /** URL of the new database. */
  url: string;
  drop(): Promise<void>;
}

/** Creates an empty database with a random name. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `k2_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.unsafe(`CREATE DATABASE ${name}`);
        break;
      } catch (e) {
        // concurrent CREATE DATABASE from another test file can find template1 busy
        if (attempt >= 5 || !/being accessed by other users/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 200 * attempt));
      }
    }
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    async drop() {
      const a = postgres(ADMIN_URL, { max: 1, onnotice: () => undefined });
      try {
        await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/**
 * Contract-suite harness: a fresh database per test. Partitions are made ahead only for yesterday and
 * today (`premakeDays: 0`) to keep each test's set-up short; the default of 7 is tested on its own.
 */
export function postgresHarness(insertMethod: "unnest" | "copy"): StoreHarness {
  return {
    concurrentWriters: true,
    async fresh() {
      const db = await createTestDatabase();
      return {
        open: () => new PostgresStore({ url: db.url, insertMethod, max: 4, premakeDays: 0 }),
        cleanup: () => db.drop(),
      };
    },
  };
}
