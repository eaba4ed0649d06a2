/**
 * Output formats of `k2 query`: `json` (an array of row objects; DECIMAL and BIGINT values as strings,
 * exact), `csv` (RFC 4180 quoting) and `table` (aligned columns for a terminal).
 */
import type { Row } from "./store/store.js";

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** Formats rows; output ends with a newline. */
export function formatRows(rows: Row[], format: "json" | "csv" | "table"): string {
  if (format === "json") return `${JSON.stringify(rows)}\n`;
  const cols = rows.length > 0 ? Object.keys(rows[0]) : [];
  if (format === "csv") {
    const q = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
    return `${[cols.map(q).join(","), ...rows.map((r) => cols.map((c) => q(cell(r[c]))).join(","))].join("\n")}\n`;
  }
  if (cols.length === 0) return "(no rows)\n";
  const cells = rows.map((r) => cols.map((c) => cell(r[c])));
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  return `${[line(cols), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n")}\n(${rows.length} rows)\n`;
}
