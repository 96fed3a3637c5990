/**
 * `build --platform linux/amd64,linux/arm64 -t NAME`: the Dockerfile is built once per
 * platform (TARGETPLATFORM and the bases chosen for each, foreign RUN steps through the host's
 * binfmt_misc handler), and NAME is recorded as an image index of the results: its tag points at
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
import { buildImage, type BuildOptions } from "./builder.ts";

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

/**
 * Builds `options` for each of `platforms` (one after the other: each may run many steps
 * under emulation already) and records every tag as an image index of the results.
 */
export async function buildPlatforms(
  store: Store,
  platforms: readonly Platform[],
  options: Omit<BuildOptions, "platform">,
  onPlatform?: (platform: string) => void,
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
  if (options.contextArchive) {
    throw new UsageError(
      "a context from stdin is read once: build several platforms from a directory",
    );
  }
  const tags = (options.tags ?? []).map((t) => {
    const ref = parseReference(t);
    if (ref.digest) throw new UsageError(`invalid tag ${t}: a tag cannot carry a digest`);
    return ref.toString();
  });
  const images: { platform: string; image: ImageRecord }[] = [];
  for (const p of platforms) {
    const platform = formatPlatform(p);
    onPlatform?.(platform);
    const r = await buildImage(store, { ...options, platform, tags: [] });
    images.push({ platform, image: r.image! });
  }
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
}
