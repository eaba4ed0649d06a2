/**
 * API tokens (`K2_API_TOKENS`) against a real `k2 run --replay` in process: `/api/*`, `/docs` and the
 * OpenAPI document answer 401 with nothing but the error, `/ws` closes with 1008 before any data; a
 * good token works in the header or as `?token=` on every route (the API's parameter check ignores
 * it); `/health`, `/metrics`, the dashboard's and Swagger UI's static files stay open. The hook also
 * covers routes that other modules register before or after it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { K2Client } from "../../src/client.js";
import { ConfigError, resolveRunConfig } from "../../src/config.js";
import { Metrics } from "../../src/ops/metrics.js";
import type { RunningPipeline } from "../../src/run.js";
import { registerApiAuth, TokenAuth } from "../../src/serve/auth.js";
import { createHttpServer, listen } from "../../src/serve/http.js";
import { withPageToken } from "../../src/serve/rest/api.js";
import { CAPTURE, startReplayRun, TestClient, tempDir } from "./helpers.js";

const GOOD = "tok-alpha-0123456789";
const OTHER = "tok-beta-9876543210";
let run: RunningPipeline;
let base: string;
let wsUrl: string;
const tmp = tempDir();

beforeAll(async () => {
  run = await startReplayRun({
    db: `${tmp.dir}/k2.duckdb`,
    speed: "10",
    env: { K2_API_TOKENS: `${GOOD}, ${OTHER}` },
  });
  base = `http://127.0.0.1:${run.httpPort}`;
  wsUrl = `ws://127.0.0.1:${run.httpPort}/ws`;
});

afterAll(async () => {
  await run?.stop("test done");
  tmp.cleanup();
});

describe("HTTP /api", () => {
  it.each([
    ["no token", "/api/v1/status", {}],
    ["a wrong bearer token", "/api/v1/status", { authorization: "Bearer tok-alpha-012345678" }],
    ["a wrong query token", `/api/v1/status?token=${encodeURIComponent(`${GOOD}x`)}`, {}],
    ["a malformed header", "/api/v1/status", { authorization: GOOD }],
    ["an unknown /api route", "/api/v1/trades?symbol=BTCUSDT", {}],
    ["a percent-encoded path", "/%61pi/v1/status", {}],
    ["a doubled slash", "//api/v1/status", {}],
    ["the OpenAPI document", "/docs/json", {}],
    ["the OpenAPI document in YAML", "/docs/yaml", {}],
    ["Swagger UI's page", "/docs/", {}],
    ["the OpenAPI document with a wrong query token", "/docs/json?token=tok-alpha-01234567", {}],
    ["an unknown path", "/nothing-here", {}],
  ])("answers 401 with only the error to %s", async (_what, path, headers) => {
    const res = await fetch(`${base}${path}`, { headers });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe('Bearer realm="k2"');
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({ error: "unauthorized", reason: "missing or invalid API token" });
    expect(text).not.toContain("BINANCE");
    expect(text).not.toContain("tok-");
  });

  it("serves /api with a valid token in the header (either token) or the query", async () => {
    for (const headers of [{ authorization: `Bearer ${GOOD}` }, { authorization: `bearer ${OTHER}` }]) {
      const res = await fetch(`${base}/api/v1/status`, { headers });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { symbols: string[] }).symbols).toEqual(["BTCUSDT"]);
    }
    const q = await fetch(`${base}/api/v1/status?token=${GOOD}`);
    expect(q.status).toBe(200);
  });

  it("leaves /health, /metrics, the dashboard and Swagger UI's static assets open", async () => {
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    expect([200, 503]).toContain((await fetch(`${base}/health`)).status);
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("<title>K2 live</title>");
    expect((await fetch(`${base}/dashboard/dashboard.js`)).status).toBe(200);
    expect((await fetch(`${base}/vendor/lightweight-charts.mjs`)).status).toBe(200);
    expect((await fetch(`${base}/docs/static/swagger-ui.css`)).status).toBe(200);
    // the page's script sends the token of its own URL with the requests it makes
    const init = await fetch(`${base}/docs/static/swagger-initializer.js`);
    expect(init.status).toBe(200);
    expect(await init.text()).toMatch(/requestInterceptor.*searchParams\.get\("token"\)/s);
  });

  it("serves the OpenAPI document and Swagger UI with the token in the header or the query", async () => {
    for (const [path, headers] of [
      [`/docs/json?token=${GOOD}`, {}],
      ["/docs/json", { authorization: `Bearer ${OTHER}` }],
    ] as const) {
      const res = await fetch(`${base}${path}`, { headers });
      expect(res.status).toBe(200);
      const doc = (await res.json()) as { paths: Record<string, unknown>; components: unknown };
      expect(doc.paths).toHaveProperty("/api/v1/dead-letters/{message_id}");
      expect(doc.components).toMatchObject({
        securitySchemes: { queryToken: { in: "query", name: "token" } },
      });
    }
    const ui = await fetch(`${base}/docs/?token=${GOOD}`);
    expect(ui.status).toBe(200);
    expect(await ui.text()).toMatch(/swagger/i);
  });

  it("accepts ?token= on every data route (no 400 for an unknown parameter)", async () => {
    const routes = [
      "/api/v1/status",
      "/api/v1/ticks",
      "/api/v1/trades?symbol=BTCUSDT&limit=2",
      "/api/v1/quotes?limit=2",
      "/api/v1/candles?symbol=BTCUSDT&interval=1m&limit=2",
      "/api/v1/candles?symbol=BTCUSDT&interval=1m&limit=2&source=live",
      "/api/v1/symbols",
      "/api/v1/gaps",
      "/api/v1/dead-letters",
    ];
    for (const route of routes) {
      const sep = route.includes("?") ? "&" : "?";
      const res = await fetch(`${base}${route}${sep}token=${encodeURIComponent(GOOD)}`);
      expect(res.status, route).toBe(200);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body.error, route).toBeUndefined();
      // the same route without a token stays closed
      expect((await fetch(`${base}${route}`)).status, route).toBe(401);
    }
    // one dead letter: 404 (none stored) with the token, 401 without
    const one = "/api/v1/dead-letters/00000000-0000-4000-8000-000000000000";
    const found = await fetch(`${base}${one}?token=${GOOD}`);
    expect(found.status).toBe(404);
    expect(await found.json()).toMatchObject({ error: "not_found" });
    expect((await fetch(`${base}${one}`)).status).toBe(401);
    // a real unknown parameter is still named
    const bad = await fetch(`${base}/api/v1/trades?token=${GOOD}&nope=1`);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ parameter: "nope" });
  });

  it("covers every route but the open ones, registered before and after the hook", async () => {
    const app = await createHttpServer({
      metrics: new Metrics({ defaultMetrics: false }),
      health: async () => [],
      register: (a) => {
        a.get("/api/v1/early", async () => ({ secret: "early" }));
        registerApiAuth(a, new TokenAuth([GOOD]));
        a.get("/api/v1/late", async () => ({ secret: "late" }));
        a.get("/open", async () => ({ open: true }));
      },
    });
    const port = await listen(app, 0);
    try {
      for (const p of ["/api/v1/early", "/api/v1/late"]) {
        const denied = await fetch(`http://127.0.0.1:${port}${p}`);
        expect(denied.status).toBe(401);
        expect(await denied.text()).not.toContain("secret");
        const ok = await fetch(`http://127.0.0.1:${port}${p}`, {
          headers: { authorization: `Bearer ${GOOD}` },
        });
        expect(ok.status).toBe(200);
      }
      // not on the list of open routes: closed too
      expect((await fetch(`http://127.0.0.1:${port}/open`)).status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${port}/open?token=${GOOD}`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe("WebSocket /ws", () => {
  it.each([
    ["no token", wsUrlFor(""), {}],
    ["a wrong query token", wsUrlFor("?token=nope-nope-nope"), {}],
    ["a wrong bearer token", wsUrlFor(""), { headers: { authorization: `Bearer ${OTHER}0` } }],
  ])("closes with 1008 and sends nothing to %s", async (_what, path, opts) => {
    const c = await TestClient.open(`ws://127.0.0.1:${run.httpPort}${path}`, opts);
    c.send({ op: "subscribe", channel: "trades", symbols: ["*"], id: 1 });
    await c.closed;
    expect(c.closeCode).toBe(1008);
    expect(c.closeReason).toBe("unauthorized: missing or invalid API token");
    expect(c.messages).toEqual([]);
  });

  it("accepts a good token in the query or the Authorization header", async () => {
    const q = await TestClient.open(`${wsUrl}?token=${encodeURIComponent(OTHER)}`);
    expect(
      await q.request({ op: "subscribe", channel: "trades", symbols: ["BTCUSDT"], id: 1 }),
    ).toMatchObject({
      type: "subscribed",
    });
    expect((await q.next((m) => m.type === "trade")).channel).toBe("trades");
    q.close();
    const h = await TestClient.open(wsUrl, { headers: { authorization: `Bearer ${GOOD}` } });
    expect((await h.request({ op: "ping", id: "x" })).type).toBe("pong");
    h.close();
  });

  it("counts rejected clients in /metrics", async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith('k2_ws_disconnects_total{reason="unauthorized"}'));
    expect(Number(line?.split(" ")[1])).toBeGreaterThanOrEqual(3);
  });

  it("K2Client: a bad token fails connect() without retrying; a good one streams trades", async () => {
    const bad = new K2Client({ url: wsUrl, token: "wrong-token-123", backoffInitialMs: 50 });
    await expect(bad.connect()).rejects.toThrow(/unauthorized/);
    expect(bad.state).toBe("unauthorized");
    await new Promise((r) => setTimeout(r, 300));
    expect(bad.reconnects).toBe(0);
    const good = new K2Client({ url: wsUrl, token: GOOD });
    await good.connect();
    const trade = new Promise((res) => good.once("trade", res));
    await good.subscribe("trades", ["BTCUSDT"]);
    expect(await trade).toMatchObject({ symbol: "BTCUSDT", exchange: "BINANCE" });
    await good.close();
  });
});

describe("Swagger UI's request interceptor (runs in the browser)", () => {
  it("repairs the document URL and adds the page's token to same-origin requests only", () => {
    const g = globalThis as unknown as { location?: { href: string } };
    const saved = g.location;
    try {
      g.location = { href: "http://k2.example:8080/docs?token=tok-alpha-0123456789" };
      // Swagger UI builds the document URL as page URL + "/./json", query string included
      expect(
        withPageToken({ url: "http://k2.example:8080/docs?token=tok-alpha-0123456789/./json" }).url,
      ).toBe("http://k2.example:8080/docs/json?token=tok-alpha-0123456789");
      expect(withPageToken({ url: "http://k2.example:8080/api/v1/trades?symbol=BTCUSDT" }).url).toBe(
        "http://k2.example:8080/api/v1/trades?symbol=BTCUSDT&token=tok-alpha-0123456789",
      );
      expect(withPageToken({ url: "https://elsewhere.example/x" }).url).toBe("https://elsewhere.example/x");
      g.location = { href: "http://k2.example:8080/docs/" };
      expect(withPageToken({ url: "http://k2.example:8080/docs/./json" }).url).toBe(
        "http://k2.example:8080/docs/./json",
      );
    } finally {
      g.location = saved;
    }
  });
});

describe("configuration", () => {
  it.each([
    [{ K2_API_TOKENS: "short" }, /^K2_API_TOKENS: /],
    [{ K2_API_TOKENS: "secret1" }, /^K2_API_TOKENS: each token needs at least 8 .*\(one has 7\)/],
    [{ K2_API_TOKENS: "good-token-1,secret1" }, /^K2_API_TOKENS: /],
    [{ K2_WS_MAX_CONN_PER_IP: "-1" }, /^K2_WS_MAX_CONN_PER_IP: expected an integer/],
    [{ K2_WS_MAX_CONN_PER_TOKEN: "many" }, /^K2_WS_MAX_CONN_PER_TOKEN: expected an integer/],
    [{ K2_WS_LIMIT_LOOPBACK: "maybe" }, /^K2_WS_LIMIT_LOOPBACK: expected true or false/],
    [{ K2_API_MAX_RESPONSE_BYTES: "1000" }, /^K2_API_MAX_RESPONSE_BYTES: expected an integer from 16384/],
    [{ K2_WS_HEARTBEAT_MS: "abc" }, /^K2_WS_HEARTBEAT_MS: expected an integer/],
    [{ K2_WS_MAX_QUEUE: "0" }, /^K2_WS_MAX_QUEUE: expected an integer from 10/],
    [{ K2_WS_HEARTBEAT_MS: "5000", K2_WS_IDLE_TIMEOUT_MS: "4000" }, /^K2_WS_IDLE_TIMEOUT_MS: must be longer/],
  ])("rejects %j naming the variable", (env, message) => {
    expect(() => resolveRunConfig({ replay: CAPTURE }, env)).toThrow(ConfigError);
    expect(() => resolveRunConfig({ replay: CAPTURE }, env)).toThrow(message);
  });
});

function wsUrlFor(query: string): string {
  return `/ws${query}`;
}
