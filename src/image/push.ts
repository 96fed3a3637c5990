/**
 * `push`: sends an image's layer blobs, config and manifest to a registry, skipping blobs the
 * repository has and mounting blobs that another repository of the same registry has (known
 * from this store's tags and repo digests) instead of uploading them again.
 *
 * The manifest pushed is the one the image was pulled with whenever it still names exactly the
 * stored blobs, so a pulled-and-pushed image keeps its digest. A built layer, stored only as its
 * directory, is compressed here, once per content (compress_layer.ts).
 *
 * @module
 */
import { RegistryClient, type UploadResult } from "../../registry/client.ts";
import {
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  layersMatchSchema,
  MediaType,
  ociLayerMediaType,
} from "../../registry/manifest.ts";
import { parseReference, Reference } from "../../registry/reference.ts";
import {
  loadRegistriesConf,
  pushEndpoint,
  type RegistriesConf,
} from "../../registry/registries_conf.ts";
import { TsboxError } from "../errors.ts";
import { sha256Digest, shortDigest } from "../store/digest.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { VERSION } from "../version.ts";
import { type CompressedLayer, compressLayer, knownCompressed } from "./compress_layer.ts";
import { hasLayerBlob, isDirBlob } from "./layer_blob.ts";
import { inParallel } from "./parallel.ts";

/** Docker's per-layer push statuses. */
export type PushStatus =
  | "Preparing"
  | "Waiting"
  | "Pushing"
  | "Pushed"
  | "Layer already exists"
  | "Mounted from";

/** What a push reports as it goes. */
export interface PushEvent {
  /** First 12 hex digits of the layer's diffID, as docker shows it. */
  readonly id: string;
  readonly status: PushStatus;
  /** For "Mounted from": the repository path the blob was mounted from, as docker names it. */
  readonly from?: string;
  /** For "Pushing": bytes sent so far and the blob's size. */
  readonly current?: number;
  readonly total?: number;
}

/** Options of {@link pushImage}. */
export interface PushOptions {
  /** Registries reached over plain HTTP besides loopback. */
  readonly insecure?: readonly string[];
  readonly onProgress?: (event: PushEvent) => void;
  /** A client to reuse (tests, custom credentials). */
  readonly client?: RegistryClient;
  /**
   * registries.conf (its location, insecure and blocked settings; mirrors are for pulls only).
   * Read from podman's files when not given.
   */
  readonly registries?: RegistriesConf;
  /** How many blobs upload at once. */
  readonly concurrency?: number;
}

/** What {@link pushImage} returns. */
export interface PushResult {
  /** The reference pushed (normalised). */
  readonly reference: Reference;
  /** Digest of the manifest stored in the registry. */
  readonly digest: string;
  /** The manifest's size in bytes. */
  readonly size: number;
  /** How each layer blob got there, bottom first. */
  readonly layers: readonly UploadResult[];
}

/**
 * Pushes the local image `name` (`host/repo[:tag]`) to its registry: to the `location` a
 * registries.conf entry gives for it, never to a mirror; a blocked registry is refused.
 */
export async function pushImage(
  store: Store,
  name: string,
  options: PushOptions = {},
): Promise<PushResult> {
  const ref = parseReference(name);
  if (ref.digest) throw new TsboxError(`cannot push a digest reference: ${name}`);
  const image = store.findImage(ref.toString());
  if (!image || !image.tags.includes(ref.toString())) {
    throw new TsboxError(`An image does not exist locally with the tag: ${ref.familiar()}`);
  }
  const registries = options.registries ?? await loadRegistriesConf();
  // `target` is where the bytes go; `ref` stays the name the store records the digest under.
  const endpoint = pushEndpoint(registries, ref);
  const target = endpoint.ref;
  const client = options.client ??
    new RegistryClient({ insecure: [...(options.insecure ?? [])], userAgent: `tsbox/${VERSION}` });
  if (endpoint.insecure) client.allowInsecure(target.domain);

  const entries = store.indexOf(ref.toString());
  if (entries.length === 0) {
    const sent = await pushOne(store, client, image, target, target, options);
    recordRepoDigest(store, ref, sent.digest, image.id);
    return { reference: ref, ...sent };
  }
  // An image index a multi-platform build recorded: each platform's image by digest, then
  // the index under the tag.
  const byDigest = new Reference(target.domain, target.path);
  const manifests: Descriptor[] = [];
  const layers: UploadResult[] = [];
  for (const e of entries) {
    const variant = store.getImage(e.imageId);
    if (!variant) throw new TsboxError(`${ref.familiar()}: its ${e.platform} image is gone`);
    const sent = await pushOne(store, client, variant, target, byDigest, options);
    layers.push(...sent.layers);
    const c = variant.config as { os?: string; architecture?: string; variant?: string };
    manifests.push({
      mediaType: sent.mediaType,
      digest: sent.digest,
      size: sent.size,
      platform: {
        os: c.os ?? "linux",
        architecture: c.architecture ?? "amd64",
        ...(c.variant ? { variant: c.variant } : {}),
      },
    });
  }
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
  const bytes = new TextEncoder().encode(JSON.stringify(index));
  const digest = await client.putManifest(target, MediaType.OciIndex, bytes);
  recordRepoDigest(store, ref, digest, image.id);
  return { reference: ref, digest, size: bytes.length, layers };
}

/** Like docker, the image now carries the repo digest it is known by in that repository. */
function recordRepoDigest(store: Store, ref: Reference, digest: string, imageId: string): void {
  store.db.run(
    "INSERT OR REPLACE INTO repo_digests (repository, digest, image_id) VALUES (?, ?, ?)",
    ref.repository,
    digest,
    imageId,
  );
}

/**
 * Sends one image's layer blobs, config and manifest to `target`'s repository, the manifest
 * under `putRef` (the tag, or no tag: by its digest, as an index entry).
 */
async function pushOne(
  store: Store,
  client: RegistryClient,
  image: ImageRecord,
  target: Reference,
  putRef: Reference,
  options: PushOptions,
): Promise<{ digest: string; size: number; mediaType: string; layers: UploadResult[] }> {
  const emit = options.onProgress ?? (() => {});
  for (const layer of image.layers) {
    if (!await hasLayerBlob(store, layer)) {
      throw new TsboxError(
        `layer ${layer.diffId}: its blob ${layer.blobDigest} is not in the store; pull the image again`,
      );
    }
    emit({ id: shortDigest(layer.diffId), status: "Preparing" });
  }
  const results = new Map<string, UploadResult>();
  /** Built layers, by the digest the local manifest names: the gzip blob pushed for each. */
  const compressed = new Map<string, CompressedLayer>();
  // The same blob twice in one image is uploaded once; the others wait for it.
  const unique = image.layers.filter((l, i) =>
    image.layers.findIndex((x) => x.blobDigest === l.blobDigest) === i
  );
  await inParallel(unique, options.concurrency ?? 3, async (layer) => {
    const id = shortDigest(layer.diffId);
    const from = mountSource(store, target, layer.blobDigest);
    const progress = (current: number, total: number) =>
      emit({ id, status: "Pushing", current, total });
    let result: UploadResult;
    if (isDirBlob(layer) && !await store.blobs.has(layer.blobDigest)) {
      const sent = await pushBuiltLayer(store, client, target, layer.diffId, from, progress);
      compressed.set(layer.blobDigest, sent.blob);
      result = sent.result;
    } else {
      const body = lazyFile(
        store.blobs.path(layer.blobDigest),
        (current) => progress(current, layer.blobSize),
      );
      result = await client.uploadBlob(target, layer.blobDigest, layer.blobSize, body, from);
    }
    results.set(layer.blobDigest, result);
    if (result === "exists") emit({ id, status: "Layer already exists" });
    else if (result === "mounted") emit({ id, status: "Mounted from", from: from!.path });
    else emit({ id, status: "Pushed" });
  });

  const configBytes = new TextEncoder().encode(image.configJson);
  await client.uploadBlob(target, image.id, configBytes.length, configBytes);
  const manifest = await manifestFor(store, image, compressed);
  const digest = await client.putManifest(putRef, manifest.mediaType, manifest.bytes);
  return {
    digest,
    size: manifest.bytes.length,
    mediaType: manifest.mediaType,
    layers: image.layers.map((l) => results.get(l.blobDigest)!),
  };
}

/**
 * A repository of the target's registry, other than the target, that this store knows to hold
 * the blob: the repositories of tags and repo digests of every image using it.
 */
function mountSource(store: Store, target: Reference, blobDigest: string): Reference | undefined {
  const rows = store.db.all<{ name: string }>(
    `SELECT t.name AS name FROM tags t JOIN image_layers il ON il.image_id = t.image_id
       WHERE il.blob_digest = ?
     UNION
     SELECT rd.repository AS name FROM repo_digests rd
       JOIN image_layers il ON il.image_id = rd.image_id WHERE il.blob_digest = ?`,
    blobDigest,
    blobDigest,
  );
  for (const { name } of rows) {
    let ref: Reference;
    try {
      ref = parseReference(name);
    } catch {
      continue;
    }
    if (ref.domain === target.domain && ref.path !== target.path) return ref;
  }
  return undefined;
}

/**
 * A built layer to the registry as gzip: nothing is compressed when the registry has the blob
 * an earlier push made of it; else the layer is compressed (its digest recorded) and uploaded,
 * or mounted from `from`.
 */
async function pushBuiltLayer(
  store: Store,
  client: RegistryClient,
  target: Reference,
  diffId: string,
  from: Reference | undefined,
  progress: (current: number, total: number) => void,
): Promise<{ blob: CompressedLayer; result: UploadResult }> {
  const known = knownCompressed(store, diffId);
  if (known && await client.headBlob(target, known.digest) !== undefined) {
    return { blob: known, result: "exists" };
  }
  const file = await compressLayer(store, diffId);
  try {
    const body = lazyFile(file.path, (current) => progress(current, file.size));
    const result = await client.uploadBlob(target, file.digest, file.size, body, from);
    return { blob: file, result };
  } finally {
    await file.remove();
  }
}

/**
 * The manifest to push: the stored one if it names exactly this config and these blobs, else a
 * new one (Docker v2 schema 2 for Docker layer types, OCI otherwise). `compressed` gives, by
 * the digest the image names, the gzip blob pushed in place of a built layer's plain tar.
 */
export async function manifestFor(
  store: Store,
  image: ImageRecord,
  compressed: ReadonlyMap<string, CompressedLayer> = new Map(),
): Promise<{ bytes: Uint8Array; mediaType: string; digest: string }> {
  if (compressed.size === 0 && await store.blobs.has(image.manifestDigest)) {
    const bytes = await store.blobs.read(image.manifestDigest);
    try {
      const m = JSON.parse(new TextDecoder().decode(bytes)) as ImageManifest;
      if (
        m.config?.digest === image.id && m.layers?.length === image.layers.length &&
        m.layers.every((l, i) => l.digest === image.layers[i].blobDigest) &&
        layersMatchSchema(m)
      ) {
        return { bytes, mediaType: image.manifestMediaType, digest: image.manifestDigest };
      }
    } catch {
      // Unreadable: build a new one below.
    }
  }
  const docker = image.layers.every((l) => l.mediaType.startsWith("application/vnd.docker."));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: docker ? MediaType.DockerManifest : MediaType.OciManifest,
    config: {
      mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig,
      size: new TextEncoder().encode(image.configJson).length,
      digest: image.id,
    },
    layers: image.layers.map((l) => {
      const c = compressed.get(l.blobDigest);
      if (c) return { mediaType: c.mediaType, size: c.size, digest: c.digest };
      return {
        mediaType: docker ? l.mediaType : ociLayerMediaType(l.mediaType),
        size: l.blobSize,
        digest: l.blobDigest,
      };
    }),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(manifest));
  return { bytes, mediaType: manifest.mediaType!, digest: sha256Digest(bytes) };
}

/**
 * A stream of a file that opens it only when first read: a blob the registry already has or
 * mounts is never opened, and "Pushing" is reported only for bytes actually sent.
 */
function lazyFile(path: string, onBytes: (sent: number) => void): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  let sent = 0;
  let reported = 0;
  const close = () => {
    try {
      file?.close();
    } catch { /* already closed */ }
    file = undefined;
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      file ??= await Deno.open(path);
      const buf = new Uint8Array(256 << 10);
      const n = await file.read(buf);
      if (n === null) {
        close();
        onBytes(sent);
        controller.close();
        return;
      }
      sent += n;
      if (sent - reported >= 1 << 20 || reported === 0) {
        reported = sent;
        onBytes(sent);
      }
      controller.enqueue(buf.subarray(0, n));
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 0 });
}
