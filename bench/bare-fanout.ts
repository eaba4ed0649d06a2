/**
 * The floor for `bench/gateway.ts`: a bare Node WebSocket broadcaster with none of K2 in it (no
 * parsing, no bus, no store, no subscriptions), replaying the BTCUSDT trade and bookTicker frames of
 * `../shared/data/binance-spot/btcusdt_20240808.gz` at their recorded pace (--speed 1) to every
 * connected client. Frames due at the same moment go out as one socket write per client, as K2's
 * gateway does. Each message carries `"ingestion_timestamp":<µs>` stamped when it is written, so the
 * gateway bench's clients measure it exactly as they measure K2.
 *
 * Run by the gateway bench (`--phases floor`): `node dist/bench/bare-fanout.js --port P`; prints
 * `listening P` on stdout. It answers each client text frame (a subscribe) with `{"type":"subscribed"}`.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { textFrame } from "../src/serve/ws/frames.js";
import { frameAt } from "./ws-frames.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const CAPTURE = resolve(ROOT, "../shared/data/binance-spot/btcusdt_20240808.gz");
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** Counts complete client text frames in `buf`; returns [frames, bytes used]. */
function clientFrames(buf: Buffer): [number, number] {
  let p = 0;
  let n = 0;
  for (let f = frameAt(buf, p); f; f = frameAt(buf, p)) {
    if (f.opcode === 0x1) n++;
    p = f.end;
  }
  return [n, p];
}

function main(): void {
  const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
  // the frames of the capture's BTCUSDT trade/bookTicker streams with their receive offsets (ms)
  const lines = gunzipSync(readFileSync(CAPTURE)).toString("utf8").split("\n");
  const frames: { at: number; text: string; trade: boolean }[] = [];
  let t0 = 0;
  for (const line of lines) {
    const sp = line.indexOf(" ");
    if (sp < 0) continue;
    const text = line.slice(sp + 1);
    const trade = text.startsWith('{"stream":"btcusdt@trade"');
    if (!trade && !text.startsWith('{"stream":"btcusdt@bookTicker"')) continue;
    const ns = Number(line.slice(0, sp));
    if (t0 === 0) t0 = ns;
    frames.push({ at: (ns - t0) / 1e6, text, trade });
  }
  const clients = new Set<Socket>();
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on("error", () => undefined);
    let head = Buffer.alloc(0);
    let open = false;
    socket.on("data", (d: Buffer) => {
      head = Buffer.concat([head, d]);
      if (!open) {
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        const key = /sec-websocket-key:\s*(\S+)/i.exec(head.subarray(0, end).toString())?.[1] ?? "";
        const accept = createHash("sha1")
          .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
          .digest("base64");
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        open = true;
        head = head.subarray(end + 4);
      }
      const [n, used] = clientFrames(head);
      head = head.subarray(used);
      for (let i = 0; i < n; i++) socket.write(textFrame('{"type":"subscribed"}'));
      if (n > 0) clients.add(socket);
    });
    socket.on("close", () => clients.delete(socket));
  });
  server.listen(port, "127.0.0.1", () => {
    process.stdout.write(`listening ${port}\n`);
    const start = performance.now();
    let i = 0;
    const step = () => {
      const elapsed = performance.now() - start;
      const parts: Buffer[] = [];
      for (; i < frames.length && frames[i].at <= elapsed; i++) {
        const f = frames[i];
        const type = f.trade ? "trade" : "quote";
        parts.push(
          textFrame(
            `{"type":"${type}","channel":"${type}s","data":{"raw":${JSON.stringify(f.text)},"ingestion_timestamp":${nowUs()}}}`,
          ),
        );
      }
      if (parts.length > 0) {
        const buf = parts.length === 1 ? parts[0] : Buffer.concat(parts);
        for (const c of clients) c.write(buf);
      }
      if (i < frames.length) setTimeout(step, Math.max(0, frames[i].at - (performance.now() - start)));
    };
    step();
  });
  process.on("SIGTERM", () => process.exit(0));
}

main();
