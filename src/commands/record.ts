import type { Command } from "commander";
import type { RunFlags } from "../config.js";
import { exitWithError, onSignal, runConfigOrExit } from "./common.js";

/** Registers `k2 record`. */
export function registerRecord(program: Command): void {
  program
    .command("record")
    .description("record raw frames with receive times (gzip, `<ns> <frame>` per line)")
    .requiredOption("--out <file>", "capture file to write (.gz)")
    .option("--exchange <name>", "venue", "binance")
    .option("--symbols <list>", "comma-separated venue symbols")
    .option("--streams <list>", "comma-separated streams")
    .option("--ws-url <url>", "venue WebSocket base URL")
    .option("--duration <s>", "stop after this many seconds (default: until SIGINT/SIGTERM)")
    .option("--frames <n>", "stop after this many frames (default: no limit)")
    .action(async (opts: RunFlags & { out: string; duration?: string; frames?: string }) => {
      const [
        { MemoryBus },
        { Publisher },
        { createLogger },
        { Metrics },
        { startIngest },
        { CaptureWriter },
      ] = await Promise.all([
        import("../bus/memory.js"),
        import("../bus/publisher.js"),
        import("../ops/logger.js"),
        import("../ops/metrics.js"),
        import("../pipeline.js"),
        import("../replay/capture.js"),
      ]);
      const config = await runConfigOrExit({
        exchange: opts.exchange,
        symbols: opts.symbols,
        streams: opts.streams,
        wsUrl: opts.wsUrl,
      });
      let duration = 0;
      if (opts.duration !== undefined) {
        duration = Number(opts.duration);
        if (!Number.isFinite(duration) || duration <= 0)
          exitWithError(`--duration: expected seconds > 0, got "${opts.duration}"`);
      }
      let maxFrames = 0;
      if (opts.frames !== undefined) {
        maxFrames = /^\d+$/.test(opts.frames) ? Number(opts.frames) : 0;
        if (!Number.isSafeInteger(maxFrames) || maxFrames <= 0)
          exitWithError(`--frames: expected a whole number of frames > 0, got "${opts.frames}"`);
      }
      const logger = createLogger();
      let enough: (reason: string) => void = () => undefined;
      const frameLimit = new Promise<string>((r) => {
        enough = r;
      });
      const writer = new CaptureWriter(opts.out);
      const { getVenue } = await import("../venues/registry.js");
      const feedConfig = config.feeds[0];
      const venue = getVenue(feedConfig.exchange)!;
      const bus = new MemoryBus();
      const feed = startIngest(
        {
          venue,
          subscription: { symbols: feedConfig.symbols, streams: feedConfig.streams },
          wsUrl: feedConfig.wsUrl,
          bus,
          metrics: new Metrics({ defaultMetrics: false }),
          logger,
          onRawFrame: (raw, at) => {
            if (maxFrames > 0 && writer.frames >= maxFrames) return;
            writer.write(raw, at);
            if (writer.frames === maxFrames) enough(`${maxFrames} frames recorded`);
          },
        },
        new Publisher(bus, logger),
      );
      const timer =
        duration > 0
          ? new Promise<string>((r) => setTimeout(() => r("duration elapsed"), duration * 1000))
          : null;
      const reason = await Promise.race([onSignal(), frameLimit, ...(timer ? [timer] : [])]);
      await feed.connection.stop();
      await writer.close();
      logger.info({ reason, frames: writer.frames, out: opts.out }, "recording closed");
      process.stdout.write(`${JSON.stringify({ frames: writer.frames, out: opts.out })}\n`);
      if (writer.frames === 0) {
        const failure = feed.connection.lastFailure;
        exitWithError(
          `recorded no frames in ${reason === "duration elapsed" ? `${duration} s` : "the run"}` +
            (failure ? `: ${failure.message}` : ": the venue sent nothing on the subscription") +
            `; ${opts.out} holds no frames`,
          1,
        );
      }
      process.exit(0);
    });
}
