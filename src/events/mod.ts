/**
 * Reading docker's events back from the state database (recorded by src/store/events.ts): the
 * past ones in a time range, and a follower that streams new ones as other tsbox processes
 * commit them. `tsbox events` and the Engine API's `/events` both read through here.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { nowMicros } from "../store/events.ts";

export { nowMicros };

/** docker's `events.Message`, as the Engine API serves it (JSON field names). */
export interface EngineEvent {
  /** Legacy fields (container and image events): the action, actor id and image. */
  readonly status?: string;
  readonly id?: string;
  readonly from?: string;
  readonly Type: string;
  readonly Action: string;
  readonly Actor: { readonly ID: string; readonly Attributes: Readonly<Record<string, string>> };
  readonly scope: "local";
  /** Seconds since the epoch. */
  readonly time: number;
  /** Nanoseconds since the epoch (microsecond precision). */
  readonly timeNano: number;
}

/** The filter keys docker's daemon accepts for events. */
export const EVENT_FILTER_KEYS: readonly string[] = [
  "config",
  "container",
  "daemon",
  "event",
  "image",
  "label",
  "network",
  "node",
  "plugin",
  "scope",
  "secret",
  "service",
  "type",
  "volume",
];

/** Which events to read. */
export interface EventQuery {
  /** Only events at or after this time (microseconds since the epoch). */
  readonly since?: number;
  /** Only events at or before this time (microseconds since the epoch). */
  readonly until?: number;
  /** docker's event filters by key (values of one key are alternatives). */
  readonly filters?: ReadonlyMap<string, readonly string[]>;
}

interface EventRow {
  seq: number;
  time_us: number;
  type: string;
  action: string;
  actor_id: string;
  attributes: string;
}

function toEvent(r: EventRow): EngineEvent {
  const attributes = JSON.parse(r.attributes) as Record<string, string>;
  const legacy = r.type === "container" || r.type === "image"
    ? {
      status: r.action,
      id: r.actor_id,
      ...(r.type === "container" && attributes.image !== undefined
        ? { from: attributes.image }
        : {}),
    }
    : {};
  return {
    ...legacy,
    Type: r.type,
    Action: r.action,
    Actor: { ID: r.actor_id, Attributes: attributes },
    scope: "local",
    time: Math.floor(r.time_us / 1e6),
    timeNano: r.time_us * 1000,
  };
}

/** The newest sequence number recorded, 0 for none. */
function lastSeq(store: Store): number {
  return store.db.get<{ s: number | null }>("SELECT max(seq) AS s FROM events")?.s ?? 0;
}

function rowsAfter(store: Store, afterSeq: number, upToSeq: number, q: EventQuery): EventRow[] {
  return store.db.all<EventRow>(
    `SELECT * FROM events WHERE seq > ? AND seq <= ? AND time_us >= ? AND time_us <= ?
     ORDER BY seq`,
    afterSeq,
    upToSeq,
    q.since ?? 0,
    q.until ?? Number.MAX_SAFE_INTEGER,
  );
}

/** The recorded events of `q`'s time range that its filters let through, oldest first. */
export function readEvents(store: Store, q: EventQuery = {}): EngineEvent[] {
  return rowsAfter(store, 0, Number.MAX_SAFE_INTEGER, q).map(toEvent)
    .filter((e) => eventMatches(q.filters, e));
}

/** Options of {@link followEvents}. */
export interface FollowOptions {
  /** Ends the stream. */
  readonly signal?: AbortSignal;
  /** How often the database is looked at for new events (default 100 ms). */
  readonly pollMs?: number;
}

/**
 * docker's event stream: the past events of `q` first when it names `since` or `until`, then
 * each new event as it is committed, until `q.until` has passed or `signal` aborts. Without
 * `since` and `until` only new events come.
 */
export async function* followEvents(
  store: Store,
  q: EventQuery = {},
  o: FollowOptions = {},
): AsyncGenerator<EngineEvent> {
  // Rows are numbered in commit order (seq is drawn under SQLite's write lock), so reading
  // `seq > last` never misses or repeats one.
  let last = lastSeq(store);
  if (q.since !== undefined || q.until !== undefined) {
    for (const r of rowsAfter(store, 0, last, q)) {
      const e = toEvent(r);
      if (eventMatches(q.filters, e)) yield e;
    }
  }
  const pollMs = o.pollMs ?? 100;
  for (;;) {
    if (o.signal?.aborted) return;
    if (q.until !== undefined && nowMicros() > q.until) return;
    for (const r of rowsAfter(store, last, Number.MAX_SAFE_INTEGER, {})) {
      last = r.seq;
      if (r.time_us < (q.since ?? 0) || r.time_us > (q.until ?? Number.MAX_SAFE_INTEGER)) continue;
      const e = toEvent(r);
      if (eventMatches(q.filters, e)) yield e;
    }
    await pause(pollMs, o.signal);
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** `value` equals `text` or is a prefix of it (docker's FuzzyMatch). */
function fuzzy(values: readonly string[], text: string | undefined): boolean {
  return text !== undefined && values.some((v) => text === v || text.startsWith(v));
}

/** An image name without its `:tag` (not a registry's `:port`). */
function withoutTag(name: string): string {
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  return colon > slash ? name.slice(0, colon) : name;
}

/** docker's matchImage: the value equals the id or name, or the name without its tag. */
function matchImage(values: readonly string[], e: EngineEvent): boolean {
  const a = e.Actor.Attributes;
  const names = [e.Actor.ID, e.Type === "image" ? a.name : a.image];
  return values.some((v) => names.some((n) => n !== undefined && (n === v || withoutTag(n) === v)));
}

/** docker's `label=K` / `label=K=V` over the attributes (each one must hold). */
function matchLabels(values: readonly string[], attrs: Readonly<Record<string, string>>) {
  return values.every((v) => {
    const i = v.indexOf("=");
    return i < 0 ? Object.hasOwn(attrs, v) : attrs[v.slice(0, i)] === v.slice(i + 1);
  });
}

/** Whether event `e` passes docker's event filters (every key given must hold). */
export function eventMatches(
  filters: ReadonlyMap<string, readonly string[]> | undefined,
  e: EngineEvent,
): boolean {
  if (!filters) return true;
  const a = e.Actor.Attributes;
  for (const [key, values] of filters) {
    if (values.length === 0) continue;
    let ok: boolean;
    switch (key) {
      case "type":
        ok = values.includes(e.Type);
        break;
      case "event":
        // docker: `health_status` (or exec_create, exec_start) alone matches any status.
        ok = values.some((v) => v === e.Action || e.Action.startsWith(`${v}: `));
        break;
      case "container":
        ok = e.Type === "container" && (fuzzy(values, e.Actor.ID) || fuzzy(values, a.name));
        break;
      case "image":
        ok = matchImage(values, e);
        break;
      case "label":
        ok = matchLabels(values, a);
        break;
      case "volume":
        ok = e.Type === "volume" && fuzzy(values, e.Actor.ID);
        break;
      case "network":
        ok = e.Type === "network" && (fuzzy(values, e.Actor.ID) || fuzzy(values, a.name));
        break;
      case "scope":
        ok = values.includes("local");
        break;
      case "daemon":
        ok = true;
        break;
      default:
        // Swarm and plugin objects: tsbox has none.
        ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

/**
 * docker's time value of `--since`/`--until` in microseconds: Unix seconds with up to nine
 * decimals, an RFC 3339 date or time, or a Go duration before `now` (`10m`, `1h30m`, `1.5s`).
 */
export function parseEventTime(value: string, now = nowMicros()): number {
  const unix = /^(\d+)(?:\.(\d{1,9}))?$/.exec(value);
  if (unix) return Number(unix[1]) * 1e6 + Math.floor(Number((unix[2] ?? "").padEnd(9, "0")) / 1e3);
  const dur = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$/
    .exec(value);
  if (dur && value !== "") {
    const seconds = Number(dur[1] ?? 0) * 3600 + Number(dur[2] ?? 0) * 60 + Number(dur[3] ?? 0) +
      Number(dur[4] ?? 0) / 1000;
    return now - Math.round(seconds * 1e6);
  }
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new RangeError(`invalid time value: ${value}`);
  // Date.parse keeps milliseconds: the rest of an RFC 3339 fraction is added back.
  const frac = /\.\d{3}(\d{1,3})/.exec(value);
  return ms * 1000 + (frac ? Number(frac[1].padEnd(3, "0")) : 0);
}
