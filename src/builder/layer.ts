/**
 * Turning an overlay upper directory (the change set of one build step) into an image layer:
 * the OCI tar of what was added or changed (hard links, fifos, device nodes and xattrs kept, as
 * docker's layers keep them), with whiteouts for what was deleted (0/0 character devices become
 * `.wh.NAME`, `trusted.overlay.opaque=y` directories get `.wh..wh..opq`).
 *
 * The layer is stored once, uncompressed, as podman and docker store built layers: the tar is
 * only hashed (its sha256 is the diffID) and the upper directory itself, already in the form
 * of an overlay lower, is renamed into the store as the layer's directory. No blob is written;
 * the image's manifest names the uncompressed tar (digest = diffID), and push or save make the
 * tar again from the directory (layer_blob.ts), checked against the diffID as it streams.
 *
 * Entries are written in sorted order with their owners and modification times, so the same
 * change set always gives the same diffID.
 *
 * @module
 */
import { join } from "node:path";
import { MediaType } from "../../registry/manifest.ts";
import { diffEntries } from "../image/dir_tar.ts";
import { unpackLayer } from "../image/unpack.ts";
import { tarDigest, tarStream, type TarWriterEntry } from "../image/tar_writer.ts";
import { DigestingStream } from "../store/digest.ts";
import type { LayerRecord, Store } from "../store/mod.ts";

export { diffEntries };

/** A layer made by a build step, as the image records it. */
export type BuiltLayer = Omit<LayerRecord, "dir">;

/** A gzip compressor typed for byte chunks. */
function gzip(): TransformStream<Uint8Array, Uint8Array> {
  return new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
}

/** Whether a directory has no entries at all. */
export async function isEmptyDir(dir: string): Promise<boolean> {
  for await (const _ of Deno.readDir(dir)) return false;
  return true;
}

/**
 * Makes a layer of the change set in `upper` and publishes it in `store`: the tar is hashed
 * for the diffID and `upper` becomes the layer's directory (moved: an unmounted upper dir the
 * caller no longer needs). An empty change set gives undefined, or an empty layer when `always`
 * is set (RUN, COPY and ADD always add one).
 */
export async function commitLayer(
  store: Store,
  upper: string,
  always = false,
): Promise<BuiltLayer | undefined> {
  if (!always && await isEmptyDir(upper)) return undefined;
  // Hashed only (nothing written), through one read buffer: memory stays flat over any size.
  const diff = await tarDigest(
    diffEntries(upper, { scrub: true, sharedBuffer: new Uint8Array(1 << 20) }),
  );
  const diffId = diff.digest;
  let shortId = store.layerShortId(diffId);
  if (!shortId || !await store.layers.exists(diffId)) {
    shortId ??= store.shortIdFor(diffId);
    const pending = await store.layers.begin(diffId);
    try {
      await moveInto(upper, pending.dir);
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
    blobDigest: diffId,
    mediaType: MediaType.OciLayer,
    blobSize: diff.bytes,
  };
}

/**
 * Makes `dir` (an empty pending layer dir) hold what `upper` holds: by renaming `upper` over it
 * (no file data moves), or, where they are on different filesystems, by unpacking the tar of
 * `upper` into it. The root keeps the layer root's 0755 root:root whatever the step did to `/`
 * (the root is no entry of the tar).
 */
async function moveInto(upper: string, dir: string): Promise<void> {
  try {
    await Deno.rename(upper, dir);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotSupported) && !isCrossDevice(err)) throw err;
    await unpackLayer(tarStream(diffEntries(upper)), dir);
  }
  await Deno.chmod(dir, 0o755);
  if (Deno.uid() === 0) await Deno.chown(dir, 0, 0);
}

function isCrossDevice(err: unknown): boolean {
  return err instanceof Error && /EXDEV|cross-device/i.test(err.message);
}

/**
 * Makes a layer of tar `entries` (an OCI change set, parents before children) and publishes it
 * in `store` with a gzip blob and a copy unpacked from the tar (`commit` walks a container's
 * upper dir by fd itself, and that dir stays the container's: it cannot become the layer as a
 * build step's upper does in {@link commitLayer}).
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
  // Both files exist before either pipe starts: a pipe that fails while the other file is
  // still being created would reject with no handler yet (an uncaught error, not this one's).
  const tarFile = await Deno.create(tarPath);
  const gzFile = await Deno.create(gzPath);
  const [forTar, forGzip] = tar.pipeThrough(diff).tee();
  await Promise.all([
    forTar.pipeTo(tarFile.writable),
    forGzip.pipeThrough(gzip()).pipeThrough(compressed).pipeTo(gzFile.writable),
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
