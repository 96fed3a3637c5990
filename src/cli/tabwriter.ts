/**
 * Column alignment as docker prints its tables: Go's text/tabwriter (elastic tabstops) with the
 * settings of docker's formatter, `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`. Cells end with a
 * tab; the text after a line's last tab is not part of any column. A column is a run of
 * contiguous lines that all have a cell in it, so a line without tabs breaks every column.
 *
 * @module
 */

/** Width settings of {@link tabwrite}; the defaults are docker's. */
export interface TabwriterOptions {
  /** Minimal width of a column, padding included (docker: 10). */
  readonly minwidth?: number;
  /** Spaces added to the widest cell of a column (docker: 3). */
  readonly padding?: number;
}

interface Cell {
  readonly text: string;
  readonly width: number;
}

/** Aligns the tab-separated cells of `text` (lines end with `\n`) as docker's tables do. */
export function tabwrite(text: string, options: TabwriterOptions = {}): string {
  const minwidth = options.minwidth ?? 10;
  const padding = options.padding ?? 3;
  const raw = text.split("\n");
  const lines: Cell[][] = raw.map((line, i) => {
    const parts = line.split("\t");
    // The text after the last newline is an unfinished line: an empty last cell is no cell.
    if (i === raw.length - 1 && parts[parts.length - 1] === "") parts.pop();
    return parts.map((t) => ({ text: t, width: [...t].length }));
  });
  const out: string[] = [];
  const widths: number[] = [];

  const writeLines = (line0: number, line1: number) => {
    for (let i = line0; i < line1; i++) {
      const line = lines[i];
      line.forEach((c, j) => {
        out.push(c.text);
        if (j < widths.length) out.push(" ".repeat(Math.max(0, widths[j] - c.width)));
      });
      if (i + 1 < lines.length) out.push("\n");
    }
  };

  // Go's Writer.format: find the blocks of lines that share column `widths.length`, size the
  // column to its widest cell, and format the columns to its right within each block.
  const format = (line0: number, line1: number) => {
    const column = widths.length;
    for (let t = line0; t < line1; t++) {
      if (column >= lines[t].length - 1) continue;
      writeLines(line0, t);
      line0 = t;
      let width = minwidth;
      for (; t < line1; t++) {
        const line = lines[t];
        if (column >= line.length - 1) break;
        width = Math.max(width, line[column].width + padding);
      }
      widths.push(width);
      format(line0, t);
      widths.pop();
      line0 = t;
    }
    writeLines(line0, line1);
  };

  format(0, lines.length);
  return out.join("");
}
