/**
 * Process primitives for the runtime's parent side: pipes, raw fd reads and writes, waitpid and
 * kill. Blocking calls are declared `nonblocking` so they run off the main thread and the event
 * loop keeps going.
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

const libc = openLibc({
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32", nonblocking: true },
  waitpidNow: { name: "waitpid", parameters: ["i32", "buffer", "i32"], result: "i32" },
  waitpidHere: { name: "waitpid", parameters: ["i32", "buffer", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  readNow: { name: "read", parameters: ["i32", "buffer", "usize"], result: "isize" },
  __errno_location: { parameters: [], result: "pointer" },
  dup3: { parameters: ["i32", "i32", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  malloc_trim: { parameters: ["usize"], result: "i32" },
});

/** O_CLOEXEC for pipe2/openat. */
export const O_CLOEXEC = 0o2000000;
const WNOHANG = 1;
const EINTR = 4;

/** Creates a pipe; returns `[readFd, writeFd]`. */
export function pipe(flags = O_CLOEXEC): [number, number] {
  const fds = new Int32Array(2);
  check(libc.pipe2(new Uint8Array(fds.buffer), flags), "pipe2", [flags]);
  return [fds[0], fds[1]];
}

/** Closes a raw fd, ignoring errors (used on cleanup paths). */
export function closeFd(fd: number): void {
  libc.close(fd);
}

/** Makes fd 0 /dev/null (after a process has read what its stdin had to say). */
export function nullStdin(): void {
  const devNull = check(libc.open(cstr("/dev/null"), O_CLOEXEC), "open", ["/dev/null"]);
  try {
    check(libc.dup3(devNull, 0, 0), "dup3", [devNull, 0]);
  } finally {
    libc.close(devNull);
  }
}

/**
 * Gives the C heap's free memory back to the kernel (glibc's malloc_trim). Deno's start-up (module
 * graph, sources, parsers) frees megabytes it never returns by itself: a long-lived process that
 * has done its loading calls this once.
 */
export function trimMalloc(): void {
  libc.malloc_trim(0n);
}

/** Writes all of `data` to a raw fd. */
export { writeAll as writeFd } from "./fs.ts";

/**
 * Reads up to `size` bytes from a raw fd on a worker thread. Returns the bytes (empty at EOF).
 * errno of a nonblocking call is read on another thread, so a failure is reported as EIO.
 */
export async function readFd(fd: number, size: number): Promise<Uint8Array> {
  const buf = new Uint8Array(size);
  let got = 0;
  while (got < size) {
    const n = Number(await libc.read(fd, buf.subarray(got), BigInt(size - got)));
    if (n < 0) throw new SyscallError("read", [fd], 5);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

const POLLIN = 1;

/**
 * Waits on a worker thread, at most `timeoutMs`, until `fd` has something to read (data, EOF or
 * an error). True when it has: one {@link readAvailable} then returns without blocking. Lets a
 * reader give up on a pipe whose writer may never close it, which a blocked read cannot.
 */
export async function waitReadable(fd: number, timeoutMs: number): Promise<boolean> {
  const pollfd = new DataView(new ArrayBuffer(8)); // struct pollfd { int fd; short events, revents; }
  pollfd.setInt32(0, fd, true);
  pollfd.setInt16(4, POLLIN, true);
  const n = await libc.poll(new Uint8Array(pollfd.buffer), 1n, Math.max(0, Math.floor(timeoutMs)));
  // n < 0 is EINTR or worse: report "readable" so the read that follows tells which.
  return n !== 0;
}

/** One read(2) on this thread: the byte count, 0 at EOF; throws on an error. */
export function readAvailable(fd: number, buf: Uint8Array): number {
  const n = Number(libc.readNow(fd, buf, BigInt(buf.length)));
  if (n < 0) throw new SyscallError("read", [fd], errno());
  return n;
}

/** How a process ended: its exit code, or the signal that killed it. */
export interface WaitStatus {
  /** Exit code when it exited normally. */
  readonly exitCode?: number;
  /** Signal number when a signal killed it. */
  readonly signal?: number;
}

function decode(raw: number): WaitStatus {
  const sig = raw & 0x7f;
  if (sig === 0) return { exitCode: (raw >> 8) & 0xff };
  return { signal: sig };
}

/**
 * Waits for child `pid` on a worker thread so the event loop keeps running. Only this pid is
 * reaped (never -1), so children of Deno's own subprocess API are left to it.
 */
export async function waitPid(pid: number): Promise<WaitStatus> {
  const status = new Int32Array(1);
  for (;;) {
    const r = await libc.waitpid(pid, new Uint8Array(status.buffer), 0);
    if (r === pid) return decode(status[0]);
    // errno cannot be read from this thread after a nonblocking call; EINTR is the one
    // retryable failure, and a second synchronous WNOHANG probe tells the others apart.
    const probe = libc.waitpidNow(pid, new Uint8Array(status.buffer), WNOHANG);
    if (probe === pid) return decode(status[0]);
    if (probe < 0) throw new SyscallError("waitpid", [pid], errno());
  }
}

/**
 * Waits for child `pid` blocking the calling thread: for a worker thread's helper process that
 * ends at once (never call it on the main thread for a process that may run on).
 */
export function waitPidSync(pid: number): WaitStatus {
  const status = new Int32Array(1);
  for (;;) {
    if (libc.waitpidHere(pid, new Uint8Array(status.buffer), 0) === pid) return decode(status[0]);
    const e = errno();
    if (e !== EINTR) throw new SyscallError("waitpid", [pid], e);
  }
}

/** Sends `signal` to `pid`; returns false when the process no longer exists (ESRCH). */
export function killPid(pid: number, signal: number): boolean {
  if (libc.kill(pid, signal) === 0) return true;
  const e = errno();
  if (e === 3) return false;
  throw new SyscallError("kill", [pid, signal], e);
}
