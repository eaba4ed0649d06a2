// K2 dashboard: the L2 book of the selected symbol (issue #13), kept apart from dashboard.js.
// It follows the symbol selected in the symbols table (`#symbols tbody tr.selected`) and subscribes
// to the gateway's `book.20` channel for that symbol only; the panel shows once a book arrives (sent on
// subscribe when one is kept), so it stays hidden for a symbol without a book. Every `book` message is a whole top-20 (never a
// diff), so the ladder and the depth chart are redrawn from the latest one, at most once per frame.
// Prices and quantities are shown as sent (exact DECIMAL(18,8) strings, trailing zeros trimmed to the
// symbol's places); cumulative quantities are summed as scaled integers (BigInt), never as floats.

const DEPTH = 20;
const token = new URLSearchParams(location.search).get("token");
const auth = token ? `?token=${encodeURIComponent(token)}` : "";
const $state = (text) => {
  document.querySelector("#depth-state").textContent = text;
};

/** The panel, inserted after the chart panel. */
const panel = document.createElement("section");
panel.id = "depth-panel";
panel.className = "panel";
panel.hidden = true;
panel.innerHTML = `<h2 id="depth-title">Order book</h2>
<p id="depth-state" class="muted"></p>
<div class="depth-body">
  <table id="depth-ladder">
    <thead><tr><th class="num">Bid qty</th><th class="num">Cum.</th><th class="num">Price</th><th class="num">Ask qty</th><th class="num">Cum.</th></tr></thead>
    <tbody></tbody>
  </table>
  <svg id="depth-chart" viewBox="0 0 400 200" preserveAspectRatio="none" role="img" aria-label="depth chart">
    <path class="bids" d=""></path><path class="asks" d=""></path>
  </svg>
</div>`;
(document.querySelector("#chart-panel") ?? document.querySelector("main"))?.after(panel);
const style = document.createElement("link");
style.rel = "stylesheet";
style.href = "/dashboard/depth.css";
document.head.append(style);

/** DECIMAL(18,8) string → scaled integer (BigInt, 1e-8 units). */
const units = (d) => {
  const [i, f = ""] = d.split(".");
  return BigInt(i + f.padEnd(8, "0").slice(0, 8));
};
/** Scaled integer → decimal string with `places` decimals (truncated; values here are exact). */
const fromUnits = (u, places) => {
  const s = u.toString().padStart(9, "0");
  const int = s.slice(0, -8);
  const frac = s.slice(-8, -8 + places || undefined);
  return places > 0 ? `${int}.${frac.slice(0, places)}` : int;
};
/** Decimal places a set of DECIMAL(18,8) strings needs (at least `min`). */
const placesOf = (values, min) => {
  let p = min;
  for (const v of values) {
    const f = v.split(".")[1]?.replace(/0+$/, "") ?? "";
    if (f.length > p) p = f.length;
  }
  return p;
};
const trim = (d, places) => fromUnits(units(d), places);

let selected = null; // "EXCHANGE:SYMBOL"
let channelSymbol = null; // the symbol book.20 is subscribed for
let latest = null; // the latest book of the selected symbol
let drawn = null;
let ws = null;
let nextId = 1;

function send(m) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ ...m, id: nextId++ }));
}

function subscribe(symbol) {
  if (channelSymbol === symbol) return;
  if (channelSymbol) send({ op: "unsubscribe", channel: `book.${DEPTH}`, symbols: [channelSymbol] });
  channelSymbol = symbol;
  if (symbol) send({ op: "subscribe", channel: `book.${DEPTH}`, symbols: [symbol] });
}

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/ws${auth}`);
  ws.addEventListener("open", () => {
    const s = channelSymbol;
    channelSymbol = null;
    subscribe(s);
  });
  ws.addEventListener("message", (e) => {
    const m = JSON.parse(e.data);
    if (m.type !== "book") return;
    const b = m.data;
    if (`${b.exchange}:${b.symbol}` !== selected) return;
    latest = b;
    panel.hidden = false;
    requestAnimationFrame(draw);
  });
  ws.addEventListener("close", (e) => {
    if (e.code !== 1008) setTimeout(connect, 2000);
  });
}

/**
 * The symbol selected in the symbols table changed: subscribe to its book. The panel shows once a book
 * arrives (the gateway sends one on subscribe when a book is kept), and stays hidden otherwise.
 */
function follow(key) {
  selected = key;
  latest = null;
  drawn = null;
  panel.hidden = true;
  panel.dataset.state = "none";
  subscribe(key ? key.split(":")[1] : null);
}

function draw() {
  if (!latest || latest === drawn) {
    if (!latest) $state(`waiting for the book of ${selected ?? "–"}`);
    return;
  }
  drawn = latest;
  const b = latest;
  panel.dataset.state = b.state;
  document.querySelector("#depth-title").textContent =
    `Order book ${b.symbol} (${b.exchange.toLowerCase()}), top ${DEPTH}`;
  $state(
    b.state === "live"
      ? `sequence ${b.last_source_sequence}${b.last_resync_timestamp ? `, last resync ${new Date(b.last_resync_timestamp / 1000).toISOString()}` : ""}`
      : "resyncing: waiting for a snapshot",
  );
  const pp = placesOf(
    [...b.bids, ...b.asks].map((l) => l[0]),
    2,
  );
  const qp = placesOf(
    [...b.bids, ...b.asks].map((l) => l[1]),
    0,
  );
  const cum = (levels) => {
    let sum = 0n;
    return levels.map((l) => {
      sum += units(l[1]);
      return sum;
    });
  };
  const bc = cum(b.bids);
  const ac = cum(b.asks);
  // asks best (lowest) at the bottom of their half, then bids best (highest) first
  const rows = [];
  for (let i = b.asks.length - 1; i >= 0; i--) {
    const [p, q] = b.asks[i];
    rows.push(
      `<tr class="ask" data-price="${p}" data-quantity="${q}"><td></td><td></td><td class="num price">${trim(p, pp)}</td><td class="num">${trim(q, qp)}</td><td class="num">${fromUnits(ac[i], qp)}</td></tr>`,
    );
  }
  b.bids.forEach(([p, q], i) => {
    rows.push(
      `<tr class="bid" data-price="${p}" data-quantity="${q}"><td class="num">${trim(q, qp)}</td><td class="num">${fromUnits(bc[i], qp)}</td><td class="num price">${trim(p, pp)}</td><td></td><td></td></tr>`,
    );
  });
  document.querySelector("#depth-ladder tbody").innerHTML = rows.join("");
  drawChart(b, bc, ac);
}

/** Cumulative depth as two step areas: bids left of the mid, asks right of it. */
function drawChart(b, bc, ac) {
  const bidPath = document.querySelector("#depth-chart path.bids");
  const askPath = document.querySelector("#depth-chart path.asks");
  if (b.bids.length === 0 || b.asks.length === 0) {
    bidPath.setAttribute("d", "");
    askPath.setAttribute("d", "");
    return;
  }
  // floats only for pixel positions; the values shown are the exact strings above
  const lo = Number(b.bids[b.bids.length - 1][0]);
  const hi = Number(b.asks[b.asks.length - 1][0]);
  const max = Math.max(Number(bc[bc.length - 1]), Number(ac[ac.length - 1])) || 1;
  const x = (p) => (hi === lo ? 200 : ((Number(p) - lo) / (hi - lo)) * 400);
  const y = (u) => 200 - (Number(u) / max) * 190;
  const area = (levels, cums, start) => {
    let d = `M${x(levels[0][0]).toFixed(2)},200`;
    levels.forEach(([p], i) => {
      const prev = i === 0 ? 200 : y(cums[i - 1]);
      d += ` L${x(p).toFixed(2)},${prev.toFixed(2)} L${x(p).toFixed(2)},${y(cums[i]).toFixed(2)}`;
    });
    return `${d} L${start},${y(cums[cums.length - 1]).toFixed(2)} L${start},200 Z`;
  };
  bidPath.setAttribute("d", area(b.bids, bc, 0));
  askPath.setAttribute("d", area(b.asks, ac, 400));
}

/** The selected row of the symbols table (dashboard.js marks it with class `selected`). */
function watchSelection() {
  const row = document.querySelector("#symbols tbody tr.selected");
  const key = row ? `${row.dataset.exchange}:${row.dataset.symbol}` : null;
  if (key !== selected) follow(key);
}

connect();
setInterval(watchSelection, 250);
