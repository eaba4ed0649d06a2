// K2 dashboard: plain ES module, no build step. Live data from the gateway (/ws), feed health from
// /api/v1/status, chart by lightweight-charts v5 (served from node_modules at /vendor/).
//
// Prices stay exact decimal strings in the tables; the spread is computed exactly with BigInt. The chart
// needs numbers, so candle prices and volumes are converted for display only.
import { CandlestickSeries, ColorType, createChart, HistogramSeries } from "/vendor/lightweight-charts.mjs";

const token = new URLSearchParams(location.search).get("token");
const TAPE_ROWS = 60;
const CANDLE_SECONDS = 60;
const SCALE = 100000000n;

const $ = (sel) => document.querySelector(sel);

/** DECIMAL(18,8) string → bigint units of 1e-8. */
function units(decimal) {
  const neg = decimal.startsWith("-");
  const [i, f = ""] = (neg ? decimal.slice(1) : decimal).split(".");
  const u = BigInt(i) * SCALE + BigInt(`${f}00000000`.slice(0, 8));
  return neg ? -u : u;
}

/** bigint units → decimal string without superfluous trailing zeros (at least 2 places). */
function fmtUnits(u) {
  const neg = u < 0n;
  const a = neg ? -u : u;
  let frac = (a % SCALE).toString().padStart(8, "0").replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return `${neg ? "-" : ""}${a / SCALE}.${frac}`;
}

/** Exact decimal string for display (trailing zeros trimmed). */
const fmt = (decimal) => (decimal == null ? "–" : fmtUnits(units(decimal)));

/** Escapes text for HTML (record fields are validated upstream; this is defence in depth). */
const esc = (v) =>
  String(v).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );

const fmtTime = (us) => new Date(Math.floor(us / 1000)).toISOString().slice(11, 23);

// ---------------------------------------------------------------- state

const state = {
  ws: "connecting",
  pageReconnects: 0,
  selected: null,
  /** symbol → latest tick */
  ticks: new Map(),
  /** exchange → feed state from /api/v1/status */
  feeds: new Map(),
  /** symbol → Map(bar time s → {time, open, high, low, close, volume: bigint}) */
  candles: new Map(),
  /** symbols for which the server publishes candles.1m (then trades do not build bars) */
  serverCandles: new Set(),
  tape: [],
  trades: 0,
  /** the first trade this page received (its bar may be partial) */
  firstTrade: null,
  dirty: { symbols: true, tape: false, chart: true },
};

// ---------------------------------------------------------------- chart

const chartEl = $("#chart");
const chart = createChart(chartEl, {
  autoSize: true,
  layout: { background: { type: ColorType.Solid, color: "#0f1419" }, textColor: "#c9d1d9" },
  grid: { vertLines: { color: "#1f2630" }, horzLines: { color: "#1f2630" } },
  timeScale: { timeVisible: true, secondsVisible: false, barSpacing: 20, rightOffset: 4 },
  rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.28 } },
});
const candleSeries = chart.addSeries(CandlestickSeries, {
  upColor: "#26a69a",
  downColor: "#ef5350",
  borderVisible: false,
  wickUpColor: "#26a69a",
  wickDownColor: "#ef5350",
});
const volumeSeries = chart.addSeries(HistogramSeries, {
  priceFormat: { type: "volume" },
  priceScaleId: "volume",
  lastValueVisible: false,
  priceLineVisible: false,
});
chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.78, bottom: 0 } });

function barsOf(symbol) {
  let m = state.candles.get(symbol);
  if (!m) {
    m = new Map();
    state.candles.set(symbol, m);
  }
  return m;
}

/** Adds a trade to its 1-minute bar (event time: the trade's venue timestamp). */
function addTradeToBar(t) {
  if (state.serverCandles.has(t.symbol)) return;
  const time = Math.floor(t.timestamp / 1e6 / CANDLE_SECONDS) * CANDLE_SECONDS;
  const bars = barsOf(t.symbol);
  const price = Number(t.price);
  const bar = bars.get(time);
  if (!bar) {
    bars.set(time, { time, open: price, high: price, low: price, close: price, volume: units(t.quantity) });
  } else {
    bar.high = Math.max(bar.high, price);
    bar.low = Math.min(bar.low, price);
    bar.close = price;
    bar.volume += units(t.quantity);
  }
  if (t.symbol === state.selected) markBar(time);
}

/** A candle from the server's aggregator (channel candles.1m), when one runs. */
function addServerCandle(c) {
  const startUs = c.interval_start ?? c.start ?? c.open_time;
  if (startUs == null || c.open == null) return;
  if (!state.serverCandles.has(c.symbol)) {
    state.serverCandles.add(c.symbol);
    state.candles.delete(c.symbol);
  }
  const time = Math.floor(Number(startUs) / 1e6);
  barsOf(c.symbol).set(time, {
    time,
    open: Number(c.open),
    high: Number(c.high),
    low: Number(c.low),
    close: Number(c.close),
    volume: units(String(c.volume ?? "0")),
  });
  if (c.symbol === state.selected) markBar(time);
}

const pendingBars = new Set();
function markBar(time) {
  pendingBars.add(time);
  state.dirty.chart = true;
}

const toVolumePoint = (b) => ({
  time: b.time,
  value: Number(b.volume) / 1e8,
  color: b.close >= b.open ? "rgba(38,166,154,0.5)" : "rgba(239,83,80,0.5)",
});

let chartSymbol = null;
function renderChart() {
  if (!state.dirty.chart) return;
  state.dirty.chart = false;
  const bars = state.selected ? barsOf(state.selected) : new Map();
  if (chartSymbol !== state.selected) {
    chartSymbol = state.selected;
    pendingBars.clear();
    const sorted = [...bars.values()].sort((a, b) => a.time - b.time);
    candleSeries.setData(
      sorted.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })),
    );
    volumeSeries.setData(sorted.map(toVolumePoint));
    $("#chart-title").textContent = `${state.selected ?? "–"} · candles 1m · volume`;
    return;
  }
  const last = candleSeries.data().at(-1)?.time ?? 0;
  for (const time of [...pendingBars].sort((a, b) => a - b)) {
    const b = bars.get(time);
    if (!b || time < last) continue; // bars older than the last one drawn cannot be updated in place
    candleSeries.update({ time, open: b.open, high: b.high, low: b.low, close: b.close });
    volumeSeries.update(toVolumePoint(b));
  }
  pendingBars.clear();
}

// ---------------------------------------------------------------- tables

function select(symbol) {
  if (state.selected === symbol) return;
  state.selected = symbol;
  state.dirty.chart = true;
  state.dirty.symbols = true;
}

function spreadOf(t) {
  if (t.bid_price == null || t.ask_price == null) return "–";
  const bid = units(t.bid_price);
  const spread = units(t.ask_price) - bid;
  if (bid === 0n) return fmtUnits(spread);
  const bps = Number((spread * 100000000n) / bid) / 10000; // spread / bid × 10⁴
  return `${fmtUnits(spread)} (${bps.toPrecision(2)} bps)`;
}

function renderSymbols() {
  const tbody = $("#symbols tbody");
  const now = Date.now();
  const rows = [...state.ticks.values()].sort((a, b) => a.symbol.localeCompare(b.symbol));
  const html = rows.map((t) => {
    const feed = state.feeds.get(t.exchange) ?? "unknown";
    const age = Math.max(0, now - t.receivedAt);
    const sel = t.symbol === state.selected ? ' class="selected"' : "";
    return `<tr data-symbol="${esc(t.symbol)}"${sel}><td>${esc(t.symbol)}</td><td class="num last">${fmt(t.last_price)}</td><td class="num">${fmt(t.bid_price)}</td><td class="num">${fmt(t.ask_price)}</td><td class="num spread">${spreadOf(t)}</td><td><span class="badge" data-state="${esc(feed.toLowerCase())}">${esc(feed.toLowerCase())}</span></td><td class="num">${(age / 1000).toFixed(1)} s</td></tr>`;
  });
  tbody.innerHTML = html.join("");
}

function renderTape() {
  if (!state.dirty.tape) return;
  state.dirty.tape = false;
  $("#tape tbody").innerHTML = state.tape
    .map(
      (t) =>
        `<tr data-trade-id="${esc(t.trade_id)}" data-price="${esc(t.price)}" data-quantity="${esc(t.quantity)}"><td>${fmtTime(t.timestamp)}</td><td>${esc(t.symbol)}</td><td class="num price">${fmt(t.price)}</td><td class="num">${fmt(t.quantity)}</td><td class="side ${esc(t.side.toLowerCase())}">${esc(t.side.toLowerCase())}</td></tr>`,
    )
    .join("");
}

function onTrade(t) {
  state.trades++;
  state.firstTrade ??= t;
  addTradeToBar(t);
  state.tape.unshift(t);
  if (state.tape.length > TAPE_ROWS) state.tape.length = TAPE_ROWS;
  state.dirty.tape = true;
  if (!state.selected) select(t.symbol);
}

function onTick(t) {
  state.ticks.set(t.symbol, { ...t, receivedAt: Date.now() });
  state.dirty.symbols = true;
  if (!state.selected && t.last_price != null) select(t.symbol);
}

$("#symbols tbody").addEventListener("click", (e) => {
  const row = e.target.closest("tr[data-symbol]");
  if (row) select(row.dataset.symbol);
});

// ---------------------------------------------------------------- gateway connection

function setWsState(s) {
  state.ws = s;
  const el = $("#ws-state");
  el.textContent = s;
  el.dataset.state = s;
}

let ws = null;
let backoffMs = 500;
let pingTimer = null;

function connect() {
  setWsState("connecting");
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const q = token ? `?token=${encodeURIComponent(token)}` : "";
  ws = new WebSocket(`${proto}://${location.host}/ws${q}`);
  ws.onopen = () => {
    backoffMs = 500;
    setWsState("open");
    const sub = (channel, id, extra = {}) =>
      ws.send(JSON.stringify({ op: "subscribe", channel, symbols: ["*"], id, ...extra }));
    sub("ticks", "ticks", { batch_ms: 100 });
    sub("trades", "trades", { batch_ms: 100 });
    sub("candles.1m", "candles");
    pingTimer = setInterval(() => ws.readyState === 1 && ws.send('{"op":"ping"}'), 20000);
  };
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    switch (m.type) {
      case "trade":
        onTrade(m.data);
        break;
      case "tick":
        onTick(m.data);
        break;
      case "candle":
        addServerCandle(m.data);
        break;
      case "batch":
        if (m.channel === "trades") for (const t of m.data) onTrade(t);
        else if (m.channel === "ticks") for (const t of m.data) onTick(t);
        else for (const c of m.data) addServerCandle(c);
        break;
      case "error":
        console.warn("gateway error", m);
        break;
      default:
        break;
    }
  };
  ws.onclose = (ev) => {
    clearInterval(pingTimer);
    if (ev.code === 1008) {
      setWsState("unauthorized");
      return; // a bad token does not get better by retrying
    }
    setWsState("reconnecting");
    state.pageReconnects++;
    setTimeout(connect, backoffMs + Math.random() * 250);
    backoffMs = Math.min(backoffMs * 2, 15000);
  };
}

// ---------------------------------------------------------------- feed health

/** A feed's state as shown: `replay ended` once its whole recording is received, else its connection's. */
function feedLabel(feed) {
  return feed.replay === "ended" ? "replay ended" : (feed.state ?? "unknown").toLowerCase();
}

async function pollStatus() {
  try {
    const res = await fetch("/api/v1/status", {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      cache: "no-store",
    });
    if (!res.ok) throw new Error(`status ${res.status}`);
    const s = await res.json();
    const f = s.feeds[0] ?? {};
    for (const feed of s.feeds) state.feeds.set(feed.exchange, feedLabel(feed));
    const feedEl = $("#feed-state");
    feedEl.textContent = s.feeds.map((x) => `${x.exchange.toLowerCase()} ${feedLabel(x)}`).join(", ");
    feedEl.dataset.state = s.feeds.length ? feedLabel(f) : "unknown";
    const values = {
      frames_per_s: f.frames_per_s,
      frames: f.frames,
      trades: f.trades,
      quotes: f.quotes,
      gaps: f.gaps,
      dead_letters: f.dead_letters,
      reconnects: f.reconnects,
      store_lag: s.store?.lag,
      clients: s.gateway?.clients,
      conflated: s.gateway?.conflated,
      page_reconnects: state.pageReconnects,
    };
    for (const dd of document.querySelectorAll("#health dd")) {
      const v = values[dd.dataset.k];
      dd.textContent = v == null ? "–" : String(v);
    }
    $("#health-error").textContent = "";
    state.dirty.symbols = true;
  } catch (e) {
    $("#health-error").textContent = `status unavailable: ${e.message}`;
  }
}

// ---------------------------------------------------------------- render loop

function render() {
  renderChart();
  renderTape();
  if (state.dirty.symbols) {
    state.dirty.symbols = false;
    renderSymbols();
  }
}

setInterval(render, 150);
setInterval(() => {
  state.dirty.symbols = true; // refresh the "updated" ages
}, 1000);
setInterval(pollStatus, 1000);
pollStatus();
connect();

// for tests and the console
window.k2dash = { state, chart, candleSeries, volumeSeries, select };
