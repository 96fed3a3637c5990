/**
 * The one place that opens libc. Each area file (fs.ts, mount.ts, process.ts, ...) declares its
 * own symbols and calls {@link openLibc}, so parallel work on different kernel areas never edits
 * the same file.
 *
 * @module
 */
import { setErrnoText, SyscallError } from "./errors.ts";

const LIBC = "libc.so.6";

/**
 * Opens libc with the given symbol table. Each symbol is bound on its first use: Deno compiles
 * a call trampoline per bound symbol (about a million instructions each), and a container start
 * loads area files declaring well over a hundred symbols while calling a few dozen.
 * dlopen itself is reference counted, so binding one symbol at a time costs nothing extra.
 *
 * Each synchronous call records errno as it returns, before any JS allocates: a garbage
 * collection started by the allocation of a SyscallError's argument list makes system calls of
 * its own (futex waits failing with EAGAIN were seen) that overwrite the thread's errno.
 */
export function openLibc<const S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S>["symbols"] {
  const lazy = {} as Deno.DynamicLibrary<S>["symbols"];
  for (const name of Object.keys(symbols)) {
    Object.defineProperty(lazy, name, {
      configurable: true,
      enumerable: true,
      get() {
        const bound = Deno.dlopen(LIBC, { [name]: symbols[name] }).symbols[name] as (
          ...args: unknown[]
        ) => unknown;
        const def = symbols[name];
        const sync = "parameters" in def && !def.nonblocking;
        const value = !sync ? bound : (...args: unknown[]) => {
          const result = bound(...args);
          lastErrno = errnoView.getInt32();
          return result;
        };
        Object.defineProperty(lazy, name, { value, enumerable: true });
        return value;
      },
    });
  }
  return lazy;
}

// The calling thread's errno cell, read without a call or an allocation (each worker thread
// evaluates this module for itself, so the cell is its own).
const errnoCell = Deno.dlopen(LIBC, {
  __errno_location: { parameters: [], result: "pointer" },
}).symbols.__errno_location();
if (errnoCell === null) throw new Error("libc: __errno_location returned NULL");
const errnoView = new Deno.UnsafePointerView(errnoCell);
let lastErrno = 0;

const core = openLibc({
  strerror: { parameters: ["i32"], result: "pointer" },
  strerrorname_np: { parameters: ["i32"], result: "pointer" },
});

/**
 * errno as the last synchronous (not `nonblocking`) libc call of this thread left it, recorded
 * as that call returned.
 */
export function errno(): number {
  return lastErrno;
}

setErrnoText({
  name(n) {
    const p = core.strerrorname_np(n);
    return p === null ? undefined : Deno.UnsafePointerView.getCString(p);
  },
  describe(n) {
    const p = core.strerror(n);
    return p === null ? "unknown error" : Deno.UnsafePointerView.getCString(p);
  },
});

/** Throws a {@link SyscallError} for `call` when `result` is negative; returns it otherwise. */
export function check<T extends number | bigint>(result: T, call: string, args: unknown[]): T {
  if (result < 0) throw new SyscallError(call, args, errno());
  return result;
}

const encoder = new TextEncoder();

/** A NUL-terminated C string in a buffer that FFI can pass as a `buffer` parameter. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  const bytes = encoder.encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
