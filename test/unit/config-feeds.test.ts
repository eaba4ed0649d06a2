import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError, resolveRunConfig } from "../../src/config.js";

const D = fileURLToPath(new URL("../../../shared/data/cryptofeed/", import.meta.url));
const B = `${D}BINANCE.jsonl.gz`;
const C = `${D}COINBASE.jsonl.gz`;
const K = `${D}KRAKEN.jsonl.gz`;
const S = fileURLToPath(new URL("../../../shared/data/binance-spot/", import.meta.url));
const run = (flags: Parameters<typeof resolveRunConfig>[0]) => resolveRunConfig(flags, {});

describe("multi-venue configuration", () => {
  it("keeps the single-venue configuration as it was", () => {
    const c = run({});
    expect(c.feeds[0].exchange).toBe("binance");
    expect(c.feeds[0].symbols).toEqual(["BTCUSDT", "ETHUSDT", "BNBUSDT"]);
    expect(c.feeds).toHaveLength(1);
    expect(c.feeds[0]).toMatchObject({
      exchange: "binance",
      wsUrl: "wss://stream.binance.com:9443",
      replay: null,
    });
    const one = run({ exchange: "coinbase", symbols: "btc-usd", replay: C });
    expect(one.feeds[0]).toMatchObject({ exchange: "coinbase", symbols: ["BTC-USD"], replay: C });
    expect(one.feeds[0].symbolsDefaulted).toBe(false);
  });

  it("gives each exchange its defaults, its prefixed entries, its URL and its replay file in order", () => {
    const c = run({
      exchange: "binance,coinbase,kraken",
      symbols: "coinbase:BTC-USD,kraken:XBT/USD,kraken:ETH/USD,binance:BTCUSDT",
      streams: "kraken:trade",
      replay: `${B},${C},${K}`,
    });
    expect(c.feeds.map((f) => [f.exchange, f.symbols, f.streams, f.replay])).toEqual([
      ["binance", ["BTCUSDT"], ["trade", "aggTrade", "bookTicker"], B],
      ["coinbase", ["BTC-USD"], ["market_trades", "ticker", "heartbeats"], C],
      ["kraken", ["XBT/USD", "ETH/USD"], ["trade"], K],
    ]);
    const live = run({ exchange: "coinbase,kraken", wsUrl: "ws://127.0.0.1:1,ws://127.0.0.1:2/v2" });
    expect(live.feeds.map((f) => [f.wsUrl, f.symbolsDefaulted])).toEqual([
      ["ws://127.0.0.1:1", true],
      ["ws://127.0.0.1:2/v2", true],
    ]);
  });

  it("takes consecutive Binance captures as one session: commas with one exchange, + with several", () => {
    const day1 = `${S}btcusdt_20240808.gz`;
    const day2 = `${S}btcusdt_20240809.gz`;
    expect(run({ replay: `${day1},${day2}` }).feeds[0]).toMatchObject({
      replay: day1,
      replayFiles: [day1, day2],
    });
    expect(run({ replay: day1 }).feeds[0]).toMatchObject({ replay: day1, replayFiles: [day1] });
    const two = run({ exchange: "binance,kraken", replay: `${day1}+${day2},${K}` });
    expect(two.feeds.map((f) => f.replayFiles)).toEqual([[day1, day2], [K]]);
    expect(run({}).feeds[0].replayFiles).toEqual([]);
  });

  it("rejects what does not fit, naming the flag", () => {
    const err = (flags: Parameters<typeof resolveRunConfig>[0]) => {
      try {
        run(flags);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    expect(err({ exchange: "binance,coinbase", replay: B })).toMatch(
      /^--replay: 2 exchanges need 2 replay files/,
    );
    expect(err({ exchange: "coinbase,kraken", replay: `${K},${C}` })).toMatch(
      /^--replay: ".*KRAKEN.jsonl.gz" holds KRAKEN data, not COINBASE/,
    );
    expect(err({ exchange: "binance", symbols: "coinbase:BTC-USD" })).toMatch(
      /^--symbols: "coinbase:BTC-USD" names coinbase, which is not in --exchange/,
    );
    expect(err({ exchange: "binance,coinbase", symbols: "BTCUSDT" })).toMatch(
      /^--symbols: "BTCUSDT" is not a Coinbase product id.*prefix an entry with its exchange/,
    );
    expect(err({ exchange: "coinbase,coinbase" })).toBe("--exchange: coinbase is listed twice");
    expect(err({ exchange: "binance,nyse" })).toMatch(/^--exchange: unknown exchange "nyse"/);
    expect(err({ exchange: "coinbase,kraken", wsUrl: "ws://127.0.0.1:1" })).toMatch(
      /^--ws-url: 2 exchanges need 2 URLs/,
    );
    expect(err({ exchange: "coinbase", replay: "/nonexistent.jsonl.gz" })).toMatch(/^--replay: cannot read/);
    expect(err({ exchange: "kraken", replay: `${K},${K}` })).toMatch(
      /^--replay: several captures play as one session only for Binance "<ns> <frame>" captures/,
    );
    expect(err({ replay: `${S}btcusdt_20240808.gz,/nonexistent.gz` })).toMatch(
      /^--replay: cannot read "\/nonexistent.gz"/,
    );
  });
});
