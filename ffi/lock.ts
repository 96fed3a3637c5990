/**
 * Advisory whole-file locks (flock(2)) on a lock file: the one-at-a-time sections that span
 * tsbox processes (resetting a store after a reboot). The lock goes with the open file
 * description, so closing the fd (or the process dying) releases it: a killed holder never
 * leaves the lock held.
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

const libc = openLibc({
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
});

const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_CLOEXEC = 0o2000000;
const LOCK_EX = 2;
const EINTR = 4;

/** An exclusive flock(2) held on a lock file; {@link FileLock.release} (or exit) frees it. */
export class FileLock {
  private constructor(readonly path: string, private fd: number) {}

  /**
   * Creates `path` (mode 0600) if needed and blocks until this process holds it exclusively.
   * Blocks the calling thread: meant for short sections that nothing else could go on without.
   */
  static acquire(path: string): FileLock {
    const fd = check(libc.open(cstr(path), O_RDWR | O_CREAT | O_CLOEXEC, 0o600), "open", [path]);
    for (;;) {
      if (libc.flock(fd, LOCK_EX) === 0) return new FileLock(path, fd);
      const e = errno();
      if (e === EINTR) continue;
      libc.close(fd);
      throw new SyscallError("flock", [path, "LOCK_EX"], e);
    }
  }

  /** Releases the lock (by closing its fd). Safe to call twice. */
  release(): void {
    if (this.fd < 0) return;
    libc.close(this.fd);
    this.fd = -1;
  }

  [Symbol.dispose](): void {
    this.release();
  }
}
