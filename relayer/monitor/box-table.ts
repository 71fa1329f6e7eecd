/**
 * Box-drawing tables as the seed prints them:
 *
 *   ┌─────────────────┬───────────┐
 *   │ Provider        │ Requests  │
 *   ├─────────────────┼───────────┤
 *   │ OpenAI          │ 12,891    │
 *   └─────────────────┴───────────┘
 *
 * Cells are left-aligned, one space before and at least one after; a column is as wide as its widest cell or its
 * minimum. A row may merge its last cells into one (`span`), as the seed's TOTAL row does with cost and latency.
 * Widths count characters (the content is ASCII: names, numbers, addresses).
 */
export interface BoxRow {
  readonly cells: readonly string[];
  /** draw a rule above this row */
  readonly ruleAbove?: boolean;
  /** the last cell spans this many columns (default 1) */
  readonly span?: number;
}

export function boxTable(header: readonly string[], rows: readonly BoxRow[], minWidths: readonly number[] = []): string {
  const columns = header.length;
  const widths = header.map((title, i) => Math.max(minWidths[i] ?? 0, title.length + 2));
  for (const row of rows) {
    const span = row.span ?? 1;
    row.cells.forEach((cell, i) => {
      if (span > 1 && i === row.cells.length - 1) return;
      widths[i] = Math.max(widths[i]!, cell.length + 2);
    });
  }
  // A spanning cell wider than its columns widens the last of them.
  for (const row of rows) {
    const span = row.span ?? 1;
    if (span <= 1) continue;
    const first = row.cells.length - 1;
    const room = widths.slice(first, first + span).reduce((sum, w) => sum + w, 0) + span - 1;
    const need = row.cells[first]!.length + 2;
    if (need > room) widths[first + span - 1]! += need - room;
  }
  const rule = (left: string, mid: string, right: string, merged = 0) =>
    left +
    widths
      .map((w, i) => "─".repeat(w) + (i === columns - 1 ? "" : i >= columns - merged ? "─" : mid))
      .join("") +
    right;
  const line = (row: BoxRow) => {
    const span = row.span ?? 1;
    const parts: string[] = [];
    row.cells.forEach((cell, i) => {
      const width = span > 1 && i === row.cells.length - 1 ? widths.slice(i, i + span).reduce((sum, w) => sum + w, 0) + span - 1 : widths[i]!;
      parts.push(` ${cell}`.padEnd(width));
    });
    return `│${parts.join("│")}│`;
  };
  const out = [rule("┌", "┬", "┐"), line({ cells: header })];
  rows.forEach((row, index) => {
    if (index === 0 || row.ruleAbove === true) out.push(rule("├", "┼", "┤"));
    out.push(line(row));
  });
  const lastSpan = rows.at(-1)?.span ?? 1;
  out.push(rule("└", "┴", "┘", lastSpan));
  return out.join("\n");
}
