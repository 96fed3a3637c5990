/**
 * `images --filter` as docker's daemon applies it (daemon/images/images.go): `dangling=`,
 * `label=`/`label!=` (the image config's labels), `before=`/`since=` (an image's creation time,
 * strictly before or after), `reference=` (Go's `path.Match` on `repo:tag` or `repo`, keeping
 * only the tags that match).
 *
 * @module
 */
import type { ImageRecord, Store } from "../store/mod.ts";
import { boolFilter, FilterError, globMatch, matchLabels, parseFilters } from "./filters.ts";

/** The keys `images --filter` takes. */
export const IMAGE_FILTER_KEYS = ["before", "dangling", "label", "label!", "reference", "since"];

/** The filters of an `images`, checked and resolved. */
export interface ImageFilter {
  /** Whether `image` is listed at all (before looking at its tags). */
  keepImage(image: ImageRecord): boolean;
  /** Whether the tag `familiar` (`busybox:latest`) is listed; false for every tag of none. */
  keepTag(familiar: string): boolean;
  /** `reference=` was given: an image without a matching tag (or without tags) is not listed. */
  readonly byReference: boolean;
}

/** ms since the epoch of an image's `created`; 0 when it has none. */
function createdAt(image: ImageRecord): number {
  const t = image.created ? Date.parse(image.created) : NaN;
  return Number.isNaN(t) ? 0 : t;
}

/** The creation time of the image `ref` names (`before=`/`since=`); docker's error if none. */
function createdOf(store: Store, ref: string | undefined): number | undefined {
  if (ref === undefined) return undefined;
  const image = store.findImage(ref);
  if (!image) throw new FilterError(`No such image: ${ref}`);
  return createdAt(image);
}

/** Checks `--filter` values as docker does and returns the filter to apply. */
export function imageFilter(store: Store, values: readonly string[]): ImageFilter {
  const filters = parseFilters(values, IMAGE_FILTER_KEYS);
  const dangling = boolFilter(filters, "dangling");
  const before = createdOf(store, filters.get("before")?.at(-1));
  const since = createdOf(store, filters.get("since")?.at(-1));
  const patterns = filters.get("reference") ?? [];
  // A malformed pattern is an error even when no image is listed.
  for (const p of patterns) globMatch(p, "");
  return {
    byReference: patterns.length > 0,
    keepImage(image) {
      // An index's variant has no tag of its own, yet is not dangling (image prune keeps it).
      const isDangling = image.tags.length === 0 && !store.inIndex(image.id);
      if (dangling !== undefined && dangling !== isDangling) return false;
      if (!matchLabels(filters, image.config.config?.Labels ?? {})) return false;
      const created = createdAt(image);
      if (before !== undefined && !(created < before)) return false;
      if (since !== undefined && !(created > since)) return false;
      return true;
    },
    keepTag(familiar) {
      if (patterns.length === 0) return true;
      const name = repositoryOf(familiar);
      return patterns.some((p) => globMatch(p, familiar) || globMatch(p, name));
    },
  };
}

/** `busybox:latest` -> `busybox`, `host:5000/app:1` -> `host:5000/app`. */
function repositoryOf(familiar: string): string {
  return familiar.replace(/:[^:/]*$/, "");
}
