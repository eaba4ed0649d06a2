#!/usr/bin/env node
/**
 * doc-check: every command, path and link of README.md and docs/*.md is checked against the code.
 *
 * - Fenced `bash`/`sh` blocks: each command line invoking the CLI (`./k2 …`, `k2 …`, `npx k2 …`,
 *   `npm run k2 -- …`, `npm start -- …`, `node dist/src/cli.js …`) must name an existing subcommand,
 *   and every `--flag` it uses must appear in that subcommand's `--help` (or the top-level `--help`,
 *   for global options such as `--log-format`). Help is read once per subcommand from the built CLI.
 *   Inline code spans `` `k2 <command> …` `` (the command tables) are checked the same way.
 * - Every `../shared/data/...` path in those blocks must exist (`$VAR` set earlier in the block is
 *   expanded; comma-separated lists are split).
 * - Every `src/...`, `test/...`, `bench/...`, `scripts/...`, `deploy/...` path mentioned anywhere in
 *   the docs must exist (paths with `<placeholders>` or `*` globs are skipped), and so must the bare
 *   file names of a table row about one folder (`| \`src/serve/\` | … \`api.ts\` … |`).
 * - Every relative Markdown link must resolve to an existing file, and its `#anchor` to a heading.
 * - The README's replay quick start is run for real (`./k2 run --replay … --exit-at-end --db <tmp>`
 *   then the `./k2 query` after it), and the figures the README states for both (the summary line's
 *   `frames`/`trades`, the query's output) must be what the run prints.
 *
 * A command line ending in `# doc-check: skip (reason)` is not checked.
 * Exit code 0 when everything holds, 1 with one line per problem otherwise, 2 when dist/ is missing.
 * Usage: `npm run doc-check` (after `npm ci`/`npm run build`); `--no-run` skips the replay;
 * `DOC_CHECK_ROOT=DIR` checks the README.md and docs/ of DIR with this checkout's CLI.
 */
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Where README.md and docs/ are read and paths resolved: this checkout, or DOC_CHECK_ROOT (tests). */
const root = resolve(process.env.DOC_CHECK_ROOT ?? repo);
const cli = join(repo, "dist", "src", "cli.js");
const noRun = process.argv.includes("--no-run");
const problems = [];
const problem = (file, line, msg) => problems.push(`${relative(root, file)}:${line}: ${msg}`);

if (!existsSync(cli)) {
  console.error("doc-check: dist/src/cli.js is missing; run `npm run build` first");
  process.exit(2);
}

const docs = [join(root, "README.md")];
if (existsSync(join(root, "docs"))) {
  for (const f of readdirSync(join(root, "docs")).sort()) if (f.endsWith(".md")) docs.push(join(root, "docs", f));
}

/** Fenced code blocks of a Markdown file: `{ lang, startLine, lines: [{ n, text }] }`. */
function fencedBlocks(text) {
  const blocks = [];
  let cur = null;
  text.split("\n").forEach((line, i) => {
    const m = /^\s*```(\S*)/.exec(line);
    if (m && !cur) cur = { lang: m[1].toLowerCase(), startLine: i + 1, lines: [] };
    else if (/^\s*```\s*$/.test(line) && cur) {
      blocks.push(cur);
      cur = null;
    } else if (cur) cur.lines.push({ n: i + 1, text: line });
  });
  return blocks;
}

/** Splits a shell line into words, honouring single and double quotes; drops a trailing comment. */
function shellWords(line) {
  const words = [];
  let w = "";
  let inWord = false;
  let q = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === q) q = null;
      else w += c;
      continue;
    }
    if (c === "'" || c === '"') {
      q = c;
      inWord = true;
    } else if (c === "#" && !inWord) break;
    else if (/\s/.test(c)) {
      if (inWord) words.push(w);
      w = "";
      inWord = false;
    } else if (c === "&" || c === ";" || c === "|") {
      if (inWord) words.push(w);
      words.push(c);
      w = "";
      inWord = false;
    } else {
      w += c;
      inWord = true;
    }
  }
  if (inWord) words.push(w);
  return words;
}

/** Shell command lines of a block (continuations joined): `{ n, text, words }`. */
function commandLines(block) {
  const out = [];
  let pending = null;
  for (const { n, text } of block.lines) {
    const joined = pending ? `${pending.text} ${text.trim()}` : text;
    const start = pending ? pending.n : n;
    if (/\\\s*$/.test(joined)) {
      pending = { n: start, text: joined.replace(/\\\s*$/, "") };
      continue;
    }
    pending = null;
    if (joined.trim() === "" || joined.trim().startsWith("#")) continue;
    out.push({ n: start, text: joined, words: shellWords(joined) });
  }
  return out;
}

/**
 * `--help` texts by command path. With DOC_CHECK_HELP_CACHE=FILE they are kept in FILE between runs,
 * for as long as dist/src/cli.js is the same build (tests run the script twice).
 */
const helpCacheFile = process.env.DOC_CHECK_HELP_CACHE;
const cliBuild = String(statSync(cli).mtimeMs);
const helpCache = new Map();
if (helpCacheFile && existsSync(helpCacheFile)) {
  const saved = JSON.parse(readFileSync(helpCacheFile, "utf8"));
  if (saved.build === cliBuild) for (const [k, v] of Object.entries(saved.help)) helpCache.set(k, v);
}
let helpRuns = 0;
/** The built CLI's `--help` for a command path (`[]` top level, `["run"]`, `["load","csv"]`), or null. */
function help(path) {
  const key = path.join(" ");
  if (!helpCache.has(key)) {
    const r = spawnSync(process.execPath, [cli, ...path, "--help"], { encoding: "utf8", timeout: 60_000 });
    helpCache.set(key, r.status === 0 ? r.stdout : null);
    helpRuns++;
  }
  return helpCache.get(key);
}

/** Reads the `--help` of every command and subcommand at once (in parallel; the CLI's start-up dominates). */
async function prefetchHelp() {
  const run = (path) =>
    new Promise((done) => {
      const key = path.join(" ");
      if (helpCache.has(key)) return done();
      execFile(process.execPath, [cli, ...path, "--help"], { encoding: "utf8", timeout: 60_000 }, (err, stdout) => {
        helpCache.set(key, err ? null : stdout);
        helpRuns++;
        done();
      });
    });
  const top = help([]);
  const subs = top ? subcommands(top).filter((c) => c !== "help") : [];
  await Promise.all(subs.map((c) => run([c])));
  const nested = subs.flatMap((c) => subcommands(help([c]) ?? "").filter((n) => n !== "help").map((n) => [c, n]));
  await Promise.all(nested.map((p) => run(p)));
}

/** Subcommand names listed under "Commands:" in a help text. */
function subcommands(helpText) {
  const i = helpText.indexOf("\nCommands:");
  if (i < 0) return [];
  const names = [];
  for (const line of helpText.slice(i + 10).split("\n").slice(1)) {
    if (line.trim() === "") break;
    const m = /^ {2}([a-z][a-z0-9-]*)/.exec(line);
    if (m) names.push(m[1]);
  }
  return names;
}

/**
 * A k2 invocation starting at `words[i]`: where the CLI's arguments start, and whether the command is
 * implied (`npm start` is `k2 run`); null when `words[i]` does not start one.
 */
function cliInvocation(words, i) {
  const w = words[i];
  const skipDashes = (j) => (words[j] === "--" ? j + 1 : j);
  if (w === "./k2" || w === "k2") return { from: i + 1, implicitRun: false };
  if (w === "npx" && words[i + 1] === "k2") return { from: i + 2, implicitRun: false };
  if (w === "node" && /(^|\/)dist\/src\/cli\.js$/.test(words[i + 1] ?? "")) return { from: i + 2, implicitRun: false };
  if (w === "npm" && words[i + 1] === "run" && words[i + 2] === "k2") return { from: skipDashes(i + 3), implicitRun: false };
  if (w === "npm" && words[i + 1] === "start") return { from: skipDashes(i + 2), implicitRun: true };
  return null;
}

function checkCli(file, n, args, implicitRun) {
  const top = help([]);
  let path = [];
  let rest = args;
  if (implicitRun) path = ["run"];
  else {
    const sub = args[0];
    if (sub === undefined || sub.startsWith("-")) {
      path = [];
    } else {
      if (!subcommands(top).includes(sub)) {
        problem(file, n, `k2 has no command "${sub}"`);
        return;
      }
      path = [sub];
      rest = args.slice(1);
      const h = help(path);
      const subs = h ? subcommands(h).filter((s) => s !== "help") : [];
      if (subs.length > 0 && rest.length > 0) {
        if (!subs.includes(rest[0])) {
          problem(file, n, `k2 ${sub} has no command "${rest[0]}" (has: ${subs.join(", ")})`);
          return;
        }
        path = [sub, rest[0]];
        rest = rest.slice(1);
      }
    }
  }
  const h = help(path);
  if (h === null) {
    problem(file, n, `k2 ${path.join(" ")} --help failed`);
    return;
  }
  for (const a of rest) {
    if (!a.startsWith("--")) continue;
    const flag = a.split("=")[0];
    const re = new RegExp(`(^|[\\s,])${flag.replace(/[-]/g, "\\-")}(?![\\w-])`, "m");
    if (!re.test(h) && !re.test(top)) problem(file, n, `k2 ${path.join(" ")}: no flag ${flag} in its --help`);
  }
}

function checkSharedPaths(file, n, words, vars) {
  for (const word of words) {
    const expanded = word.replace(/\$\{?([A-Za-z_]\w*)\}?/g, (_, v) => vars.get(v) ?? "");
    for (const part of expanded.split(/[,=]/)) {
      const m = /(\.\.\/shared\/data\/[^\s'"`)]*)/.exec(part);
      if (!m) continue;
      if (!existsSync(resolve(root, m[1]))) problem(file, n, `no such file: ${m[1]}`);
    }
  }
}

await prefetchHelp();

// 1. commands and data paths in bash/sh blocks
for (const file of docs) {
  const text = readFileSync(file, "utf8");
  for (const block of fencedBlocks(text)) {
    if (block.lang !== "bash" && block.lang !== "sh") continue;
    const vars = new Map();
    for (const { n, text: line, words } of commandLines(block)) {
      if (/#\s*doc-check:\s*skip\b/.test(line)) continue;
      const assign = /^([A-Za-z_]\w*)=(\S+)$/.exec(line.trim());
      if (assign) vars.set(assign[1], assign[2]);
      checkSharedPaths(file, n, words, vars);
      // every k2 invocation on the line (several may be joined with && or |)
      for (let i = 0; i < words.length; i++) {
        if (i > 0 && !["&", ";", "|", "&&"].includes(words[i - 1])) continue;
        const inv = cliInvocation(words, i);
        if (!inv) continue;
        const { from, implicitRun } = inv;
        let end = from;
        while (end < words.length && !["&", ";", "|"].includes(words[end])) end++;
        const args = words.slice(from, end).map((a) => a.replace(/\$\{?([A-Za-z_]\w*)\}?/g, (_, v) => vars.get(v) ?? ""));
        checkCli(file, n, args, implicitRun);
      }
    }
  }
}

// 1b. inline commands (`k2 run [--db PATH] …` in tables and prose): subcommand and flags
for (const file of docs) {
  let inFence = false;
  readFileSync(file, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (/^\s*```/.test(line)) inFence = !inFence;
      if (inFence || /#\s*doc-check:\s*skip\b/.test(line)) return;
      for (const m of line.matchAll(/`(?:\.\/)?k2 ([^`]+)`/g)) {
        const args = m[1]
          .replace(/\\\|/g, " ")
          .replace(/[[\]()|]/g, " ")
          .split(/\s+/)
          .filter((a) => a !== "");
        if (args.length === 0 || args[0].startsWith("<")) continue;
        checkCli(file, i + 1, args, false);
      }
    });
}

// 2. repository paths mentioned anywhere, and relative links
/** GitHub's heading anchors of a Markdown file. */
function anchors(text) {
  const seen = new Map();
  const out = new Set();
  let inFence = false;
  for (const line of text.split("\n")) {
    if (/^\s*```/.test(line)) inFence = !inFence;
    if (inFence) continue;
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const slug = m[1]
      .toLowerCase()
      .replace(/<[^>]*>/g, "")
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/ /g, "-");
    const k = seen.get(slug) ?? 0;
    out.add(k === 0 ? slug : `${slug}-${k}`);
    seen.set(slug, k + 1);
  }
  return out;
}

for (const file of docs) {
  const text = readFileSync(file, "utf8");
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    for (const m of line.matchAll(/(?<![\w/.-])((?:src|test|bench|scripts|deploy)\/[\w./*<>{}-]*[\w*>}])/g)) {
      const p = m[1];
      if (/[<>*{}]/.test(p)) continue;
      if (!existsSync(join(root, p))) problem(file, i + 1, `no such path: ${p}`);
    }
    // a table row about one folder (`| \`src/serve/\` | … \`api.ts\` …`): its bare file names are in it
    const row = /^\|\s*`((?:src|test|bench)\/[\w/-]+\/)`\s*\|/.exec(line);
    if (row) {
      for (const m of line.matchAll(/`([\w.-]+\.(?:ts|mjs|js))`/g)) {
        if (!existsSync(join(root, row[1], m[1]))) problem(file, i + 1, `no such path: ${row[1]}${m[1]}`);
      }
    }
    for (const m of line.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      const [pathPart, anchor] = target.split("#");
      const dest = pathPart === "" ? file : resolve(dirname(file), pathPart);
      if (!existsSync(dest)) {
        problem(file, i + 1, `broken link: ${target}`);
        continue;
      }
      if (anchor !== undefined && dest.endsWith(".md") && !anchors(readFileSync(dest, "utf8")).has(anchor)) {
        problem(file, i + 1, `broken anchor: ${target}`);
      }
    }
  });
}

// 3. run the README's replay quick start and compare with the figures it states
function runQuickStart() {
  const readme = join(root, "README.md");
  const text = readFileSync(readme, "utf8");
  const blocks = fencedBlocks(text);
  let runLine = null;
  let queryLine = null;
  for (const b of blocks) {
    if (b.lang !== "bash") continue;
    for (const c of commandLines(b)) {
      if (!runLine && c.words[0] === "./k2" && c.words[1] === "run" && c.words.includes("--exit-at-end")) runLine = c;
      else if (runLine && !queryLine && c.words[0] === "./k2" && c.words[1] === "query") queryLine = c;
    }
    if (queryLine) break;
  }
  if (!runLine || !queryLine) {
    problem(readme, 1, "no replay quick start (`./k2 run … --exit-at-end` followed by `./k2 query`) found");
    return;
  }
  // the stated outputs: the first untyped blocks after the commands holding `{"frames":` and `[{`
  const after = blocks.filter((b) => b.startLine > queryLine.n && b.lang === "");
  const summaryBlock = after.find((b) => b.lines.some((l) => l.text.includes('"frames":')));
  const queryBlock = after.find((b) => b.lines.some((l) => l.text.trim().startsWith("[{")));
  if (!summaryBlock || !queryBlock) {
    problem(readme, queryLine.n, "the quick start's stated summary line or query output is missing");
    return;
  }
  const statedSummary = summaryBlock.lines.map((l) => l.text).join("");
  const statedQuery = JSON.parse(queryBlock.lines.map((l) => l.text).join(""));
  const dir = mkdtempSync(join(tmpdir(), "k2-doc-check-"));
  const db = join(dir, "k2.duckdb");
  try {
    const withDb = (words) => {
      const w = words.slice(1);
      const i = w.indexOf("--db");
      if (i < 0) return [...w, "--db", db];
      w[i + 1] = db;
      return w;
    };
    const runArgs = withDb(runLine.words);
    const opts = { cwd: root, encoding: "utf8", timeout: 300_000, env: { ...process.env, K2_LOG_LEVEL: "warn" } };
    const runOut = execFileSync(process.execPath, [cli, ...runArgs, "--http-port", "0"], opts);
    const summary = JSON.parse(runOut.trim().split("\n").at(-1));
    for (const m of statedSummary.matchAll(/"(\w+)":(\d+)/g)) {
      if (summary[m[1]] !== Number(m[2])) {
        problem(readme, summaryBlock.startLine, `quick start: ${m[1]} is ${summary[m[1]]}, the README says ${m[2]}`);
      }
    }
    const queryArgs = withDb(queryLine.words);
    const rows = JSON.parse(execFileSync(process.execPath, [cli, ...queryArgs], opts));
    if (JSON.stringify(rows) !== JSON.stringify(statedQuery)) {
      problem(readme, queryBlock.startLine, `quick start: the query printed ${JSON.stringify(rows)}, the README says ${JSON.stringify(statedQuery)}`);
    }
    console.log(`doc-check: quick start ran: ${runOut.trim().split("\n").at(-1).slice(0, 80)}… ${JSON.stringify(rows)}`);
  } catch (err) {
    problem(readme, runLine.n, `quick start failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (!noRun) runQuickStart();
if (helpCacheFile) writeFileSync(helpCacheFile, JSON.stringify({ build: cliBuild, help: Object.fromEntries(helpCache) }));

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  console.error(`doc-check: ${problems.length} problem(s) in ${docs.length} files`);
  process.exit(1);
}
console.log(`doc-check: ${docs.length} files, ${helpCache.size} --help outputs (${helpRuns} run), all commands, paths and links check out`);
