/**
 * Transitional re-export: the live feed moved to `live/` (`live/feed.ts`, `live/ticks.ts`,
 * `live/consumer.ts`). Only the REST sources (`source.ts`, `store-source.ts`), which move to `rest/` in
 * a change of their own, still import it from here; delete this file once they import `live/feed.js`.
 */
export { LiveFeed, type Tick } from "./live/feed.js";
