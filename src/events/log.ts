/**
 * The event log behind `tsbox events` (and, later, the Engine API's /events): every state
 * change tsbox makes (a container created, started, died with its exit code, stopped, killed,
 * paused, destroyed; an image pulled, tagged, untagged, deleted, committed, imported) appended
 * as one JSON line, docker's event shape, to `<root>/events.jsonl` by the process that made the
 * change. Lines are written with one O_APPEND write each, so concurrent tsbox processes never
 * interleave them. The log is cut at {@link MAX_BYTES}: the full file becomes `events.jsonl.1`
 * (docker's daemon keeps only recent events too).
 *
 * Recording never fails the change it records: an event that cannot be written is dropped.
 *
 * @module
 */
import { join } from "../path.ts";

/** One event, as docker's API and `events --format '{{json .}}'` show it. */
export interface TsboxEvent {
  /** Docker's legacy fields: the action, the object's id and (containers) its image. */
  readonly status?: string;
  readonly id?: string;
  readonly from?: string;
  /** `container`, `image`, `volume`. */
  readonly Type: string;
  /** `create`, `start`, `die`, `pull`, ... */
  readonly Action: string;
  readonly Actor: { readonly ID: string; readonly Attributes: Record<string, string> };
  readonly scope: "local";
  /** Seconds since the epoch. */
  readonly time: number;
  /** Nanoseconds since the epoch. */
  readonly timeNano: number;
}

/** Size at which the log is cut. */
export const MAX_BYTES = 4 * 1024 * 1024;

/** The log file of the store at `root`. */
export function eventsPath(root: string): string {
  return join(root, "events.jsonl");
}

/** A new event of `type`/`action` for the object `id`, stamped now. */
export function makeEvent(
  type: string,
  action: string,
  id: string,
  attributes: Record<string, string>,
  nowMs = Date.now(),
): TsboxEvent {
  // Sub-millisecond digits come from the monotonic clock, so events of one process keep order.
  const nano = BigInt(Math.floor(nowMs)) * 1_000_000n +
    BigInt(Math.floor((performance.now() % 1) * 1_000_000));
  const legacy = type === "container" || type === "image"
    ? { status: action, id, ...(attributes.image ? { from: attributes.image } : {}) }
    : {};
  return {
    ...legacy,
    Type: type,
    Action: action,
    Actor: { ID: id, Attributes: attributes },
    scope: "local",
    time: Math.floor(nowMs / 1000),
    timeNano: Number(nano),
  };
}

/** Appends `event` to the log of the store at `root` (best effort, see the module). */
export function recordEvent(root: string, event: TsboxEvent): void {
  const path = eventsPath(root);
  try {
    try {
      if (Deno.statSync(path).size > MAX_BYTES) Deno.renameSync(path, `${path}.1`);
    } catch { /* no log yet */ }
    Deno.writeTextFileSync(path, JSON.stringify(event) + "\n", { append: true, mode: 0o600 });
  } catch {
    // A full disk or a read-only store: the change itself stands; its event is lost.
  }
}

/** A container's event: its name, image and labels as attributes, as docker's. */
export function containerEvent(
  root: string,
  action: string,
  c: {
    readonly id: string;
    readonly name: string;
    readonly imageName: string;
    readonly config: { readonly labels?: Readonly<Record<string, string>> };
  },
  extra: Record<string, string> = {},
): void {
  recordEvent(
    root,
    makeEvent("container", action, c.id, {
      ...(c.config.labels ?? {}),
      image: c.imageName,
      name: c.name,
      ...extra,
    }),
  );
}

/** An image's event (`id`: the image id, or the reference for pull/tag/untag as docker's). */
export function imageEvent(root: string, action: string, id: string, name?: string): void {
  recordEvent(root, makeEvent("image", action, id, name ? { name } : {}));
}

function parseLines(text: string): TsboxEvent[] {
  const out: TsboxEvent[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as TsboxEvent);
    } catch { /* a line cut by a crash */ }
  }
  return out;
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** Every event kept, oldest first, and the log's size when read (where following resumes). */
export function readEvents(root: string): { events: TsboxEvent[]; offset: number } {
  const path = eventsPath(root);
  const current = readText(path);
  return {
    events: [...parseLines(readText(`${path}.1`)), ...parseLines(current)],
    offset: new TextEncoder().encode(current).length,
  };
}

/**
 * Yields the events appended after byte `offset` of the log as they come, polling every
 * `intervalMs`, until `signal` aborts. A cut log (smaller than the offset) is read from its
 * start.
 */
export async function* followEvents(
  root: string,
  offset: number,
  signal: AbortSignal,
  intervalMs = 100,
): AsyncGenerator<TsboxEvent> {
  const path = eventsPath(root);
  let at = offset;
  let partial = "";
  while (!signal.aborted) {
    let size = 0;
    try {
      size = Deno.statSync(path).size;
    } catch { /* not written yet */ }
    if (size < at) {
      at = 0;
      partial = "";
    }
    if (size > at) {
      const file = Deno.openSync(path);
      try {
        file.seekSync(at, Deno.SeekMode.Start);
        const buf = new Uint8Array(size - at);
        let got = 0;
        while (got < buf.length) {
          const n = file.readSync(buf.subarray(got));
          if (n === null || n === 0) break;
          got += n;
        }
        at += got;
        const text = partial + new TextDecoder().decode(buf.subarray(0, got));
        const cut = text.lastIndexOf("\n");
        partial = text.slice(cut + 1);
        yield* parseLines(text.slice(0, cut + 1));
      } finally {
        file.close();
      }
      continue;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
