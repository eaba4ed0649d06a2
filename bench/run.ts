/**
 * `npm run bench`: runs every benchmark, each in a fresh process and kept short enough that the whole
 * run stays under 10 minutes on the 2-core machine, then prints one table and writes it into the
 * results section of `docs/BENCHMARKS.md` (between the `bench-results` markers).
 *
 * Every figure is given as min / median / max over ≥ 5 runs (rounds of one process where the bench
 * repeats itself, else that many processes), with its baseline measured in the same run where the bench
 * has one (the `JSON.parse` floor and tardis-dev for normalization, the bare Node broadcaster for the
 * gateway, `node -e 0` for CLI start), the ratio of the medians, the target and whether it is met.
 *
 *   npm run bench [-- --only normalize,ingest] [--no-write]
 *
 * A bench whose servers are absent (NATS, Redis, PostgreSQL) reports itself skipped; one that fails or
 * outlives its time budget is listed as such and the run goes on (exit code 1). No process is started
 * that might end after the run's 10 minutes (a loaded machine then gets fewer runs, and the table
 * says so).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DOC = join(ROOT, "docs", "BENCHMARKS.md");
const START = "<!-- bench-results:start (written by npm run bench) -->";
const END = "<!-- bench-results:end -->";

/** min / median / max of some samples. */
interface Spread {
  min: number;
  median: number;
  max: number;
  n: number;
}

/** One reported figure, aggregated over the runs. */
interface Figure {
  bench: string;
  name: string;
  unit: string;
  value: Spread;
  baseline?: { name: string; value: Spread };
  /** Target on the ratio to the baseline (`ratio`) or on the value itself (`value`). */
  target?: { on: "ratio" | "value"; op: ">=" | "<="; x: number };
}

/** What one bench run yields: figure name → value (and baseline value), one sample per run. */
type Sample = Map<string, { unit: string; v: number; base?: [string, number]; target?: Figure["target"] }>;

interface Bench {
  name: string;
  script: string;
  args: string[];
  /** Processes to run (1 when the bench repeats its rounds itself and reports their spread). */
  processes: number;
  /** Time budget of one process, s. */
  timeoutS: number;
  /** Figures of one process's JSON output lines; `spreads` when the bench gives min/median/max itself. */
  read(lines: Record<string, unknown>[]): { sample?: Sample; spreads?: Figure[] };
}

/** The whole run's time budget, s, and its start. */
const BUDGET_S = 600;
const RUN_START = performance.now();
const LOAD_AT_START = loadavg()
  .map((x) => x.toFixed(1))
  .join(" / ");

const num = (x: unknown) => (typeof x === "number" ? x : Number.NaN);

function spread(xs: number[]): Spread {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor((s.length - 1) / 2)], max: s[s.length - 1], n: s.length };
}

/**
 * `bench/gateway.ts` at `clients` clients (latency and floor phases, `seconds`-s windows after 2 s of
 * warm-up): K2's p50/p99 beside the bare Node broadcaster's in the same process run. Target: p99 ≤ 1.0×.
 */
function gatewayBench(clients: number, seconds: number): Bench {
  const label = `${clients.toLocaleString("en-US")} clients`;
  return {
    name: clients === 100 ? "gateway" : `gateway-${clients}`,
    script: "gateway.js",
    args: [
      "--clients",
      String(clients),
      "--seconds",
      String(seconds),
      "--warmup",
      "2",
      "--phases",
      "latency,floor",
    ],
    processes: 5,
    timeoutS: 90,
    read(lines) {
      const o = lines.find((l) => l.bench === "gateway") as
        | {
            speed_1?: { latency_ms: Record<string, number> };
            bare_fanout_floor?: { latency_ms: Record<string, number> };
          }
        | undefined;
      if (!o?.speed_1 || !o.bare_fanout_floor) return {};
      const s: Sample = new Map();
      for (const p of ["p50", "p99"]) {
        s.set(`${label}, --speed 1, latency ${p}`, {
          unit: "ms",
          v: o.speed_1.latency_ms[p],
          base: [`bare Node broadcaster ${p}`, o.bare_fanout_floor.latency_ms[p]],
          ...(p === "p99" ? { target: { on: "ratio", op: "<=", x: 1.0 } as const } : {}),
        });
      }
      return { sample: s };
    },
  };
}

const BENCHES: Bench[] = [
  {
    name: "normalize",
    script: "normalize.js",
    args: ["--rounds", "7"],
    processes: 1,
    timeoutS: 120,
    read(lines) {
      const o = lines.find((l) => l.bench === "normalize") as
        | { figures: { name: string; mfps: Spread }[] }
        | undefined;
      if (!o) return {};
      const f = (n: string) => {
        const x = o.figures.find((y) => y.name === n)?.mfps;
        return x ? { ...x, n: 7 } : undefined;
      };
      const floor = f("floor");
      const tardis = f("tardis");
      const out: Figure[] = [];
      const add = (name: string, label: string, base: Spread | undefined, baseName: string, x?: number) => {
        const v = f(name);
        if (!v || !base) return;
        out.push({
          bench: "normalize",
          name: label,
          unit: "M frames/s",
          value: v,
          baseline: { name: baseName, value: base },
          ...(x === undefined ? {} : { target: { on: "ratio", op: ">=", x } }),
        });
      };
      add("k2", "K2 Binance normalizer (fast path)", floor, "Buffer → JSON.parse floor", 1.0);
      add("k2", "K2 Binance normalizer (fast path)", tardis, "tardis-dev Binance mappers", 1.5);
      add("tardis", "tardis-dev Binance mappers", floor, "Buffer → JSON.parse floor");
      add("k2_general", "K2 general path (JSON.parse + readers)", floor, "Buffer → JSON.parse floor");
      add("json_parse_string", "JSON.parse of the decoded string", floor, "Buffer → JSON.parse floor");
      return { spreads: out };
    },
  },
  {
    name: "ingest",
    script: "ingest.js",
    // as `./k2 run` and `npm start` start it
    args: ["--runs", "5", "--node-flags", "--max-semi-space-size=4", "--env", "MALLOC_ARENA_MAX=2"],
    processes: 1,
    timeoutS: 150,
    read(lines) {
      const o = lines.find((l) => l.bench === "ingest_e2e_duckdb");
      if (!o) return {};
      const fps = {
        min: num(o.frames_per_s_worst),
        median: num(o.frames_per_s_median),
        max: num(o.frames_per_s_best),
        n: 5,
      };
      const rss = num(o.max_rss_mb);
      return {
        spreads: [
          {
            bench: "ingest",
            name: "k2 run --replay into DuckDB",
            unit: "frames/s",
            value: fps,
            target: { on: "value", op: ">=", x: 100_000 },
          },
          {
            bench: "ingest",
            name: "peak RSS (largest of the runs)",
            unit: "MiB",
            value: { min: rss, median: rss, max: rss, n: 5 },
            target: { on: "value", op: "<=", x: 300 },
          },
        ],
      };
    },
  },
  {
    name: "loader",
    script: "loader.js",
    args: ["--compare", "--rows", "100000"],
    processes: 5,
    timeoutS: 90,
    read(lines) {
      const o = lines.find((l) => l.bench === "loader_compare") as
        | { k2: Record<string, number>; duckdb_read_csv: Record<string, number> }
        | undefined;
      if (!o) return {};
      return {
        sample: new Map([
          [
            "k2 load binance-aggtrades, 100k rows into DuckDB",
            {
              unit: "rows/s",
              v: o.k2.rows_per_s,
              base: ["DuckDB read_csv of the same file into agg_trades_v2", o.duckdb_read_csv.rows_per_s],
              target: { on: "value", op: ">=", x: 100_000 },
            },
          ],
          [
            "k2 load binance-aggtrades: peak RSS",
            {
              unit: "MiB",
              v: o.k2.peak_rss_mb,
              base: ["DuckDB read_csv peak RSS", o.duckdb_read_csv.peak_rss_mb],
            },
          ],
        ]),
      };
    },
  },
  {
    name: "cli-start",
    script: "cli-start.js",
    args: ["--runs", "3"],
    processes: 5,
    timeoutS: 90,
    read(lines) {
      const o = lines.find((l) => l.bench === "cli-start");
      if (!o) return {};
      const floor: [string, number] = ["node -e 0", num(o.floor_ms)];
      return {
        sample: new Map([
          [
            "k2 --help",
            { unit: "ms", v: num(o.help_ms), base: floor, target: { on: "value", op: "<=", x: 150 } },
          ],
          [
            "k2 query (count over a small DuckDB file)",
            { unit: "ms", v: num(o.query_ms), base: floor, target: { on: "value", op: "<=", x: 300 } },
          ],
        ]),
      };
    },
  },
  {
    name: "books",
    script: "books.js",
    args: ["--runs", "1"],
    processes: 5,
    timeoutS: 60,
    read(lines) {
      const o = lines.find((l) => "level_updates_per_s" in l) as
        | {
            level_updates_per_s: Record<string, string>;
            binance_vs_tardis?: {
              level_updates: number;
              k2_per_s: number;
              tardis_per_s: number;
              with_parse?: { k2_per_s: number; tardis_per_s: number };
            };
          }
        | undefined;
      const s: Sample = new Map();
      const vs = o?.binance_vs_tardis;
      if (vs) {
        // the same diffs, the same run: K2's exact book (Binance procedure) against tardis-dev's OrderBook
        s.set(
          `K2 BinanceBookSync (exact) on the recorded Binance diffs (${vs.level_updates} level updates)`,
          {
            unit: "level updates/s",
            v: vs.k2_per_s,
            base: ["tardis-dev OrderBook, same diffs", vs.tardis_per_s],
            target: { on: "ratio", op: ">=", x: 1.0 },
          },
        );
        if (vs.with_parse) {
          s.set("K2 JSON.parse + exact frame parse + BinanceBookSync, same diffs", {
            unit: "level updates/s",
            v: vs.with_parse.k2_per_s,
            base: ["tardis-dev JSON.parse + Binance mapper + OrderBook", vs.with_parse.tardis_per_s],
          });
        }
      }
      for (const [k, v] of Object.entries(o?.level_updates_per_s ?? {})) {
        s.set(k, { unit: "level updates/s", v: Number.parseFloat(v) * 1e6 });
      }
      return { sample: s };
    },
  },
  {
    name: "store",
    script: "store.js",
    args: ["--records", "20000", "--batch", "500,5000"],
    processes: 5,
    timeoutS: 60,
    read(lines) {
      const o = lines.find((l) => l.bench === "store") as
        | { results: { store: string; batch: number; records_per_s: number }[] }
        | undefined;
      const s: Sample = new Map();
      for (const r of o?.results ?? [])
        s.set(`${r.store}, batch ${r.batch}`, { unit: "records/s", v: r.records_per_s });
      return { sample: s };
    },
  },
  gatewayBench(100, 5),
  // at 1,000 clients a run takes three times as long: a shorter window keeps the whole run in budget
  gatewayBench(1000, 3),
  {
    name: "replay-load",
    script: "replay-load.js",
    args: ["--rounds", "5", "--seconds", "4", "--replayers", "20"],
    processes: 1,
    timeoutS: 120,
    read(lines) {
      const o = lines.find((l) => l.bench === "replay_load") as
        | { rounds: Record<string, number>[]; replayers: number }
        | undefined;
      if (!o || o.rounds.length === 0) return {};
      const of = (k: string) => spread(o.rounds.map((r) => r[k]));
      // each round: a window without replayers (the same-run baseline), then one with them
      const fig = (p: string, target?: Figure["target"]): Figure => ({
        bench: "replay-load",
        name: `live client latency ${p} while ${o.replayers} clients replay the whole file`,
        unit: "ms",
        value: of(`replaying_${p}_ms`),
        baseline: { name: `live client ${p}, no replayers`, value: of(`baseline_${p}_ms`) },
        ...(target ? { target } : {}),
      });
      return { spreads: [fig("p50"), fig("p99", { on: "ratio", op: "<=", x: 1.5 })] };
    },
  },
  {
    name: "bus",
    script: "bus.js",
    args: ["--n", "10000"],
    processes: 5,
    timeoutS: 60,
    read(lines) {
      const s: Sample = new Map();
      for (const l of lines) {
        for (const [k, v] of Object.entries(l)) {
          if (typeof v === "number" && k.endsWith("per_s")) {
            const what = k === "msgs_per_s" ? "" : ` (${k.replace(/_msgs_per_s$|_per_s$/, "")})`;
            s.set(`${l.bench}${what}`, { unit: "msgs/s", v });
          }
        }
      }
      return { sample: s };
    },
  },
  {
    name: "persist",
    script: "persist.js",
    args: [],
    processes: 5,
    timeoutS: 120,
    read(lines) {
      const s: Sample = new Map();
      for (const l of lines) {
        for (const [k, v] of Object.entries(l)) {
          if (typeof v === "number" && k.endsWith("per_s")) {
            const unit = k.endsWith("frames_per_s") ? "frames/s" : "records/s";
            s.set(k.replace(/_(records|frames)_per_s$/, "").replaceAll("_", " "), { unit, v });
          }
        }
      }
      return { sample: s };
    },
  },
];

/** Every JSON object a bench printed: one per line, or the whole output when it is one pretty-printed object. */
function jsonObjects(stdout: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // not a whole object on one line
    }
  }
  const start = stdout.indexOf("\n{\n");
  const whole = start >= 0 ? stdout.slice(start + 1) : stdout.startsWith("{\n") ? stdout : "";
  if (whole) {
    try {
      out.push(JSON.parse(whole));
    } catch {
      // not one object
    }
  }
  return out;
}

/** Runs one bench; its figures, or why there are none. */
function runBench(b: Bench, extraEnv: Record<string, string>): { figures: Figure[]; note?: string } {
  const samples: Sample[] = [];
  let spreads: Figure[] = [];
  let note: string | undefined;
  for (let i = 0; i < b.processes; i++) {
    // the whole run stays within its 10 minutes: a process that might not end before then is not started
    const left = BUDGET_S - (performance.now() - RUN_START) / 1000;
    if (left < Math.min(b.timeoutS, 30)) {
      note = `stopped after ${i} of ${b.processes} processes: the run's ${BUDGET_S / 60} minutes were spent`;
      break;
    }
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [join(ROOT, "dist", "bench", b.script), ...b.args], {
      encoding: "utf8",
      timeout: Math.floor(Math.min(b.timeoutS, left) * 1000),
      killSignal: "SIGKILL",
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, K2_LOG_LEVEL: "warn", ...extraEnv },
    });
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    process.stderr.write(`bench ${b.name} ${i + 1}/${b.processes}: ${r.status ?? r.signal} in ${s} s\n`);
    if (r.error || r.status !== 0) {
      note =
        r.signal === "SIGKILL" ? `over its ${b.timeoutS} s budget` : `failed (exit ${r.status ?? r.signal})`;
      process.stderr.write(r.stderr.slice(-2000));
      break;
    }
    const lines = jsonObjects(r.stdout);
    const skipped = lines.find((l) => typeof l.skipped === "string");
    if (skipped && note === undefined) note = `partly skipped: ${String(skipped.skipped).slice(0, 120)}`;
    const got = b.read(lines);
    if (got.spreads) spreads = got.spreads;
    if (got.sample) samples.push(got.sample);
  }
  const figures = [...spreads];
  if (samples.length > 0) {
    for (const [name, first] of samples[0]) {
      const vs = samples.map((s) => s.get(name)?.v ?? Number.NaN);
      const f: Figure = { bench: b.name, name, unit: first.unit, value: spread(vs) };
      if (first.base) {
        f.baseline = {
          name: first.base[0],
          value: spread(samples.map((s) => s.get(name)?.base?.[1] ?? Number.NaN)),
        };
      }
      if (first.target) f.target = first.target;
      figures.push(f);
    }
  }
  if (figures.length === 0 && note === undefined) note = "no figures";
  return { figures, note };
}

const fmt = (x: number) =>
  !Number.isFinite(x)
    ? "—"
    : Math.abs(x) >= 1000
      ? Math.round(x).toLocaleString("en-US")
      : x >= 100
        ? x.toFixed(0)
        : x >= 10
          ? x.toFixed(1)
          : x.toFixed(3).replace(/\.?0+$/, "") || "0";
const tri = (s: Spread) => `${fmt(s.min)} / ${fmt(s.median)} / ${fmt(s.max)}`;

function row(f: Figure): string[] {
  const ratio = f.baseline ? f.value.median / f.baseline.value.median : Number.NaN;
  let target = "—";
  let met = "—";
  if (f.target) {
    const x = f.target.on === "ratio" ? ratio : f.value.median;
    target = `${f.target.on === "ratio" ? "ratio" : "median"} ${f.target.op === ">=" ? "≥" : "≤"} ${fmt(f.target.x)}${f.target.on === "ratio" ? "" : ` ${f.unit}`}`;
    met = !Number.isFinite(x)
      ? "—"
      : (f.target.op === ">=" ? x >= f.target.x : x <= f.target.x)
        ? "yes"
        : "no";
  }
  return [
    f.bench,
    `${f.name} (${f.unit})`,
    `${tri(f.value)} (${f.value.n})`,
    f.baseline ? `${f.baseline.name}: ${tri(f.baseline.value)}` : "—",
    Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : "—",
    target,
    met,
  ];
}

const { values } = parseArgs({ options: { only: { type: "string" }, "no-write": { type: "boolean" } } });
const only = values.only?.split(",");
const t0 = performance.now();
const figures: Figure[] = [];
const notes: string[] = [];
let failed = false;
// cli-start measures `k2 query` over a small DuckDB file: made once here, not once per process
const tmp = mkdtempSync(join(tmpdir(), "k2-bench-run-"));
try {
  for (const b of BENCHES) {
    if (only && !only.includes(b.name)) continue;
    if (b.name === "cli-start" && !b.args.includes("--db")) {
      const db = join(tmp, "small.duckdb");
      const r = spawnSync(
        process.execPath,
        [
          join(ROOT, "dist/src/cli.js"),
          "run",
          "--replay",
          resolve(ROOT, "../shared/data/binance-spot/ethusdt_20240808.gz"),
          "--speed",
          "max",
          "--exit-at-end",
          "--db",
          db,
          "--http-port",
          "0",
        ],
        { encoding: "utf8", env: { ...process.env, K2_LOG_LEVEL: "warn" } },
      );
      if (r.status === 0) b.args.push("--db", db);
    }
    const r = runBench(b, {});
    figures.push(...r.figures);
    if (r.note) {
      notes.push(`${b.name}: ${r.note}`);
      if (!r.note.startsWith("partly skipped") && !r.note.startsWith("stopped after")) failed = true;
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const minutes = (performance.now() - t0) / 60_000;

const header = [
  "bench",
  "figure (unit)",
  "min / median / max (runs)",
  "baseline, same run: min / median / max",
  "ratio of medians",
  "target",
  "met",
];
const table = [
  `| ${header.join(" | ")} |`,
  `|${header.map(() => "---").join("|")}|`,
  ...figures.map((f) => `| ${row(f).join(" | ")} |`),
].join("\n");
const cpu = cpus();
const load = (l: number[]) => l.map((x) => x.toFixed(1)).join(" / ");
const machine = `${cpu.length} cores, ${cpu[0]?.model.trim() ?? "unknown CPU"}; Node ${process.version}; ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC; whole run ${minutes.toFixed(1)} min; load average (1/5/15 min) ${LOAD_AT_START} at the start, ${load(loadavg())} at the end (other jobs share the machine: compare ratios within this run)`;
const text = [machine, "", table, ...(notes.length ? ["", ...notes.map((n) => `- ${n}`)] : [])].join("\n");
process.stdout.write(`${text}\n`);

if (!values["no-write"] && !only) {
  const doc = readFileSync(DOC, "utf8");
  const a = doc.indexOf(START);
  const z = doc.indexOf(END);
  if (a < 0 || z < a) throw new Error(`${DOC}: the ${START} … ${END} markers are missing`);
  writeFileSync(DOC, `${doc.slice(0, a + START.length)}\n\n${text}\n\n${doc.slice(z)}`);
  process.stderr.write(`results written to ${DOC}\n`);
}
if (failed) process.exitCode = 1;
