/**
 * The API's housekeeping: `POST /images/prune`, `POST /containers/prune` (with filters),
 * `POST /build/prune` and `GET /system/df`, over the code of `tsbox image prune`, `container
 * prune`, `builder prune` and `system df` (src/image/prune.ts, src/housekeeping/). Prunes that
 * free layers wait, as the CLI's do, until no pull, load or build works in the store.
 *
 * @module
 */
import { matchLabels, parseFilters } from "../cli/filters.ts";
import { inspectVolume } from "../cli/volume_actions.ts";
import { removeContainerFiles } from "../container/cleanup.ts";
import { containerDir } from "../container/paths.ts";
import { containerUsingImage, listContainers } from "../container/state.ts";
import { diskUsageReport } from "../housekeeping/df.ts";
import { waitForQuietStore } from "../store/activity.ts";
import { diskUsage } from "../store/disk_usage.ts";
import { whileNobodyPublishes } from "../store/publish_lock.ts";
import type { Store } from "../store/mod.ts";
import { TsboxError } from "../errors.ts";
import { summary } from "./containers.ts";
import type { ApiContext } from "./context.ts";
import { badParameter } from "./errors.ts";
import { type ApiRequest, type ApiResponse, json } from "./http.ts";
import { imageSummary } from "./images.ts";
import { filterValues, untilTimes } from "./params.ts";

/** Runs `fn` once the store is quiet and holding the publish lock, as the CLI's prunes do. */
async function whenQuiet<T>(store: Store, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    await waitForQuietStore(store.root);
    const done = await whileNobodyPublishes(store.root, async () => ({ value: await fn() }));
    if (done) return done.value;
    if (Date.now() > deadline) {
      throw new TsboxError(`${store.root}: another tsbox process keeps publishing into the store`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * `POST /images/prune?filters`: dangling images, or with `dangling=false` every image no
 * container uses; `label` and `until` narrow the choice (an image they exclude stays).
 */
export async function imagePrune(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const f = parseFilters(filterValues(req.query.get("filters")), [
    "dangling",
    "label",
    "label!",
    "until",
  ]);
  const dangling = f.get("dangling");
  let all = false;
  if (dangling) {
    const on = dangling.map((v) => v.toLowerCase());
    if (on.some((v) => !["true", "false", "1", "0"].includes(v))) {
      throw badParameter(`invalid filter 'dangling=${dangling.join(",")}'`);
    }
    all = on.every((v) => v === "false" || v === "0");
  }
  const until = untilTimes(f.get("until"));
  const { pruneImages } = await import("../image/prune.ts");
  const report = await whenQuiet(ctx.store, () =>
    pruneImages(ctx.store, {
      all,
      inUse: (id) => {
        if (containerUsingImage(ctx.store, id)) return true;
        const image = ctx.store.getImage(id);
        if (!image) return true;
        if (!matchLabels(f, image.config.config?.Labels ?? {})) return true;
        const created = image.created ? Date.parse(image.created) : NaN;
        return until.some((t) => !(created < t));
      },
    }));
  return json(200, {
    ImagesDeleted: report.actions.map((a) =>
      "untagged" in a ? { Untagged: a.untagged } : { Deleted: a.deleted }
    ),
    SpaceReclaimed: report.bytes,
  });
}

/** `POST /containers/prune?filters`: stopped containers (`label`, `until` narrow the choice). */
export async function containerPrune(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const f = parseFilters(filterValues(req.query.get("filters")), ["label", "label!", "until"]);
  const until = untilTimes(f.get("until"));
  const removed: string[] = [];
  let bytes = 0;
  for (const c of listContainers(ctx.store)) {
    if (c.state !== "exited" && c.state !== "created") continue;
    if (c.supervisorPid !== undefined) continue; // being started right now
    if (!matchLabels(f, c.config.labels ?? {})) continue;
    if (until.some((t) => !(c.createdAt < t))) continue;
    const size = await diskUsage(containerDir(ctx.store.root, c.id));
    await removeContainerFiles(ctx.store, c);
    removed.push(c.id);
    bytes += size;
  }
  return json(200, { ContainersDeleted: removed, SpaceReclaimed: bytes });
}

/** `POST /build/prune?all`: the build cache, as `builder prune [-a]`. */
export async function buildPrune(ctx: ApiContext, req: ApiRequest): Promise<ApiResponse> {
  const values = filterValues(req.query.get("filters"));
  if (values.length > 0) throw badParameter("build cache prune: filters are not supported");
  const all = ["1", "true", "True"].includes(req.query.get("all") ?? "");
  const { pruneBuildCache } = await import("../builder/cache_prune.ts");
  const report = await whenQuiet(ctx.store, () => pruneBuildCache(ctx.store, { all }));
  return json(200, { CachesDeleted: report.removed, SpaceReclaimed: report.bytes });
}

/** `GET /system/df`: docker's shape of what `system df -v` shows. */
export function systemDf(ctx: ApiContext): ApiResponse {
  const r = diskUsageReport(ctx.store);
  return json(200, {
    LayersSize: r.summary.images.size,
    Images: r.images.map((u) => ({
      ...imageSummary(u.image),
      SharedSize: u.sharedSize,
      Containers: u.containers,
    })),
    Containers: r.containers.map((u) => ({
      ...summary(ctx, u.container),
      SizeRw: u.sizeRw,
      SizeRootFs: u.sizeRw + (ctx.store.getImage(u.container.imageId)?.size ?? 0),
    })),
    Volumes: r.volumes.map((u) => ({
      ...inspectVolume(u.volume),
      UsageData: { Size: u.size, RefCount: u.links },
    })),
    BuildCache: r.buildCache.entries.map((e) => ({
      ID: e.id,
      Parent: "",
      Type: "regular",
      Description: "",
      InUse: false,
      Shared: e.shared,
      Size: e.size,
      CreatedAt: new Date(e.createdAt).toISOString(),
      LastUsedAt: null,
      UsageCount: 0,
    })),
  });
}
