/**
 * Writes a stream of small chunks to a file descriptor in few large write(2) calls, made off
 * the JS thread if asked (ffi/fs.ts writeAllOffThread). A layer's decompressed data arrives in pieces of
 * a few KiB (decompress.ts bounds each piece), a blob's in the registry's chunks: writing each
 * one by itself costs a system call and a pass through FFI per piece, on the thread that also
 * decompresses and hashes.
 *
 * @module
 */
import { writeAll, writeAllOffThread } from "../../ffi/fs.ts";

/** Default staging size: large enough that calls are few, small enough to stay in cache. */
const STAGE_BYTES = 1 << 20;

/**
 * A staging buffer for one file at a time. {@link write} keeps bytes until the buffer is full;
 * {@link flush} writes what is kept. After an error, {@link reset} drops what is kept.
 */
export class StagedWriter {
  readonly #buf: Uint8Array;
  #len = 0;
  readonly #put: (fd: number, data: Uint8Array) => Promise<void>;

  /**
   * `offThread`: each write(2) on one of Deno's blocking threads. That costs about 0.7 ms of
   * the calling thread's time per call here (measured), so it pays only for large writes on a
   * busy thread (a blob's MiB stages on pull's main thread); a worker writes on its own thread.
   */
  constructor(options: { offThread?: boolean; size?: number } = {}) {
    this.#buf = new Uint8Array(options.size ?? STAGE_BYTES);
    this.#put = options.offThread
      ? writeAllOffThread
      : (fd, data) => Promise.resolve(writeAll(fd, data));
  }

  /** Bytes kept and not yet written. */
  get pending(): number {
    return this.#len;
  }

  /** Appends `chunk` for `fd`; writes when the buffer fills. `chunk` may be reused after. */
  async write(fd: number, chunk: Uint8Array): Promise<void> {
    if (this.#len + chunk.byteLength > this.#buf.byteLength) await this.flush(fd);
    if (chunk.byteLength >= this.#buf.byteLength) {
      await this.#put(fd, chunk); // as large as a stage: no copy
      return;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.byteLength;
  }

  /** Writes what is kept to `fd`. */
  async flush(fd: number): Promise<void> {
    if (this.#len === 0) return;
    const len = this.#len;
    this.#len = 0;
    await this.#put(fd, this.#buf.subarray(0, len));
  }

  /** Drops what is kept (the file it was for failed or is gone). */
  reset(): void {
    this.#len = 0;
  }
}
