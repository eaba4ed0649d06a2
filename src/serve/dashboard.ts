/**
 * The dashboard at `/`: static files from `public/` (plain ES modules and CSS, no build step) and
 * lightweight-charts' standalone ES module build served from `node_modules` at
 * `/vendor/lightweight-charts.mjs` (TradingView lightweight-charts v5, Apache-2.0), so nothing large
 * is committed. Files are read once at start and served from memory. The page reads live data from
 * `/ws` and feed health from `/api/v1/status`; with `K2_API_TOKENS` set, open it as `/?token=...`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import type { FastifyInstance } from "fastify";
import { packageRoot } from "../paths.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/**
 * CSP of the dashboard: own scripts only; WebSocket to this origin. lightweight-charts sets inline
 * styles on the elements it creates, hence `'unsafe-inline'` for styles (never for scripts).
 */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' ws: wss:; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Path of lightweight-charts' standalone ES module build in `node_modules`. */
export function lightweightChartsPath(): string {
  const require = createRequire(import.meta.url);
  return join(
    dirname(require.resolve("lightweight-charts/package.json")),
    "dist",
    "lightweight-charts.standalone.production.mjs",
  );
}

/**
 * Registers `GET /` (the page), `GET /dashboard/<file>` (its scripts and styles from `public/`) and
 * `GET /vendor/lightweight-charts.mjs`.
 * @throws {Error} when `public/index.html` or lightweight-charts is missing from the installation
 */
export function registerDashboard(app: FastifyInstance): void {
  const dir = join(packageRoot(), "public");
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const name of readdirSync(dir)) {
    const type = TYPES[extname(name)];
    if (type) files.set(name, { body: readFileSync(join(dir, name)), type });
  }
  const index = files.get("index.html");
  if (!index) throw new Error(`dashboard: ${join(dir, "index.html")} missing`);
  const chart = readFileSync(lightweightChartsPath());

  app.get("/", async (_req, reply) =>
    reply
      .type(index.type)
      .header("content-security-policy", CSP)
      .header("x-content-type-options", "nosniff")
      .header("cache-control", "no-cache")
      .send(index.body),
  );
  app.get<{ Params: { file: string } }>("/dashboard/:file", async (req, reply) => {
    const f = files.get(req.params.file);
    if (!f || req.params.file === "index.html") {
      return reply.code(404).send({ error: "not found", reason: `no dashboard file ${req.params.file}` });
    }
    return reply
      .type(f.type)
      .header("x-content-type-options", "nosniff")
      .header("cache-control", "no-cache")
      .send(f.body);
  });
  app.get("/vendor/lightweight-charts.mjs", async (_req, reply) =>
    reply
      .type(TYPES[".mjs"])
      .header("x-content-type-options", "nosniff")
      .header("cache-control", "public, max-age=86400")
      .send(chart),
  );
}
