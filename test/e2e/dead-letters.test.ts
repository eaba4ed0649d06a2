/**
 * A capture with corrupted lines: each bad frame lands in dead_letters with its reason and raw text,
 * every good frame is stored, and the pipeline never stops.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { readCapture } from "../../src/replay/capture.js";
import { sharedData } from "../helpers/capture.js";
import { lastJsonLine, query, runCli, tempDir } from "../helpers/cli.js";

describe("dead letters from a corrupted capture", () => {
  it("stores every good frame and each bad one with its reason", async () => {
    const dir = tempDir();
    const lines: string[] = [];
    let good = 0;
    let sampleTrade = "";
    for await (const f of readCapture(sharedData("binance-spot/btcusdt_20240808.gz"))) {
      lines.push(`${f.ns} ${f.raw}`);
      if (f.raw.startsWith('{"stream":"btcusdt@trade"') || f.raw.startsWith('{"stream":"btcusdt@bookTicker"'))
        good++;
      if (!sampleTrade && f.raw.startsWith('{"stream":"btcusdt@trade"')) sampleTrade = f.raw;
      if (lines.length >= 4000) break;
    }
    const d = JSON.parse(sampleTrade).data;
    const ns = lines[100].split(" ")[0];
    const bad: { raw: string; reason: RegExp }[] = [
      { raw: sampleTrade.slice(0, 60), reason: /^malformed JSON$/ },
      { raw: sampleTrade.replace(`"p":"${d.p}",`, ""), reason: /^missing price \(p\)$/ },
      {
        raw: sampleTrade.replace(`"p":"${d.p}"`, '"p":"abc"'),
        reason: /^price \(p\): not a decimal string: "abc"$/,
      },
      {
        raw: sampleTrade.replace(`"p":"${d.p}"`, '"p":"61837.123456789"'),
        reason: /^price \(p\): more than 8 significant fractional digits for DECIMAL\(18,8\)/,
      },
      { raw: sampleTrade.replace('"e":"trade"', '"e":"tradeV9"'), reason: /^unknown event type "tradeV9"$/ },
    ];
    // spread the bad frames through the capture
    bad.forEach((b, i) => {
      lines.splice(200 + i * 500, 0, `${ns} ${b.raw}`);
    });
    const file = join(dir, "corrupted.gz");
    writeFileSync(file, gzipSync(`${lines.join("\n")}\n`));
    const db = join(dir, "k2.duckdb");

    const r = await runCli([
      "run",
      "--replay",
      file,
      "--exit-at-end",
      "--db",
      db,
      "--http-port",
      "0",
      "--symbols",
      "BTCUSDT",
      "--streams",
      "trade,bookTicker",
    ]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const summary = lastJsonLine(r.stdout);
    expect(summary.rejected).toBe(bad.length);
    expect(summary.frames).toBe(good + bad.length);

    const rows = await query(db, "SELECT reason, raw, source, exchange, received_at FROM dead_letters");
    expect(rows).toHaveLength(bad.length);
    for (const b of bad) {
      const row = rows.find((x) => x.raw === b.raw);
      expect(row, `dead letter for ${b.raw.slice(0, 80)}`).toBeDefined();
      expect(row!.reason).toMatch(b.reason);
      expect(row!.source).toBe("binance:btcusdt@trade");
      expect(row!.exchange).toBe("BINANCE");
      expect(Number(row!.received_at)).toBeGreaterThan(1.7e15);
    }
    const [c] = await query(
      db,
      "SELECT (SELECT count(*) FROM trades_v2) + (SELECT count(*) FROM quotes_v2) AS n",
    );
    expect(Number(c.n)).toBe(good);

    const metrics = await query(db, "SELECT count(*) AS n FROM sequence_gaps");
    expect(Number(metrics[0].n)).toBe(0);
  });
});
