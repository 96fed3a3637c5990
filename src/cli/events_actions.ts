/**
 * `events`: the recorded events (src/events/log.ts) since `--since`, then new ones as they
 * come until `--until` (or ctrl-c), filtered and printed as docker prints them.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { parseTimeFilter } from "../container/logs.ts";
import { eventMatches, parseEventFilters } from "../events/filter.ts";
import { followEvents, readEvents, type TsboxEvent } from "../events/log.ts";
import type { GlobalOptions } from "./globals.ts";

/** `events`' flags. */
export interface EventsFlags {
  since?: string;
  until?: string;
  filter?: string[];
  format?: string;
}

function time(value: string | undefined, flag: string, now: number): number | undefined {
  if (value === undefined) return undefined;
  try {
    return parseTimeFilter(value, now);
  } catch {
    throw new TsboxError(`invalid value for ${flag}: ${value}`);
  }
}

/** docker's line: `TIME TYPE ACTION ID (k=v, ...)`, attributes sorted by key. */
export function eventLine(e: TsboxEvent): string {
  const nanos = String(e.timeNano % 1_000_000_000).padStart(9, "0");
  const stamp = new Date(e.time * 1000).toISOString().replace(/\.\d+Z$/, `.${nanos}Z`);
  const attrs = Object.entries(e.Actor.Attributes).sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`).join(", ");
  return `${stamp} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs ? ` (${attrs})` : ""}`;
}

/** Runs `tsbox events`. */
export async function eventsCommand(g: GlobalOptions, flags: EventsFlags): Promise<void> {
  const now = Date.now();
  const since = time(flags.since, "--since", now);
  const until = time(flags.until, "--until", now);
  const filters = parseEventFilters(flags.filter ?? []);
  const { formatOne, writeOut } = await import("./template/docker.ts");
  const print = (e: TsboxEvent) => {
    if (!eventMatches(e, filters)) return;
    writeOut(flags.format ? formatOne(flags.format, e) : `${eventLine(e)}\n`);
  };
  const ms = (e: TsboxEvent) => e.timeNano / 1e6;
  const { events, offset } = readEvents(g.root);
  // Without --since only what happens from now on is shown, as docker's.
  if (since !== undefined) {
    for (const e of events) if (ms(e) >= since && (until === undefined || ms(e) <= until)) print(e);
  }
  if (until !== undefined && until <= Date.now()) return;
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const timer = until !== undefined
    ? setTimeout(() => stop.abort(), Math.max(0, until - Date.now()))
    : undefined;
  try {
    for await (const e of followEvents(g.root, offset, stop.signal)) {
      if (until !== undefined && ms(e) > until) break;
      print(e);
    }
  } finally {
    clearTimeout(timer);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
