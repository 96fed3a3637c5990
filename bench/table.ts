/**
 * The one table `deno task bench` prints: each benchmark (run as its own process by mod.ts)
 * reports its rows with {@link benchRow}, as a marked JSON line on stdout; mod.ts collects them
 * and prints them together with {@link formatTable} once every benchmark has run.
 *
 * @module
 */

/** One line of the table: a piece of work measured on tsbox and on a peer in the same run. */
export interface BenchRow {
  /** What was measured, and against what (`pull 200 MB / 2,000 files vs podman pull`). */
  readonly work: string;
  /** tsbox's median, with its unit. */
  readonly tsbox: string;
  /** The peer's median, with its unit; `—` when the peer could not run. */
  readonly peer: string;
  /** tsbox / peer (for throughputs, tsbox's share of the peer's), when both ran. */
  readonly ratio?: number;
  /** The target for the ratio, as the issue gives it (`≤ 0.70`). */
  readonly target: string;
}

/** The marker of a row line in a benchmark's output. */
export const ROW_MARK = "@@bench-row ";

/** Reports a row to mod.ts (and shows it to a reader running the benchmark alone). */
export function benchRow(row: BenchRow): void {
  console.log(ROW_MARK + JSON.stringify(row));
}

/** Milliseconds as the table shows them. */
export function ms(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(1)} ms`;
}

/** The median of some samples. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Rows as a Markdown table: work, tsbox, peer, ratio, target. */
export function formatTable(rows: readonly BenchRow[]): string {
  const cells = [
    ["work", "tsbox", "peer", "ratio", "target"],
    ...rows.map((r) => [
      r.work,
      r.tsbox,
      r.peer,
      r.ratio === undefined ? "—" : r.ratio.toFixed(2),
      r.target,
    ]),
  ];
  const widths = cells[0].map((_, i) => Math.max(...cells.map((c) => c[i].length)));
  const line = (c: string[]) => `| ${c.map((v, i) => v.padEnd(widths[i])).join(" | ")} |`;
  return [line(cells[0]), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`]
    .concat(cells.slice(1).map(line)).join("\n");
}
