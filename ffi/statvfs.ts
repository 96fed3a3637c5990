/**
 * statvfs(3): free space and free inodes of the filesystem holding a path, for writers that
 * must stop before the disk is full (pull keeps a floor of free space).
 *
 * @module
 */
import { check, cstr, openLibc } from "./libc.ts";

const lib = openLibc({
  statvfs: { parameters: ["buffer", "buffer"], result: "i32" },
});

/**
 * glibc's `struct statvfs` on 64-bit Linux (x86-64 and aarch64 alike): eleven 8-byte fields
 * (f_bsize, f_frsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_favail, f_fsid, f_flag,
 * f_namemax) and six spare ints: 112 bytes.
 */
const STATVFS_SIZE = 112;

/** What a filesystem has left, in bytes and inodes. */
export interface FsSpace {
  /** Size of the filesystem in bytes. */
  totalBytes: number;
  /** Bytes an unprivileged writer may still use (f_bavail × f_frsize). */
  availableBytes: number;
  /** Bytes free including those reserved for root (f_bfree × f_frsize). */
  freeBytes: number;
  /** Number of inodes; 0 on filesystems without a fixed inode table. */
  totalInodes: number;
  /** Inodes an unprivileged writer may still create (f_favail). */
  availableInodes: number;
}

/** statvfs(3) of the filesystem that holds `path`; throws SyscallError on failure. */
export function statvfs(path: string): FsSpace {
  const buf = new Uint8Array(STATVFS_SIZE);
  check(lib.statvfs(cstr(path), buf), "statvfs", [path]);
  const v = new DataView(buf.buffer);
  const field = (i: number) => Number(v.getBigUint64(i * 8, true));
  const frsize = field(1) || field(0);
  return {
    totalBytes: field(2) * frsize,
    freeBytes: field(3) * frsize,
    availableBytes: field(4) * frsize,
    totalInodes: field(5),
    availableInodes: field(7),
  };
}
