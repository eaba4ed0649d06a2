/**
 * Records every module the ESM loader resolves, one URL a line, in the file named by `K2_IMPORT_LOG`:
 * `K2_IMPORT_LOG=/tmp/x.log node --import ./test/helpers/import-log.mjs dist/src/cli.js --help`.
 * The hooks run on the loader's thread and append synchronously, so the file is complete when the
 * process exits (even by `process.exit`). Packages a CommonJS module `require`s are not seen; the
 * entry of every package our ESM code imports is.
 */
import { register } from "node:module";

register("./import-log-hooks.mjs", import.meta.url, { data: { file: process.env.K2_IMPORT_LOG } });
