/**
 * `pull`: resolve a reference to one platform's image, fetch what the store lacks, verify every
 * digest, unpack each new layer once, and record the image — all or nothing.
 *
 * Each layer goes through the network once: its bytes are written to the blob file and hashed
 * while they stream on into the decompressor and the unpacker. Nothing is published (blob
 * renamed, layer dir renamed, database row written) until every digest of the image checked out.
 *
 * Everything a registry sends is bounded: manifests and configs by the client's 4 MiB cap, each
 * blob by its descriptor's size, and what lands on disk by a floor of free space that a
 * decompression bomb or an oversized blob hits before the disk is full. A failure for want of
 * space names the layer, the step and the path; nothing of the failed pull stays on disk.
 *
 * @module
 */
import { imageEvent } from "../events/log.ts";
import { type ManifestResponse, RegistryClient } from "../../registry/client.ts";
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
import {
  type Endpoint,
  loadRegistriesConf,
  pullEndpoints,
  qualifyName,
  type RegistriesConf,
} from "../../registry/registries_conf.ts";
import { TsboxError } from "../errors.ts";
import { join } from "../path.ts";
import type { PendingBlob } from "../store/blobs.ts";
import { DigestMismatchError, sha256Digest, shortDigest } from "../store/digest.ts";
import type { PendingLayer } from "../store/layers.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import {
  DiskFullError,
  diskFullIn,
  isNoSpace,
  namingDiskFull,
  SpaceGuard,
} from "../store/space.ts";
import { holdPublishLock } from "../store/publish_lock.ts";
import { pauseForTest } from "../store/test_pause.ts";
import { writeClaim } from "../store/unrecorded.ts";
import { VERSION } from "../version.ts";
import { type LayerJob, startLayerJob, wantsWorker } from "./layer_job.ts";
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
  /**
   * registries.conf: the short-name search list, locations, mirrors, insecure and blocked
   * registries. Read from podman's files (registry/registries_conf.ts) when not given.
   */
  readonly registries?: RegistriesConf;
  /** How many layers download at once. */
  readonly concurrency?: number;
  /**
   * Bytes to keep free on the store's filesystem; the pull fails before going below. Default:
   * 5% of the filesystem, at least 1 MiB and at most 256 MiB; 0: no floor, write until ENOSPC.
   */
  readonly minFreeBytes?: number;
  /**
   * False: the image is recorded without moving its name to it (a build's base pulled for
   * another platform must not take the name that `run` would then start). Default true.
   */
  readonly tag?: boolean;
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

/**
 * Pulls `name` into `store`. A short name is qualified by registries.conf's search list; the
 * image is fetched from the first of the configured mirrors that has it, else from the
 * registry's location, and is recorded under the name asked for.
 */
export async function pullImage(
  store: Store,
  name: string,
  options: PullOptions = {},
): Promise<PullResult> {
  const registries = options.registries ?? await loadRegistriesConf();
  const ref = parseReference(qualifyName(registries, name));
  const endpoints = pullEndpoints(registries, ref);
  const client = options.client ??
    new RegistryClient({ insecure: [...(options.insecure ?? [])], userAgent: `tsbox/${VERSION}` });
  for (const ep of endpoints) if (ep.insecure) client.allowInsecure(ep.ref.domain);
  const emit = options.onProgress ?? (() => {});
  const platform = options.platform ? parsePlatform(options.platform) : hostPlatform();

  // `source` is where the bytes come from; `ref` stays the name the image is recorded under.
  const { top, source } = await firstManifest(client, endpoints);
  emit({ type: "resolved", reference: ref.toString(), digest: top.digest });
  const repoDigest = { repository: ref.repository, digest: top.digest };

  const known = store.imageByRepoDigest(ref.repository, top.digest);
  if (known && await hasAllLayers(store, known) && !options.platform) {
    if (ref.tag !== undefined && !ref.digest && options.tag !== false) {
      store.tag(known.id, ref.toString());
    }
    imageEvent(store.root, "pull", ref.familiar(), ref.familiar());
    return { image: store.getImage(known.id)!, reference: ref, digest: top.digest, upToDate: true };
  }

  let manifestBytes = top.bytes;
  let manifestDigest = top.digest;
  let parsed = parseManifest(top.bytes, top.mediaType);
  if (parsed.kind === "index") {
    const chosen = selectManifest(parsed.index, platform);
    const child = await client.getManifest(source.withDigest(chosen.digest));
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

  const configBytes = await fetchConfig(client, source, manifest.config);
  const configJson = new TextDecoder().decode(configBytes);
  const config = parseImageConfig(configBytes);
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== manifest.layers.length) {
    throw new TsboxError(
      `${ref}: the config lists ${diffIds.length} layers but the manifest has ${manifest.layers.length}`,
    );
  }

  const imageId = manifest.config.digest;
  // One guard for the pull's concurrent writers: blobs and layers live under the store's root.
  const space = new SpaceGuard(store.root, { floorBytes: options.minFreeBytes });
  const pending: FetchedLayer[] = [];
  const sizes = new Map<string, number>();
  let releaseLock: (() => void) | undefined;
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
      const fetched = await fetchLayer(store, client, source, desc, diffId, space, emit);
      pending.push(fetched);
      sizes.set(diffId, fetched.size);
    });

    // Everything verified: publish blobs and layer dirs, then the record in one transaction.
    // Killed in between, the claim tells the next tsbox what is published but unrecorded.
    const shortIds = new Map<string, string>();
    const blobDir = join(store.root, "blobs");
    // Through the record: no sweep removes an unrecorded layer or blob this pull keeps.
    releaseLock = await holdPublishLock(store.root);
    const claim = await namingDiskFull(
      `${ref}: writing its claim in ${store.layers.tempDir}`,
      store.layers.tempDir,
      () =>
        writeClaim(store.layers.tempDir, {
          layers: pending.map((p) => p.diffId),
          blobs: [...pending.map((p) => p.digest), manifest.config.digest, manifestDigest],
        }),
    );
    for (const p of pending) {
      await namingDiskFull(
        `storing blob ${p.digest} in ${blobDir}`,
        blobDir,
        () => p.blob.commit(),
      );
      const shortId = store.shortIdFor(p.diffId);
      const layerDir = store.layers.dir(p.diffId);
      await namingDiskFull(
        `publishing layer ${p.diffId} as ${layerDir}`,
        layerDir,
        () => p.layer.publish(shortId),
      );
      shortIds.set(p.diffId, shortId);
    }
    await namingDiskFull(
      `storing config ${manifest.config.digest} in ${blobDir}`,
      blobDir,
      () => store.blobs.put(manifest.config.digest, configBytes),
    );
    await namingDiskFull(
      `storing manifest ${manifestDigest} in ${blobDir}`,
      blobDir,
      () => store.blobs.put(manifestDigest, manifestBytes),
    );
    await pauseForTest("before-record");
    const image = recordImage(store, () =>
      store.addImage({
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
        tag: ref.tag !== undefined && !ref.digest && options.tag !== false
          ? ref.toString()
          : undefined,
        repoDigest,
      }));
    await claim.release();
    imageEvent(store.root, "pull", ref.familiar(), ref.familiar());
    return { image, reference: ref, digest: top.digest, upToDate: false };
  } finally {
    for (const p of pending) {
      await p.blob.discard();
      await p.layer.discard();
    }
    releaseLock?.();
  }
}

/**
 * The top manifest from the first endpoint that serves it, as containers/image tries mirrors:
 * any failure of a mirror moves on to the next; the last endpoint's failure is the error, with
 * the mirrors' failures appended.
 */
async function firstManifest(
  client: RegistryClient,
  endpoints: readonly Endpoint[],
): Promise<{ top: ManifestResponse; source: Reference }> {
  const failed: string[] = [];
  for (const [i, ep] of endpoints.entries()) {
    try {
      return { top: await client.getManifest(ep.ref), source: ep.ref };
    } catch (err) {
      if (i < endpoints.length - 1) {
        failed.push(`${ep.ref}: ${(err as Error).message}`);
        continue;
      }
      if (failed.length === 0) throw err;
      throw new TsboxError(
        `${(err as Error).message} (mirrors also failed: ${failed.join("; ")})`,
        { cause: err },
      );
    }
  }
  throw new TsboxError("no registry to pull from"); // pullEndpoints always returns one
}

async function hasAllLayers(store: Store, image: ImageRecord): Promise<boolean> {
  for (const l of image.layers) if (!await store.layers.exists(l.diffId)) return false;
  return true;
}

function layerSize(store: Store, diffId: string): number {
  return store.db.get<{ size: number }>("SELECT size FROM layers WHERE diff_id = ?", diffId)
    ?.size ?? 0;
}

/**
 * Records the image; a full disk under the database is reported as such, naming the database
 * file, rather than as SQLite's own words.
 */
function recordImage(store: Store, add: () => ImageRecord): ImageRecord {
  try {
    return add();
  } catch (err) {
    const text = String((err as Error)?.message ?? err);
    if (isNoSpace(err) || /database or disk is full|disk I\/O error/i.test(text)) {
      const db = join(store.root, "tsbox.db");
      throw new DiskFullError(`recording the image in ${db}: the disk is full (${text})`, db, {
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * Fetches an image config into memory: at most 4 MiB, cut at its descriptor's size, digest
 * verified (by the client, and here again over the bytes kept).
 */
async function fetchConfig(
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
): Promise<Uint8Array> {
  const bytes = await client.fetchSmallBlob(ref, desc, "config");
  const actual = sha256Digest(bytes);
  if (actual !== desc.digest) {
    throw new DigestMismatchError(`blob ${desc.digest}`, desc.digest, actual);
  }
  return bytes;
}

/** A layer downloaded, verified and unpacked, waiting to be published. */
interface FetchedLayer {
  digest: string;
  blob: PendingBlob;
  layer: PendingLayer;
  diffId: string;
  size: number;
}

/**
 * Streams one layer blob: to its temp blob file (hashed), and on through the decompressor into
 * the unpacker (hashed again, for the diffID). On an unpack error the download still runs to the
 * end, so that a corrupt blob is reported as the digest mismatch it is rather than as the tar
 * or gzip error it caused; a want of space stops everything at once instead. Whatever fails,
 * the temp blob and the temp layer directory are removed before the error leaves.
 */
async function fetchLayer(
  store: Store,
  client: RegistryClient,
  ref: Reference,
  desc: Descriptor,
  diffId: string,
  space: SpaceGuard,
  emit: (e: PullEvent) => void,
): Promise<FetchedLayer> {
  const id = shortDigest(desc.digest);
  const what = `layer ${desc.digest}`;
  const blobDir = join(store.root, "blobs");
  const layerRoot = join(store.root, "layers");
  // A blob declared larger than the free space is refused before a byte is downloaded.
  await namingDiskFull(
    `${what}: downloading ${desc.size} bytes into ${blobDir}`,
    blobDir,
    () => Promise.resolve(space.check(desc.size)),
  );
  // A large layer goes to a worker, which writes and hashes the blob file too (layer_job.ts).
  const inWorker = wantsWorker(desc.size);
  const blob = await namingDiskFull(
    `${what}: creating its temp file in ${blobDir}`,
    blobDir,
    () => store.blobs.begin(desc.digest, desc.size, { external: inWorker }),
  );
  const layer = await namingDiskFull(
    `${what}: creating its temp directory in ${layerRoot}`,
    layerRoot,
    () => store.layers.begin(diffId),
  ).catch(async (err) => {
    await blob.discard();
    throw err;
  });
  const unpackingInto = `${what}: unpacking into ${layer.dir}`;
  const writingBlob = `${what}: writing its blob into ${blobDir}`;
  let job: LayerJob | undefined;
  /** A failure of the job, named by the step that failed when it is a want of space. */
  const named = (err: unknown) =>
    job?.blobError === err && err !== undefined
      ? diskFullIn(writingBlob, blobDir, err)
      : diskFullIn(unpackingInto, layer.dir, err);
  try {
    const { body } = await client.fetchBlob(ref, desc.digest, desc.size);
    const compression = layerCompression(desc.mediaType);
    job = startLayerJob(
      layer.dir,
      compression,
      space,
      inWorker,
      inWorker ? blob.temp : undefined,
    );
    const unpacking = job.result;
    let failure: unknown;
    let unpackFailure: unknown;
    unpacking.catch((err) => {
      unpackFailure = err;
      failure ??= err;
    });
    let last = 0;
    for await (const chunk of body) {
      await namingDiskFull(writingBlob, blobDir, async () => {
        space.reserve(chunk.byteLength);
        await blob.write(chunk);
      });
      if (blob.bytes - last >= 1 << 20 || blob.bytes === desc.size) {
        last = blob.bytes;
        emit({ type: "layer", id, status: "Downloading", current: blob.bytes, total: desc.size });
      }
      // Out of space unpacking (or writing the blob, in a worker): going on with the download
      // would only fill the disk further.
      if (unpackFailure instanceof DiskFullError || isNoSpace(unpackFailure)) {
        throw named(unpackFailure);
      }
      // The job's errors (a broken pipeline included) come out of `unpacking` above.
      if (failure === undefined) await job.write(chunk);
    }
    if (failure === undefined) await job.end();
    emit({ type: "layer", id, status: "Verifying Checksum" });
    // The client checked the digest of what it passed on as the stream ended (a mismatch came
    // out of the loop above); the blob file's own bytes are checked here, by this thread or,
    // when a worker wrote them, against the digest it computed over them once it is done.
    if (!inWorker) blob.verify();
    emit({ type: "layer", id, status: "Download complete" });
    emit({ type: "layer", id, status: "Extracting" });
    const uncompressed = await unpacking.catch((err) => {
      throw named(err);
    });
    if (inWorker) {
      if (uncompressed.blob === undefined) {
        throw new TsboxError(`${what}: the unpack worker did not write its blob`);
      }
      blob.adopt(uncompressed.blob.digest, uncompressed.blob.bytes);
      blob.verify();
    }
    const actual = uncompressed.digest;
    if (actual !== diffId) throw new DigestMismatchError(`layer ${diffId}`, diffId, actual);
    emit({ type: "layer", id, status: "Pull complete" });
    return { digest: desc.digest, blob, layer, diffId, size: uncompressed.bytes };
  } catch (err) {
    // Stop the unpacker and wait for it, so that nothing writes into the directory removed next.
    await job?.abort(err);
    await job?.result.catch(() => {});
    await blob.discard();
    await layer.discard();
    throw err;
  }
}
