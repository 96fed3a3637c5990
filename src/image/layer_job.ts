/**
 * The unpacking half of a layer's pull: compressed bytes go in as they arrive, and out comes the
 * digest and size of the uncompressed stream (the diffID to check) once the layer directory is
 * filled. A large layer is unpacked in a worker (unpack_worker.ts) when the machine has a
 * processor to spare, so that decompressing, hashing and the unpacker's system calls run beside
 * the download, the blob's hashing and the other layers instead of taking turns on one thread;
 * otherwise, and for a small layer (a worker's start would cost more than it saves), on the
 * calling thread. See {@link wantsWorker}.
 *
 * Both do the same work with the same code (decompress.ts, digest.ts, unpack_stream.ts) and the
 * same free-space floor (one SpaceGuard counter shared across threads); a worker's error comes
 * back as the same class with the same message and fields (error_transfer.ts).
 *
 * @module
 */
import type { Compression } from "../../registry/manifest.ts";
import { createHash } from "node:crypto";
import type { SharedSpace, SpaceGuard } from "../store/space.ts";
import { spareProcessor } from "../store/spare_cpu.ts";
import { decompressor } from "./decompress.ts";
import { receiveError, sendError, type SentError } from "./error_transfer.ts";
import { unpackAll } from "./unpack_stream.ts";

/** The uncompressed stream's digest and size. */
export interface Unpacked {
  readonly digest: string;
  readonly bytes: number;
  /** When the job wrote the compressed blob too: the sha256 and size of what it wrote. */
  readonly blob?: { readonly digest: string; readonly bytes: number };
}

/** A layer being unpacked. */
export interface LayerJob {
  /** Passes on the next compressed bytes; waits while the unpacker is behind. Never throws. */
  write(chunk: Uint8Array): Promise<void>;
  /** No more bytes. Never throws: failures come out of {@link result}. */
  end(): Promise<void>;
  /** Stops the unpack with `reason`; {@link result} then rejects. */
  abort(reason: unknown): Promise<void>;
  /** Settles once nothing writes into the directory (or the blob file) any more. */
  readonly result: Promise<Unpacked>;
  /** Set when {@link result} rejected because writing the blob file failed (not the unpack). */
  readonly blobError?: unknown;
}

/**
 * The layer's tar: `compressed` decompressed, with the digest and size of what came out
 * counted as it comes out (valid once the tar was read to its end).
 */
export function layerTar(
  compressed: ReadableStream<Uint8Array>,
  compression: Compression,
): { tar: ReadableStream<Uint8Array>; unpacked: () => Unpacked } {
  const hash = createHash("sha256");
  let bytes = 0;
  const tap = (chunk: Uint8Array) => {
    hash.update(chunk);
    bytes += chunk.byteLength;
  };
  return {
    tar: compressed.pipeThrough(decompressor(compression, { tap })),
    unpacked: () => ({ digest: `sha256:${hash.digest("hex")}`, bytes }),
  };
}

/** Compressed layers at least this large may be unpacked in a worker. */
export const WORKER_MIN_BYTES = 4 * 1024 * 1024;

/** Whether a layer of `size` compressed bytes goes to a worker (see store/spare_cpu.ts). */
export function wantsWorker(size: number): boolean {
  return size >= WORKER_MIN_BYTES && spareProcessor();
}

/**
 * Starts unpacking a layer into `dir`, in a worker or on the calling thread. In a worker,
 * `blobFile` (an existing, empty file) also gets the compressed bytes, hashed there as they are
 * written, so that the calling thread only receives and hands over: see {@link Unpacked.blob}
 * and PendingBlob.adopt.
 */
export function startLayerJob(
  dir: string,
  compression: Compression,
  space: SpaceGuard,
  inWorker: boolean,
  blobFile?: string,
): LayerJob {
  return inWorker
    ? new WorkerJob(dir, compression, space.share(), blobFile)
    : new ThreadJob(dir, compression, space);
}

/** On the calling thread. */
class ThreadJob implements LayerJob {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly result: Promise<Unpacked>;

  constructor(dir: string, compression: Compression, space: SpaceGuard) {
    const feed = new TransformStream<Uint8Array, Uint8Array>(undefined, { highWaterMark: 8 });
    const { tar, unpacked } = layerTar(feed.readable, compression);
    this.result = unpackAll(tar, dir, (bytes, inodes) => space.reserve(bytes, inodes))
      .then(unpacked);
    this.#writer = feed.writable.getWriter();
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.#writer.ready.catch(() => {});
    this.#writer.write(chunk).catch(() => {});
  }

  async end(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }

  async abort(reason: unknown): Promise<void> {
    await this.#writer.abort(reason).catch(() => {});
  }
}

/** Messages to the worker. */
export type ToWorker =
  | {
    type: "start";
    dir: string;
    compression: Compression;
    space: SharedSpace;
    /** A file to write the compressed bytes to (hashed as they are written). */
    blob?: string;
  }
  | { type: "chunks"; chunks: Uint8Array[] }
  | { type: "end" }
  | { type: "abort"; reason: SentError };

/** Messages from the worker. */
export type FromWorker =
  | { type: "ack" }
  | {
    type: "done";
    digest: string;
    bytes: number;
    blob?: { digest: string; bytes: number };
  }
  /** `blob`: writing the blob file failed, not the unpack. */
  | { type: "error"; error: SentError; blob: boolean };

/**
 * Chunks go to the worker in batches of about this many bytes: one message per registry chunk
 * (often 16 KiB) costs more, on both threads, than the work it hands over.
 */
const BATCH_BYTES = 1 << 20;

/** Batches sent and not yet taken by the worker's pipeline: bounds the memory in between. */
const IN_FLIGHT = 4;

/** In a worker of its own. */
class WorkerJob implements LayerJob {
  readonly #worker: Worker;
  readonly result: Promise<Unpacked>;
  #credit = IN_FLIGHT;
  #batch: Uint8Array[] = [];
  #batchBytes = 0;
  #waiting: (() => void)[] = [];
  #settled = false;
  blobError: unknown;

  constructor(
    dir: string,
    compression: Compression,
    space: SharedSpace,
    blob?: string,
  ) {
    this.#worker = new Worker(new URL("./unpack_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.result = new Promise<Unpacked>((resolve, reject) => {
      this.#worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === "ack") {
          this.#credit++;
          this.#waiting.shift()?.();
        } else if (m.type === "done") {
          this.#finish();
          resolve(
            m.blob === undefined
              ? { digest: m.digest, bytes: m.bytes }
              : { digest: m.digest, bytes: m.bytes, blob: m.blob },
          );
        } else {
          this.#finish();
          const err = receiveError(m.error);
          if (m.blob) this.blobError = err;
          reject(err);
        }
      };
      this.#worker.onerror = (e) => {
        e.preventDefault();
        this.#finish();
        reject(new Error(`layer unpack worker: ${e.message}`));
      };
    });
    this.#post({ type: "start", dir, compression, space, blob });
  }

  /** The worker is done (its unpacker stopped): wake writers, end the thread. */
  #finish(): void {
    this.#settled = true;
    for (const wake of this.#waiting.splice(0)) wake();
    this.#worker.terminate();
  }

  #post(m: ToWorker, transfer: Transferable[] = []): void {
    if (!this.#settled) this.#worker.postMessage(m, transfer);
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#settled) return;
    // Handed over without a copy when the chunk is a whole buffer of its own (fetch's are).
    const whole = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength &&
      chunk.buffer instanceof ArrayBuffer && !(chunk.buffer as ArrayBuffer).detached;
    this.#batch.push(whole ? chunk : chunk.slice());
    this.#batchBytes += chunk.byteLength;
    if (this.#batchBytes >= BATCH_BYTES) await this.#send();
  }

  /** Posts the chunks kept, once the worker has room for them. */
  async #send(): Promise<void> {
    while (this.#credit === 0 && !this.#settled) {
      await new Promise<void>((wake) => this.#waiting.push(wake));
    }
    const chunks = this.#batch.splice(0);
    this.#batchBytes = 0;
    if (this.#settled || chunks.length === 0) return;
    this.#credit--;
    this.#post({ type: "chunks", chunks }, chunks.map((c) => c.buffer as ArrayBuffer));
  }

  async end(): Promise<void> {
    await this.#send();
    this.#post({ type: "end" });
  }

  abort(reason: unknown): Promise<void> {
    this.#post({ type: "abort", reason: sendError(reason) });
    return Promise.resolve();
  }
}
