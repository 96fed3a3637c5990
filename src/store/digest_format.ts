/**
 * Digest names: validation and formatting, and the errors about digests. Kept apart from the
 * hashing in `digest.ts` so that opening the store does not load `node:crypto`.
 *
 * @module
 */
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
