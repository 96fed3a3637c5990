/**
 * The build cache as housekeeping sees it: its entries (build/cache.ts) and the layers that only
 * the cache holds, those no image names (a step of a discarded stage, of a failed build, or of a
 * build whose image was removed). `builder prune` removes entries and then those layers with
 * their blobs; `system df` counts them as the cache's size.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { diskUsage, removeBlobMeasured, removeLayerMeasured } from "../store/disk_usage.ts";
import { cacheEntries, type CacheEntry } from "./cache.ts";
import { cacheMountsDir, removeCacheMounts } from "./cache_mounts.ts";

/** A cache entry in `system df -v`. */
export interface CacheUsageEntry {
  /** docker's 25-character record id: the start of the cache key. */
  readonly id: string;
  /** Bytes (recorded layer size) of the layer this step made, when only the cache holds it. */
  readonly size: number;
  /** Whether its layer is also another entry's or an image's. */
  readonly shared: boolean;
  readonly createdAt: number;
}

/** `system df`'s view of the build cache. */
export interface BuildCacheUsage {
  readonly entries: readonly CacheUsageEntry[];
  /** Bytes (recorded sizes) of every layer no image names: what `builder prune -a` frees. */
  readonly size: number;
}

interface OrphanRow {
  diff_id: string;
  short_id: string;
  size: number;
}

const ORPHANS = `SELECT diff_id, short_id, size FROM layers l
  WHERE NOT EXISTS (SELECT 1 FROM image_layers il WHERE il.diff_id = l.diff_id)`;

/** docker's id of a cache record, made from the entry's key. */
export function cacheId(entry: CacheEntry): string {
  return entry.key.replace(/^sha256:/, "").slice(0, 25);
}

function inImage(store: Store, diffId: string): boolean {
  return store.db.get("SELECT 1 AS x FROM image_layers WHERE diff_id = ?", diffId) !== undefined;
}

/** What the build cache holds (see {@link BuildCacheUsage}). */
export function buildCacheUsage(store: Store): BuildCacheUsage {
  const orphans = new Map(store.db.all<OrphanRow>(ORPHANS).map((r) => [r.diff_id, r.size]));
  const entries = cacheEntries(store);
  const tops = new Map<string, number>();
  for (const e of entries) {
    const top = e.layers.at(-1)?.diffId;
    if (top) tops.set(top, (tops.get(top) ?? 0) + 1);
  }
  const counted = new Set<string>();
  const usage = entries.map((e): CacheUsageEntry => {
    const top = e.layers.at(-1)?.diffId;
    // The first entry naming a layer carries its bytes; later ones (metadata steps) share it.
    const own = top !== undefined && orphans.has(top) && !counted.has(top);
    if (own) counted.add(top);
    return {
      id: cacheId(e),
      size: own ? orphans.get(top)! : 0,
      shared: top !== undefined && ((tops.get(top) ?? 0) > 1 || !orphans.has(top)),
      createdAt: e.createdAt,
    };
  });
  return { entries: usage, size: [...orphans.values()].reduce((a, b) => a + b, 0) };
}

/** What {@link pruneBuildCache} removed. */
export interface BuildCachePruneReport {
  /** Ids ({@link cacheId}) of the entries removed, then those of the `RUN --mount` caches. */
  readonly removed: string[];
  /** Bytes the removed layer directories and blobs took on disk. */
  readonly bytes: number;
}

/**
 * `builder prune`: removes the dangling entries, those naming a layer no image has (with `all`,
 * every entry), then every layer no image and no remaining entry names, with its blob when no
 * image uses that blob. Entries whose layers all belong to images stay without `all`: they take
 * no space of their own and keep rebuilding those images fast. The caller makes sure no build
 * is running (store/activity.ts): a running build holds layers no image names yet. The
 * `RUN --mount=type=cache` caches go too (as BuildKit's cache mounts do), except one a build holds.
 */
export async function pruneBuildCache(
  store: Store,
  options: { all?: boolean } = {},
): Promise<BuildCachePruneReport> {
  const removed = cacheEntries(
    store,
    (e) => options.all === true || e.layers.some((l) => !inImage(store, l.diffId)),
  );
  const blobsOf = new Map<string, string>();
  for (const e of removed) for (const l of e.layers) blobsOf.set(l.diffId, l.blobDigest);
  const { layers, blobs } = store.db.transaction(() => {
    const kept = new Set<string>();
    for (const e of cacheEntries(store)) {
      for (const l of e.layers) kept.add(l.diffId).add(`blob:${l.blobDigest}`);
    }
    const layers = store.db.all<OrphanRow>(ORPHANS).filter((r) => !kept.has(r.diff_id));
    for (const l of layers) store.db.run("DELETE FROM layers WHERE diff_id = ?", l.diff_id);
    const blobs = new Set<string>();
    for (const l of layers) {
      const blob = blobsOf.get(l.diff_id);
      if (
        blob && !kept.has(`blob:${blob}`) &&
        !store.db.get("SELECT 1 AS x FROM image_layers WHERE blob_digest = ?", blob)
      ) blobs.add(blob);
    }
    return { layers, blobs };
  });
  let bytes = 0;
  for (const l of layers) bytes += await removeLayerMeasured(store, l.diff_id, l.short_id);
  for (const b of blobs) bytes += await removeBlobMeasured(store, b);
  const mountsDir = cacheMountsDir(store.root);
  const mountsBefore = await diskUsage(mountsDir);
  const mounts = await removeCacheMounts(store.root);
  if (mounts.length > 0) bytes += Math.max(0, mountsBefore - await diskUsage(mountsDir));
  return { removed: [...removed.map(cacheId), ...mounts.map((m) => m.id)], bytes };
}
