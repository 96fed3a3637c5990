/**
 * Inspect objects as templates read them. docker runs `inspect -f` over its Go structs, where
 * the maps among the fields (labels, ports, volumes, ...) answer a missing key with `<no value>`
 * (and a nil one with nothing at all) while an unknown struct field is an error. The JSON
 * objects here do not say which is which, so the fields docker declares as maps become GoMaps.
 *
 * @module
 */
import { GoMap } from "./values.ts";

/** Fields that are Go maps in docker's inspect types (container, image, volume). */
const MAP_FIELDS = new Set([
  "Labels",
  "Volumes",
  "ExposedPorts",
  "Ports",
  "Networks",
  "Data",
  "PortBindings",
  "Options",
  "Sysctls",
  "Annotations",
  "Status",
]);

/** A copy of an inspect object with docker's map fields as {@link GoMap}s. */
export function inspectTemplateData(value: unknown, key?: string): unknown {
  if (Array.isArray(value)) return value.map((v) => inspectTemplateData(v));
  const isMap = key !== undefined && MAP_FIELDS.has(key);
  if (value === null) return isMap ? GoMap.nil() : null;
  if (typeof value !== "object" || value instanceof Map) return value;
  const entries = Object.entries(value as Record<string, unknown>);
  if (isMap) return new GoMap(entries.map(([k, v]) => [k, inspectTemplateData(v)]));
  return Object.fromEntries(entries.map(([k, v]) => [k, inspectTemplateData(v, k)]));
}
