/**
 * `events --filter`: docker's keys (container, image, event, type, label, volume) over the
 * recorded events. Values of one key are alternatives; different keys must all hold.
 *
 * @module
 */
import { type Filters, matchLabels, parseFilters } from "../cli/filters.ts";
import type { TsboxEvent } from "./log.ts";

const KEYS = ["container", "image", "event", "type", "label", "label!", "volume", "network"];

/** Parses the `--filter` values (docker's `invalid filter` for an unknown key). */
export function parseEventFilters(values: readonly string[]): Filters {
  return parseFilters(values, KEYS);
}

/** Whether `e` passes `filters`. */
export function eventMatches(e: TsboxEvent, filters: Filters): boolean {
  const any = (key: string, test: (v: string) => boolean) => {
    const values = filters.get(key);
    return values === undefined || values.some(test);
  };
  const attrs = e.Actor.Attributes;
  const id = e.Actor.ID;
  return any("type", (v) => v === e.Type) &&
    // `health_status: healthy` is event `health_status`, as docker's filter has it.
    any("event", (v) => e.Action === v || e.Action.startsWith(`${v}:`)) &&
    any(
      "container",
      (v) => e.Type === "container" && (attrs.name === v || (v.length > 0 && id.startsWith(v))),
    ) &&
    any(
      "image",
      (v) => attrs.image === v || (e.Type === "image" && (id === v || attrs.name === v)),
    ) &&
    any("volume", (v) => e.Type === "volume" && id === v) &&
    any("network", (v) => e.Type === "network" && (id === v || attrs.name === v)) &&
    matchLabels(filters, attrs);
}
