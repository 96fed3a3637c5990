/**
 * Layer decompression by media type: gzip through the web platform's DecompressionStream, zstd
 * through node:zlib (both native code), uncompressed as is.
 *
 * @module
 */
import { Duplex } from "node:stream";
import { createZstdDecompress } from "node:zlib";

import type { Compression } from "../../registry/manifest.ts";

/** A stream that decompresses `compression` (identity for "none"). */
export function decompressor(
  compression: Compression,
): ReadableWritablePair<Uint8Array, Uint8Array> {
  switch (compression) {
    case "gzip":
      return new DecompressionStream("gzip") as ReadableWritablePair<Uint8Array, Uint8Array>;
    case "zstd":
      return Duplex.toWeb(createZstdDecompress()) as unknown as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >;
    case "none":
      return new TransformStream<Uint8Array, Uint8Array>();
  }
}
