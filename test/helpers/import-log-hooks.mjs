/** Module hooks of `import-log.mjs`: append each resolved URL to the log file. */
import { appendFileSync } from "node:fs";

let file;

/** Receives `{ file }` from `register()`. */
export function initialize(data) {
  file = data?.file;
}

/** Resolves as usual, then records the URL. */
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (file) appendFileSync(file, `${resolved.url}\n`);
  return resolved;
}
