/**
 * `import`: a tarball of a filesystem (plain, gzip or zstd; from a file, a URL or stdin)
 * becomes a one-layer image, as `docker import` makes it: an empty config changed by `-c`
 * instructions, the comment `-m` (or "Imported from SOURCE") in its history, the host's
 * platform. The layer is verified, unpacked, published and recorded by the same code as `load`
 * (load.ts), so a broken tarball leaves the store as it was.
 *
 * @module
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
import { MediaType } from "../../registry/manifest.ts";
import { hostPlatform } from "../../registry/platform.ts";
import { parseReference } from "../../registry/reference.ts";
import { TsboxError } from "../errors.ts";
import { removeTree } from "../store/layers.ts";
import { ownedTempPrefix } from "../store/owner.ts";
import { holdPublishLock } from "../store/publish_lock.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { applyChanges } from "./changes.ts";
import { imageEvent, recordImageEvent, tagEvent } from "./events.ts";
import {
  apply,
  DOCKER_LAYER_TYPE,
  type LayerPlan,
  sniff,
  type Spooled,
  uncompressedDigest,
} from "./load.ts";

/** Options of {@link importImage}. */
export interface ImportOptions {
  /** Where the tarball came from (`-`, a path, a URL): the default comment names it. */
  readonly source: string;
  /** `-c/--change` Dockerfile instructions. */
  readonly changes?: readonly string[];
  /** `-m/--message`: the commit message. */
  readonly message?: string;
  /** REPOSITORY[:TAG] to tag the image with. */
  readonly reference?: string;
}

/** Writes `input` to `path`, returning its sha256 and size. */
async function spool(input: ReadableStream<Uint8Array>, path: string): Promise<Spooled> {
  const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
  const hash = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of input) {
      hash.update(chunk);
      size += chunk.byteLength;
      for (let off = 0; off < chunk.byteLength;) off += await file.write(chunk.subarray(off));
    }
  } finally {
    file.close();
  }
  return { path, size, digest: `sha256:${hash.digest("hex")}` };
}

/** Imports the tarball `input` as a one-layer image; returns it (tagged when asked). */
export async function importImage(
  store: Store,
  input: ReadableStream<Uint8Array>,
  o: ImportOptions,
): Promise<ImageRecord> {
  // Refused before anything is read: a bad reference or change is the user's to fix first.
  const tag = o.reference !== undefined ? parseReference(o.reference) : undefined;
  if (tag?.digest) {
    throw new TsboxError(`refusing to create a tag with a digest reference: ${o.reference}`);
  }
  const config = applyChanges({}, o.changes ?? []);
  // As load: no sweep removes a layer or blob this import finds in the store and counts on.
  const release = await holdPublishLock(store.root);
  // A temp entry named after this process: killed, the next tsbox removes it.
  const tmp = store.layers.tempDir;
  let dir: string | undefined;
  try {
    await Deno.mkdir(tmp, { recursive: true, mode: 0o700 });
    dir = await Deno.makeTempDir({ dir: tmp, prefix: `${ownedTempPrefix()}import-` });
    const file = await spool(input, join(dir, "layer"));
    if (file.size === 0) throw new TsboxError("import: the tarball is empty");
    const compression = await sniff(file);
    const layer: LayerPlan = {
      diffId: "",
      file,
      compression,
      blobDigest: file.digest,
      mediaType: DOCKER_LAYER_TYPE[compression],
      blobSize: file.size,
      storeBlob: true,
    };
    try {
      layer.diffId = await uncompressedDigest(layer);
    } catch (err) {
      throw new TsboxError(`import: cannot read the tarball: ${(err as Error).message}`);
    }
    const created = new Date().toISOString();
    const comment = o.message || `Imported from ${o.source}`;
    const platform = hostPlatform();
    const imageConfig = {
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      os: platform.os,
      created,
      comment,
      config,
      rootfs: { type: "layers", diff_ids: [layer.diffId] },
      history: [{ created, comment }],
    };
    const configBytes = new TextEncoder().encode(JSON.stringify(imageConfig));
    const id = `sha256:${createHash("sha256").update(configBytes).digest("hex")}`;
    const manifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, size: configBytes.length, digest: id },
      layers: [{ mediaType: layer.mediaType, size: layer.blobSize, digest: layer.blobDigest }],
    };
    const manifestBytes = new TextEncoder().encode(JSON.stringify(manifest));
    const [loaded] = await apply(store, [{
      configBytes,
      id,
      layers: [layer],
      manifest: {
        bytes: manifestBytes,
        digest: `sha256:${createHash("sha256").update(manifestBytes).digest("hex")}`,
        mediaType: MediaType.DockerManifest,
      },
      tags: tag ? [tag.toString()] : [],
    }], () => {});
    recordImageEvent(store, imageEvent("import", id, id));
    if (tag) recordImageEvent(store, tagEvent(id, tag.toString()));
    return loaded.image;
  } finally {
    if (dir) await removeTree(dir);
    release();
  }
}
