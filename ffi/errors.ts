/**
 * Typed errors for failed libc calls. Every wrapper in ffi/ throws {@link SyscallError} so that
 * callers can match on `err.code` ("ENOENT", "EPERM", ...) instead of parsing messages.
 *
 * @module
 */
/** libc's names and descriptions of errno values, registered by ffi/libc.ts. */
export interface ErrnoText {
  /** `strerrorname_np`: 2 -> "ENOENT" (undefined for an unknown value). */
  name(errno: number): string | undefined;
  /** `strerror`: 2 -> "No such file or directory". */
  describe(errno: number): string;
}

let text: ErrnoText | undefined;

/** Registers libc's errno texts (set by ffi/libc.ts, kept here to avoid an import cycle). */
export function setErrnoText(t: ErrnoText): void {
  text = t;
}

/** The symbolic name of an errno value, e.g. `2` -> `"ENOENT"`. */
export function errnoName(errno: number): string {
  return text?.name(errno) ?? `E${errno}`;
}

/** A libc call that failed: carries the call's name, its arguments and the errno. */
export class SyscallError extends Error {
  /** Symbolic errno name, e.g. "EPERM". */
  readonly code: string;

  constructor(
    /** The libc function, e.g. "mount". */
    readonly call: string,
    /** The arguments as the caller passed them (pointers shown as the strings they held). */
    readonly args: readonly unknown[],
    /** The raw errno value. */
    readonly errno: number,
  ) {
    const shown = args.map((a) => typeof a === "string" ? JSON.stringify(a) : String(a)).join(", ");
    super(`${call}(${shown}): ${errnoName(errno)} (${text?.describe(errno) ?? "unknown error"})`);
    this.name = "SyscallError";
    this.code = errnoName(errno);
  }
}
