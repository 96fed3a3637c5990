/**
 * Writes a stream of small chunks to a file descriptor in few large write(2) calls. A layer's
 * decompressed data arrives in pieces of a few KiB (decompress.ts bounds each piece): writing
 * each one by itself costs a system call and a pass through FFI per piece, on the thread that
 * also decompresses and hashes.
 *
 * @module
 */
import { writeAll } from "../../ffi/fs.ts";

/** Default staging size: large enough that calls are few, small enough to stay in cache. */
const STAGE_BYTES = 1 << 20;

/**
 * A staging buffer for one file at a time. {@link write} keeps bytes until the buffer is full;
 * {@link flush} writes what is kept. After an error, {@link reset} drops what is kept.
 */
export class StagedWriter {
  readonly #buf: Uint8Array;
  #len = 0;

  constructor(size: number = STAGE_BYTES) {
    this.#buf = new Uint8Array(size);
  }

  /** Bytes kept and not yet written. */
  get pending(): number {
    return this.#len;
  }

  /** Appends `chunk` for `fd`; writes when the buffer fills. `chunk` may be reused after. */
  write(fd: number, chunk: Uint8Array): void {
    if (this.#len + chunk.byteLength > this.#buf.byteLength) this.flush(fd);
    if (chunk.byteLength >= this.#buf.byteLength) {
      writeAll(fd, chunk); // as large as a stage: no copy
      return;
    }
    this.#buf.set(chunk, this.#len);
    this.#len += chunk.byteLength;
  }

  /** Writes what is kept to `fd`. */
  flush(fd: number): void {
    if (this.#len === 0) return;
    const len = this.#len;
    this.#len = 0;
    writeAll(fd, this.#buf.subarray(0, len));
  }

  /** Drops what is kept (the file it was for failed or is gone). */
  reset(): void {
    this.#len = 0;
  }
}
