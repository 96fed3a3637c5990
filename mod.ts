/**
 * tsbox's typed API for deno scripts: the same code the `tsbox` command runs.
 *
 * ```ts
 * import { openStore, pull, listImages } from "./mod.ts";
 * const store = await openStore("/var/lib/tsbox");
 * await pull(store, "127.0.0.1:5000/busybox", { onProgress: (e) => console.log(e) });
 * console.log(listImages(store).map((i) => i.tags));
 * ```
 *
 * @module
 */
import { inspectImage, removeImage, requireImage, tagImage } from "./src/image/images.ts";
import type { ImageInspect, RemoveAction, RemoveImageOptions } from "./src/image/images.ts";
import { pullImage } from "./src/image/pull.ts";
import type { PullEvent, PullOptions, PullResult } from "./src/image/pull.ts";
import { type ImageRecord, Store } from "./src/store/mod.ts";

export type {
  ImageInspect,
  ImageRecord,
  PullEvent,
  PullOptions,
  PullResult,
  RemoveAction,
  RemoveImageOptions,
};
export { Store };
export { parseReference, Reference } from "./registry/reference.ts";
export { NotFoundError, TsboxError } from "./src/errors.ts";

/** Opens (creating if needed) the store at `root` (default `/var/lib/tsbox` or TSBOX_ROOT). */
export function openStore(root?: string): Promise<Store> {
  return Store.open(root ?? Deno.env.get("TSBOX_ROOT") ?? "/var/lib/tsbox");
}

/** Pulls an image; `options.onProgress` receives docker-like per-layer events. */
export function pull(store: Store, name: string, options?: PullOptions): Promise<PullResult> {
  return pullImage(store, name, options);
}

/** Every image in the store, newest first. */
export function listImages(store: Store): ImageRecord[] {
  return store.listImages();
}

/** Docker-shaped inspect data of an image (by reference, id or id prefix). */
export function inspect(store: Store, name: string): ImageInspect {
  return inspectImage(requireImage(store, name));
}

/** Tags `source` as `target`; returns the full target reference. */
export function tag(store: Store, source: string, target: string): string {
  return tagImage(store, source, target);
}

/** Removes an image as `docker rmi` does; returns what was untagged and deleted. */
export function remove(
  store: Store,
  name: string,
  options?: RemoveImageOptions,
): Promise<RemoveAction[]> {
  return removeImage(store, name, options);
}
