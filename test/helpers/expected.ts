/** The reference figures of ../shared/data/README.md, read from its table (not copied into tests). */
import { readFileSync } from "node:fs";
import { sharedData } from "./capture.js";

export interface ExpectedFigures {
  file: string;
  trades: number;
  quotes: number;
  firstTradeId: string;
  lastTradeId: string;
  volume: string;
  vwap: string;
}

/** Rows of the binance-spot table in ../shared/data/README.md. */
export function expectedFigures(): ExpectedFigures[] {
  const text = readFileSync(sharedData("README.md"), "utf8");
  const rows: ExpectedFigures[] = [];
  const re =
    /^\|\s*(\S+\.gz)\s*\|\s*([\d,]+)\s*\|\s*([\d,]+)\s*\|\s*[\d,]+\s*\|\s*(\d+)\.\.(\d+)[^|]*\|\s*([\d.]+)\s*\|\s*([\d.]+)\s*\|/gm;
  for (const m of text.matchAll(re)) {
    rows.push({
      file: m[1],
      trades: Number(m[2].replace(/,/g, "")),
      quotes: Number(m[3].replace(/,/g, "")),
      firstTradeId: m[4],
      lastTradeId: m[5],
      volume: m[6],
      vwap: m[7],
    });
  }
  if (rows.length === 0) throw new Error("no figures found in ../shared/data/README.md");
  return rows;
}
