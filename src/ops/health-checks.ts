/**
 * `/health` problems of the "nothing lost" checks, one sentence each (`run.ts` collects them with the
 * feed, store and bus checks; `/api/v1/status` lists the same sentences):
 *
 * - store writes failing: `StoreWriteHealth.problem` (`store/write-health.ts`);
 * - {@link backlogProblem}: records waiting beyond the backlog budget;
 * - {@link replayFinishedProblem}: a replay has ended, so the process receives no live data.
 */

/** Thousands with commas: 4274 → `4,274`. */
function count(n: number): string {
  return n.toLocaleString("en-US");
}

/**
 * Records waiting beyond the budget (`--max-backlog`), in memory or in the spill journal, e.g.
 * `backlog: 312,000 records waiting (200,000 in memory, 112,000 in the spill journal), over the budget
 * of 200,000`; null while within it.
 */
export function backlogProblem(memory: number, journal: number, budget: number): string | null {
  if (memory + journal <= budget) return null;
  return `backlog: ${count(memory + journal)} records waiting (${count(memory)} in memory, ${count(journal)} in the spill journal), over the budget of ${count(budget)}`;
}

/**
 * A finished replay: `replay of <file> finished at <ISO time>; no live data`. `finishedAtMs`: when
 * the last recorded frame was received, ms since epoch.
 */
export function replayFinishedProblem(file: string, finishedAtMs: number): string {
  return `replay of ${file} finished at ${new Date(finishedAtMs).toISOString()}; no live data`;
}
