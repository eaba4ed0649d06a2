/** Venue registry: a new venue is one file in this folder plus one entry here. */
import { binance } from "./binance.js";
import { coinbase } from "./coinbase.js";
import { kraken } from "./kraken.js";
import type { Venue } from "./venue.js";

const VENUES: Record<string, Venue> = {
  binance,
  coinbase,
  kraken,
};

/** The venue for a lower-case name (`binance`), or undefined. */
export function getVenue(name: string): Venue | undefined {
  return VENUES[name.toLowerCase()];
}

/** Registered venue names. */
export function venueNames(): string[] {
  return Object.keys(VENUES);
}
