/**
 * `system df`: what images, containers, volumes and the build cache take, from the store's own
 * records: the layer sizes recorded at pull/load/build (a layer shared by images counts once,
 * as docker counts it), the bytes of the files in each container's upper dir (docker's SizeRw)
 * and in each volume's data directory.
 *
 * @module
 */
import type { ImageRecord, Store } from "../store/mod.ts";
import { type BuildCacheUsage, buildCacheUsage } from "../builder/cache_prune.ts";
import { type ContainerRecord, isActive, listContainers } from "../container/state.ts";
import { containerDir } from "../container/paths.ts";
import {
  listVolumes,
  treeSize,
  type Volume,
  volumeData,
  volumeUsers,
} from "../container/volumes.ts";
import { join } from "../path.ts";

/** An image's line in `system df -v`. */
export interface ImageUsage {
  readonly image: ImageRecord;
  /** Bytes of its layers (its `images` SIZE). */
  readonly size: number;
  /** Bytes of its layers that other images have too. */
  readonly sharedSize: number;
  /** Containers (any state) made from it. */
  readonly containers: number;
}

/** A container's line in `system df -v`. */
export interface ContainerUsage {
  readonly container: ContainerRecord;
  /** Bytes of the files it wrote (its upper dir). */
  readonly sizeRw: number;
  /** Volumes it mounts. */
  readonly volumes: number;
}

/** A volume's line in `system df -v`. */
export interface VolumeUsage {
  readonly volume: Volume;
  /** Containers (any state) that mount it. */
  readonly links: number;
  /** Bytes of its files. */
  readonly size: number;
}

/** One row of the `system df` summary. */
export interface UsageSummary {
  readonly total: number;
  readonly active: number;
  readonly size: number;
  readonly reclaimable: number;
}

/** Everything `system df` shows. */
export interface DiskUsageReport {
  readonly images: readonly ImageUsage[];
  readonly containers: readonly ContainerUsage[];
  readonly volumes: readonly VolumeUsage[];
  readonly buildCache: BuildCacheUsage;
  readonly summary: {
    readonly images: UsageSummary;
    readonly containers: UsageSummary;
    readonly volumes: UsageSummary;
    readonly buildCache: UsageSummary;
  };
}

/** Reads the store and works out {@link DiskUsageReport}. */
export function diskUsageReport(store: Store): DiskUsageReport {
  const images = store.listImages();
  const containers = listContainers(store);
  const usersOf = new Map<string, number>();
  for (const c of containers) usersOf.set(c.imageId, (usersOf.get(c.imageId) ?? 0) + 1);

  // Each layer once, with how many images have it and whether a used image is among them.
  const layers = new Map<string, { size: number; images: number; used: boolean }>();
  for (const image of images) {
    for (const diffId of new Set(image.layers.map((l) => l.diffId))) {
      const size = image.layers.find((l) => l.diffId === diffId)!.size;
      const entry = layers.get(diffId) ?? { size, images: 0, used: false };
      entry.images++;
      // A multi-platform image's variants stay together while a container uses one of them
      // (image/prune.ts): none of their layers is reclaimable then.
      entry.used ||= usersOf.has(image.id) ||
        store.indexGroup(image.id).some((id) => usersOf.has(id));
      layers.set(diffId, entry);
    }
  }
  const imageUsage = images.map((image): ImageUsage => {
    const mine = new Set(image.layers.map((l) => l.diffId));
    let shared = 0;
    for (const d of mine) if (layers.get(d)!.images > 1) shared += layers.get(d)!.size;
    return {
      image,
      size: image.size,
      sharedSize: shared,
      containers: usersOf.get(image.id) ?? 0,
    };
  });
  let imagesSize = 0;
  let imagesReclaimable = 0;
  for (const l of layers.values()) {
    imagesSize += l.size;
    if (!l.used) imagesReclaimable += l.size;
  }

  const containerUsage = containers.map((c): ContainerUsage => ({
    container: c,
    sizeRw: treeSize(join(containerDir(store.root, c.id), "upper")),
    volumes: store.db.get<{ n: number }>(
      "SELECT COUNT(*) AS n FROM volume_mounts WHERE container_id = ?",
      c.id,
    )?.n ?? 0,
  }));
  const volumeUsage = listVolumes(store).map((v): VolumeUsage => ({
    volume: v,
    links: volumeUsers(store, v.name).length,
    size: treeSize(volumeData(store.root, v.name)),
  }));
  const buildCache = buildCacheUsage(store);
  const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
  return {
    images: imageUsage,
    containers: containerUsage,
    volumes: volumeUsage,
    buildCache,
    summary: {
      images: {
        total: images.length,
        active: images.filter((i) => usersOf.has(i.id)).length,
        size: imagesSize,
        reclaimable: imagesReclaimable,
      },
      containers: {
        total: containers.length,
        active: containers.filter((c) => isActive(c.state)).length,
        size: sum(containerUsage.map((c) => c.sizeRw)),
        reclaimable: sum(
          containerUsage.filter((c) => !isActive(c.container.state)).map((c) => c.sizeRw),
        ),
      },
      volumes: {
        total: volumeUsage.length,
        active: volumeUsage.filter((v) => v.links > 0).length,
        size: sum(volumeUsage.map((v) => v.size)),
        reclaimable: sum(volumeUsage.filter((v) => v.links === 0).map((v) => v.size)),
      },
      buildCache: {
        total: buildCache.entries.length,
        active: 0,
        size: buildCache.size,
        reclaimable: buildCache.size,
      },
    },
  };
}
