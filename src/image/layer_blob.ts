/**
 * A layer's blob as its image's manifest names it, whether the store keeps it as a file
 * (pulled, loaded) or not: a built layer is stored once, as its directory, and its manifest
 * names its uncompressed tar (digest = diffID), which is made again from the directory when
 * pushed or saved. Either way the bytes are checked against their digest as they stream, so a
 * damaged store never exports what its manifest does not say.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { DigestingStream, DigestMismatchError } from "../store/digest.ts";
import type { Store } from "../store/mod.ts";
import { diffEntries } from "./dir_tar.ts";
import { tarStream } from "./tar_writer.ts";

/** What names a layer's blob. */
export interface LayerBlobRef {
  readonly diffId: string;
  readonly blobDigest: string;
}

/**
 * Whether the layer's blob is its own uncompressed tar: the store may then have no file for
 * it, and makes it from the layer's directory.
 */
export function isDirBlob(layer: LayerBlobRef): boolean {
  return layer.blobDigest === layer.diffId;
}

/** Whether the store can give the layer's blob: its file, or for a dir blob the layer's dir. */
export async function hasLayerBlob(store: Store, layer: LayerBlobRef): Promise<boolean> {
  if (await store.blobs.has(layer.blobDigest)) return true;
  return isDirBlob(layer) && await store.layers.exists(layer.diffId);
}

/**
 * The layer's uncompressed tar made from its directory; the sha256 of what streamed is checked
 * against the diffID at the end (a {@link DigestMismatchError} then, before the stream ends).
 */
export async function* layerDirTar(store: Store, diffId: string): AsyncGenerator<Uint8Array> {
  if (!await store.layers.exists(diffId)) {
    throw new TsboxError(`layer ${diffId}: its directory is missing from the store`);
  }
  const digesting = new DigestingStream();
  yield* tarStream(diffEntries(store.layers.dir(diffId))).pipeThrough(digesting);
  const actual = digesting.digest();
  if (actual !== diffId) throw new DigestMismatchError(`layer ${diffId}`, diffId, actual);
}

/**
 * The bytes of the layer's blob: the stored file when there is one, else (a dir blob) the tar
 * made from the layer's directory. Re-hashed on the way out either way.
 */
export async function* layerBlobBytes(
  store: Store,
  layer: LayerBlobRef,
): AsyncGenerator<Uint8Array> {
  if (!await store.blobs.has(layer.blobDigest)) {
    if (isDirBlob(layer)) {
      yield* layerDirTar(store, layer.diffId);
      return;
    }
    throw new TsboxError(
      `layer ${layer.diffId}: its blob ${layer.blobDigest} is missing from the store; pull the image again`,
    );
  }
  const digesting = new DigestingStream();
  yield* (await Deno.open(store.blobs.path(layer.blobDigest))).readable.pipeThrough(digesting);
  const actual = digesting.digest();
  if (actual !== layer.blobDigest) {
    throw new DigestMismatchError(`blob ${layer.blobDigest}`, layer.blobDigest, actual);
  }
}
