/**
 * Typed errors for failed libc calls. Every wrapper in ffi/ throws {@link SyscallError} so that
 * callers can match on `err.code` ("ENOENT", "EPERM", ...) instead of parsing messages.
 *
 * @module
 */
import { constants } from "node:os";

const names = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // Several names share a number (EAGAIN/EWOULDBLOCK); keep the first, which is the usual one.
  if (!names.has(value)) names.set(value, name);
}

/** The symbolic name of an errno value, e.g. `2` -> `"ENOENT"`. */
export function errnoName(errno: number): string {
  return names.get(errno) ?? `E${errno}`;
}

/** The errno value of a symbolic name, e.g. `"ENOENT"` -> `2`. */
export function errnoValue(name: keyof typeof constants.errno): number {
  return constants.errno[name];
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
    super(`${call}(${shown}): ${errnoName(errno)} (${describeErrno(errno)})`);
    this.name = "SyscallError";
    this.code = errnoName(errno);
  }
}

let describe: ((errno: number) => string) | undefined;

/** Registers the strerror implementation (set by ffi/libc.ts, kept here to avoid a cycle). */
export function setErrnoDescriber(fn: (errno: number) => string): void {
  describe = fn;
}

function describeErrno(errno: number): string {
  return describe?.(errno) ?? "unknown error";
}
