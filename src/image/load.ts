/**
 * `load`: images from a docker-archive tar (docker save, skopeo docker-archive:) or an OCI image
 * layout tar (oci-archive:), read from any stream — all or nothing.
 *
 * Neither format puts its index first (docker and skopeo write manifest.json last), so the
 * archive is first spooled, entry by entry, into a private directory under the store root with
 * each file hashed on the way in. Then the index is read, every digest is checked (config file
 * names, OCI descriptors, each layer's uncompressed sha256 against the config's diff_ids) while
 * new layers are unpacked into pending directories and new blobs into pending blob files. Only
 * when everything of every image checked out are blobs and layer dirs published and the images
 * recorded; a truncated or tampered archive leaves the store as it was.
 *
 * @module
 */
import { imageEvent } from "../events/log.ts";
import { join } from "node:path";
import { type ImageManifest, MediaType, ociLayerMediaType } from "../../registry/manifest.ts";
import { parseReference } from "../../registry/reference.ts";
import { TsboxError } from "../errors.ts";
import type { PendingBlob } from "../store/blobs.ts";
import { DigestingStream, DigestMismatchError, sha256Digest } from "../store/digest.ts";
import type { PendingLayer } from "../store/layers.ts";
import { removeTree } from "../store/layers.ts";
import { ownedTempPrefix } from "../store/owner.ts";
import { holdPublishLock } from "../store/publish_lock.ts";
import { pauseForTest } from "../store/test_pause.ts";
import { writeClaim } from "../store/unrecorded.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { decompressor } from "./decompress.ts";
import { unpackLayer } from "./unpack.ts";
import {
  ArchiveError,
  type ImagePlan,
  type IndexPlan,
  type LayerPlan,
  spoolArchive,
} from "./load_archive.ts";
import { dockerPlans } from "./load_docker.ts";
import { type OciPlans, ociPlans } from "./load_oci.ts";

export { ArchiveError } from "./load_archive.ts";

/** Progress of a load. */
export interface LoadEvent {
  /** First 12 hex digits of the layer's diffID. */
  readonly id: string;
  readonly status: "Loading layer" | "Layer already exists" | "Verifying layer";
}

/** Options of {@link loadImages}. */
export interface LoadOptions {
  readonly onProgress?: (event: LoadEvent) => void;
}

/** One image a load recorded. */
export interface LoadedImage {
  /** The image id (`sha256:` + config digest). */
  readonly id: string;
  /** Full references it was tagged with. */
  readonly tags: readonly string[];
  readonly image: ImageRecord;
}

const decoder = new TextDecoder();

/** Loads every image of the archive `input` into `store`. */
export async function loadImages(
  store: Store,
  input: ReadableStream<Uint8Array>,
  options: LoadOptions = {},
): Promise<LoadedImage[]> {
  const emit = options.onProgress ?? (() => {});
  // From the first look at what the store has: no sweep removes an unrecorded layer or blob
  // that this load then finds there and counts on.
  const release = await holdPublishLock(store.root);
  // The spool is a temp entry of the store named after this process: killed, the next tsbox
  // removes it (store/sweep.ts reads this directory anyway).
  const tmp = store.layers.tempDir;
  let dir: string | undefined;
  try {
    await Deno.mkdir(tmp, { recursive: true, mode: 0o700 });
    dir = await Deno.makeTempDir({ dir: tmp, prefix: `${ownedTempPrefix()}load-` });
    const spool = await spoolArchive(input, dir);
    const plans: OciPlans | undefined = spool.files.has("manifest.json")
      ? { images: await dockerPlans(store, spool), indexes: [] }
      : spool.files.has("index.json")
      ? await ociPlans(store, spool)
      : undefined;
    if (!plans) {
      throw new ArchiveError(
        "not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)",
      );
    }
    if (plans.images.length === 0) throw new ArchiveError("the archive contains no image");
    const loaded = await apply(store, plans.images, plans.indexes, emit);
    // docker's events of a load: `load` of each image, then a `tag` for each name it got.
    for (const image of loaded) {
      imageEvent(store.root, "load", image.id, image.id);
      for (const t of image.tags) imageEvent(store.root, "tag", image.id, familiarName(t));
    }
    // A multi-platform image is reported once, by its name, as docker reports it; the variants
    // its index alone names are not images of their own.
    const variants = new Set(
      plans.indexes.flatMap((x) => x.entries.map((e) => e.imageId).filter((id) => id !== x.tagged)),
    );
    return loaded.filter((l) => l.tags.length > 0 || !variants.has(l.id));
  } finally {
    if (dir) await removeTree(dir);
    release();
  }
}

/** Chunks of a spooled file; the caller closes it, also when a consumer gives up early. */
async function* chunksOf(file: Deno.FsFile): AsyncGenerator<Uint8Array> {
  for (;;) {
    const buf = new Uint8Array(256 << 10);
    const n = await file.read(buf);
    if (n === null) return;
    yield buf.subarray(0, n);
  }
}

/** The sha256 of a layer file's uncompressed content. */
async function uncompressedDigest(plan: LayerPlan): Promise<string> {
  const file = await Deno.open(plan.file.path);
  const digesting = new DigestingStream();
  for await (
    const _ of file.readable.pipeThrough(decompressor(plan.compression)).pipeThrough(digesting)
  ) { /* hashing only */ }
  return digesting.digest();
}

interface Pending {
  blobs: PendingBlob[];
  layers: { layer: PendingLayer; diffId: string; size: number }[];
}

/**
 * Verifies a layer file against its diffID, unpacking it into `layer` when given and copying it
 * into `blob` when given. Returns the uncompressed size.
 */
async function processLayer(
  plan: LayerPlan,
  layer: PendingLayer | undefined,
  blob: PendingBlob | undefined,
): Promise<number> {
  const file = await Deno.open(plan.file.path);
  try {
    const uncompressed = new DigestingStream();
    const tar = ReadableStream.from(chunksOf(file))
      .pipeThrough(new DigestingStream(blob ? (c) => blob.write(c) : undefined))
      .pipeThrough(decompressor(plan.compression))
      .pipeThrough(uncompressed);
    try {
      if (layer) await unpackLayer(tar, layer.dir);
      else for await (const _ of tar) { /* hashing only */ }
    } catch (err) {
      // A tampered layer often breaks the tar or the compression first: name it for what it is.
      const actual = await uncompressedDigest(plan).catch(() => undefined);
      if (actual !== plan.diffId) {
        throw new DigestMismatchError(`layer ${plan.diffId}`, plan.diffId, actual ?? "unreadable");
      }
      if (err instanceof TsboxError) throw err;
      throw new ArchiveError(`layer ${plan.diffId}: ${(err as Error).message}`, { cause: err });
    }
    const actual = uncompressed.digest();
    if (actual !== plan.diffId) {
      throw new DigestMismatchError(`layer ${plan.diffId}`, plan.diffId, actual);
    }
    blob?.verify();
    return uncompressed.bytes;
  } finally {
    try {
      file.close();
    } catch { /* closed by the stream already */ }
  }
}

async function apply(
  store: Store,
  plans: ImagePlan[],
  indexes: IndexPlan[],
  emit: (e: LoadEvent) => void,
): Promise<LoadedImage[]> {
  const pending: Pending = { blobs: [], layers: [] };
  const sizes = new Map<string, number>();
  const seenBlobs = new Set<string>();
  try {
    for (const plan of plans) {
      for (const l of plan.layers) {
        const id = l.diffId.slice(7, 19);
        if (sizes.has(l.diffId)) continue;
        const have = await store.hasLayer(l.diffId);
        let blob: PendingBlob | undefined;
        if (l.storeBlob && !seenBlobs.has(l.blobDigest)) {
          seenBlobs.add(l.blobDigest);
          blob = await store.blobs.begin(l.blobDigest, l.blobSize);
          pending.blobs.push(blob);
        }
        const layer = have ? undefined : await store.layers.begin(l.diffId);
        emit({ id, status: have ? "Verifying layer" : "Loading layer" });
        if (layer) pending.layers.push({ layer, diffId: l.diffId, size: 0 });
        const size = await processLayer(l, layer, blob);
        sizes.set(l.diffId, size);
        if (layer) pending.layers.at(-1)!.size = size;
        if (have) emit({ id, status: "Layer already exists" });
      }
    }

    // Everything verified: publish, then record each image with its tags in one transaction.
    // Killed in between, the claim tells the next tsbox what is published but unrecorded.
    const claim = await writeClaim(store.layers.tempDir, {
      layers: pending.layers.map((p) => p.diffId),
      blobs: [
        ...seenBlobs,
        ...plans.flatMap((p) => [p.id, (p.manifest ?? dockerManifest(p)).digest]),
      ],
    });
    for (const b of pending.blobs) await b.commit();
    for (const p of pending.layers) await p.layer.publish(store.shortIdFor(p.diffId));
    for (const diffId of sizes.keys()) await ensureLink(store, diffId);
    await pauseForTest("before-record");
    const loaded: { id: string; tags: string[]; image: ImageRecord }[] = [];
    for (const plan of plans) {
      await store.blobs.put(plan.id, plan.configBytes);
      const existing = store.getImage(plan.id);
      const manifest = plan.manifest ??
        (existing && await store.blobs.has(existing.manifestDigest)
          ? undefined
          : dockerManifest(plan));
      if (manifest) await store.blobs.put(manifest.digest, manifest.bytes);
      const image = store.addImage({
        id: plan.id,
        configJson: decoder.decode(plan.configBytes),
        manifestDigest: manifest?.digest ?? existing!.manifestDigest,
        manifestMediaType: manifest?.mediaType ?? existing!.manifestMediaType,
        layers: plan.layers.map((l) => ({
          diffId: l.diffId,
          shortId: store.shortIdFor(l.diffId),
          size: sizes.get(l.diffId)!,
          blobDigest: l.blobDigest,
          mediaType: l.mediaType,
          blobSize: l.blobSize,
        })),
      });
      for (const t of plan.tags) store.tag(plan.id, t);
      loaded.push({ id: plan.id, tags: [...plan.tags], image });
    }
    // Each index with its name in one transaction, once all its variants are recorded: a load
    // killed before leaves untagged images, never an index naming an image the store lacks.
    if (indexes.length > 0) await pauseForTest("before-index");
    for (const index of indexes) {
      for (const t of index.tags) store.setIndex(t, index.entries, index.tagged);
      loaded.find((l) => l.id === index.tagged)?.tags.push(...index.tags);
    }
    for (const l of loaded) l.image = store.getImage(l.id)!;
    await claim.release();
    return loaded;
  } finally {
    for (const b of pending.blobs) await b.discard();
    for (const p of pending.layers) await p.layer.discard();
  }
}

/**
 * Links a layer the store already had when its link is missing: stores that tsbox loaded into
 * before its link names were stable hold such layers, and loading the image again repairs them.
 */
async function ensureLink(store: Store, diffId: string): Promise<void> {
  const shortId = store.shortIdFor(diffId);
  try {
    await Deno.lstat(join(store.linkDir, shortId));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await store.layers.link(diffId, shortId);
  }
}

/**
 * A manifest for a docker-archive image, so it can be pushed and saved: Docker v2 schema 2, or
 * OCI when a reused blob of the store carries an OCI media type (the two are not mixed).
 */
function dockerManifest(plan: ImagePlan): { bytes: Uint8Array; digest: string; mediaType: string } {
  const docker = plan.layers.every((l) => l.mediaType.startsWith("application/vnd.docker."));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
    config: {
      mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig,
      size: plan.configBytes.length,
      digest: plan.id,
    },
    layers: plan.layers.map((l) => ({
      mediaType: docker ? l.mediaType : ociLayerMediaType(l.mediaType),
      size: l.blobSize,
      digest: l.blobDigest,
    })),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(manifest));
  return { bytes, digest: sha256Digest(bytes), mediaType: manifest.mediaType! };
}

/** `docker.io/library/busybox:latest` as docker names it in events: `busybox:latest`. */
function familiarName(full: string): string {
  return parseReference(full).familiar();
}
