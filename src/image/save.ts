/**
 * `save`: images as a docker-archive tar (what `docker save` and `skopeo copy ...
 * docker-archive:` write) or an OCI image layout tar (`oci-archive:`).
 *
 * docker-archive: `manifest.json` (Config, RepoTags, Layers per image), `repositories`, the
 * config as `<hex>.json`, each layer as its uncompressed tar `<diffID hex>.tar`: the stored blob
 * decompressed, whose sha256 is checked against the diffID on the way out.
 *
 * OCI layout: `oci-layout`, `index.json` with a descriptor per tag (annotated with
 * `org.opencontainers.image.ref.name`), and under `blobs/sha256/` the layers as the manifest
 * names them (compressed as pulled; a built layer as its uncompressed tar, as docker saves it),
 * the config and the manifest, which is the pulled one whenever it is an OCI manifest of exactly
 * these blobs, so the digests stay those of the registry.
 *
 * @module
 */
import { dirname, join } from "node:path";
import {
  type Descriptor,
  type ImageManifest,
  layerCompression,
  layersMatchSchema,
  MediaType,
  ociLayerMediaType,
} from "../../registry/manifest.ts";
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  type Platform,
} from "../../registry/platform.ts";
import { parseReference } from "../../registry/reference.ts";
import { TsboxError } from "../errors.ts";
import { digestHex, DigestingStream, DigestMismatchError, sha256Digest } from "../store/digest.ts";
import type { ImageRecord, LayerRecord, Store } from "../store/mod.ts";
import { decompressor } from "./decompress.ts";
import { familiar, requireImage } from "./images.ts";
import { hasLayerBlob, isDirBlob, layerBlobBytes, layerDirTar } from "./layer_blob.ts";
import { tarStream, type TarWriterEntry } from "./tar_writer.ts";

/** Archive formats `save` writes and `load` reads. */
export type ArchiveFormat = "docker" | "oci";

/** Options of {@link saveImages}. */
export interface SaveOptions {
  /** `docker` (default) or `oci`. */
  readonly format?: ArchiveFormat;
  /**
   * `--platform a,b` (docker 28+): the variants of a multi-platform image to save. Without it
   * a multi-platform image is saved as its host variant, as docker's classic store saves it.
   */
  readonly platforms?: readonly Platform[];
}

/** An image to save with the tags it is saved under. */
interface Selected {
  image: ImageRecord;
  /** Full references (`docker.io/library/busybox:latest`). */
  tags: string[];
  /**
   * Several variants of an image index chosen by `--platform` (`image` among them): an OCI
   * archive names them by one index under the tags; a docker archive lists each, the tags on
   * `image`'s entry.
   */
  variants?: ImageRecord[];
}

/** The platform an image's config states. */
function platformOf(image: ImageRecord): Platform {
  const c = image.config as { os?: string; architecture?: string; variant?: string };
  return normalizePlatform({
    os: c.os ?? "linux",
    architecture: c.architecture ?? "amd64",
    variant: c.variant,
  });
}

function matches(wanted: Platform, have: Platform): boolean {
  const w = normalizePlatform(wanted);
  return w.os === have.os && w.architecture === have.architecture &&
    (w.variant === undefined || have.variant === undefined || w.variant === have.variant);
}

/**
 * Resolves `names` (references or ids) and returns the archive as a stream. Every name is
 * resolved before the first byte is produced, so an unknown image fails cleanly.
 */
export function saveImages(
  store: Store,
  names: readonly string[],
  options: SaveOptions = {},
): ReadableStream<Uint8Array> {
  if (names.length === 0) throw new TsboxError("save needs at least one image");
  const selected = select(store, names, options.platforms);
  return tarStream(
    options.format === "oci"
      ? ociEntries(store, selected)
      : dockerEntries(store, flatten(selected)),
  );
}

/**
 * Writes the archive to `path` through a temp file beside it, renamed into place only once
 * complete: a failed save leaves no partial archive behind.
 */
export async function saveImagesToFile(
  store: Store,
  names: readonly string[],
  path: string,
  options: SaveOptions = {},
): Promise<void> {
  const stream = saveImages(store, names, options);
  const temp = join(dirname(path), `.${crypto.randomUUID().slice(0, 8)}.tsbox-save.tmp`);
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o644 });
    await stream.pipeTo(file.writable);
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
}

function select(
  store: Store,
  names: readonly string[],
  platforms?: readonly Platform[],
): Selected[] {
  const out: Selected[] = [];
  for (const name of names) {
    const named = requireImage(store, name);
    let image = named;
    // A name that is one of the image's tags is saved as that tag; an id saves no tag, as docker.
    let full: string | undefined;
    try {
      const ref = parseReference(name);
      if (!ref.digest) full = ref.toString();
    } catch {
      full = undefined;
    }
    let variants: ImageRecord[] | undefined;
    if (platforms && platforms.length > 0) {
      variants = choose(store, name, full, image, platforms);
      // The tags go on the host's variant (or the first), as the index's tag points at it.
      image = variants.find((v) => matches(hostPlatform(), platformOf(v))) ?? variants[0];
      if (variants.length === 1) variants = undefined;
    }
    let entry = variants ? undefined : out.find((s) => !s.variants && s.image.id === image.id);
    if (!entry) out.push(entry = { image, tags: [], variants });
    if (full && named.tags.includes(full) && !entry.tags.includes(full)) entry.tags.push(full);
  }
  return out;
}

/**
 * The images `--platform` chooses for `name`: variants of the image index recorded under it
 * (a multi-platform build's), or the image itself when it is of a platform asked for; any
 * platform asked for that the image does not have is refused by name, as docker refuses it.
 */
function choose(
  store: Store,
  name: string,
  full: string | undefined,
  image: ImageRecord,
  platforms: readonly Platform[],
): ImageRecord[] {
  const entries = full ? store.indexOf(full) : [];
  const candidates = entries.length > 0
    ? entries.map((e) => store.getImage(e.imageId)).filter((i): i is ImageRecord => !!i)
    : [image];
  const chosen: ImageRecord[] = [];
  for (const p of platforms) {
    const found = candidates.find((c) => matches(p, platformOf(c)));
    if (!found) {
      const have = candidates.map((c) => formatPlatform(platformOf(c))).join(", ");
      throw new TsboxError(
        `image ${name} has no variant for ${formatPlatform(normalizePlatform(p))} (it has ${have})`,
      );
    }
    if (!chosen.includes(found)) chosen.push(found);
  }
  return chosen;
}

/** Each variant of an entry as an entry of its own, the tags on the chosen one's. */
function flatten(selected: Selected[]): Selected[] {
  return selected.flatMap((s) =>
    s.variants ? s.variants.map((v) => ({ image: v, tags: v === s.image ? s.tags : [] })) : [s]
  );
}

/** The layer's uncompressed tar, checked against its diffID and size as it streams. */
async function* layerTar(store: Store, layer: LayerRecord): AsyncGenerator<Uint8Array> {
  // A built layer keeps no blob: its tar is made from its directory (layer_blob.ts).
  if (isDirBlob(layer) && !await store.blobs.has(layer.blobDigest)) {
    yield* layerDirTar(store, layer.diffId);
    return;
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(store.blobs.path(layer.blobDigest));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new TsboxError(
        `layer ${layer.diffId}: its blob ${layer.blobDigest} is missing from the store; pull the image again`,
      );
    }
    throw err;
  }
  const digesting = new DigestingStream();
  const stream = file.readable
    .pipeThrough(decompressor(layerCompression(layer.mediaType)))
    .pipeThrough(digesting);
  yield* stream;
  const actual = digesting.digest();
  if (actual !== layer.diffId) {
    throw new DigestMismatchError(`layer ${layer.diffId}`, layer.diffId, actual);
  }
}

const encoder = new TextEncoder();

function jsonFile(name: string, value: unknown): TarWriterEntry {
  const body = encoder.encode(JSON.stringify(value));
  return { type: "file", name, size: body.length, body };
}

function bytesFile(name: string, body: Uint8Array): TarWriterEntry {
  return { type: "file", name, size: body.length, body };
}

function* dockerEntries(store: Store, selected: Selected[]): Generator<TarWriterEntry> {
  const written = new Set<string>();
  const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const { image, tags } of selected) {
    const configName = `${digestHex(image.id)}.json`;
    if (!written.has(configName)) {
      written.add(configName);
      yield bytesFile(configName, encoder.encode(image.configJson));
    }
    const layerNames: string[] = [];
    for (const layer of image.layers) {
      const name = `${digestHex(layer.diffId)}.tar`;
      layerNames.push(name);
      if (written.has(name)) continue;
      written.add(name);
      yield { type: "file", name, size: layer.size, body: layerTar(store, layer) };
    }
    manifest.push({ Config: configName, RepoTags: tags.map(familiar), Layers: layerNames });
    const top = image.layers.at(-1);
    for (const t of tags) {
      const ref = parseReference(t);
      const repo = familiar(t).slice(0, -(`:${ref.tag}`.length));
      (repositories[repo] ??= {})[ref.tag!] = top ? digestHex(top.diffId) : "";
    }
  }
  yield jsonFile("manifest.json", manifest);
  if (Object.keys(repositories).length > 0) yield jsonFile("repositories", repositories);
}

/** The image's manifest as an OCI manifest: the stored bytes when they qualify, else rebuilt. */
async function ociManifest(
  store: Store,
  image: ImageRecord,
): Promise<{ bytes: Uint8Array; descriptor: Descriptor }> {
  const layersMatch = (m: ImageManifest) =>
    m.config?.digest === image.id && m.layers?.length === image.layers.length &&
    m.layers.every((l, i) => l.digest === image.layers[i].blobDigest) && layersMatchSchema(m);
  if (
    image.manifestMediaType === MediaType.OciManifest && await store.blobs.has(image.manifestDigest)
  ) {
    const bytes = await store.blobs.read(image.manifestDigest);
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as ImageManifest;
    if (layersMatch(parsed)) {
      return {
        bytes,
        descriptor: {
          mediaType: MediaType.OciManifest,
          digest: image.manifestDigest,
          size: bytes.length,
        },
      };
    }
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: {
      mediaType: MediaType.OciConfig,
      digest: image.id,
      size: encoder.encode(image.configJson).length,
    },
    layers: image.layers.map((l) => ({
      mediaType: ociLayerMediaType(l.mediaType),
      digest: l.blobDigest,
      size: l.blobSize,
    })),
  };
  const bytes = encoder.encode(JSON.stringify(manifest));
  return {
    bytes,
    descriptor: {
      mediaType: MediaType.OciManifest,
      digest: sha256Digest(bytes),
      size: bytes.length,
    },
  };
}

/**
 * One image's blobs (layers, config, manifest) not yet in `written`; returns its manifest's
 * descriptor.
 */
async function* ociImage(
  store: Store,
  image: ImageRecord,
  written: Set<string>,
): AsyncGenerator<TarWriterEntry, Descriptor> {
  for (const layer of image.layers) {
    if (written.has(layer.blobDigest)) continue;
    written.add(layer.blobDigest);
    if (!await hasLayerBlob(store, layer)) {
      throw new TsboxError(
        `layer ${layer.diffId}: its blob ${layer.blobDigest} is missing from the store; pull the image again`,
      );
    }
    yield {
      type: "file",
      name: blobName(layer.blobDigest),
      size: layer.blobSize,
      body: layerBlobBytes(store, layer),
    };
  }
  if (!written.has(image.id)) {
    written.add(image.id);
    yield bytesFile(blobName(image.id), encoder.encode(image.configJson));
  }
  const { bytes, descriptor } = await ociManifest(store, image);
  if (!written.has(descriptor.digest)) {
    written.add(descriptor.digest);
    yield bytesFile(blobName(descriptor.digest), bytes);
  }
  return descriptor;
}

const blobName = (digest: string) => `blobs/sha256/${digestHex(digest)}`;

async function* ociEntries(store: Store, selected: Selected[]): AsyncGenerator<TarWriterEntry> {
  yield jsonFile("oci-layout", { imageLayoutVersion: "1.0.0" });
  yield { type: "directory", name: "blobs" };
  yield { type: "directory", name: "blobs/sha256" };
  const written = new Set<string>();
  const index: Descriptor[] = [];
  for (const { image, tags, variants } of selected) {
    let descriptor: Descriptor;
    if (variants) {
      // Several platforms: an OCI index of each one's manifest, as push sends it.
      const manifests: Descriptor[] = [];
      for (const v of variants) {
        const d = yield* ociImage(store, v, written);
        const p = platformOf(v);
        manifests.push({
          ...d,
          platform: {
            os: p.os,
            architecture: p.architecture,
            ...(p.variant ? { variant: p.variant } : {}),
          },
        });
      }
      const bytes = encoder.encode(
        JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }),
      );
      descriptor = {
        mediaType: MediaType.OciIndex,
        digest: sha256Digest(bytes),
        size: bytes.length,
      };
      if (!written.has(descriptor.digest)) {
        written.add(descriptor.digest);
        yield bytesFile(blobName(descriptor.digest), bytes);
      }
    } else {
      descriptor = yield* ociImage(store, image, written);
    }
    if (tags.length === 0) index.push(descriptor);
    for (const t of tags) {
      const ref = parseReference(t);
      index.push({
        ...descriptor,
        annotations: {
          "io.containerd.image.name": ref.toString(),
          "org.opencontainers.image.ref.name": ref.tag!,
        },
      });
    }
  }
  yield jsonFile("index.json", {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: index,
  });
}
