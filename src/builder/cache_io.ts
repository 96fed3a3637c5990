/**
 * Build cache that travels (`build --cache-to` / `--cache-from`, as buildx names them): the
 * steps of a build, each its cache key and the state it produced, with the layers those states
 * need, written to a directory (`type=local,dest=DIR`, an OCI image layout) or pushed to a
 * registry (`type=registry,ref=REF`), and read back into another store, where the same steps
 * then hit the cache.
 *
 * The format follows BuildKit's cache in its image-manifest form: an OCI image manifest whose
 * layers are the layer blobs (each annotated with its diffID as
 * `containerd.io/uncompressed`, as BuildKit does) and whose config is the cache description:
 * here tsbox's own records (its keys are not BuildKit's), under a media type of its own so
 * that neither tool mistakes the other's cache for its own.
 *
 * A cache is input from elsewhere: blobs are checked against their digests, every layer's tar
 * against the diffID it claims, and a record whose config does not name exactly its layers is
 * dropped. A cache that cannot be read is a warning, not a failed build (as BuildKit).
 *
 * @module
 */
import { join } from "node:path";
import { RegistryClient } from "../../registry/client.ts";
import {
  type Descriptor,
  type ImageConfig,
  type ImageManifest,
  layerCompression,
  MediaType,
  ociLayerMediaType,
} from "../../registry/manifest.ts";
import { parseReference, validateDigest } from "../../registry/reference.ts";
import { TsboxError, UsageError } from "../errors.ts";
import { compressLayer, knownCompressed } from "../image/compress_layer.ts";
import { decompressor } from "../image/decompress.ts";
import { storedLayerBlob } from "../image/images.ts";
import { hasLayerBlob } from "../image/layer_blob.ts";
import { DigestingStream, sha256Digest } from "../store/digest.ts";
import type { Store } from "../store/mod.ts";
import { VERSION } from "../version.ts";
import { cacheGet, cachePut } from "./cache.ts";
import { type BuiltLayer, publishLayerTar } from "./layer.ts";
import type { BuildState } from "./state.ts";

/** Media type of the cache description (the manifest's config). */
export const CACHE_CONFIG_MEDIA_TYPE = "application/vnd.tsbox.buildcache.config.v1+json";
/** BuildKit's (and containerd's) annotation of a compressed layer's diffID. */
const UNCOMPRESSED = "containerd.io/uncompressed";
/** The largest cache description read (as manifests and configs elsewhere). */
const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** Where a cache goes or comes from. */
export type CacheSpec =
  | { readonly type: "local"; readonly dir: string; readonly mode: "min" | "max" }
  | { readonly type: "registry"; readonly ref: string; readonly mode: "min" | "max" };

/**
 * Parses a `--cache-from` (`type=local,src=DIR`, `type=registry,ref=REF` or a bare REF) or a
 * `--cache-to` (`dest=` instead of `src=`, and `mode=min|max`) value.
 */
export function parseCacheFlag(value: string, direction: "from" | "to"): CacheSpec {
  const flag = `--cache-${direction}`;
  if (!value.includes("=")) {
    if (value === "") throw new UsageError(`invalid ${flag}: empty`);
    return { type: "registry", ref: value, mode: "min" };
  }
  const fields = new Map<string, string>();
  for (const part of value.split(",")) {
    const i = part.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid ${flag} ${value}: "${part}" is not KEY=VALUE`);
    fields.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1));
  }
  const type = fields.get("type") ?? "registry";
  const mode = fields.get("mode") ?? "min";
  if (mode !== "min" && mode !== "max") {
    throw new UsageError(`invalid ${flag} ${value}: mode must be min or max`);
  }
  const allowed = ["type", "mode", "ignore-error", "compression", "oci-mediatypes"];
  if (type === "local") {
    const key = direction === "from" ? "src" : "dest";
    const dir = fields.get(key);
    if (!dir) throw new UsageError(`invalid ${flag} ${value}: type=local needs ${key}=DIR`);
    for (const k of fields.keys()) {
      if (k !== key && !allowed.includes(k)) {
        throw new UsageError(`invalid ${flag} ${value}: unknown key "${k}"`);
      }
    }
    return { type, dir, mode };
  }
  if (type === "registry") {
    const ref = fields.get("ref");
    if (!ref) throw new UsageError(`invalid ${flag} ${value}: type=registry needs ref=REF`);
    for (const k of fields.keys()) {
      if (k !== "ref" && !allowed.includes(k)) {
        throw new UsageError(`invalid ${flag} ${value}: unknown key "${k}"`);
      }
    }
    return { type, ref, mode };
  }
  throw new UsageError(`invalid ${flag} ${value}: type ${type} is not supported (local, registry)`);
}

/** One step of a build as the cache keeps it. */
export interface CacheRecord {
  readonly key: string;
  readonly state: BuildState;
  /** Index of the stage the step belongs to (mode=min keeps the target's alone). */
  readonly stage: number;
}

/** The cache description (the manifest's config). */
interface CacheConfig {
  readonly records: readonly { readonly key: string; readonly state: BuildState }[];
}

/** A cache failing to read or write, naming where it is. */
export class BuildCacheError extends TsboxError {
  constructor(where: string, detail: string, options?: ErrorOptions) {
    super(`build cache ${where}: ${detail}`, options);
    this.name = "BuildCacheError";
  }
}

/** Where cache blobs and the manifest are written. */
interface CacheSink {
  readonly where: string;
  hasBlob(digest: string): Promise<boolean>;
  putBlob(
    digest: string,
    size: number,
    body: ReadableStream<Uint8Array> | Uint8Array,
  ): Promise<void>;
  putManifest(bytes: Uint8Array): Promise<void>;
}

/** Where cache blobs and the manifest are read from. */
interface CacheSource {
  readonly where: string;
  manifest(): Promise<Uint8Array>;
  /** The blob's bytes; the stream errors at its end when they do not hash to `desc.digest`. */
  blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>>;
  smallBlob(desc: Descriptor): Promise<Uint8Array>;
}

/** Options that reach the registry client. */
export interface CacheIoOptions {
  /** Registries reached over plain HTTP besides loopback. */
  readonly insecure?: readonly string[];
}

function client(options: CacheIoOptions): RegistryClient {
  return new RegistryClient({
    insecure: [...(options.insecure ?? [])],
    userAgent: `tsbox/${VERSION}`,
  });
}

/** A blob path inside an OCI layout, for a digest checked to be one (no `..` can get in). */
function layoutBlobPath(dir: string, digest: string): string {
  const reason = validateDigest(digest);
  if (reason || !digest.startsWith("sha256:")) {
    throw new BuildCacheError(dir, `${reason ?? "not a sha256 digest"}: ${digest}`);
  }
  return join(dir, "blobs", "sha256", digest.slice(7));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Writes `body` to `path` through a temp file, checked against `digest` before the rename. */
async function writeVerified(
  path: string,
  digest: string,
  body: ReadableStream<Uint8Array> | Uint8Array,
): Promise<void> {
  const temp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
    const digesting = new DigestingStream();
    const stream = body instanceof Uint8Array ? ReadableStream.from([body]) : body;
    await stream.pipeThrough(digesting).pipeTo(file.writable);
    if (digesting.digest() !== digest) {
      throw new BuildCacheError(path, `wrote ${digesting.digest()}, expected ${digest}`);
    }
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
}

function localSink(dir: string): CacheSink {
  return {
    where: dir,
    hasBlob: (digest) => exists(layoutBlobPath(dir, digest)),
    async putBlob(digest, _size, body) {
      await Deno.mkdir(join(dir, "blobs", "sha256"), { recursive: true });
      await writeVerified(layoutBlobPath(dir, digest), digest, body);
    },
    async putManifest(bytes) {
      const digest = sha256Digest(bytes);
      await this.putBlob(digest, bytes.length, bytes);
      await Deno.writeTextFile(
        join(dir, "oci-layout"),
        JSON.stringify({ imageLayoutVersion: "1.0.0" }),
      );
      const index = JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{
          mediaType: MediaType.OciManifest,
          digest,
          size: bytes.length,
          annotations: { "org.opencontainers.image.ref.name": "latest" },
        }],
      });
      // The index last, replaced at once: a reader sees the old cache or the new one.
      const temp = join(dir, `.index.${crypto.randomUUID().slice(0, 8)}.tmp`);
      await Deno.writeTextFile(temp, index);
      await Deno.rename(temp, join(dir, "index.json"));
    },
  };
}

function localSource(dir: string): CacheSource {
  const readSmall = async (path: string, what: string): Promise<Uint8Array> => {
    const info = await Deno.stat(path);
    if (info.size > MAX_CONFIG_BYTES) {
      throw new BuildCacheError(dir, `${what} is larger than ${MAX_CONFIG_BYTES} bytes`);
    }
    return await Deno.readFile(path);
  };
  return {
    where: dir,
    async manifest() {
      const index = JSON.parse(
        new TextDecoder().decode(await readSmall(join(dir, "index.json"), "index.json")),
      ) as { manifests?: Descriptor[] };
      const desc = index.manifests?.find((m) => m.mediaType === MediaType.OciManifest);
      if (!desc) throw new BuildCacheError(dir, "index.json names no manifest");
      const bytes = await readSmall(layoutBlobPath(dir, desc.digest), "the manifest");
      if (sha256Digest(bytes) !== desc.digest) {
        throw new BuildCacheError(dir, `manifest ${desc.digest} does not match its digest`);
      }
      return bytes;
    },
    async blob(desc) {
      const file = await Deno.open(layoutBlobPath(dir, desc.digest));
      const digesting = new DigestingStream();
      const check = new TransformStream<Uint8Array, Uint8Array>({
        flush() {
          if (digesting.digest() !== desc.digest) {
            throw new BuildCacheError(dir, `blob ${desc.digest} does not match its digest`);
          }
        },
      });
      return file.readable.pipeThrough(digesting).pipeThrough(check);
    },
    async smallBlob(desc) {
      const bytes = await readSmall(layoutBlobPath(dir, desc.digest), `blob ${desc.digest}`);
      if (sha256Digest(bytes) !== desc.digest) {
        throw new BuildCacheError(dir, `blob ${desc.digest} does not match its digest`);
      }
      return bytes;
    },
  };
}

function registrySink(name: string, options: CacheIoOptions): CacheSink {
  const ref = parseReference(name);
  const c = client(options);
  return {
    where: ref.toString(),
    hasBlob: async (digest) => await c.headBlob(ref, digest) !== undefined,
    async putBlob(digest, size, body) {
      await c.uploadBlob(ref, digest, size, body);
    },
    async putManifest(bytes) {
      await c.putManifest(ref, MediaType.OciManifest, bytes);
    },
  };
}

function registrySource(name: string, options: CacheIoOptions): CacheSource {
  const ref = parseReference(name);
  const c = client(options);
  return {
    where: ref.toString(),
    async manifest() {
      return (await c.getManifest(ref, [MediaType.OciManifest])).bytes;
    },
    async blob(desc) {
      return (await c.fetchBlob(ref, desc.digest, desc.size)).body;
    },
    smallBlob: (desc) => c.fetchSmallBlob(ref, desc, "build cache config"),
  };
}

/** The records a `--cache-to` keeps: every step's (max) or the target stage's alone (min). */
export function recordsFor(
  records: readonly CacheRecord[],
  mode: "min" | "max",
  target: number,
): CacheRecord[] {
  const picked = mode === "max" ? records : records.filter((r) => r.stage === target);
  // One per key (a step seen twice, from two stages waiting on it, is one record).
  return [...new Map(picked.map((r) => [r.key, r])).values()];
}

/**
 * Sends one layer to the sink and returns its descriptor: the stored blob when the store has
 * one (a pulled layer), else the built layer's gzip (compressed here unless the sink has the
 * blob an earlier push or export made of it).
 */
async function sendLayer(store: Store, sink: CacheSink, layer: BuiltLayer): Promise<Descriptor> {
  const annotations = { [UNCOMPRESSED]: layer.diffId };
  if (await store.blobs.has(layer.blobDigest)) {
    const desc = {
      mediaType: ociLayerMediaType(layer.mediaType),
      digest: layer.blobDigest,
      size: layer.blobSize,
      annotations,
    };
    if (!await sink.hasBlob(desc.digest)) {
      const file = await Deno.open(store.blobs.path(desc.digest));
      await sink.putBlob(desc.digest, desc.size, file.readable);
    }
    return desc;
  }
  const known = knownCompressed(store, layer.diffId);
  if (known && await sink.hasBlob(known.digest)) {
    return { mediaType: known.mediaType, digest: known.digest, size: known.size, annotations };
  }
  const file = await compressLayer(store, layer.diffId);
  try {
    await sink.putBlob(file.digest, file.size, (await Deno.open(file.path)).readable);
    return { mediaType: file.mediaType, digest: file.digest, size: file.size, annotations };
  } finally {
    await file.remove();
  }
}

/** Writes `records` (and every layer their states need) to the cache `spec` names. */
export async function exportCache(
  store: Store,
  records: readonly CacheRecord[],
  spec: CacheSpec,
  options: CacheIoOptions = {},
): Promise<void> {
  const sink = spec.type === "local" ? localSink(spec.dir) : registrySink(spec.ref, options);
  if (spec.type === "local") await Deno.mkdir(spec.dir, { recursive: true });
  const layers = new Map<string, BuiltLayer>();
  for (const r of records) for (const l of r.state.layers) layers.set(l.diffId, l);
  const descriptors: Descriptor[] = [];
  try {
    for (const layer of layers.values()) descriptors.push(await sendLayer(store, sink, layer));
    const config: CacheConfig = { records: records.map((r) => ({ key: r.key, state: r.state })) };
    const configBytes = new TextEncoder().encode(JSON.stringify(config));
    const configDesc = {
      mediaType: CACHE_CONFIG_MEDIA_TYPE,
      digest: sha256Digest(configBytes),
      size: configBytes.length,
    };
    if (!await sink.hasBlob(configDesc.digest)) {
      await sink.putBlob(configDesc.digest, configDesc.size, configBytes);
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: configDesc,
      layers: descriptors,
    };
    await sink.putManifest(new TextEncoder().encode(JSON.stringify(manifest)));
  } catch (err) {
    if (err instanceof BuildCacheError) throw err;
    throw new BuildCacheError(sink.where, `export failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Whether a record read from a cache is well formed: its config names exactly its layers. */
function wellFormed(r: unknown): r is { key: string; state: BuildState } {
  const rec = r as { key?: unknown; state?: { configJson?: unknown; layers?: unknown } };
  if (typeof rec?.key !== "string" || !/^sha256:[0-9a-f]{64}$/.test(rec.key)) return false;
  if (typeof rec.state?.configJson !== "string" || !Array.isArray(rec.state.layers)) return false;
  const layers = rec.state.layers as Record<string, unknown>[];
  const digest = (v: unknown) => typeof v === "string" && !validateDigest(v);
  const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  const layerOk = (l: Record<string, unknown>) =>
    digest(l?.diffId) && digest(l.blobDigest) && count(l.size) && count(l.blobSize) &&
    typeof l.mediaType === "string" && typeof l.shortId === "string";
  if (!layers.every(layerOk)) return false;
  try {
    const config = JSON.parse(rec.state.configJson) as ImageConfig;
    const ids = config.rootfs?.diff_ids ?? [];
    return ids.length === layers.length && ids.every((d, i) => d === layers[i].diffId);
  } catch {
    return false;
  }
}

/**
 * Reads the cache `spec` names into the store's build cache: its layers published in the store
 * (each checked against its diffID), its records added where the store has none for the key.
 * Returns how many records were added.
 */
export async function importCache(
  store: Store,
  spec: CacheSpec,
  scratch: string,
  options: CacheIoOptions = {},
): Promise<number> {
  const source = spec.type === "local" ? localSource(spec.dir) : registrySource(spec.ref, options);
  try {
    const manifest = JSON.parse(new TextDecoder().decode(await source.manifest())) as ImageManifest;
    if (manifest.config?.mediaType !== CACHE_CONFIG_MEDIA_TYPE) {
      throw new BuildCacheError(
        source.where,
        `not a tsbox build cache (config type ${manifest.config?.mediaType})`,
      );
    }
    const configBytes = await source.smallBlob(manifest.config);
    const config = JSON.parse(new TextDecoder().decode(configBytes)) as CacheConfig;
    const byDiffId = new Map<string, Descriptor>();
    for (const d of manifest.layers ?? []) {
      const diffId = d.annotations?.[UNCOMPRESSED];
      if (diffId && !validateDigest(diffId)) byDiffId.set(diffId, d);
    }
    const resolved = new Map<string, BuiltLayer>();
    let n = 0;
    const layerFor = async (l: BuiltLayer): Promise<BuiltLayer> => {
      const done = resolved.get(l.diffId);
      if (done) return done;
      let out: BuiltLayer | undefined;
      if (await store.layers.exists(l.diffId)) {
        const shortId = store.layerShortId(l.diffId) ?? l.shortId;
        if (await hasLayerBlob(store, l)) out = { ...l, shortId };
        else {
          const stored = await storedLayerBlob(store, l.diffId);
          if (stored) out = { ...l, ...stored, shortId };
        }
      }
      if (!out) {
        const desc = byDiffId.get(l.diffId);
        if (!desc) throw new BuildCacheError(source.where, `layer ${l.diffId} is not in the cache`);
        const dir = join(scratch, `cache-layer-${++n}`);
        await Deno.mkdir(dir);
        const tar = (await source.blob(desc)).pipeThrough(
          decompressor(layerCompression(desc.mediaType)),
        );
        out = await publishLayerTar(store, tar, dir);
        if (out.diffId !== l.diffId) {
          throw new BuildCacheError(
            source.where,
            `layer ${desc.digest} unpacks to ${out.diffId}, not the ${l.diffId} it claims`,
          );
        }
      }
      resolved.set(l.diffId, out);
      return out;
    };
    let added = 0;
    for (const r of Array.isArray(config.records) ? config.records : []) {
      if (!wellFormed(r)) continue;
      if (await cacheGet(store, r.key)) continue;
      const layers: BuiltLayer[] = [];
      for (const l of r.state.layers) layers.push(await layerFor(l));
      cachePut(store, r.key, { configJson: r.state.configJson, layers });
      added++;
    }
    return added;
  } catch (err) {
    if (err instanceof BuildCacheError) throw err;
    throw new BuildCacheError(source.where, `import failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
