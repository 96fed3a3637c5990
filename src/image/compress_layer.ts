/**
 * Compression of built layers, done when they leave the store rather than when they are built
 * (as podman and docker do): a push compresses a built layer's tar (made from its directory)
 * with gzip into a temp file, and the store keeps the compressed digest and size by diffID, so
 * that the next push first asks the registry for that digest and compresses nothing when the
 * registry has it. The compressed bytes themselves are not kept: the store holds each built
 * layer once.
 *
 * @module
 */
import { dirname } from "node:path";
import { MediaType } from "../../registry/manifest.ts";
import { DigestingStream } from "../store/digest.ts";
import type { Store } from "../store/mod.ts";
import { ownedTempPrefix } from "../store/owner.ts";
import { layerDirTar } from "./layer_blob.ts";

/** A built layer's gzip blob, as a manifest names it. */
export interface CompressedLayer {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
}

/** A compressed layer written to a temp file: upload it, then `remove()` it. */
export interface CompressedFile extends CompressedLayer {
  readonly path: string;
  remove(): Promise<void>;
}

// Kept outside the schema migrations: a cache of derived facts, made on first use, whose loss
// costs only a compression.
const TABLE = `CREATE TABLE IF NOT EXISTS layer_compressed (
  diff_id TEXT PRIMARY KEY,   -- the built layer (uncompressed tar)
  digest  TEXT NOT NULL,      -- sha256 of its gzip blob as last pushed
  size    INTEGER NOT NULL    -- that blob's size in bytes
)`;

/** The gzip blob a push made of layer `diffId` before, if any. */
export function knownCompressed(store: Store, diffId: string): CompressedLayer | undefined {
  store.db.run(TABLE);
  const row = store.db.get<{ digest: string; size: number }>(
    "SELECT digest, size FROM layer_compressed WHERE diff_id = ?",
    diffId,
  );
  return row && { digest: row.digest, size: row.size, mediaType: MediaType.OciLayerGzip };
}

/**
 * Compresses the built layer `diffId` (its tar made from its directory, checked against the
 * diffID) into a temp file beside the store's blobs, and records the digest for later pushes.
 */
export async function compressLayer(store: Store, diffId: string): Promise<CompressedFile> {
  const path = await Deno.makeTempFile({
    dir: dirname(store.blobs.path(diffId)),
    prefix: ownedTempPrefix(),
  });
  const remove = () => Deno.remove(path).catch(() => {});
  try {
    const digesting = new DigestingStream();
    const gzip = new CompressionStream("gzip") as unknown as TransformStream<
      Uint8Array,
      Uint8Array
    >;
    const file = await Deno.open(path, { write: true, truncate: true });
    await ReadableStream.from(layerDirTar(store, diffId)).pipeThrough(gzip)
      .pipeThrough(digesting).pipeTo(file.writable);
    const digest = digesting.digest();
    store.db.run(TABLE);
    store.db.run(
      "INSERT OR REPLACE INTO layer_compressed (diff_id, digest, size) VALUES (?, ?, ?)",
      diffId,
      digest,
      digesting.bytes,
    );
    return { path, digest, size: digesting.bytes, mediaType: MediaType.OciLayerGzip, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
