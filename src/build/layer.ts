/**
 * Turning an overlay upper directory (the change set of one build step) into an image layer:
 * an OCI tar of what was added or changed, with whiteouts for what was deleted (0/0 character
 * devices become `.wh.NAME`, `trusted.overlay.opaque=y` directories get `.wh..wh..opq`),
 * gzip-compressed into a blob and unpacked into a layer directory through the store, the same
 * way pull publishes layers.
 *
 * Entries are written in sorted order with their owners and modification times, so the same
 * change set always gives the same diffID and blob digest.
 *
 * @module
 */
import { join } from "node:path";
import { lgetxattr } from "../../ffi/fs.ts";
import { MediaType } from "../../registry/manifest.ts";
import { unpackLayer } from "../image/unpack.ts";
import { tarStream, type TarWriterEntry } from "../image/tar_writer.ts";
import { DigestingStream } from "../store/digest.ts";
import type { LayerRecord, Store } from "../store/mod.ts";

/** A layer made by a build step, as the image records it. */
export type BuiltLayer = Omit<LayerRecord, "dir">;

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

/** A gzip compressor typed for byte chunks. */
function gzip(): TransformStream<Uint8Array, Uint8Array> {
  return new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/** Whether a directory has no entries at all. */
export async function isEmptyDir(dir: string): Promise<boolean> {
  for await (const _ of Deno.readDir(dir)) return false;
  return true;
}

async function sortedNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  // Byte order, as Go's sort of strings: stable across locales.
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function isOpaque(path: string): boolean {
  const v = lgetxattr(path, "trusted.overlay.opaque");
  return v !== null && new TextDecoder().decode(v) === "y";
}

/** The OCI tar entries of an overlay upper directory, parents before children. */
export async function* diffEntries(upper: string, prefix = ""): AsyncGenerator<TarWriterEntry> {
  for (const name of await sortedNames(join(upper, prefix))) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const path = join(upper, rel);
    const info = await Deno.lstat(path);
    const mode = (info.mode ?? 0) & 0o7777;
    const owner = { uid: info.uid ?? 0, gid: info.gid ?? 0 };
    const mtime = Math.floor((info.mtime?.getTime() ?? 0) / 1000);
    const kind = (info.mode ?? 0) & S_IFMT;
    if (kind === S_IFCHR && (info.rdev ?? 0) === 0) {
      const wh = prefix ? `${prefix}/.wh.${name}` : `.wh.${name}`;
      yield { type: "file", name: wh, size: 0, body: new Uint8Array(), mode: 0o644, mtime };
    } else if (info.isDirectory) {
      yield { type: "directory", name: rel, mode, mtime, ...owner };
      if (isOpaque(path)) {
        yield { type: "file", name: `${rel}/.wh..wh..opq`, size: 0, body: new Uint8Array(), mtime };
      }
      yield* diffEntries(upper, rel);
    } else if (info.isSymlink) {
      yield { type: "symlink", name: rel, target: await Deno.readLink(path), mtime, ...owner };
    } else if (info.isFile) {
      const file = await Deno.open(path);
      yield {
        type: "file",
        name: rel,
        size: info.size,
        body: file.readable,
        mode,
        mtime,
        ...owner,
      };
    }
    // Sockets, fifos and device nodes made by a RUN are not carried into images.
  }
}

/**
 * Makes a layer of the change set in `upper` and publishes it in `store` (blob and layer dir);
 * `scratch` is a private temp directory for the intermediate files. An empty change set gives
 * undefined, or an empty layer when `always` is set (RUN, COPY and ADD always add one).
 */
export async function commitLayer(
  store: Store,
  upper: string,
  scratch: string,
  always = false,
): Promise<BuiltLayer | undefined> {
  if (!always && await isEmptyDir(upper)) return undefined;
  return await publishLayer(store, diffEntries(upper), scratch);
}

/**
 * Makes a layer of tar `entries` (an OCI change set, parents before children) and publishes it
 * in `store` as {@link commitLayer} does; `commit` walks a container's upper dir by fd itself.
 */
export function publishLayer(
  store: Store,
  entries: AsyncIterable<TarWriterEntry> | Iterable<TarWriterEntry>,
  scratch: string,
): Promise<BuiltLayer> {
  return publishLayerTar(store, tarStream(entries), scratch);
}

/**
 * Publishes an uncompressed layer tar (`import`'s archive as given) as {@link publishLayer}
 * does: its sha256 is the diffID, its gzip the blob, and it is unpacked with the checks that
 * pulled layers get.
 */
export async function publishLayerTar(
  store: Store,
  tar: ReadableStream<Uint8Array>,
  scratch: string,
): Promise<BuiltLayer> {
  const tarPath = join(scratch, "layer.tar");
  const gzPath = join(scratch, "layer.tar.gz");
  const diff = new DigestingStream();
  const compressed = new DigestingStream();
  const [forTar, forGzip] = tar.pipeThrough(diff).tee();
  await Promise.all([
    forTar.pipeTo((await Deno.create(tarPath)).writable),
    forGzip.pipeThrough(gzip()).pipeThrough(compressed)
      .pipeTo((await Deno.create(gzPath)).writable),
  ]);
  const diffId = diff.digest();
  const blobDigest = compressed.digest();
  try {
    if (!await store.blobs.has(blobDigest)) {
      const blob = await store.blobs.begin(blobDigest, compressed.bytes);
      try {
        for await (const chunk of (await Deno.open(gzPath)).readable) await blob.write(chunk);
        await blob.commit();
      } finally {
        await blob.discard();
      }
    }
    let shortId = store.layerShortId(diffId);
    if (!shortId || !await store.layers.exists(diffId)) {
      shortId ??= store.shortIdFor(diffId);
      const pending = await store.layers.begin(diffId);
      try {
        await unpackLayer((await Deno.open(tarPath)).readable, pending.dir);
        await pending.publish(shortId);
      } finally {
        await pending.discard();
      }
      // Recorded now, so that later pulls and builds reuse the layer under the same short id.
      store.db.run(
        "INSERT OR IGNORE INTO layers (diff_id, short_id, size) VALUES (?, ?, ?)",
        diffId,
        shortId,
        diff.bytes,
      );
    }
    return {
      diffId,
      shortId,
      size: diff.bytes,
      blobDigest,
      mediaType: MediaType.OciLayerGzip,
      blobSize: compressed.bytes,
    };
  } finally {
    await Deno.remove(tarPath).catch(() => {});
    await Deno.remove(gzPath).catch(() => {});
  }
}
