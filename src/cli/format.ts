/**
 * Output formatting shared by the listing commands: docker's human sizes and durations, and
 * aligned tables.
 *
 * @module
 */
import { tabwrite } from "./tabwriter.ts";

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

/** Go's strconv.Quote. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case "\\":
        out += "\\\\";
        continue;
      case "\x07":
        out += "\\a";
        continue;
      case "\b":
        out += "\\b";
        continue;
      case "\f":
        out += "\\f";
        continue;
      case "\n":
        out += "\\n";
        continue;
      case "\r":
        out += "\\r";
        continue;
      case "\t":
        out += "\\t";
        continue;
      case "\v":
        out += "\\v";
        continue;
    }
    if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else if (c >= 0x80 && c < 0xa0) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return out + '"';
}

/** Docker's `stringutils.Ellipsis`: at most `max` characters, the last one `…` if cut. */
export function ellipsis(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : chars.slice(0, max - 1).join("") + "…";
}

/**
 * Go's `time.Time.String()` of a timestamp in local time, as docker prints `CreatedAt`:
 * `2024-01-02 15:04:05 +0000 UTC`.
 */
export function goTime(time: string | number | undefined): string {
  const d = new Date(time ?? 0);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const off = -d.getTimezoneOffset();
  const sign = off < 0 ? "-" : "+";
  const zone = off === 0 ? "UTC" : (new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
    .formatToParts(d).find((part) => part.type === "timeZoneName")?.value ?? "");
  return `${p(d.getFullYear(), 4)}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${
    p(d.getMinutes())
  }:${p(d.getSeconds())} ${sign}${p(Math.floor(Math.abs(off) / 60))}${
    p(Math.abs(off) % 60)
  } ${zone}`;
}

/**
 * Renders rows as docker's tables: columns aligned by docker's tabwriter (at least 10 wide,
 * 3 spaces after the widest cell); the last column is not padded.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const text = [header, ...rows].map((cells) => cells.join("\t")).join("\n");
  return tabwrite(text);
}
