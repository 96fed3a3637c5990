/**
 * Image operations on the store that are not transfers: tag, remove, docker-shaped inspect.
 * The CLI and the public API both use these.
 *
 * @module
 */
import { imageEvent } from "../events/log.ts";
import { parseReference } from "../../registry/reference.ts";
import { familiar, familiarDigest } from "./image_inspect.ts";
import { NotFoundError, TsboxError } from "../errors.ts";
import { shortDigest } from "../store/digest_format.ts";
import { hasLayerBlob } from "./layer_blob.ts";
import type { ImageRecord, Store } from "../store/mod.ts";

/** The image `name` (reference, id or id prefix) or a {@link NotFoundError}. */
export function requireImage(store: Store, name: string): ImageRecord {
  const image = store.findImage(name);
  if (!image) throw new NotFoundError("image", name);
  return image;
}

/** A compressed (or plain) blob of a layer: what an image's manifest names for it. */
export interface LayerBlob {
  readonly blobDigest: string;
  readonly mediaType: string;
  readonly blobSize: number;
}

/**
 * A blob the store holds for the layer `diffId`, as some image records it; undefined when no
 * image names a blob of that layer that is still on disk. The same layer can come as several
 * blobs (gzip from a registry, a plain tar from a docker archive, or a build's plain tar made
 * from the layer's directory): any serves.
 */
export async function storedLayerBlob(
  store: Store,
  diffId: string,
): Promise<LayerBlob | undefined> {
  const rows = store.db.all<{ blob_digest: string; media_type: string; blob_size: number }>(
    "SELECT DISTINCT blob_digest, media_type, blob_size FROM image_layers WHERE diff_id = ?",
    diffId,
  );
  for (const r of rows) {
    if (await hasLayerBlob(store, { diffId, blobDigest: r.blob_digest })) {
      return { blobDigest: r.blob_digest, mediaType: r.media_type, blobSize: r.blob_size };
    }
  }
  return undefined;
}

/** Tags `source` (reference or id) as `target`; returns the full target reference. */
export function tagImage(store: Store, source: string, target: string): string {
  const image = requireImage(store, source);
  const ref = parseReference(target);
  if (ref.digest) {
    throw new TsboxError(`refusing to create a tag with a digest reference: ${target}`);
  }
  // A multi-platform image's name tags its index (every variant), as docker's containerd
  // store and podman tag a manifest list: `run --platform` and `push` of the new name find them.
  let entries: ReturnType<Store["indexOf"]> = [];
  try {
    entries = store.indexOf(parseReference(source).toString());
  } catch {
    entries = []; // an id
  }
  if (entries.length > 0) store.setIndex(ref.toString(), entries, image.id);
  else store.tag(image.id, ref.toString());
  imageEvent(store.root, "tag", image.id, familiar(ref.toString()));
  return ref.toString();
}

/** One line of what `rmi` did, as docker prints it. */
export type RemoveAction = { readonly untagged: string } | { readonly deleted: string };

/** Options of {@link removeImage}. */
export interface RemoveImageOptions {
  /** Remove every tag of an image named by id, and remove images containers use. */
  readonly force?: boolean;
  /** Tells whether a container uses the image (supplied by the container layer). */
  readonly inUse?: (imageId: string) => string | undefined;
}

/**
 * Removes `name` as `docker rmi` does: a reference untags (and deletes the image with its last
 * tag); an id deletes the image, which needs `force` when several tags point to it.
 */
export async function removeImage(
  store: Store,
  name: string,
  options: RemoveImageOptions = {},
): Promise<RemoveAction[]> {
  const id = requireImage(store, name).id;
  const actions = await removeImageRecord(store, name, options);
  for (const a of actions) {
    if ("untagged" in a) imageEvent(store.root, "untag", id, a.untagged);
    else if (a.deleted === id) imageEvent(store.root, "delete", id);
  }
  return actions;
}

async function removeImageRecord(
  store: Store,
  name: string,
  options: RemoveImageOptions,
): Promise<RemoveAction[]> {
  const image = requireImage(store, name);
  const actions: RemoveAction[] = [];
  const byTag = image.tags.find((t) => {
    try {
      return t === parseReference(name).toString();
    } catch {
      return false;
    }
  });
  const user = options.inUse?.(image.id);
  if (byTag && image.tags.length > 1) {
    const variants = indexVariants(store, [byTag], image.id);
    store.untag(byTag);
    return [{ untagged: familiar(byTag) }, ...await removeVariants(store, variants, options)];
  }
  if (!byTag && image.tags.length > 1 && !options.force) {
    throw new TsboxError(
      `conflict: unable to delete ${
        shortDigest(image.id)
      } (must be forced) - image is referenced in multiple repositories`,
    );
  }
  const indexes = byTag ? [] : store.indexesOf(image.id).filter((n) => !image.tags.includes(n));
  if (indexes.length > 0 && !options.force) {
    // One platform of a multi-platform image: removing it drops that platform from the index
    // (push and save --platform lose it), so it needs force, as an id of several tags does.
    throw new TsboxError(
      `conflict: unable to delete ${shortDigest(image.id)} (must be forced) - image is a ${
        platformOf(image)
      } variant of the multi-platform image ${indexes.map(familiar).join(", ")}`,
    );
  }
  if (user && !options.force) {
    throw new TsboxError(
      `conflict: unable to remove repository reference "${name}" (must force) - container ${user} is using its referenced image ${
        shortDigest(image.id)
      }`,
    );
  }
  for (const t of image.tags) actions.push({ untagged: familiar(t) });
  for (const d of image.digests) actions.push({ untagged: familiarDigest(d) });
  const variants = indexVariants(store, image.tags, image.id);
  if (user) {
    // A forced removal keeps the image for its container, untagged, as docker does.
    for (const t of image.tags) store.untag(t);
    return [...actions, ...await removeVariants(store, variants, options)];
  }
  actions.push(...await deleteRecord(store, image.id));
  return [...actions, ...await removeVariants(store, variants, options)];
}

/** `os/architecture[/variant]` of an image's config. */
function platformOf(image: ImageRecord): string {
  const c = image.config;
  return [c.os ?? "linux", c.architecture ?? "unknown", c.variant].filter(Boolean).join("/");
}

/** Deletes the image `id` with the layers and blobs no other image uses. */
async function deleteRecord(store: Store, id: string): Promise<RemoveAction[]> {
  const freed = store.deleteImage(id);
  const actions: RemoveAction[] = [{ deleted: id }];
  for (const l of freed.layers) {
    await store.layers.remove(l.diffId, l.shortId);
    actions.push({ deleted: l.diffId });
  }
  for (const b of freed.blobs) await store.blobs.remove(b);
  return actions;
}

/** The other images the image indexes recorded under `tags` list (a multi-platform build's). */
function indexVariants(store: Store, tags: readonly string[], self: string): string[] {
  const ids = new Set(tags.flatMap((t) => store.indexOf(t).map((e) => e.imageId)));
  ids.delete(self);
  return [...ids];
}

/**
 * Removes the variants an image index alone kept, once the index is gone (as `docker rmi`
 * removes a multi-platform image's every platform): those with no tag, in no other index and
 * used by no container stay otherwise as `<none>` images nothing names.
 */
async function removeVariants(
  store: Store,
  ids: readonly string[],
  options: RemoveImageOptions,
): Promise<RemoveAction[]> {
  const actions: RemoveAction[] = [];
  for (const id of ids) {
    const variant = store.getImage(id);
    if (!variant || variant.tags.length > 0 || store.inIndex(id) || options.inUse?.(id)) continue;
    actions.push(...await deleteRecord(store, id));
    imageEvent(store.root, "delete", id);
  }
  return actions;
}

export { familiar, familiarDigest, type ImageInspect, inspectImage } from "./image_inspect.ts";
