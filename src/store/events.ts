/**
 * Recording docker's events in the state database. Each event is one INSERT, made inside the
 * transaction of the state change it reports when there is one, so that recording costs no
 * round trip of its own and an event exists exactly when its change was committed. The table
 * keeps the newest 10,000 rows (a trigger, see db.ts); src/events/ reads it back.
 *
 * @module
 */
import type { Database } from "./db.ts";

/** docker's event types that tsbox records. */
export type EventType = "container" | "image" | "network" | "volume";

/** One event to record. */
export interface NewEvent {
  readonly type: EventType;
  /** docker's Action: `create`, `start`, `die`, `health_status: healthy`, `pull`, ... */
  readonly action: string;
  /** docker's Actor.ID: a container id, image id or reference, network id, volume name. */
  readonly actorId: string;
  /** docker's Actor.Attributes (name, image, labels, exitCode, signal, ...). */
  readonly attributes?: Readonly<Record<string, string>>;
}

/**
 * The current time in microseconds since the epoch: the wall clock's milliseconds (a long-lived
 * supervisor's monotonic clock drifts from it) and the monotonic clock's fraction below them.
 */
export function nowMicros(): number {
  const t = Date.now() * 1000 + Math.floor((performance.now() % 1) * 1000);
  // Never backwards within one process: its events keep their order in time too.
  last = Math.max(t, last + 1);
  return last;
}

let last = 0;

/** Records `event` now: one INSERT, in the caller's transaction if it is in one. */
export function recordEvent(db: Database, event: NewEvent): void {
  db.run(
    "INSERT INTO events (time_us, type, action, actor_id, attributes) VALUES (?, ?, ?, ?, ?)",
    nowMicros(),
    event.type,
    event.action,
    event.actorId,
    JSON.stringify(event.attributes ?? {}),
  );
}

/**
 * Records `event` and never throws: for changes that already happened outside a transaction
 * (a signal sent, an image pulled), whose command must not fail because the disk is full.
 */
export function recordEventQuietly(db: Database, event: NewEvent): void {
  try {
    recordEvent(db, event);
  } catch { /* an event lost is better than a command failed after its work was done */ }
}
