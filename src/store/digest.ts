/**
 * Content digests: validation and streaming verification. A digest comes from hostile input
 * (manifests), so it is checked before it is ever used as a file name.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";

export {
  digestHex,
  DigestMismatchError,
  InvalidDigestError,
  shortDigest,
} from "./digest_format.ts";

/** The sha256 digest of some bytes, as `sha256:<hex>`. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/**
 * A pass-through stream that hashes and counts what flows through it. `digest()` is valid once
 * the stream has been read to its end.
 */
export class DigestingStream extends TransformStream<Uint8Array, Uint8Array> {
  #hash: Hash;
  #bytes = 0;
  #done = false;
  #digest = "";

  constructor(onChunk?: (chunk: Uint8Array) => Promise<void> | void) {
    const hash = createHash("sha256");
    super({
      transform: async (chunk, controller) => {
        hash.update(chunk);
        this.#bytes += chunk.byteLength;
        if (onChunk) await onChunk(chunk);
        controller.enqueue(chunk);
      },
      flush: () => {
        this.#done = true;
        this.#digest = `sha256:${hash.digest("hex")}`;
      },
    });
    this.#hash = hash;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True once the whole input has passed. */
  get done(): boolean {
    return this.#done;
  }

  /** The digest of everything that passed; throws if the stream has not ended. */
  digest(): string {
    if (!this.#done) throw new Error("DigestingStream: digest() before the end of the stream");
    return this.#digest;
  }
}
