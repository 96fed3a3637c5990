/**
 * Errors of the registry client. They carry a machine-readable `code` (the distribution API's
 * error codes where the registry sent one) so callers can branch without parsing messages.
 *
 * @module
 */

/** Codes for {@link RegistryError}: the distribution spec's codes plus transport failures. */
export type RegistryErrorCode =
  | "UNAUTHORIZED"
  | "DENIED"
  | "MANIFEST_UNKNOWN"
  | "MANIFEST_INVALID"
  | "NAME_UNKNOWN"
  | "NAME_INVALID"
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DIGEST_INVALID"
  | "DIGEST_MISMATCH"
  | "SIZE_INVALID"
  | "TOOMANYREQUESTS"
  | "UNSUPPORTED"
  | "TLS"
  | "TIMEOUT"
  | "NETWORK"
  | "UNKNOWN";

/** One entry of a registry's `{"errors": [...]}` body. */
export interface RegistryErrorDetail {
  code: string;
  message?: string;
  detail?: unknown;
}

/** Any failure talking to a registry. */
export class RegistryError extends Error {
  constructor(
    message: string,
    /** What went wrong, see {@link RegistryErrorCode}. */
    readonly code: RegistryErrorCode,
    /** The registry host, e.g. `127.0.0.1:5000`. */
    readonly registry: string,
    /** The HTTP status, when there was a response. */
    readonly status?: number,
    /** The registry's own `errors[]`, when it sent them. */
    readonly details: RegistryErrorDetail[] = [],
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "RegistryError";
  }
}

/** 401/403: credentials missing, wrong, or not allowed to access the repository. */
export class UnauthorizedError extends RegistryError {
  constructor(
    message: string,
    registry: string,
    status: number,
    details: RegistryErrorDetail[] = [],
  ) {
    super(message, status === 403 ? "DENIED" : "UNAUTHORIZED", registry, status, details);
    this.name = "UnauthorizedError";
  }
}

/** A manifest, blob or repository the registry does not have. */
export class NotFoundError extends RegistryError {
  constructor(
    message: string,
    code: "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN",
    registry: string,
    details: RegistryErrorDetail[] = [],
  ) {
    super(message, code, registry, 404, details);
    this.name = "RegistryNotFoundError";
  }
}

/** Content whose digest is not the one it was asked for (or announced) under. */
export class DigestMismatchError extends RegistryError {
  constructor(registry: string, readonly expected: string, readonly actual: string, what: string) {
    super(
      `digest mismatch for ${what}: expected ${expected}, got ${actual}`,
      "DIGEST_MISMATCH",
      registry,
    );
    this.name = "DigestMismatchError";
  }
}

/** A manifest or layer this client does not know how to handle. */
export class UnsupportedMediaTypeError extends Error {
  constructor(readonly mediaType: string, message?: string) {
    super(message ?? `unsupported media type ${mediaType}`);
    this.name = "UnsupportedMediaTypeError";
  }
}

/** A manifest or config document that does not follow its schema. */
export class InvalidManifestError extends Error {
  constructor(message: string) {
    super(`invalid manifest: ${message}`);
    this.name = "InvalidManifestError";
  }
}
