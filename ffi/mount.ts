/**
 * mount(2) and umount2(2) for the parent side (the overlay rootfs in the host mount namespace).
 * Mounts inside the container are made by the container's first process (see clone.ts).
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

const libc = openLibc({
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "buffer"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
});

/** Mount flags (include/uapi/linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  REC: 16384,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  STRICTATIME: 1 << 24,
} as const;

/** umount2 flag: detach now, clean up when no longer busy. */
export const MNT_DETACH = 2;

/** mount(2). `data` is the filesystem's option string. */
export function mount(
  source: string,
  target: string,
  fstype: string,
  flags: number,
  data = "",
): void {
  check(
    libc.mount(cstr(source), cstr(target), cstr(fstype), BigInt(flags), cstr(data)),
    "mount",
    [source, target, fstype, flags, data.length > 200 ? `${data.slice(0, 200)}...` : data],
  );
}

/** umount2(2); returns false when `target` was not a mount point (EINVAL) or is gone (ENOENT). */
export function umount(target: string, flags = MNT_DETACH): boolean {
  if (libc.umount2(cstr(target), flags) === 0) return true;
  const e = errno();
  if (e === 22 || e === 2) return false;
  throw new SyscallError("umount2", [target, flags], e);
}
