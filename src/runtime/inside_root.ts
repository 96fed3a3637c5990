/**
 * The CVE-2024-21626 guard: a working directory or mount target must not resolve into /proc,
 * /sys or below /dev of the container's root.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** A working directory or mount target that would leave the container's root. */
export class OutsideRootError extends UsageError {
  constructor(readonly path: string, what: string, where: string) {
    super(`${what} ${path} is outside the container's root filesystem (inside ${where})`);
    this.name = "OutsideRootError";
  }
}

/**
 * Refuses a working directory or mount target that resolves (in the rootfs, symlinks followed
 * inside it) into /proc or /sys, or below /dev: their magic links (`/proc/self/fd/N`,
 * `/dev/fd`) lead to whatever the runtime has open, the CVE-2024-21626 pattern.
 */
export function checkInsideRoot(
  resolve: (path: string) => string,
  path: string,
  what: string,
): void {
  const resolved = resolve(path);
  for (const special of ["/proc", "/sys", "/dev"]) {
    const base = resolve(special);
    const below = resolved.startsWith(`${base}/`);
    if (below || (resolved === base && special !== "/dev")) {
      throw new OutsideRootError(path, what, special);
    }
  }
}
