/**
 * docker's container events (`create`, `start`, `die`, `kill`, `stop`, `destroy`, ...) as
 * recorded with each state change. The Actor of a container event is its id; its attributes are
 * its labels, `image` (as the user named it) and `name`, plus what the action adds (`exitCode`
 * for `die`, `signal` for `kill`), as docker's daemon logs them.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { type NewEvent, recordEventQuietly } from "../store/events.ts";

/** What a state change reports: docker's Action and the attributes it adds. */
export interface ContainerEventSpec {
  readonly action: string;
  readonly attributes?: Readonly<Record<string, string>>;
}

/** The parts of a container an event names. */
export interface EventActor {
  readonly id: string;
  readonly name: string;
  readonly imageName: string;
  readonly config: { readonly labels?: Readonly<Record<string, string>> };
}

/** The event `spec` of container `c`. */
export function containerEvent(c: EventActor, spec: ContainerEventSpec): NewEvent {
  return {
    type: "container",
    action: spec.action,
    actorId: c.id,
    attributes: { ...c.config.labels, image: c.imageName, name: c.name, ...spec.attributes },
  };
}

/** Records an event of `c` on its own (a change made outside the database: a signal sent). */
export function recordContainerEvent(store: Store, c: EventActor, spec: ContainerEventSpec): void {
  recordEventQuietly(store.db, containerEvent(c, spec));
}
