/**
 * Output formatting shared by the listing commands: docker's human sizes and durations, and
 * aligned tables.
 *
 * @module
 */

/**
 * Docker's `units.HumanSizeWithPrecision(size, precision)`: decimal units, 3 significant digits
 * by default (`images`); docker's `units.HumanSize` (`system df`, prune totals) uses 4.
 */
export function humanSize(bytes: number, precision = 3): string {
  const units = ["B", "kB", "MB", "GB", "TB", "PB"];
  let value = bytes;
  let i = 0;
  while (value >= 1000 && i < units.length - 1) {
    value /= 1000;
    i++;
  }
  return `${Number(value.toPrecision(precision))}${units[i]}`;
}

/** Docker's `units.HumanDuration`: "Less than a second", "3 minutes", "2 weeks", ... */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.round(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.round(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.round(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.round(h / 24 / 30)} months`;
  return `${Math.round(h / 24 / 365)} years`;
}

/** "3 minutes ago" for a timestamp, or "N/A" when unknown. */
export function ago(time: string | number | Date | undefined): string {
  if (time === undefined) return "N/A";
  const t = new Date(time).getTime();
  if (Number.isNaN(t) || t <= 0) return "N/A";
  return `${humanDuration(Date.now() - t)} ago`;
}

/** Renders rows as columns separated by at least three spaces, like docker's tabwriter. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] + 3))).join("")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
