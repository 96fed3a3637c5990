/**
 * `pull`: resolve a reference to one platform's image, fetch what the store lacks, verify every
 * digest, unpack each new layer once, and record the image — all or nothing.
 *
 * Each layer goes through the network once: its bytes are written to the blob file and hashed
 * while they stream on into the decompressor and the unpacker. Nothing is published (blob
 * renamed, layer dir renamed, database row written) until every digest of the image checked out.
 *
 * @module
 */
import { RegistryClient } from "../../registry/client.ts";
import {
  type Descriptor,
  imageLayers,
  type ImageManifest,
  layerCompression,
  parseImageConfig,
  parseManifest,
} from "../../registry/manifest.ts";
import { hostPlatform, parsePlatform, selectManifest } from "../../registry/platform.ts";
import { parseReference, type Reference } from "../../registry/reference.ts";
import { TsboxError } from "../errors.ts";
import type { PendingBlob } from "../store/blobs.ts";
import {
  DigestingStream,
  DigestMismatchError,
  sha256Digest,
  shortDigest,
} from "../store/digest.ts";
import type { PendingLayer } from "../store/layers.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { VERSION } from "../version.ts";
import { decompressor } from "./decompress.ts";
import { unpackLayer } from "./unpack.ts";
import { inParallel } from "./parallel.ts";

/** What a pull reports as it goes, close to docker's per-layer status lines. */
export type PullEvent =
  | { readonly type: "resolved"; readonly reference: string; readonly digest: string }
  | {
    readonly type: "layer";
    /** The first 12 hex digits of the layer blob's digest, as docker shows it. */
    readonly id: string;
    readonly status: LayerStatus;
    readonly current?: number;
    readonly total?: number;
  };

/** Docker's per-layer statuses. */
export type LayerStatus =
  | "Already exists"
  | "Pulling fs layer"
  | "Waiting"
  | "Downloading"
  | "Verifying Checksum"
  | "Download complete"
  | "Extracting"
  | "Pull complete";

/** Options of {@link pullImage}. */
export interface PullOptions {
  /** `os/arch[/variant]`; the host's platform by default. */
  readonly platform?: string;
  /** Registries reached over plain HTTP besides loopback. */
  readonly insecure?: readonly string[];
  /** Progress callback. */
  readonly onProgress?: (event: PullEvent) => void;
  /** A client to reuse (tests, or several pulls sharing tokens). */
  readonly client?: RegistryClient;
  /** How many layers download at once. */
  readonly concurrency?: number;
}

/** What {@link pullImage} returns. */
export interface PullResult {
  readonly image: ImageRecord;
  /** The normalised reference pulled. */
  readonly reference: Reference;
  /** Digest of the manifest (or index) the reference resolved to. */
  readonly digest: string;
  /** True when the store already had this exact image and nothing was fetched but manifests. */
  readonly upToDate: boolean;
}

/** Pulls `name` into `store`. */
export async function pullImage(
  store: Store,
  name: string,
  options: PullOptions = {},
): Promise<PullResult> {
  const ref = parseReference(name);
  const client = options.client ??
    new RegistryClient({ insecure: [...(options.insecure ?? [])], userAgent: `tsbox/${VERSION}` });
  const emit = options.onProgress ?? (() => {});
  const platform = options.platform ? parsePlatform(options.platform) : hostPlatform();

  const top = await client.getManifest(ref);
  emit({ type: "resolved", reference: ref.toString(), digest: top.digest });
  const repoDigest = { repository: ref.repository, digest: top.digest };

  const known = store.imageByRepoDigest(ref.repository, top.digest);
  if (known && await hasAllLayers(store, known) && !options.platform) {
    if (ref.tag !== undefined && !ref.digest) store.tag(known.id, ref.toString());
    return { image: store.getImage(known.id)!, reference: ref, digest: top.digest, upToDate: true };
  }

  let manifestBytes = top.bytes;
  let manifestDigest = top.digest;
  let parsed = parseManifest(top.bytes, top.mediaType);
  if (parsed.kind === "index") {
    const chosen = selectManifest(parsed.index, platform);
    const child = await client.getManifest(ref.withDigest(chosen.digest));
    manifestBytes = child.bytes;
    manifestDigest = child.digest;
    parsed = parseManifest(child.bytes, child.mediaType);
    if (parsed.kind !== "image") {
      throw new TsboxError(`${ref}: index entry ${chosen.digest} is another index`);
    }
  }
  const manifest: ImageManifest = parsed.manifest;
  const manifestMediaType = parsed.mediaType;
  imageLayers(manifest); // rejects non-image artifacts and unknown layer types up front

  const configBytes = await fetchSmallBlob(client, ref, manifest.config);
  const configJson = new TextDecoder().decode(configBytes);
  const config = parseImageConfig(configBytes);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new TsboxError(
      `${ref}: the config lists ${diffIds.length} layers but the manifest has ${manifest.layers.length}`,
    );
  }

  const imageId = manifest.config.digest;
  const pending: { blob: PendingBlob; layer: PendingLayer; diffId: string; size: number }[] = [];
  const sizes = new Map<string, number>();
  try {
    // Layers the store has are reused; the same layer twice in one image is fetched once.
    const todo: { desc: Descriptor; diffId: string }[] = [];
    for (const [i, desc] of manifest.layers.entries()) {
      const diffId = diffIds[i];
      const recorded = store.layerShortId(diffId);
      if (recorded && await store.layers.exists(diffId)) {
        sizes.set(diffId, layerSize(store, diffId));
        emit({ type: "layer", id: shortDigest(desc.digest), status: "Already exists" });
      } else if (!todo.some((t) => t.diffId === diffId)) {
        todo.push({ desc, diffId });
        emit({ type: "layer", id: shortDigest(desc.digest), status: "Pulling fs layer" });
      }
    }
    await inParallel(todo, options.concurrency ?? 3, async ({ desc, diffId }) => {
      const fetched = await fetchLayer(store, client, ref, desc, diffId, emit);
      pending.push(fetched);
      sizes.set(diffId, fetched.size);
    });

    // Everything verified: publish blobs and layer dirs, then the record in one transaction.
    const shortIds = new Map<string, string>();
    for (const p of pending) {
      await p.blob.commit();
      const shortId = store.shortIdFor(p.diffId);
      await p.layer.publish(shortId);
      shortIds.set(p.diffId, shortId);
    }
    await store.blobs.put(manifest.config.digest, configBytes);
    await store.blobs.put(manifestDigest, manifestBytes);
    const image = store.addImage({
      id: imageId,
      configJson,
      manifestDigest,
      manifestMediaType,
      layers: manifest.layers.map((desc, i) => ({
        diffId: diffIds[i],
        shortId: shortIds.get(diffIds[i]) ?? store.shortIdFor(diffIds[i]),
        size: sizes.get(diffIds[i]) ?? 0,
        blobDigest: desc.digest,
        mediaType: desc.mediaType,
        blobSize: desc.size,
      })),
      tag: ref.tag !== undefined && !ref.digest ? ref.toString() : undefined,
      repoDigest,
    });
    return { image, reference: ref, digest: top.digest, upToDate: false };
  } finally {
    for (const p of pending) {
      await p.blob.discard();
      await p.layer.discard();
    }
  }
}

async function hasAllLayers(store: Store, image: ImageRecord): Promise<boolean> {
  for (const l of image.layers) if (!await store.layers.exists(l.diffId)) return false;
  return true;
}

function layerSize(store: Store, diffId: string): number {
  return store.db.get<{ size: number }>("SELECT size FROM layers WHERE diff_id = ?", diffId)
    ?.size ?? 0;
}

/** Fetches a config-sized blob into memory, verifying its digest and size. */
async function fetchSmallBlob(
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
): Promise<Uint8Array> {
  const { body } = await client.fetchBlob(ref, desc.digest);
  const bytes = new Uint8Array(await new Response(body).arrayBuffer());
  const actual = sha256Digest(bytes);
  if (actual !== desc.digest) {
    throw new DigestMismatchError(`blob ${desc.digest}`, desc.digest, actual);
  }
  return bytes;
}

/**
 * Streams one layer blob: to its temp blob file (hashed), and on through the decompressor into
 * the unpacker (hashed again, for the diffID). On an unpack error the download still runs to the
 * end, so that a corrupt blob is reported as the digest mismatch it is rather than as the tar
 * or gzip error it caused.
 */
async function fetchLayer(
  store: Store,
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
  diffId: string,
  emit: (e: PullEvent) => void,
): Promise<{ blob: PendingBlob; layer: PendingLayer; diffId: string; size: number }> {
  const id = shortDigest(desc.digest);
  const blob = await store.blobs.begin(desc.digest, desc.size);
  const layer = await store.layers.begin(diffId).catch(async (err) => {
    await blob.discard();
    throw err;
  });
  try {
    const { body } = await client.fetchBlob(ref, desc.digest);
    const feed = new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 8 });
    const uncompressed = new DigestingStream();
    const tar = feed.readable
      .pipeThrough(decompressor(layerCompression(desc.mediaType)))
      .pipeThrough(uncompressed);
    const unpacking = unpackAll(tar, layer.dir);
    let failure: unknown;
    unpacking.catch((err) => failure ??= err);
    const writer = feed.writable.getWriter();
    let last = 0;
    for await (const chunk of body) {
      await blob.write(chunk);
      if (blob.bytes - last >= 1 << 20 || blob.bytes === desc.size) {
        last = blob.bytes;
        emit({ type: "layer", id, status: "Downloading", current: blob.bytes, total: desc.size });
      }
      if (failure === undefined) {
        await writer.ready.catch((err) => failure ??= err);
        writer.write(chunk).catch((err) => failure ??= err);
      }
    }
    if (failure === undefined) await writer.close().catch((err) => failure ??= err);
    emit({ type: "layer", id, status: "Verifying Checksum" });
    blob.verify();
    emit({ type: "layer", id, status: "Download complete" });
    emit({ type: "layer", id, status: "Extracting" });
    await unpacking;
    const actual = uncompressed.digest();
    if (actual !== diffId) throw new DigestMismatchError(`layer ${diffId}`, diffId, actual);
    emit({ type: "layer", id, status: "Pull complete" });
    return { blob, layer, diffId, size: uncompressed.bytes };
  } catch (err) {
    await blob.discard();
    await layer.discard();
    throw err;
  }
}

/**
 * Unpacks a tar stream and then reads whatever the unpacker left after the end-of-archive
 * marker, so that the diffID is computed over the whole uncompressed blob.
 */
async function unpackAll(tar: ReadableStream<Uint8Array>, dir: string): Promise<void> {
  const reader = tar.getReader();
  const view = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
  });
  try {
    // Not root: no chown, no device nodes, and overlay's markers as `userxattr` reads them.
    await unpackLayer(view, dir, { rootless: Deno.uid() !== 0 });
  } catch (err) {
    // Stop the download feeding us, which would otherwise wait for a reader forever.
    await reader.cancel(err).catch(() => {});
    throw err;
  }
  while (!(await reader.read()).done) { /* trailing padding */ }
}
