/**
 * Layer decompression by media type: gzip through the web platform's DecompressionStream, zstd
 * through node:zlib (both native code), uncompressed as is. node:zlib and node:stream are loaded
 * only when a zstd layer comes: each costs a start-up about as long as a whole `deno run` of a
 * hello world (design.md), and `run` and `pull` import this module.
 *
 * A layer is hostile input: gzip inflates up to ~1000:1 and DecompressionStream returns the
 * whole output of an input chunk at once, so input is fed in small pieces to keep each output
 * chunk (and the memory it takes) bounded whatever the registry's chunk size.
 *
 * @module
 */
import type { Compression } from "../../registry/manifest.ts";

/** A stream that decompresses `compression` (identity for "none"). */
export function decompressor(
  compression: Compression,
): ReadableWritablePair<Uint8Array, Uint8Array> {
  switch (compression) {
    case "gzip": {
      const split = splitter(GZIP_INPUT_PIECE);
      const inflate = new DecompressionStream("gzip") as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >;
      return { writable: split.writable, readable: split.readable.pipeThrough(inflate) };
    }
    case "zstd":
      return lazyZstd();
    case "none":
      return new TransformStream<Uint8Array, Uint8Array>();
  }
}

/** At most ~8 MiB of output per piece at gzip's maximum ratio. */
const GZIP_INPUT_PIECE = 8 * 1024;

/** A stream that passes its input on in pieces of at most `max` bytes. */
function splitter(max: number): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      for (let off = 0; off < chunk.byteLength; off += max) {
        controller.enqueue(chunk.subarray(off, off + max));
      }
    },
  });
}

/**
 * zstd through node:zlib, loaded on first use: input and output are streams of their own, joined
 * to the decompressor once it is loaded. Errors and cancellation pass through the pipes both
 * ways, as through the decompressor itself.
 */
function lazyZstd(): ReadableWritablePair<Uint8Array, Uint8Array> {
  const input = new TransformStream<Uint8Array, Uint8Array>();
  const output = new TransformStream<Uint8Array, Uint8Array>();
  (async () => {
    const [{ Duplex }, { createZstdDecompress }] = await Promise.all([
      import("node:stream"),
      import("node:zlib"),
    ]);
    const zstd = Duplex.toWeb(createZstdDecompress()) as unknown as ReadableWritablePair<
      Uint8Array,
      Uint8Array
    >;
    await input.readable.pipeThrough(zstd).pipeTo(output.writable);
  })().catch(async (err) => {
    // Already passed on by the pipes, unless loading failed: then fail both ends with it.
    await input.readable.cancel(err).catch(() => {});
    await output.writable.abort(err).catch(() => {});
  });
  return { writable: input.writable, readable: output.readable };
}
