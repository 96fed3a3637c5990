/**
 * Content-addressed blobs under `<root>/blobs/sha256/<hex>`. A blob is written to a temporary
 * file while its digest is computed and becomes visible under its name only by an atomic rename
 * after verification, so a partial or corrupt blob is never found under a digest.
 *
 * @module
 */
import { join } from "../path.ts";
import { digestHex, DigestMismatchError } from "./digest_format.ts";
import { ownedTempPrefix } from "./owner.ts";
import { holdPublishLock } from "./publish_lock.ts";

/** A blob being written: `write()` its bytes in order, then `commit()` or `discard()`. */
export interface PendingBlob {
  /**
   * Appends bytes to the temp file and the running digest; throws {@link DigestMismatchError}
   * (writing nothing) when they would go past the size given to `begin`.
   */
  write(chunk: Uint8Array): Promise<void>;
  /** Bytes written so far (in {@link BeginOptions.external} mode: counted, not written). */
  readonly bytes: number;
  /** The temp file, which another thread writes in {@link BeginOptions.external} mode. */
  readonly temp: string;
  /**
   * In {@link BeginOptions.external} mode: the sha256 digest and size of what the other thread
   * wrote to {@link temp}, as it computed them over those very bytes; {@link verify} and
   * {@link commit} check these against the digest and size given to `begin`.
   */
  adopt(actual: string, bytes: number): void;
  /** Verifies digest (and size when given) once the stream ended; renames into place. */
  commit(): Promise<void>;
  /** Checks the digest without publishing; throws {@link DigestMismatchError}. */
  verify(): void;
  /**
   * Removes the temp file (nothing after commit) and lets go of the publish lock this writer
   * held (publish_lock.ts): call it always, after the record of what was committed.
   */
  discard(): Promise<void>;
}

/** Options of {@link BlobStore.begin}. */
export interface BeginOptions {
  /**
   * Another thread writes the temp file and hashes what it writes (pull's layer workers), and
   * hands the result over with {@link PendingBlob.adopt}: `write()` then only counts bytes and
   * refuses those past the size, and nothing is published unless the adopted digest and size
   * are the expected ones.
   */
  external?: boolean;
}

/** The blob directory of a store. */
export class BlobStore {
  readonly #dir: string;
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
    this.#dir = join(root, "blobs", "sha256");
  }

  /** Where a blob lives (whether or not it exists). Rejects malformed digests. */
  path(digest: string): string {
    return join(this.#dir, digestHex(digest));
  }

  /** Whether the blob is present. */
  async has(digest: string): Promise<boolean> {
    try {
      await Deno.lstat(this.path(digest));
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return false;
      throw err;
    }
  }

  /** Reads a small blob (a manifest or config) whole. */
  read(digest: string): Promise<Uint8Array> {
    return Deno.readFile(this.path(digest));
  }

  /** Stores bytes already in memory after checking their digest. */
  async put(digest: string, bytes: Uint8Array): Promise<void> {
    const pending = await this.begin(digest, bytes.byteLength);
    try {
      await pending.write(bytes);
      await pending.commit();
    } finally {
      await pending.discard();
    }
  }

  /** Starts writing the blob `digest`; `size`, when known, is checked too. */
  async begin(digest: string, size?: number, options: BeginOptions = {}): Promise<PendingBlob> {
    const external = options.external ?? false;
    const target = this.path(digest);
    await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    // Its writer may build on unrecorded blobs it finds: no sweep removes any until discard().
    const release = await holdPublishLock(this.#root);
    let temp: string;
    let file: Deno.FsFile | undefined;
    try {
      // Named after this process: the next tsbox removes it if this one is killed (sweep.ts).
      temp = await Deno.makeTempFile({ dir: this.#dir, prefix: ownedTempPrefix() });
      if (!external) file = await Deno.open(temp, { write: true, truncate: true });
    } catch (err) {
      release();
      throw err;
    }
    let closed = false;
    const close = () => {
      if (!closed) {
        closed = true;
        file?.close();
      }
    };
    const { createHash } = await import("node:crypto");
    const hash = createHash("sha256");
    let bytes = 0;
    let actual: string | undefined;
    let committed = false;
    let adopted: { actual: string; bytes: number } | undefined;
    const verify = () => {
      if (external) {
        if (adopted === undefined) {
          throw new DigestMismatchError(`blob ${digest}`, digest, "nothing written");
        }
        actual = adopted.actual;
        if (adopted.bytes !== bytes) {
          throw new DigestMismatchError(
            `blob ${digest}`,
            `${bytes} bytes`,
            `${adopted.bytes} bytes`,
          );
        }
      }
      actual ??= `sha256:${hash.digest("hex")}`;
      if (actual !== digest) throw new DigestMismatchError(`blob ${digest}`, digest, actual);
      if (size !== undefined && bytes !== size) {
        throw new DigestMismatchError(`blob ${digest}`, `${size} bytes`, `${bytes} bytes`);
      }
    };
    return {
      async write(chunk: Uint8Array) {
        // Cut at the declared size: bytes past it are never written, however many are sent.
        if (size !== undefined && bytes + chunk.byteLength > size) {
          throw new DigestMismatchError(
            `blob ${digest}`,
            `${size} bytes`,
            `more than ${size} bytes`,
          );
        }
        bytes += chunk.byteLength;
        if (file === undefined) return;
        hash.update(chunk);
        // Synchronous: no promise and event-loop turn per chunk (measured a little faster).
        for (let off = 0; off < chunk.byteLength;) off += file.writeSync(chunk.subarray(off));
      },
      get bytes() {
        return bytes;
      },
      temp,
      adopt(actualDigest: string, written: number) {
        if (!external) throw new Error("PendingBlob.adopt: the blob is written by this thread");
        adopted = { actual: actualDigest, bytes: written };
      },
      verify,
      async commit() {
        verify();
        close();
        await Deno.rename(temp, target);
        committed = true;
      },
      async discard() {
        close();
        if (!committed) await Deno.remove(temp).catch(() => {});
        release();
      },
    };
  }

  /** Removes a blob if present. */
  async remove(digest: string): Promise<void> {
    await Deno.remove(this.path(digest)).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}
