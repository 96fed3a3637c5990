/**
 * A worker that unpacks one layer for pull (layer_job.ts): compressed chunks in, decompressed,
 * hashed (the diffID) and unpacked into the layer directory with the same code pull runs on its
 * own thread for small layers.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { DigestingStream } from "../store/digest.ts";
import { SpaceGuard } from "../store/space.ts";
import { decompressor } from "./decompress.ts";
import { receiveError, sendError } from "./error_transfer.ts";
import type { FromWorker, ToWorker } from "./layer_job.ts";
import { unpackAll } from "./unpack_stream.ts";

const post = (m: FromWorker) => self.postMessage(m);
let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
// Messages are handled one after another, in order, whatever each waits for.
let queue: Promise<void> = Promise.resolve();

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.type === "start") {
    const space = SpaceGuard.fromShared(m.space);
    const feed = new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 8 });
    const uncompressed = new DigestingStream();
    const tar = feed.readable.pipeThrough(decompressor(m.compression)).pipeThrough(uncompressed);
    writer = feed.writable.getWriter();
    unpackAll(tar, m.dir, (bytes, inodes) => space.reserve(bytes, inodes)).then(
      () => post({ type: "done", digest: uncompressed.digest(), bytes: uncompressed.bytes }),
      (err) => post({ type: "error", error: sendError(err) }),
    );
    return;
  }
  const w = writer!;
  queue = queue.then(async () => {
    if (m.type === "chunks") {
      for (const chunk of m.chunks) {
        await w.ready;
        w.write(chunk).catch(() => {});
      }
      post({ type: "ack" });
    } else if (m.type === "end") {
      await w.close();
    } else {
      await w.abort(receiveError(m.reason));
    }
    // A failed pipeline is reported by unpackAll's rejection; nothing is acknowledged after it.
  }).catch(() => {});
};
