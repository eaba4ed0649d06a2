import { WebSocketServer } from "/work/wt-b/node_modules/ws/wrapper.mjs";
const FRAMES = Number(process.argv[2] ?? 50000);
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
await new Promise((r) => wss.once("listening", r));
console.log(wss.address().port);
let sent = 0; const T0 = 1723075200000;
wss.on("connection", (ws) => {
  let id = 1000000;
  const pump = () => {
    if (ws.readyState !== ws.OPEN) return;
    while (sent < FRAMES && ws.bufferedAmount < 4 * 1024 * 1024) {
      const t = T0 + Math.floor(sent / 50);
      ws.send(`{"stream":"btcusdt@trade","data":{"e":"trade","E":${t},"s":"BTCUSDT","t":${id},"p":"61000.${String(id % 100).padStart(2, "0")}000000","q":"0.00100000","T":${t},"m":true,"M":true}}`);
      id++; sent++;
    }
    if (sent < FRAMES) setTimeout(pump, 1); else console.error("sent all", Date.now());
  };
  pump();
});
