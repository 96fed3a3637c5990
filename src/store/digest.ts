/**
 * Content digests: validation and streaming verification. A digest comes from hostile input
 * (manifests), so it is checked before it is ever used as a file name.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { TsboxError } from "../errors.ts";

const SHA256 = /^sha256:[a-f0-9]{64}$/;

/** A digest that did not have the expected form. */
export class InvalidDigestError extends TsboxError {
  constructor(readonly digest: string) {
    super(`invalid digest ${JSON.stringify(digest)}: expected sha256:<64 hex digits>`);
    this.name = "InvalidDigestError";
  }
}

/** Content whose digest or size differs from what was promised. */
export class DigestMismatchError extends TsboxError {
  constructor(readonly what: string, readonly expected: string, readonly actual: string) {
    super(`${what}: digest mismatch: expected ${expected}, got ${actual}`);
    this.name = "DigestMismatchError";
  }
}

/** Returns the hex part of a `sha256:<hex>` digest, throwing on anything else. */
export function digestHex(digest: string): string {
  if (!SHA256.test(digest)) throw new InvalidDigestError(digest);
  return digest.slice(7);
}

/** The first 12 hex digits of a digest, as docker shows image and layer ids. */
export function shortDigest(digest: string): string {
  return digest.replace(/^sha256:/, "").slice(0, 12);
}

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
