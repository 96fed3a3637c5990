/**
 * What `tsbox events` does: reads and follows the events table (src/events/) and prints each
 * event as docker's CLI does, or through `--format`.
 *
 * @module
 */
import { Store } from "../store/mod.ts";
import {
  type EngineEvent,
  EVENT_FILTER_KEYS,
  followEvents,
  nowMicros,
  parseEventTime,
} from "../events/mod.ts";
import { TsboxError } from "../errors.ts";
import { parseFilters } from "./filters.ts";
import type { GlobalOptions } from "./globals.ts";
import { GO_JSON, GO_TYPE, GoMap } from "./template/values.ts";

/** `events [--since T] [--until T] [-f K=V]... [--format F]`. */
export async function eventsCommand(
  g: GlobalOptions,
  opts: { since?: string; until?: string; filter?: string[]; format?: string },
): Promise<void> {
  const filters = parseFilters(opts.filter ?? [], EVENT_FILTER_KEYS);
  const now = nowMicros();
  const time = (v: string | undefined) => {
    if (v === undefined) return undefined;
    try {
      return parseEventTime(v, now);
    } catch {
      throw new TsboxError(`failed to parse value as time or duration: "${v}"`);
    }
  };
  const since = time(opts.since);
  const until = time(opts.until);
  if (since !== undefined && until !== undefined && since > until) {
    throw new TsboxError(
      `\`since\` time (${stamp(since)}) cannot be after \`until\` time (${stamp(until)})`,
    );
  }
  const print = await printer(opts.format);
  const store = await Store.open(g.root);
  // Ctrl-C (or a kill) ends the stream, not the process in the middle of a line.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    for await (const e of followEvents(store, { since, until, filters }, { signal: stop.signal })) {
      try {
        print(e);
      } catch (err) {
        // The reader went away (`events | head -1`): the stream ends, as docker's does.
        if (err instanceof Deno.errors.BrokenPipe) return;
        throw err;
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    store.close();
  }
}

function stamp(micros: number): string {
  return `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, "0")}000`;
}

const encoder = new TextEncoder();

function write(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** How each event is printed: docker's line, or through the `--format` template. */
async function printer(format: string | undefined): Promise<(e: EngineEvent) => void> {
  if (format === undefined || format === "") return (e) => write(eventLine(e));
  if (format === "json") return (e) => write(`${JSON.stringify(e)}\n`);
  const { formatList } = await import("./template/docker.ts");
  // Parsed (and a bad template refused) before the first event, as docker does.
  formatList(format, [], {});
  return (e) => write(formatList(format, [templateData(e)], {}));
}

/** docker's `events.Message` as a Go struct: field names for templates, JSON tags for `json`. */
function templateData(e: EngineEvent): unknown {
  return {
    [GO_TYPE]: "events.Message",
    [GO_JSON]: e,
    Status: e.status ?? "",
    ID: e.id ?? "",
    From: e.from ?? "",
    Type: e.Type,
    Action: e.Action,
    Actor: {
      [GO_TYPE]: "events.Actor",
      ID: e.Actor.ID,
      Attributes: new GoMap(Object.entries(e.Actor.Attributes)),
    },
    Scope: e.scope,
    Time: e.time,
    TimeNano: e.timeNano,
  };
}

/**
 * docker's line: the time (RFC 3339 with nanoseconds, local zone), type, action, actor id and
 * the attributes sorted by key: `2024-05-01T10:00:00.123456000Z container die 3f1c... (exitCode=0,
 * image=busybox, name=web)`.
 */
export function eventLine(e: EngineEvent): string {
  const attrs = Object.keys(e.Actor.Attributes).sort()
    .map((k) => `${k}=${e.Actor.Attributes[k]}`);
  const tail = attrs.length > 0 ? ` (${attrs.join(", ")})` : "";
  // timeNano is past 2^53: rounded to microseconds it is exact again.
  return `${
    rfc3339Micros(Math.round(e.timeNano / 1000))
  } ${e.Type} ${e.Action} ${e.Actor.ID}${tail}\n`;
}

/** Go's `2006-01-02T15:04:05.000000000Z07:00` in the local time zone, of a time in µs. */
export function rfc3339Micros(micros: number): string {
  const ms = Math.floor(micros / 1e3);
  const d = new Date(ms);
  const offsetMin = -d.getTimezoneOffset();
  const local = new Date(ms + offsetMin * 60_000);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const frac = `${String(micros % 1e6).padStart(6, "0")}000`;
  const zone = offsetMin === 0
    ? "Z"
    : `${offsetMin > 0 ? "+" : "-"}${p(Math.floor(Math.abs(offsetMin) / 60))}:${
      p(Math.abs(offsetMin) % 60)
    }`;
  return `${local.getUTCFullYear()}-${p(local.getUTCMonth() + 1)}-${p(local.getUTCDate())}T${
    p(local.getUTCHours())
  }:${p(local.getUTCMinutes())}:${p(local.getUTCSeconds())}.${frac}${zone}`;
}
