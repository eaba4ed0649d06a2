import type { Command } from "commander";
import type { FaultSpec } from "../replay/faults.js";
import { exitWithError, onSignal } from "./common.js";

/** Flags of `k2 replay-server` as commander hands them over. */
type Flags = { port: string; speed: string; faults?: string; faultsSeed?: string };

/**
 * `--faults SPEC` and `--faults-seed N` (see `replay/faults.ts`), or undefined without faults.
 * Exits 2 naming the flag when invalid.
 */
async function faultsOf(opts: Flags): Promise<FaultSpec | undefined> {
  if (opts.faults === undefined) {
    if (opts.faultsSeed !== undefined) exitWithError("--faults-seed: only meaningful with --faults SPEC");
    return undefined;
  }
  const { parseFaults, parseFaultsSeed } = await import("../replay/faults.js");
  try {
    return parseFaults(opts.faults, opts.faultsSeed === undefined ? 1 : parseFaultsSeed(opts.faultsSeed));
  } catch (e) {
    exitWithError((e as Error).message);
  }
}

/** Registers `k2 replay-server`. */
export function registerReplayServer(program: Command): void {
  program
    .command("replay-server")
    .description("serve a capture as the recorded venue's WebSocket endpoint on 127.0.0.1")
    .argument("<file>", "capture file (`<ns> <frame>` Binance lines, or a cryptofeed recording), gzip")
    .option("--port <n>", "port, 0 = any free port", "9443")
    .option(
      "--speed <x>",
      "pace: 1 (the recorded pace, as `k2 run --replay` without --exit-at-end), 10, ... or max",
      "1",
    )
    .option(
      "--faults <spec>",
      "inject faults: drop-every=N[:lost=M], stall=DUR@FRAME, garbage=RATE, close=CODE@FRAME, no-pong (comma list)",
    )
    .option("--faults-seed <n>", "seed of the --faults PRNG (default 1)")
    .action(async (file: string, opts: Flags) => {
      const port = Number(opts.port);
      if (!/^\d+$/.test(opts.port) || port > 65535)
        exitWithError(`--port: expected 0..65535, got "${opts.port}"`);
      const speed = opts.speed === "max" ? "max" : Number(opts.speed);
      if (speed !== "max" && (!Number.isFinite(speed) || speed <= 0)) {
        exitWithError(`--speed: expected a positive number or "max", got "${opts.speed}"`);
      }
      const faults = await faultsOf(opts);
      const { access } = await import("node:fs/promises");
      await access(file).catch(() => exitWithError(`<file>: cannot read ${file}`));
      const [{ createLogger }, { detectCaptureFormat, REPLAY_SERVERS }] = await Promise.all([
        import("../ops/logger.js"),
        import("../replay/index.js"),
      ]);
      const logger = createLogger();
      const server = new REPLAY_SERVERS[detectCaptureFormat(file)]({ file, port, speed, faults });
      const bound = await server.start();
      server.on("connection", (path) => logger.info({ path }, "replay connection"));
      server.on("end", (info) => logger.info(info, "replay finished for a connection"));
      server.onFault?.(() => logger.info({ faults: server.faultCounts() }, "fault injected"));
      logger.info(
        { url: `ws://127.0.0.1:${bound}`, rest_url: `http://127.0.0.1:${bound}`, file, speed },
        "replay server listening",
      );
      process.stdout.write(`${JSON.stringify({ url: `ws://127.0.0.1:${bound}`, port: bound })}\n`);
      await onSignal();
      await server.stop();
    });
}
