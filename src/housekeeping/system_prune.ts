/**
 * `system prune`: stopped containers, then (with volumes) unused anonymous volumes, then
 * dangling images (every unused one with `all`), then the build cache, each by the code its
 * own prune command uses; the bytes reported for each are what its files took on disk.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { diskUsage } from "../store/disk_usage.ts";
import { join } from "../path.ts";
import { pruneContainers } from "../container/lifecycle.ts";
import { containerUsingImage, isActive, listContainers } from "../container/state.ts";
import { containerDir } from "../container/paths.ts";
import { pruneVolumes, volumesDir } from "../container/volumes.ts";
import { pruneImages, type PruneReport } from "../image/prune.ts";
import { type BuildCachePruneReport, pruneBuildCache } from "../builder/cache_prune.ts";

/** Removed ids or names and the bytes they took. */
export interface Removed {
  readonly removed: string[];
  readonly bytes: number;
}

/** `container prune` measured: the stopped containers removed and their directories' bytes. */
export async function pruneContainersMeasured(store: Store): Promise<Removed> {
  const sizes = new Map<string, number>();
  for (const c of listContainers(store)) {
    if (!isActive(c.state)) sizes.set(c.id, await diskUsage(containerDir(store.root, c.id)));
  }
  const removed = await pruneContainers(store);
  return { removed, bytes: removed.reduce((n, id) => n + (sizes.get(id) ?? 0), 0) };
}

/** `volume prune` measured on disk (volume prune itself counts file bytes only). */
export async function pruneVolumesMeasured(
  store: Store,
  options: { all?: boolean } = {},
): Promise<Removed> {
  const sizes = new Map<string, number>();
  const unused = store.db.all<{ name: string }>(
    `SELECT name FROM volumes v
     WHERE NOT EXISTS (SELECT 1 FROM volume_mounts m WHERE m.volume = v.name)`,
  );
  for (const { name } of unused) {
    sizes.set(name, await diskUsage(join(volumesDir(store.root), name)));
  }
  const { removed } = await pruneVolumes(store, options);
  return { removed, bytes: removed.reduce((n, name) => n + (sizes.get(name) ?? 0), 0) };
}

/** Options of {@link systemPrune}. */
export interface SystemPruneOptions {
  /** Every unused image and all the build cache, not only dangling ones. */
  readonly all?: boolean;
  /** Also unused anonymous volumes. */
  readonly volumes?: boolean;
}

/** What {@link systemPrune} removed, part by part. */
export interface SystemPruneReport {
  readonly containers: Removed;
  readonly volumes?: Removed;
  readonly images: PruneReport;
  readonly buildCache: BuildCachePruneReport;
  /** The sum of the parts' bytes. */
  readonly bytes: number;
}

/**
 * Runs the parts in docker's order: containers first, so that the images and volumes they held
 * become unused. The caller makes sure no pull, load or build is running (store/activity.ts).
 */
export async function systemPrune(
  store: Store,
  options: SystemPruneOptions = {},
): Promise<SystemPruneReport> {
  const containers = await pruneContainersMeasured(store);
  const volumes = options.volumes ? await pruneVolumesMeasured(store) : undefined;
  const images = await pruneImages(store, {
    all: options.all,
    inUse: (id) => containerUsingImage(store, id),
  });
  const buildCache = await pruneBuildCache(store, { all: options.all });
  return {
    containers,
    volumes,
    images,
    buildCache,
    bytes: containers.bytes + (volumes?.bytes ?? 0) + images.bytes + buildCache.bytes,
  };
}
