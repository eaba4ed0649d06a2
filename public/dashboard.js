// K2 dashboard: plain ES module, no build step. Live data from the gateway (/ws), feed health from
// /api/v1/status, chart by lightweight-charts v5 (served from node_modules at /vendor/).
//
// Prices stay exact decimal strings in the tables (each column shows its values with one number of
// decimal places, the fewest that shows every value exactly); the spread is computed exactly with
// BigInt. The chart needs numbers, so candle prices and volumes are converted for display only.
// Rows are per (exchange, symbol); feed health per feed; candles in 1m, 5m, 15m or 1h.
//
// History first, then live: the page opens on what the store holds (the instruments of
// /api/v1/symbols, the last TAPE_ROWS trades of /api/v1/trades, and for the charted symbol and
// interval the newest VISIBLE_BARS candles of /api/v1/candles), then continues through the gateway:
// trades by a `from` subscription starting at the newest trade it loaded (the gateway replays what
// was stored since, then live, with no gap; trades the page already has are dropped by id), candles
// by the live candles.{interval} channels (a bar is replaced only by one holding at least as many
// trades). So a page opened after a replay ended, or hours into a live run, is not empty.
import { CandlestickSeries, ColorType, createChart, HistogramSeries } from "/vendor/lightweight-charts.mjs";

const token = new URLSearchParams(location.search).get("token");
/** Trades on the tape (the newest, across symbols), and how many the page loads from the store. */
const TAPE_ROWS = 100;
/** Candles loaded from the store for the charted symbol and interval (the newest). */
const VISIBLE_BARS = 500;
/** Candle intervals of the switch, with their length in seconds (the gateway's candles.{interval}). */
const INTERVALS = { "1m": 60, "5m": 300, "15m": 900, "1h": 3600 };
const SCALE = 100000000n;

const $ = (sel) => document.querySelector(sel);

/** DECIMAL(18,8) string → bigint units of 1e-8. */
function units(decimal) {
  const neg = decimal.startsWith("-");
  const [i, f = ""] = (neg ? decimal.slice(1) : decimal).split(".");
  const u = BigInt(i) * SCALE + BigInt(`${f}00000000`.slice(0, 8));
  return neg ? -u : u;
}

/** Decimal places `decimal` needs to be shown exactly (its fraction without trailing zeros). */
function placesOf(decimal) {
  if (decimal == null) return 0;
  const f = decimal.split(".")[1] ?? "";
  return f.replace(/0+$/, "").length;
}

/** The places a column shows: the most any of its values needs, at least 2, at most 8. */
const columnPlaces = (decimals) => Math.min(8, Math.max(2, ...decimals.map(placesOf)));

/** bigint units → decimal string with exactly `places` (2..8) decimal places (exact: only zeros are cut). */
function fmtUnits(u, places) {
  const neg = u < 0n;
  const a = neg ? -u : u;
  const frac = (a % SCALE).toString().padStart(8, "0");
  const p = Math.max(places, frac.replace(/0+$/, "").length);
  return `${neg ? "-" : ""}${a / SCALE}.${frac.slice(0, p)}`;
}

/** Exact decimal string for display with `places` decimal places (see {@link columnPlaces}). */
const fmt = (decimal, places) => (decimal == null ? "–" : fmtUnits(units(decimal), places));

/** Escapes text for HTML (record fields are validated upstream; this is defence in depth). */
const esc = (v) =>
  String(v).replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
  );

/** A record time (µs) as UTC `HH:MM:SS.mmm`, or `YYYY-MM-DD HH:MM:SS.mmm` with `withDate`. */
const fmtTime = (us, withDate) => {
  const iso = new Date(Math.floor(us / 1000)).toISOString();
  return withDate ? `${iso.slice(0, 10)} ${iso.slice(11, 23)}` : iso.slice(11, 23);
};

/** UTC day of a record time (µs). */
const dayOf = (us) => new Date(Math.floor(us / 1000)).toISOString().slice(0, 10);

/** An age in ms, short: `4.2 s`, `12 min`, `5 h`, `840 d`. */
function fmtAge(ms) {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** The key of a row, a chart and its candles: one symbol on one exchange. */
const keyOf = (r) => `${r.exchange}:${r.symbol}`;

// ---------------------------------------------------------------- state

const state = {
  ws: "connecting",
  pageReconnects: 0,
  /** key (`EXCHANGE:SYMBOL`) of the charted symbol */
  selected: null,
  /** candle interval shown, a key of INTERVALS */
  interval: "1m",
  /** key → latest tick */
  ticks: new Map(),
  /** exchange → feed state from /api/v1/status */
  feeds: new Map(),
  /** `key|interval` → Map(bar time s → {time, open, high, low, close, volume: bigint}) */
  candles: new Map(),
  /** `key|interval` for which the server publishes candles (then trades do not build those bars) */
  serverCandles: new Set(),
  tape: [],
  /** `EXCHANGE:trade_id` → trade time (µs) of the trades on the page, to drop those sent again */
  seenTrades: new Map(),
  /** the newest trade time seen (µs): where a reconnect's `from` subscription starts */
  lastTradeTs: null,
  /** whether the stored trades were loaded (once per page) */
  tradesLoaded: false,
  /** whether the trades `from` subscription has switched to live (`replay_done`) */
  tradesResumed: false,
  /** `key|interval` → the stored candles loaded: {count, from, to} (µs; to exclusive) */
  history: new Map(),
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
  rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.28 }, entireTextOnly: true },
  localization: { tickmarksPriceFormatter: (prices) => priceAxisLabels(prices) },
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

/** Price-axis labels closer than this to the last-price marker are left out (it would cover them), px. */
const MARKER_CLEARANCE_PX = 14;
/** Decimal places of the charted symbol's prices (its tick's, at least 2). */
let chartPlaces = 2;

/** The price axis' tick labels: `chartPlaces` decimals, blank where the last-price marker sits. */
function priceAxisLabels(prices) {
  const last = candleSeries.data().at(-1)?.close;
  const y = last == null ? null : candleSeries.priceToCoordinate(last);
  return prices.map((p) => {
    const py = candleSeries.priceToCoordinate(p);
    return y != null && py != null && Math.abs(py - y) < MARKER_CLEARANCE_PX ? "" : p.toFixed(chartPlaces);
  });
}

/** The last close drawn; when it moves, the axis labels are laid out again around the marker. */
let lastClose = null;
function relabelAxis() {
  const last = candleSeries.data().at(-1)?.close ?? null;
  if (last === lastClose) return;
  lastClose = last;
  chart.applyOptions({ localization: { tickmarksPriceFormatter: (prices) => priceAxisLabels(prices) } });
}

function barsOf(key, interval) {
  const k = `${key}|${interval}`;
  let m = state.candles.get(k);
  if (!m) {
    m = new Map();
    state.candles.set(k, m);
  }
  return m;
}

/** Adds a trade to its bar of every interval (event time: the trade's venue timestamp). */
function addTradeToBar(t) {
  const key = keyOf(t);
  const price = Number(t.price);
  for (const [interval, seconds] of Object.entries(INTERVALS)) {
    if (state.serverCandles.has(`${key}|${interval}`)) continue;
    const time = Math.floor(t.timestamp / 1e6 / seconds) * seconds;
    const bars = barsOf(key, interval);
    const bar = bars.get(time);
    if (!bar) {
      const volume = units(t.quantity);
      bars.set(time, { time, open: price, high: price, low: price, close: price, volume, n: 1 });
    } else {
      bar.n = (bar.n ?? 0) + 1;
      bar.high = Math.max(bar.high, price);
      bar.low = Math.min(bar.low, price);
      bar.close = price;
      bar.volume += units(t.quantity);
    }
    if (key === state.selected && interval === state.interval) markBar(time);
  }
}

/**
 * A candle from the server: its aggregator (channels candles.1m, .5m, .15m, .1h) or the store
 * (/api/v1/candles). A bar already drawn is replaced only by one holding at least as many trades, so a
 * stored candle loaded late does not undo a newer live update of the same bar.
 * @returns whether the bar changed
 */
function addServerCandle(c, channel) {
  const startUs = c.interval_start ?? c.start ?? c.open_time;
  const interval = c.interval ?? channel?.slice("candles.".length);
  if (startUs == null || c.open == null || !(interval in INTERVALS)) return false;
  const key = keyOf(c);
  const k = `${key}|${interval}`;
  if (!state.serverCandles.has(k)) {
    state.serverCandles.add(k);
    // bars built from the page's trades are dropped, unless the store's candles are under them
    if (!state.history.has(k)) state.candles.delete(k);
  }
  const time = Math.floor(Number(startUs) / 1e6);
  const bars = barsOf(key, interval);
  const n = Number(c.trade_count ?? 0);
  const had = bars.get(time);
  if (had && (had.n ?? 0) > n) return false;
  bars.set(time, {
    time,
    open: Number(c.open),
    high: Number(c.high),
    low: Number(c.low),
    close: Number(c.close),
    volume: units(String(c.volume ?? "0")),
    n,
  });
  if (key === state.selected && interval === state.interval) markBar(time);
  return true;
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

/** What the chart shows (`key|interval`): drawn again in full when it changes. */
let charted = null;
function renderChart() {
  if (!state.dirty.chart) return;
  state.dirty.chart = false;
  const bars = state.selected ? barsOf(state.selected, state.interval) : new Map();
  if (charted !== `${state.selected}|${state.interval}`) {
    charted = `${state.selected}|${state.interval}`;
    pendingBars.clear();
    const sorted = [...bars.values()].sort((a, b) => a.time - b.time);
    candleSeries.setData(
      sorted.map(({ time, open, high, low, close }) => ({ time, open, high, low, close })),
    );
    volumeSeries.setData(sorted.map(toVolumePoint));
    const sel = state.selected ? state.ticks.get(state.selected) : null;
    if (sel) {
      chartPlaces = Math.max(2, placesOf(sel.last_price), placesOf(sel.bid_price), placesOf(sel.ask_price));
      candleSeries.applyOptions({
        priceFormat: { type: "price", precision: chartPlaces, minMove: 10 ** -chartPlaces },
      });
    }
    const name = sel ? `${sel.symbol} (${sel.exchange.toLowerCase()})` : (state.selected ?? "–");
    $("#chart-title").textContent = `${name} · candles ${state.interval} · volume`;
    for (const b of document.querySelectorAll("#intervals button")) {
      b.setAttribute("aria-pressed", String(b.dataset.interval === state.interval));
    }
    relabelAxis();
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
  relabelAxis();
}

// ---------------------------------------------------------------- tables

function select(key) {
  if (state.selected === key) return;
  state.selected = key;
  state.dirty.chart = true;
  state.dirty.symbols = true;
  loadCandles();
}

function showInterval(interval) {
  if (!(interval in INTERVALS) || state.interval === interval) return;
  state.interval = interval;
  state.dirty.chart = true;
  loadCandles();
}

function spreadOf(t, places) {
  if (t.bid_price == null || t.ask_price == null) return "–";
  const bid = units(t.bid_price);
  const spread = units(t.ask_price) - bid;
  if (bid === 0n) return fmtUnits(spread, places);
  const bps = Number((spread * 100000000n) / bid) / 10000; // spread / bid × 10⁴
  return `${fmtUnits(spread, places)} (${bps.toPrecision(2)} bps)`;
}

/**
 * The data's own time of a tick, µs: its last trade's venue time, else its quote's (a quote without a
 * venue time, e.g. Binance's bookTicker, carries its receipt time); null before either.
 */
const tickTime = (t) => t.last_trade_time ?? t.quote_time ?? null;

function renderSymbols() {
  const tbody = $("#symbols tbody");
  const now = Date.now();
  const rows = [...state.ticks.values()].sort(
    (a, b) => a.exchange.localeCompare(b.exchange) || a.symbol.localeCompare(b.symbol),
  );
  // one number of places per column, so that the digits line up
  const places = {
    last: columnPlaces(rows.map((t) => t.last_price)),
    bid: columnPlaces(rows.map((t) => t.bid_price)),
    ask: columnPlaces(rows.map((t) => t.ask_price)),
  };
  places.spread = Math.max(places.bid, places.ask);
  const html = rows.map((t) => {
    const key = keyOf(t);
    const feed = state.feeds.get(t.exchange) ?? "unknown";
    const at = tickTime(t);
    const age = at == null ? "–" : fmtAge(now - at / 1000);
    const title = at == null ? "" : ` title="${esc(fmtTime(at, true))} UTC"`;
    const sel = key === state.selected ? ' class="selected"' : "";
    return `<tr data-key="${esc(key)}" data-symbol="${esc(t.symbol)}" data-exchange="${esc(t.exchange)}"${sel}><td class="exchange">${esc(t.exchange.toLowerCase())}</td><td class="symbol">${esc(t.symbol)}</td><td class="num last">${fmt(t.last_price, places.last)}</td><td class="num bid">${fmt(t.bid_price, places.bid)}</td><td class="num ask">${fmt(t.ask_price, places.ask)}</td><td class="num spread">${spreadOf(t, places.spread)}</td><td class="feed"><span class="badge" data-state="${esc(feed.toLowerCase())}">${esc(feed.toLowerCase())}</span></td><td class="num age"${title}>${age}</td></tr>`;
  });
  tbody.innerHTML = html.join("");
}

function renderTape() {
  if (!state.dirty.tape) return;
  state.dirty.tape = false;
  const tape = state.tape;
  // dates when the trades are not all from today (UTC): a replay, or a tape across midnight
  const today = new Date().toISOString().slice(0, 10);
  const withDate = tape.some((t) => dayOf(t.timestamp) !== today);
  const pricePlaces = columnPlaces(tape.map((t) => t.price));
  const qtyPlaces = columnPlaces(tape.map((t) => t.quantity));
  $("#tape tbody").innerHTML = tape
    .map(
      (t) =>
        `<tr data-trade-id="${esc(t.trade_id)}" data-price="${esc(t.price)}" data-quantity="${esc(t.quantity)}"><td class="time">${fmtTime(t.timestamp, withDate)}</td><td>${esc(t.symbol)}</td><td class="num price">${fmt(t.price, pricePlaces)}</td><td class="num quantity">${fmt(t.quantity, qtyPlaces)}</td><td class="side ${esc(t.side.toLowerCase())}">${esc(t.side.toLowerCase())}</td></tr>`,
    )
    .join("");
}

/**
 * Notes a trade as on the page; false when it already is (sent again by a `from` subscription).
 * Forgets the oldest ids past 20,000 (only trades near the newest can be sent again).
 */
function firstSight(t) {
  const id = `${t.exchange}:${t.trade_id}`;
  if (state.seenTrades.has(id)) return false;
  state.seenTrades.set(id, t.timestamp);
  if (t.timestamp > (state.lastTradeTs ?? 0)) state.lastTradeTs = t.timestamp;
  if (state.seenTrades.size > 20000) {
    const keep = state.lastTradeTs - RESUME_MARGIN_US;
    for (const [k, ts] of state.seenTrades) if (ts < keep) state.seenTrades.delete(k);
  }
  return true;
}

function onTrade(t) {
  if (!firstSight(t)) return;
  state.trades++;
  state.firstTrade ??= t;
  addTradeToBar(t);
  state.tape.unshift(t);
  if (state.tape.length > TAPE_ROWS) state.tape.length = TAPE_ROWS;
  state.dirty.tape = true;
  if (!state.selected) select(keyOf(t));
}

function onTick(t) {
  state.ticks.set(keyOf(t), t);
  state.dirty.symbols = true;
  if (!state.selected && t.last_price != null) select(keyOf(t));
}

$("#symbols tbody").addEventListener("click", (e) => {
  const row = e.target.closest("tr[data-key]");
  if (row) select(row.dataset.key);
});

$("#intervals").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-interval]");
  if (b) showInterval(b.dataset.interval);
});

// ---------------------------------------------------------------- history (the store, via REST)

/** How far before the newest trade a `from` subscription starts (venues interleave by arrival), µs. */
const RESUME_MARGIN_US = 5_000_000;

/** GET an API path (with the page's token); the JSON body, or an Error naming the status. */
async function api(path) {
  const res = await fetch(path, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    cache: "no-store",
  });
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

/**
 * The instruments the store holds (/api/v1/symbols), as rows until a live tick replaces them: their
 * last stored price and venue time. Selects the first with trades when nothing is selected.
 */
async function loadSymbols() {
  const { data } = await api("/api/v1/symbols");
  for (const s of data) {
    const key = keyOf(s);
    if (state.ticks.has(key)) continue;
    state.ticks.set(key, {
      exchange: s.exchange,
      symbol: s.symbol,
      last_price: s.last_price,
      last_trade_time: s.trades > 0 ? s.last_timestamp : null,
      quote_time: s.trades > 0 ? null : s.last_timestamp,
      bid_price: null,
      ask_price: null,
    });
  }
  state.dirty.symbols = true;
  if (!state.selected) {
    const first = data.find((s) => s.trades > 0);
    if (first) select(keyOf(first));
  }
}

/** The newest TAPE_ROWS stored trades onto the tape (not into the bars: candles come from the store). */
async function loadTrades() {
  const { data } = await api(`/api/v1/trades?limit=${TAPE_ROWS}`);
  const fresh = data.filter(firstSight);
  state.tape = [...state.tape, ...fresh]
    .sort((a, b) => b.timestamp - a.timestamp || (b.source_sequence ?? 0) - (a.source_sequence ?? 0))
    .slice(0, TAPE_ROWS);
  state.dirty.tape = true;
  state.tradesLoaded = true;
  if (!state.selected && data.length > 0) select(keyOf(data[0]));
}

/**
 * The newest VISIBLE_BARS stored candles of the charted symbol and interval (computed from the stored
 * trades), once per (symbol, interval) and gateway connection; live candles then keep them current.
 */
async function loadCandles() {
  const key = state.selected;
  const interval = state.interval;
  if (!key) return;
  const k = `${key}|${interval}`;
  if (state.history.has(k)) return;
  state.history.set(k, null); // loading
  const [exchange, symbol] = [key.slice(0, key.indexOf(":")), key.slice(key.indexOf(":") + 1)];
  const q = new URLSearchParams({ exchange, symbol, interval, order: "desc", limit: String(VISIBLE_BARS) });
  try {
    const { data } = await api(`/api/v1/candles?${q}`);
    const len = INTERVALS[interval] * 1e6;
    state.history.set(k, {
      count: data.length,
      from: data.length ? data.at(-1).interval_start : null,
      to: data.length ? data[0].interval_start + len : null,
    });
    state.serverCandles.add(k);
    for (const c of data.reverse()) addServerCandle({ ...c, interval }, null);
    if (key === state.selected && interval === state.interval) {
      charted = null; // drawn again in full: stored bars are older than the live ones
      state.dirty.chart = true;
    }
  } catch (e) {
    state.history.delete(k);
    console.warn("stored candles unavailable", e.message);
  }
}

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
  ws.onopen = async () => {
    backoffMs = 500;
    setWsState("open");
    const socket = ws;
    const sub = (channel, id, extra = {}) =>
      socket.send(JSON.stringify({ op: "subscribe", channel, symbols: ["*"], id, ...extra }));
    sub("ticks", "ticks", { batch_ms: 100 });
    for (const interval of Object.keys(INTERVALS)) sub(`candles.${interval}`, `candles.${interval}`);
    pingTimer = setInterval(() => socket.readyState === 1 && socket.send('{"op":"ping"}'), 20000);
    // candles missed while disconnected come from the store again
    state.history.clear();
    loadCandles();
    if (!state.tradesLoaded) {
      try {
        await Promise.all([loadSymbols(), loadTrades()]);
      } catch (e) {
        console.warn("stored history unavailable", e.message);
      }
    }
    if (socket.readyState !== 1) return;
    // history then live from the newest trade on the page (all of it live when the store has none)
    if (state.lastTradeTs == null) sub("trades", "trades", { batch_ms: 100 });
    else sub("trades", "trades", { batch_ms: 100, from: Math.max(0, state.lastTradeTs - RESUME_MARGIN_US) });
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
        addServerCandle(m.data, m.channel);
        break;
      case "batch":
        if (m.channel === "trades") for (const t of m.data) onTrade(t);
        else if (m.channel === "ticks") for (const t of m.data) onTick(t);
        else for (const c of m.data) addServerCandle(c, m.channel);
        break;
      case "replay_done":
        state.tradesResumed = true; // the stored trades since `from` are in: live from here
        break;
      case "error":
        if (m.id === "trades" && m.field === "from") {
          // history refused (e.g. 416: further back than this token may reach): live only
          ws.send(
            JSON.stringify({
              op: "subscribe",
              channel: "trades",
              symbols: ["*"],
              id: "trades-live",
              batch_ms: 100,
            }),
          );
          state.tradesResumed = true;
        }
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

/** The worst of the feeds' labels, for the header badge's colour. */
function worstLabel(labels) {
  for (const bad of ["error", "disconnected", "connecting"]) if (labels.includes(bad)) return bad;
  return labels[0] ?? "unknown";
}

/** Per-feed counters of the health table, and their totals in the list (`#health dd`). */
const FEED_FIGURES = ["frames_per_s", "trades", "quotes", "gaps", "dead_letters", "reconnects"];

function renderFeeds(feeds) {
  $("#feeds tbody").innerHTML = feeds
    .map((f) => {
      const label = feedLabel(f);
      const cells = FEED_FIGURES.map((k) => `<td class="num" data-k="${k}">${esc(f[k] ?? "–")}</td>`).join(
        "",
      );
      const error = f.error
        ? `<tr class="feed-error"><td colspan="${FEED_FIGURES.length + 2}">${esc(f.error)}</td></tr>`
        : "";
      return `<tr data-exchange="${esc(f.exchange)}"><td>${esc(f.exchange.toLowerCase())}</td><td><span class="badge" data-state="${esc(label)}">${esc(label)}</span></td>${cells}</tr>${error}`;
    })
    .join("");
}

async function pollStatus() {
  try {
    const res = await fetch("/api/v1/status", {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      cache: "no-store",
    });
    if (!res.ok) throw new Error(`status ${res.status}`);
    const s = await res.json();
    for (const feed of s.feeds) state.feeds.set(feed.exchange, feedLabel(feed));
    const feedEl = $("#feed-state");
    feedEl.textContent = s.feeds.map((x) => `${x.exchange.toLowerCase()} ${feedLabel(x)}`).join(", ");
    feedEl.dataset.state = worstLabel(s.feeds.map(feedLabel));
    feedEl.title = s.feeds
      .filter((x) => x.error)
      .map((x) => `${x.exchange}: ${x.error}`)
      .join("\n");
    renderFeeds(s.feeds);
    const total = (k) => (s.feeds.length ? s.feeds.reduce((n, f) => n + (f[k] ?? 0), 0) : null);
    const values = {
      frames_per_s: s.feeds.length ? Math.round(total("frames_per_s") * 10) / 10 : null,
      frames: total("frames"),
      trades: total("trades"),
      quotes: total("quotes"),
      gaps: total("gaps"),
      dead_letters: total("dead_letters"),
      reconnects: total("reconnects"),
      store_lag: s.store?.lag,
      clients: s.gateway?.clients,
      conflated: s.gateway?.conflated,
      page_reconnects: state.pageReconnects,
    };
    for (const dd of document.querySelectorAll("#health dd")) {
      const v = values[dd.dataset.k];
      dd.textContent = v == null ? "–" : String(v);
    }
    // the process's problems, as /health says them (a feed that cannot connect: the cause and a hint)
    $("#problems").innerHTML = (s.problems ?? []).map((p) => `<li>${esc(p)}</li>`).join("");
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
  state.dirty.symbols = true; // refresh the data ages
}, 1000);
setInterval(pollStatus, 1000);
pollStatus();
connect();

// for tests and the console
window.k2dash = { state, chart, candleSeries, volumeSeries, select, setInterval: showInterval, TAPE_ROWS };
