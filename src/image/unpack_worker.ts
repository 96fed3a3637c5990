/**
 * A worker that unpacks one layer for pull (layer_job.ts): compressed chunks in, written to the
 * blob's temp file and hashed (the blob's digest) when pull asks for it, then decompressed,
 * hashed (the diffID) and unpacked into the layer directory with the same code pull runs on its
 * own thread for small layers. Pull's thread then does nothing per byte but receive it from the
 * registry and hand it over.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { createHash, type Hash } from "node:crypto";
import {
  AT_FDCWD,
  close,
  O_CLOEXEC,
  O_NOFOLLOW,
  O_TRUNC,
  O_WRONLY,
  openat,
  writeAll,
} from "../../ffi/fs.ts";
import { SpaceGuard } from "../store/space.ts";
import { receiveError, sendError } from "./error_transfer.ts";
import { type FromWorker, layerTar, type ToWorker } from "./layer_job.ts";
import { unpackAll } from "./unpack_stream.ts";

const post = (m: FromWorker) => self.postMessage(m);
let writer: WritableStreamDefaultWriter<Uint8Array> | undefined;
// Messages are handled one after another, in order, whatever each waits for.
let queue: Promise<void> = Promise.resolve();

/** The blob's temp file while it is being written. */
let blob: { fd: number; hash: Hash; bytes: number } | undefined;
/** Why writing the blob failed: reported instead of the unpack error it then causes. */
let blobFailure: unknown;

/** Closes the blob file; returns its digest and size, or the error closing it gave. */
function closeBlob(): { digest: string; bytes: number } | undefined {
  if (blob === undefined) return undefined;
  const b = blob;
  blob = undefined;
  close(b.fd);
  return { digest: `sha256:${b.hash.digest("hex")}`, bytes: b.bytes };
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const m = e.data;
  if (m.type === "start") {
    const space = SpaceGuard.fromShared(m.space);
    const feed = new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 8 });
    const { tar, unpacked } = layerTar(feed.readable, m.compression);
    writer = feed.writable.getWriter();
    if (m.blob !== undefined) {
      try {
        // Made empty by the store just before; O_NOFOLLOW: never through a link put there.
        const fd = openat(AT_FDCWD, m.blob, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
        blob = { fd, hash: createHash("sha256"), bytes: 0 };
      } catch (err) {
        blobFailure = err;
        writer.abort(err).catch(() => {});
      }
    }
    unpackAll(tar, m.dir, (bytes, inodes) => space.reserve(bytes, inodes)).then(
      () => {
        let written;
        try {
          written = closeBlob();
        } catch (err) {
          post({ type: "error", error: sendError(err), blob: true });
          return;
        }
        post({
          type: "done",
          ...unpacked(),
          blob: written,
        });
      },
      (err) => {
        try {
          closeBlob();
        } catch { /* the error that stopped the unpack is the one to report */ }
        const failed = blobFailure ?? err;
        post({ type: "error", error: sendError(failed), blob: blobFailure !== undefined });
      },
    );
    return;
  }
  const w = writer!;
  queue = queue.then(async () => {
    if (m.type === "chunks") {
      for (const chunk of m.chunks) {
        if (blob !== undefined) {
          try {
            blob.hash.update(chunk);
            writeAll(blob.fd, chunk);
            blob.bytes += chunk.byteLength;
          } catch (err) {
            blobFailure = err;
            await w.abort(err);
            return;
          }
        }
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
