/**
 * Records the modules a process loads, one URL a line, in the file named by `K2_IMPORT_LOG`:
 * `K2_IMPORT_LOG=/tmp/x.log node --import ./test/helpers/import-log.mjs dist/src/cli.js --help`.
 * Every module the ESM loader resolves is appended synchronously by the hooks on the loader's thread;
 * at exit (also by `process.exit`) the CommonJS modules in `require.cache` (packages loaded with
 * `require`, such as `@duckdb/node-api`) are appended too.
 */
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";
import { pathToFileURL } from "node:url";

const file = process.env.K2_IMPORT_LOG;
register("./import-log-hooks.mjs", import.meta.url, { data: { file } });
if (file) {
  const cache = createRequire(import.meta.url).cache;
  process.on("exit", () => {
    const urls = Object.keys(cache).map((p) => `${pathToFileURL(p).href}\n`);
    appendFileSync(file, urls.join(""));
  });
}
