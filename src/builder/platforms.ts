/**
 * `build --platform linux/amd64,linux/arm64 -t NAME`: the Dockerfile is built once per
 * platform (TARGETPLATFORM and the bases chosen for each, foreign RUN steps through the host's
 * binfmt_misc handler; several platforms at once when `--jobs` allows), and NAME is recorded as an image index of the results: its tag points at
 * the host's variant (or the first), `run --platform` picks another, and `push NAME` sends them
 * as one OCI index, as buildx and podman do.
 *
 * @module
 */
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  type Platform,
} from "../../registry/platform.ts";
import { parseReference } from "../../registry/reference.ts";
import { UsageError } from "../errors.ts";
import { imageEvent } from "../events/log.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { join, resolve } from "node:path";
import { resolveInRoot } from "../runtime/rootfs.ts";
import { removeTree } from "../store/layers.ts";
import { type BuildEvent, buildImage, type BuildOptions } from "./builder.ts";
import { unpackContextArchive } from "./stdin_context.ts";
import { makeBuildDir } from "./sweep.ts";

/** `--platform a,b,...`: each platform parsed, duplicates refused. */
export function parsePlatforms(value: string): Platform[] {
  const seen = new Set<string>();
  return value.split(",").map((v) => {
    let p: Platform;
    try {
      p = normalizePlatform(parsePlatform(v.trim()));
    } catch (err) {
      throw new UsageError(`--platform ${value}: ${(err as Error).message}`);
    }
    const key = formatPlatform(p);
    if (seen.has(key)) throw new UsageError(`--platform ${value}: ${key} is given twice`);
    seen.add(key);
    return p;
  });
}

/** What {@link buildPlatforms} built. */
export interface PlatformsResult {
  /** Each platform's image, in the order given. */
  readonly images: readonly { readonly platform: string; readonly image: ImageRecord }[];
  /** Full references recorded as the index. */
  readonly tags: readonly string[];
}

/** How {@link buildPlatforms} reports and how many platforms it builds at once. */
export interface PlatformsProgress {
  /** Told as each platform's build starts. */
  readonly onPlatform?: (platform: string) => void;
  /**
   * The progress callback of one platform's build (its events then go there, not to the
   * options' `onProgress`); platforms built at once need one each, since their step numbers
   * overlap.
   */
  readonly progressFor?: (platform: string) => (event: BuildEvent) => void;
  /**
   * How many platforms are built at the same time (each one's stages are still bounded by
   * `jobs` on their own); 1 (the default) builds them one after the other.
   */
  readonly concurrent?: number;
}

/**
 * Builds `options` for each of `platforms` and records every tag as an image index of the
 * results. A context archive (the Engine API's body) is unpacked once and each platform builds
 * from that directory.
 */
export async function buildPlatforms(
  store: Store,
  platforms: readonly Platform[],
  options: Omit<BuildOptions, "platform">,
  progress: PlatformsProgress = {},
): Promise<PlatformsResult> {
  if (options.output && options.output.type !== "image") {
    throw new UsageError(
      `--output type=${options.output.type} with several platforms: only the image (an image ` +
        `index) is kept; build one platform to export its filesystem or archive`,
    );
  }
  if (options.cacheTo) {
    throw new UsageError("--cache-to with several platforms: export the cache of one platform");
  }
  const tags = (options.tags ?? []).map((t) => {
    const ref = parseReference(t);
    if (ref.digest) throw new UsageError(`invalid tag ${t}: a tag cannot carry a digest`);
    return ref.toString();
  });
  let scratch: string | undefined;
  try {
    let base: Omit<BuildOptions, "platform"> = options;
    if (options.contextArchive) {
      // Read once (a stream cannot be read per platform), into a build directory of this
      // process, which the store's sweep removes if the process is killed.
      scratch = await makeBuildDir(resolve(store.root));
      const dir = join(scratch, "context");
      await Deno.mkdir(dir, { mode: 0o755 });
      await unpackContextArchive(options.contextArchive, dir);
      base = {
        ...options,
        contextArchive: undefined,
        context: dir,
        // In an archive the Dockerfile's name is a path inside it, no further out than its root.
        dockerfile: options.dockerfile === undefined
          ? undefined
          : resolveInRoot(dir, options.dockerfile),
      };
    }
    const images = await inPool(platforms, progress.concurrent ?? 1, async (p) => {
      const platform = formatPlatform(p);
      progress.onPlatform?.(platform);
      const onProgress = progress.progressFor?.(platform) ?? options.onProgress;
      const r = await buildImage(store, { ...base, platform, tags: [], onProgress });
      return { platform, image: r.image! };
    });
    const host = normalizePlatform(hostPlatform());
    const tagged = images.find((i) => {
      const p = normalizePlatform(parsePlatform(i.platform));
      return p.os === host.os && p.architecture === host.architecture;
    }) ?? images[0];
    const entries = images.map((i) => ({ platform: i.platform, imageId: i.image.id }));
    for (const t of tags) {
      store.setIndex(t, entries, tagged.image.id);
      imageEvent(store.root, "tag", tagged.image.id, parseReference(t).familiar());
    }
    return { images, tags };
  } finally {
    if (scratch) await removeTree(scratch);
  }
}

/**
 * `work` on each item, at most `limit` at once, results in the items' order. The first failure
 * is thrown once every started item has settled (no build is left running behind the error).
 */
export async function inPool<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        results[i] = await work(items[i]);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  const n = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: n }, worker));
  if (failure) throw failure.err;
  return results;
}
