/**
 * docker's image events: `pull` (Actor: the reference pulled, familiar), `tag` (Actor: the image
 * id, `name` the new reference), `untag` and `delete` (Actor and `name`: the image id), `load`
 * and `import`, as docker's daemon logs them.
 *
 * @module
 */
import { parseReference } from "../../registry/reference.ts";
import { familiarRepository } from "../../registry/reference.ts";
import { type NewEvent, recordEventQuietly } from "../store/events.ts";
import type { Store } from "../store/mod.ts";

/** An image event whose Actor is `actorId`, with docker's `name` attribute. */
export function imageEvent(action: string, actorId: string, name: string): NewEvent {
  return { type: "image", action, actorId, attributes: { name } };
}

/** `pull` of the full reference `full` (docker.io/library/busybox:latest). */
export function pullEvent(full: string): NewEvent {
  const ref = parseReference(full);
  return imageEvent("pull", ref.familiar(), familiarRepository(ref));
}

/** `tag`: image `imageId` got the full reference `full`. */
export function tagEvent(imageId: string, full: string): NewEvent {
  return imageEvent("tag", imageId, parseReference(full).familiar());
}

/** Records `event` without failing the command whose work is done. */
export function recordImageEvent(store: Store, event: NewEvent): void {
  recordEventQuietly(store.db, event);
}
