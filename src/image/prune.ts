/**
 * `image prune`: removes dangling images (no tag, used by no container, parent of no other
 * image), or with `all` every image no container uses and no kept image is built on, the way
 * docker's daemon picks them. Each image goes through the store's own removal (the record, then
 * the layers and blobs no other image has), and the bytes reported are the disk space those
 * directories and files really took.
 *
 * @module
 */
import { imageEvent } from "../events/log.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { removeBlobMeasured, removeLayerMeasured } from "../store/disk_usage.ts";
import { familiar, familiarDigest, type RemoveAction } from "./images.ts";

/** Options of {@link pruneImages}. */
export interface ImagePruneOptions {
  /** Every unused image, not only dangling ones (`-a`). */
  readonly all?: boolean;
  /** Tells whether a container (in any state) uses the image: such images always stay. */
  readonly inUse: (imageId: string) => unknown;
}

/** What a prune removed: docker's `untagged:`/`deleted:` lines and the bytes freed. */
export interface PruneReport {
  readonly actions: RemoveAction[];
  /** Bytes the removed layer directories and blobs took on disk. */
  readonly bytes: number;
}

function sameEntries<T>(prefix: readonly T[], of: readonly T[], eq: (a: T, b: T) => boolean) {
  return prefix.length <= of.length && prefix.every((x, i) => eq(x, of[i]));
}

/**
 * Whether `child` was built on `parent` (docker's parent/child link, which tsbox does not
 * record): the parent's layers start the child's and, where both keep a build history, the
 * parent's history is a shorter start of the child's (a child may add only metadata). Without
 * histories the child must have more layers.
 */
export function isParentOf(parent: ImageRecord, child: ImageRecord): boolean {
  if (parent.id === child.id) return false;
  if (!sameEntries(parent.layers, child.layers, (a, b) => a.diffId === b.diffId)) return false;
  const ph = parent.config.history ?? [];
  const ch = child.config.history ?? [];
  if (ph.length > 0 && ch.length > 0) {
    return ph.length < ch.length &&
      sameEntries(ph, ch, (a, b) => JSON.stringify(a) === JSON.stringify(b));
  }
  return parent.layers.length > 0 && parent.layers.length < child.layers.length;
}

/**
 * The images a prune would remove from `images` (see {@link pruneImages}). `groupOf` gives the
 * images sharing an image index with one (Store.indexGroup; empty when in none): a
 * multi-platform image's variants stay or go together, as docker's containerd store keeps or
 * removes the index as one image, so that no index loses a platform while its name stays.
 */
export function imagesToPrune(
  images: readonly ImageRecord[],
  options: ImagePruneOptions,
  groupOf: (imageId: string) => readonly string[] = () => [],
): ImageRecord[] {
  if (!options.all) {
    // An index's variants have no tag of their own, yet are not dangling.
    return images.filter((i) =>
      i.tags.length === 0 && !options.inUse(i.id) && groupOf(i.id).length === 0 &&
      !images.some((c) => isParentOf(i, c))
    );
  }
  // An image stays when a container uses it, a staying image is built on it, or it shares an
  // image index with a staying image.
  const keep = new Set(images.filter((i) => options.inUse(i.id)).map((i) => i.id));
  for (let grew = true; grew;) {
    grew = false;
    for (const p of images) {
      if (
        !keep.has(p.id) && (images.some((c) => keep.has(c.id) && isParentOf(p, c)) ||
          groupOf(p.id).some((id) => keep.has(id)))
      ) {
        keep.add(p.id);
        grew = true;
      }
    }
  }
  // An index's named image first: removing it drops the index as a whole (one transaction),
  // so that no moment, nor a prune killed half-way, shows an index with only some of its
  // platforms; the variants left are then plain dangling images.
  const gone = images.filter((i) => !keep.has(i.id));
  const named = (i: ImageRecord) => i.tags.length > 0 && groupOf(i.id).length > 0;
  return [...gone.filter(named), ...gone.filter((i) => !named(i))];
}

/**
 * Removes what {@link imagesToPrune} picks. Each image is looked at again right before it goes,
 * so one that a container or a tag took meanwhile stays. The caller makes sure no pull, load or
 * build is running in the store (see store/activity.ts): those may reuse any layer.
 */
export async function pruneImages(store: Store, options: ImagePruneOptions): Promise<PruneReport> {
  const actions: RemoveAction[] = [];
  let bytes = 0;
  const groupOf = (id: string) => store.indexGroup(id);
  for (const planned of imagesToPrune(store.listImages(), options, groupOf)) {
    const image = store.getImage(planned.id);
    if (!image || options.inUse(image.id)) continue;
    // An image index's variants have no tag of their own, yet are not dangling.
    if (!options.all && (image.tags.length > 0 || store.inIndex(image.id))) continue;
    // A variant whose sibling a container took meanwhile stays with it.
    if (groupOf(image.id).some((id) => id !== image.id && options.inUse(id))) continue;
    const freed = store.deleteImage(image.id);
    // docker's events, as `rmi` records them.
    for (const t of image.tags) imageEvent(store.root, "untag", image.id, familiar(t));
    imageEvent(store.root, "delete", image.id);
    for (const t of image.tags) actions.push({ untagged: familiar(t) });
    for (const d of image.digests) actions.push({ untagged: familiarDigest(d) });
    actions.push({ deleted: image.id });
    for (const l of freed.layers) {
      bytes += await removeLayerMeasured(store, l.diffId, l.shortId);
      actions.push({ deleted: l.diffId });
    }
    for (const b of freed.blobs) bytes += await removeBlobMeasured(store, b);
  }
  return { actions, bytes };
}
