/**
 * Waiting for a process that is not our child to end, without polling: pidfd_open(2) gives a
 * file descriptor that becomes readable when the process exits, and poll(2) on it, run as a
 * `nonblocking` FFI call (a worker thread), leaves the event loop asleep until then. An eventfd
 * next to it lets the waiter be told to stop.
 *
 * @module
 */
import { check, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

const libc = openLibc({
  pidfd_open: { name: "syscall", parameters: ["i64", "i32", "u32"], result: "i64" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
});

/** pidfd_open's number: 434 on every architecture (it came after the tables were unified). */
const SYS_PIDFD_OPEN = 434n;
const ESRCH = 3;
const EFD_CLOEXEC = 0o2000000;
const POLLIN = 1;

/**
 * A pidfd of `pid` (close-on-exec, as pidfds always are), or undefined when no such process
 * exists (ESRCH). Other failures (a kernel before 5.3: ENOSYS) throw.
 */
export function pidfdOpen(pid: number): number | undefined {
  const fd = Number(libc.pidfd_open(SYS_PIDFD_OPEN, pid, 0));
  if (fd >= 0) return fd;
  const e = errno();
  if (e === ESRCH) return undefined;
  throw new SyscallError("pidfd_open", [pid], e);
}

/** A close-on-exec eventfd to wake a {@link waitExit} with {@link wake}. */
export function wakeFd(): number {
  return check(libc.eventfd(0, EFD_CLOEXEC), "eventfd", [0, EFD_CLOEXEC]);
}

/** Wakes whoever waits on eventfd `fd` (it stays readable until closed). */
export function wake(fd: number): void {
  const one = new BigUint64Array([1n]);
  libc.write(fd, new Uint8Array(one.buffer), 8n);
}

/** Closes a descriptor of this module (errors ignored: cleanup). */
export function closeWaitFd(fd: number): void {
  libc.close(fd);
}

/**
 * Waits on a worker thread until the process of `pidfd` has exited ("exited"), `wakeFd` was
 * woken ("woken"), or `timeoutMs` passed ("timeout"; -1 waits forever). `pidfd` may be -1: then
 * only the eventfd and the timeout count.
 */
export async function waitExit(
  pidfd: number,
  wakeFd: number,
  timeoutMs = -1,
): Promise<"exited" | "woken" | "timeout"> {
  // struct pollfd[2] { int fd; short events, revents; }
  const fds = new DataView(new ArrayBuffer(16));
  fds.setInt32(0, wakeFd, true);
  fds.setInt16(4, POLLIN, true);
  fds.setInt32(8, pidfd, true); // a negative fd is ignored by poll
  fds.setInt16(12, POLLIN, true);
  const n = await libc.poll(new Uint8Array(fds.buffer), 2n, timeoutMs);
  if (n === 0) return "timeout";
  if (n > 0 && fds.getInt16(6, true) !== 0) return "woken";
  if (n > 0 && fds.getInt16(14, true) !== 0) return "exited";
  // EINTR (errno is not readable after a nonblocking call): the caller looks again.
  return "timeout";
}
