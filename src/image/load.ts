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
import { join, posix } from "node:path";
import { createHash } from "node:crypto";
import {
  type Compression,
  type Descriptor,
  type ImageManifest,
  MediaType,
  ociLayerMediaType,
  parseImageConfig,
  parseManifest,
} from "../../registry/manifest.ts";
import { selectManifest } from "../../registry/platform.ts";
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
import { storedLayerBlob } from "./images.ts";
import { TarReader } from "./tar.ts";
import { unpackLayer } from "./unpack.ts";

/** The archive cannot be loaded: malformed, incomplete, or its content does not match its digests. */
export class ArchiveError extends TsboxError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ArchiveError";
  }
}

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

/** A regular file of the archive, spooled to disk. */
interface Spooled {
  path: string;
  size: number;
  digest: string;
}

/** What the archive holds: files by cleaned name, links as aliases. */
interface Spool {
  dir: string;
  files: Map<string, Spooled>;
  aliases: Map<string, string>;
}

/** A layer of an image to load, found in the archive. */
interface LayerPlan {
  diffId: string;
  file: Spooled;
  compression: Compression;
  /** The blob as recorded for the image (digest, type, size). */
  blobDigest: string;
  mediaType: string;
  blobSize: number;
  /** Whether the archive's file becomes the blob (false: the store has a blob for it). */
  storeBlob: boolean;
}

/** An image to load. */
interface ImagePlan {
  configBytes: Uint8Array;
  id: string;
  layers: LayerPlan[];
  manifest?: { bytes: Uint8Array; digest: string; mediaType: string };
  tags: string[];
}

const MAX_JSON = 16 << 20;
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
    const plans = spool.files.has("manifest.json")
      ? await dockerPlans(store, spool)
      : spool.files.has("index.json")
      ? await ociPlans(store, spool)
      : undefined;
    if (!plans) {
      throw new ArchiveError(
        "not an image archive: it has neither manifest.json (docker-archive) nor index.json (OCI layout)",
      );
    }
    if (plans.length === 0) throw new ArchiveError("the archive contains no image");
    const loaded = await apply(store, plans, emit);
    // docker's events of a load: `load` of each image, then a `tag` for each name it got.
    for (const image of loaded) {
      imageEvent(store.root, "load", image.id, image.id);
      for (const t of image.tags) imageEvent(store.root, "tag", image.id, familiarName(t));
    }
    return loaded;
  } finally {
    if (dir) await removeTree(dir);
    release();
  }
}

/** Cleans an archive path: no leading `/` or `./`, no `.` or `..` components. */
function clean(name: string): string {
  const normal = posix.normalize(`/${name}`);
  return normal.replace(/^\/+/, "").replace(/\/+$/, "");
}

async function spoolArchive(input: ReadableStream<Uint8Array>, dir: string): Promise<Spool> {
  const files = new Map<string, Spooled>();
  const aliases = new Map<string, string>();
  let n = 0;
  try {
    for await (const entry of new TarReader(input)) {
      const name = clean(entry.header.name);
      if (!name) continue;
      if (entry.header.type === "symlink") {
        aliases.set(name, clean(posix.join(posix.dirname(name), entry.header.linkname)));
      } else if (entry.header.type === "hardlink") {
        aliases.set(name, clean(entry.header.linkname));
      } else if (entry.header.type === "file") {
        const path = join(dir, String(n++));
        const file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
        const hash = createHash("sha256");
        let size = 0;
        try {
          for await (const chunk of entry.chunks()) {
            hash.update(chunk);
            size += chunk.byteLength;
            for (let off = 0; off < chunk.byteLength;) {
              off += await file.write(chunk.subarray(off));
            }
          }
        } finally {
          file.close();
        }
        files.set(name, { path, size, digest: `sha256:${hash.digest("hex")}` });
      }
    }
  } catch (err) {
    throw new ArchiveError(`reading the archive failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return { dir, files, aliases };
}

function lookup(spool: Spool, name: string, what: string): Spooled {
  let key = clean(name);
  for (let hops = 0; hops < 16 && !spool.files.has(key) && spool.aliases.has(key); hops++) {
    key = spool.aliases.get(key)!;
  }
  const file = spool.files.get(key);
  if (!file) throw new ArchiveError(`the archive lacks ${what} ${JSON.stringify(name)}`);
  return file;
}

async function readJson(file: Spooled, what: string): Promise<Uint8Array> {
  if (file.size > MAX_JSON) {
    throw new ArchiveError(`${what} is implausibly large (${file.size} bytes)`);
  }
  return await Deno.readFile(file.path);
}

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(decoder.decode(bytes)) as T;
  } catch (err) {
    throw new ArchiveError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** A 64-hex name (`<hex>.json`, `blobs/sha256/<hex>`) promises that digest: hold it to it. */
function checkNamedDigest(name: string, file: Spooled, what: string): void {
  const m = /(?:^|\/)([a-f0-9]{64})(?:\.json)?$/.exec(clean(name));
  if (m && `sha256:${m[1]}` !== file.digest) {
    throw new DigestMismatchError(what, `sha256:${m[1]}`, file.digest);
  }
}

/** Compression of a layer file by its first bytes (docker archives hold plain tars, others may not). */
async function sniff(file: Spooled): Promise<Compression> {
  const f = await Deno.open(file.path);
  try {
    const head = new Uint8Array(4);
    const got = await f.read(head) ?? 0;
    if (got >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
    if (got >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
      return "zstd";
    }
    return "none";
  } finally {
    f.close();
  }
}

const DOCKER_LAYER_TYPE: Record<Compression, string> = {
  none: MediaType.DockerLayer,
  gzip: MediaType.DockerLayerGzip,
  zstd: MediaType.DockerLayerZstd,
};

function diffIdsOf(configBytes: Uint8Array, what: string): string[] {
  try {
    return parseImageConfig(configBytes).rootfs.diff_ids;
  } catch (err) {
    throw new ArchiveError(`${what}: invalid image config: ${(err as Error).message}`);
  }
}

function fullTag(name: string): string {
  try {
    const ref = parseReference(name);
    if (ref.digest) throw new ArchiveError(`archive tag ${JSON.stringify(name)} has a digest`);
    return ref.toString();
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    throw new ArchiveError(`archive tag ${JSON.stringify(name)}: ${(err as Error).message}`);
  }
}

async function dockerPlans(store: Store, spool: Spool): Promise<ImagePlan[]> {
  const entries = parseJson<unknown>(
    await readJson(lookup(spool, "manifest.json", "file"), "manifest.json"),
    "manifest.json",
  );
  if (!Array.isArray(entries)) throw new ArchiveError("manifest.json is not a list of images");
  const plans: ImagePlan[] = [];
  for (const [i, raw] of entries.entries()) {
    const e = raw as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof e?.Config !== "string" || !Array.isArray(e.Layers)) {
      throw new ArchiveError(`manifest.json entry ${i} lacks Config or Layers`);
    }
    const configFile = lookup(spool, e.Config, "the config");
    checkNamedDigest(e.Config, configFile, `config ${e.Config}`);
    const configBytes = await readJson(configFile, `config ${e.Config}`);
    const diffIds = diffIdsOf(configBytes, e.Config);
    if (diffIds.length !== e.Layers.length) {
      throw new ArchiveError(
        `image ${i}: the config lists ${diffIds.length} layers but manifest.json has ${e.Layers.length}`,
      );
    }
    const layers: LayerPlan[] = [];
    for (const [j, name] of (e.Layers as unknown[]).entries()) {
      if (typeof name !== "string") throw new ArchiveError(`image ${i}: layer ${j} is not a path`);
      const file = lookup(spool, name, "the layer");
      const compression = await sniff(file);
      const diffId = diffIds[j];
      // An uncompressed layer's file digest is its diffID: tampering shows before any unpacking.
      if (compression === "none" && file.digest !== diffId) {
        throw new DigestMismatchError(`layer ${name}`, diffId, file.digest);
      }
      // A blob the store keeps for the layer (pulled or built before) is reused: nothing new stored.
      const known = await storedLayerBlob(store, diffId);
      layers.push({
        diffId,
        file,
        compression,
        ...(known ?? {
          blobDigest: file.digest,
          mediaType: DOCKER_LAYER_TYPE[compression],
          blobSize: file.size,
        }),
        storeBlob: !known,
      });
    }
    const tags = Array.isArray(e.RepoTags) ? e.RepoTags.map((t) => fullTag(String(t))) : [];
    plans.push({ configBytes, id: configFile.digest, layers, tags });
  }
  return plans;
}

async function ociPlans(store: Store, spool: Spool): Promise<ImagePlan[]> {
  const blob = (desc: Descriptor, what: string): Spooled => {
    if (typeof desc?.digest !== "string" || !/^sha256:[a-f0-9]{64}$/.test(desc.digest)) {
      throw new ArchiveError(`${what}: invalid descriptor digest ${JSON.stringify(desc?.digest)}`);
    }
    const file = lookup(spool, `blobs/sha256/${desc.digest.slice(7)}`, what);
    if (file.digest !== desc.digest) throw new DigestMismatchError(what, desc.digest, file.digest);
    if (typeof desc.size === "number" && file.size !== desc.size) {
      throw new DigestMismatchError(what, `${desc.size} bytes`, `${file.size} bytes`);
    }
    return file;
  };
  const indexBytes = await readJson(lookup(spool, "index.json", "file"), "index.json");
  let top;
  try {
    top = parseManifest(indexBytes, MediaType.OciIndex);
  } catch (err) {
    throw new ArchiveError(`index.json: ${(err as Error).message}`);
  }
  if (top.kind !== "index") throw new ArchiveError("index.json is not an image index");
  const plans: ImagePlan[] = [];
  for (const entry of top.index.manifests) {
    let desc = entry;
    let file = blob(desc, `manifest ${desc.digest}`);
    let bytes = await readJson(file, `manifest ${desc.digest}`);
    let parsed;
    try {
      parsed = parseManifest(bytes, desc.mediaType);
      if (parsed.kind === "index") {
        desc = selectManifest(parsed.index);
        file = blob(desc, `manifest ${desc.digest}`);
        bytes = await readJson(file, `manifest ${desc.digest}`);
        parsed = parseManifest(bytes, desc.mediaType);
      }
    } catch (err) {
      if (err instanceof TsboxError) throw err;
      throw new ArchiveError(`manifest ${desc.digest}: ${(err as Error).message}`);
    }
    if (parsed.kind !== "image") throw new ArchiveError(`manifest ${desc.digest}: nested index`);
    const manifest: ImageManifest = parsed.manifest;
    const configFile = blob(manifest.config, `config ${manifest.config.digest}`);
    const configBytes = await readJson(configFile, "config");
    const diffIds = diffIdsOf(configBytes, manifest.config.digest);
    if (diffIds.length !== manifest.layers.length) {
      throw new ArchiveError(
        `manifest ${desc.digest}: the config lists ${diffIds.length} layers but the manifest has ${manifest.layers.length}`,
      );
    }
    const layers: LayerPlan[] = [];
    for (const [j, l] of manifest.layers.entries()) {
      const lf = blob(l, `layer ${l.digest}`);
      const compression = await sniff(lf);
      layers.push({
        diffId: diffIds[j],
        file: lf,
        compression,
        blobDigest: l.digest,
        mediaType: l.mediaType,
        blobSize: lf.size,
        storeBlob: !await store.blobs.has(l.digest),
      });
    }
    const annotations = entry.annotations ?? {};
    const name = annotations["io.containerd.image.name"] ??
      (/[/:]/.test(annotations["org.opencontainers.image.ref.name"] ?? "")
        ? annotations["org.opencontainers.image.ref.name"]
        : undefined);
    plans.push({
      configBytes,
      id: configFile.digest,
      layers,
      manifest: { bytes, digest: desc.digest, mediaType: parsed.mediaType },
      tags: name ? [fullTag(name)] : [],
    });
  }
  return plans;
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
    const loaded: LoadedImage[] = [];
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
      loaded.push({ id: plan.id, tags: plan.tags, image: store.getImage(image.id)! });
    }
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
