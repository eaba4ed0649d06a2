/**
 * Registry completeness: every file of `src/venues/` that defines a venue is registered in
 * `src/venues/registry.ts` under its file name, and the registry names nothing else. The shared
 * modules are exempt by an explicit list, which is checked too (each exists and defines no venue), so
 * a new venue file that is forgotten in the registry fails here instead of being silently unreachable
 * from `--exchange`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { getVenue, venueNames } from "../../src/venues/registry.js";
import type { Venue } from "../../src/venues/venue.js";

const VENUES_DIR = fileURLToPath(new URL("../../src/venues/", import.meta.url));
/** Shared modules of the folder: the contract, the mapping helpers and the registry itself. */
const SHARED = ["mapping.ts", "registry.ts", "venue.ts"];
/**
 * Parts of one venue kept beside its file (`<venue>-<part>.ts`, e.g. Binance's fast path
 * `binance-scan.ts`): each belongs to a registered venue and defines none itself.
 */
const isVenuePart = (f: string) => /^[a-z0-9]+-[a-z0-9-]+\.ts$/.test(f);

/** Exported values of a module that have the shape of a {@link Venue}. */
function venuesExportedBy(mod: Record<string, unknown>): Venue[] {
  return Object.values(mod).filter(
    (v): v is Venue =>
      typeof v === "object" &&
      v !== null &&
      typeof (v as Venue).exchange === "string" &&
      typeof (v as Venue).connection === "function" &&
      typeof (v as Venue).createNormalizer === "function",
  );
}

/** The source defines a venue value (`const x: Venue = {` or `... satisfies Venue`). */
const definesVenueInSource = (src: string) => /:\s*Venue\s*=|satisfies\s+Venue\b/.test(src);

describe("venue registry", () => {
  const files = readdirSync(VENUES_DIR)
    .filter((f) => f.endsWith(".ts"))
    .sort();

  it("lists the shared modules explicitly, and they define no venue", async () => {
    for (const f of SHARED) {
      expect(files, f).toContain(f);
      const src = readFileSync(join(VENUES_DIR, f), "utf8");
      expect(definesVenueInSource(src), f).toBe(false);
      const mod = (await import(pathToFileURL(join(VENUES_DIR, f)).href)) as Record<string, unknown>;
      expect(venuesExportedBy(mod), f).toEqual([]);
    }
  });

  it("registers every venue file under its file name, and nothing else", async () => {
    const parts = files.filter(isVenuePart);
    for (const f of parts) {
      const venue = f.slice(0, f.indexOf("-"));
      expect(files, `${f} is a part of ${venue}.ts`).toContain(`${venue}.ts`);
      expect(definesVenueInSource(readFileSync(join(VENUES_DIR, f), "utf8")), `${f} defines no Venue`).toBe(
        false,
      );
    }
    const venueFiles = files.filter((f) => !SHARED.includes(f) && !isVenuePart(f));
    expect(venueFiles.length).toBeGreaterThanOrEqual(3);
    for (const f of venueFiles) {
      const name = basename(f, ".ts");
      const src = readFileSync(join(VENUES_DIR, f), "utf8");
      const mod = (await import(pathToFileURL(join(VENUES_DIR, f)).href)) as Record<string, unknown>;
      const exported = venuesExportedBy(mod);
      // a file of this folder that is not a shared module must define (and export) exactly one venue
      expect(definesVenueInSource(src), `${f} defines a Venue`).toBe(true);
      expect(exported, `${f} exports one Venue`).toHaveLength(1);
      // ... which the registry hands out, the very object, under the file's name
      expect(getVenue(name), `${name} is registered in src/venues/registry.ts`).toBe(exported[0]);
      expect(getVenue(name.toUpperCase()), name).toBe(exported[0]);
      expect(exported[0].exchange.toLowerCase(), f).toBe(name);
    }
    expect(venueNames().sort()).toEqual(venueFiles.map((f) => basename(f, ".ts")));
  });
});
