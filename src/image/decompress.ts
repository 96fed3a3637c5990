/**
 * Layer decompression by media type: gzip and zstd through node:zlib (native code), uncompressed
 * as is. node:zlib is loaded only when a compressed layer comes: it costs a start-up about as
 * long as a whole `deno run` of a hello world cold (~15 ms once node:crypto is loaded), and
 * `run` imports this module. gzip goes through node:zlib rather than the web platform's
 * DecompressionStream: it inflates 3-4x as fast here (50 MB of a layer of random files: ~65-150
 * ms against ~250-380 ms), and it inflates concatenated gzip members, which DecompressionStream
 * refuses ("failed to write whole buffer") and Go's gzip reader (podman, containerd, docker)
 * accepts: pull, load, import, save and the builder treat every layer alike.
 *
 * A layer is hostile input: gzip inflates up to ~1000:1, so input is fed in small pieces to
 * keep each output chunk (and the memory it takes) bounded whatever the source's chunk size.
 *
 * @module
 */
import type { Compression } from "../../registry/manifest.ts";

/** Options of {@link decompressor}. */
export interface DecompressOptions {
  /**
   * Sees each decompressed chunk before it is passed on (a digest of the uncompressed stream):
   * for gzip, in the decompressor's own output handler rather than through one more stream
   * between it and its reader.
   */
  tap?: (chunk: Uint8Array) => void;
}

/** A stream that decompresses `compression` (identity for "none"). */
export function decompressor(
  compression: Compression,
  options: DecompressOptions = {},
): ReadableWritablePair<Uint8Array, Uint8Array> {
  const { tap } = options;
  if (compression === "gzip") return nodeGunzip(tap);
  const inner = plainDecompressor(compression);
  if (tap === undefined) return inner;
  const tapping = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      tap(chunk);
      controller.enqueue(chunk);
    },
  });
  return { writable: inner.writable, readable: inner.readable.pipeThrough(tapping) };
}

function plainDecompressor(compression: Compression): ReadableWritablePair<Uint8Array, Uint8Array> {
  switch (compression) {
    case "gzip":
      return nodeGunzip();
    case "zstd":
      return lazyZstd();
    case "none":
      return new TransformStream<Uint8Array, Uint8Array>();
  }
}

/** Input pieces for node:zlib's gunzip: at most ~16 MiB of output per piece, fewer calls. */
const NODE_GZIP_PIECE = 16 * 1024;

/**
 * gzip through node:zlib, loaded on first use. Each input piece is written and its output
 * taken before the next one goes in, and the stream takes no more input while its reader is
 * behind, so what waits in memory stays bounded by one piece's output whatever the ratio.
 * Concatenated members are inflated one after the other, as gzip(1) does.
 */
function nodeGunzip(tap?: (chunk: Uint8Array) => void): TransformStream<Uint8Array, Uint8Array> {
  type Gunzip = ReturnType<typeof import("node:zlib").createGunzip>;
  let gunzip: Gunzip;
  let failed: unknown;
  let out!: TransformStreamDefaultController<Uint8Array>;
  const write = (piece: Uint8Array) =>
    new Promise<void>((resolve, reject) => {
      gunzip.write(piece, (err) => err ? reject(err) : resolve());
    });
  return new TransformStream<Uint8Array, Uint8Array>({
    async start(controller) {
      out = controller;
      const { createGunzip } = await import("node:zlib");
      gunzip = createGunzip({ chunkSize: 64 * 1024 });
      gunzip.on("data", (d: Uint8Array) => {
        tap?.(d);
        out.enqueue(d);
      });
      gunzip.on("error", (err: unknown) => failed ??= err);
    },
    async transform(chunk) {
      for (let off = 0; off < chunk.byteLength && failed === undefined; off += NODE_GZIP_PIECE) {
        await write(chunk.subarray(off, off + NODE_GZIP_PIECE));
      }
      if (failed !== undefined) throw failed;
    },
    async flush() {
      if (failed !== undefined) throw failed;
      await new Promise<void>((resolve, reject) => {
        gunzip.on("end", resolve);
        gunzip.on("error", reject);
        gunzip.end();
      });
    },
    cancel(reason) {
      gunzip?.destroy(reason instanceof Error ? reason : undefined);
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
