/**
 * fd-relative file operations over libc: the primitives a safe unpacker needs. Every path
 * argument is interpreted relative to a directory fd, so callers can pin a resolved parent and
 * act only on a final component. Each wrapper throws {@link SyscallError} on failure.
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

const lib = openLibc({
  openat2: {
    name: "syscall",
    parameters: ["i64", "i32", "buffer", "buffer", "usize"],
    result: "i64",
  },
  fchmodat2: { name: "syscall", parameters: ["i64", "i32", "buffer", "u32", "i32"], result: "i64" },
  openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
  mkdirat: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  mknodat: { parameters: ["i32", "buffer", "u32", "u64"], result: "i32" },
  symlinkat: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
  unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  renameat: { parameters: ["i32", "buffer", "i32", "buffer"], result: "i32" },
  fchownat: { parameters: ["i32", "buffer", "u32", "u32", "i32"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  fchmodat: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  fsetxattr: { parameters: ["i32", "buffer", "buffer", "usize", "i32"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  lremovexattr: { parameters: ["buffer", "buffer"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  readlinkat: { parameters: ["i32", "buffer", "buffer", "usize"], result: "isize" },
});

const SYS_OPENAT2 = 437n;
const SYS_FCHMODAT2 = 452n;

// O_DIRECTORY and O_NOFOLLOW are the two open flags whose values differ between architectures.
const arm = Deno.build.arch === "aarch64";

/** open(2) flags. */
export const O_RDONLY = 0;
/** open(2) flags. */
export const O_WRONLY = 0o1;
/** open(2) flags. */
export const O_RDWR = 0o2;
/** open(2) flags. */
export const O_CREAT = 0o100;
/** open(2) flags. */
export const O_EXCL = 0o200;
/** open(2) flags. */
export const O_NOCTTY = 0o400;
/** open(2) flags. */
export const O_TRUNC = 0o1000;
/** open(2) flags. */
export const O_APPEND = 0o2000;
/** open(2) flags. */
export const O_NONBLOCK = 0o4000;
/** open(2) flags. */
export const O_DIRECTORY = arm ? 0o40000 : 0o200000;
/** open(2) flags. */
export const O_NOFOLLOW = arm ? 0o100000 : 0o400000;
/** open(2) flags. */
export const O_CLOEXEC = 0o2000000;
/** open(2) flags. */
export const O_PATH = 0o10000000;

/** The current working directory as a dirfd. */
export const AT_FDCWD = -100;
/** *at(2) flags. */
export const AT_SYMLINK_NOFOLLOW = 0x100;
/** *at(2) flags. */
export const AT_REMOVEDIR = 0x200;
/** *at(2) flags. */
export const AT_SYMLINK_FOLLOW = 0x400;
/** *at(2) flags. */
export const AT_EMPTY_PATH = 0x1000;

/** openat2(2) resolve flags. */
export const RESOLVE_NO_XDEV = 0x01;
/** openat2(2) resolve flags. */
export const RESOLVE_NO_MAGICLINKS = 0x02;
/** openat2(2) resolve flags. */
export const RESOLVE_NO_SYMLINKS = 0x04;
/** openat2(2) resolve flags. */
export const RESOLVE_BENEATH = 0x08;
/** openat2(2) resolve flags. */
export const RESOLVE_IN_ROOT = 0x10;

/** File type bits of a mode. */
export const S_IFMT = 0o170000;
/** File type: socket. */
export const S_IFSOCK = 0o140000;
/** File type: symbolic link. */
export const S_IFLNK = 0o120000;
/** File type: regular file. */
export const S_IFREG = 0o100000;
/** File type: block device. */
export const S_IFBLK = 0o060000;
/** File type: directory. */
export const S_IFDIR = 0o040000;
/** File type: character device. */
export const S_IFCHR = 0o020000;
/** File type: fifo. */
export const S_IFIFO = 0o010000;

/** setxattr(2) flags. */
export const XATTR_CREATE = 1;
/** setxattr(2) flags. */
export const XATTR_REPLACE = 2;

/** utimensat(2) special nanosecond values. */
export const UTIME_NOW = (1 << 30) - 1;
/** utimensat(2) special nanosecond values. */
export const UTIME_OMIT = (1 << 30) - 2;

const EINTR = 4;
const ENOSYS = 38;
const EOPNOTSUPP = 95;
const ERANGE = 34;

/**
 * openat2(2): opens `path` relative to `dirfd` with `resolve` restricting how the path is walked
 * (e.g. {@link RESOLVE_IN_ROOT} treats `dirfd` as `/` for every absolute symlink and `..`).
 */
export function openat2(
  dirfd: number,
  path: string,
  flags: number,
  mode = 0,
  resolve = 0,
): number {
  const how = new BigUint64Array([BigInt(flags), BigInt(mode), BigInt(resolve)]);
  const fd = lib.openat2(SYS_OPENAT2, dirfd, cstr(path), new Uint8Array(how.buffer), 24n);
  return Number(check(fd, "openat2", [dirfd, path, flags, mode, resolve]));
}

/** openat(2). */
export function openat(dirfd: number, path: string, flags: number, mode = 0): number {
  return check(lib.openat(dirfd, cstr(path), flags, mode), "openat", [dirfd, path, flags, mode]);
}

/** mkdirat(2); the mode is filtered by the umask. */
export function mkdirat(dirfd: number, path: string, mode: number): void {
  check(lib.mkdirat(dirfd, cstr(path), mode), "mkdirat", [dirfd, path, mode]);
}

/** The dev_t glibc's makedev() builds from a major and minor number. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major), mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

/** mknodat(2): `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO, ...). */
export function mknodat(dirfd: number, path: string, mode: number, dev: bigint = 0n): void {
  check(lib.mknodat(dirfd, cstr(path), mode, dev), "mknodat", [dirfd, path, mode, dev]);
}

/** symlinkat(2): creates `path` (relative to `dirfd`) pointing at `target`. */
export function symlinkat(target: string, dirfd: number, path: string): void {
  check(lib.symlinkat(cstr(target), dirfd, cstr(path)), "symlinkat", [target, dirfd, path]);
}

/** linkat(2). Without {@link AT_SYMLINK_FOLLOW} a symlink at `oldpath` is linked itself. */
export function linkat(
  olddirfd: number,
  oldpath: string,
  newdirfd: number,
  newpath: string,
  flags = 0,
): void {
  check(
    lib.linkat(olddirfd, cstr(oldpath), newdirfd, cstr(newpath), flags),
    "linkat",
    [olddirfd, oldpath, newdirfd, newpath, flags],
  );
}

/** unlinkat(2); pass {@link AT_REMOVEDIR} to remove an empty directory. */
export function unlinkat(dirfd: number, path: string, flags = 0): void {
  check(lib.unlinkat(dirfd, cstr(path), flags), "unlinkat", [dirfd, path, flags]);
}

/** renameat(2). */
export function renameat(
  olddirfd: number,
  oldpath: string,
  newdirfd: number,
  newpath: string,
): void {
  check(
    lib.renameat(olddirfd, cstr(oldpath), newdirfd, cstr(newpath)),
    "renameat",
    [olddirfd, oldpath, newdirfd, newpath],
  );
}

/** fchownat(2). */
export function fchownat(dirfd: number, path: string, uid: number, gid: number, flags = 0): void {
  check(lib.fchownat(dirfd, cstr(path), uid, gid, flags), "fchownat", [
    dirfd,
    path,
    uid,
    gid,
    flags,
  ]);
}

/** fchown(2). */
export function fchown(fd: number, uid: number, gid: number): void {
  check(lib.fchown(fd, uid, gid), "fchown", [fd, uid, gid]);
}

let haveFchmodat2 = true;

/**
 * fchmodat(2). With {@link AT_SYMLINK_NOFOLLOW} it uses the fchmodat2 syscall (Linux 6.6+),
 * which changes a non-symlink final component without following a symlink there; on older
 * kernels glibc's emulation (through an O_PATH fd) is used. Symlinks themselves have no mode:
 * EOPNOTSUPP.
 */
export function fchmodat(dirfd: number, path: string, mode: number, flags = 0): void {
  const args = [dirfd, path, mode, flags];
  if (flags !== 0 && haveFchmodat2) {
    const r = lib.fchmodat2(SYS_FCHMODAT2, dirfd, cstr(path), mode, flags);
    if (r >= 0) return;
    const e = errno();
    if (e !== ENOSYS) throw new SyscallError("fchmodat2", args, e);
    haveFchmodat2 = false;
  }
  check(lib.fchmodat(dirfd, cstr(path), mode, flags), "fchmodat", args);
}

/** fchmod(2). */
export function fchmod(fd: number, mode: number): void {
  check(lib.fchmod(fd, mode), "fchmod", [fd, mode]);
}

/** A point in time as seconds and nanoseconds since the epoch (struct timespec). */
export interface Timespec {
  /** Whole seconds (may be negative). */
  sec: number;
  /** Nanoseconds, 0..999999999, or {@link UTIME_NOW} / {@link UTIME_OMIT}. */
  nsec: number;
}

function timespecs(atime: Timespec, mtime: Timespec): Uint8Array<ArrayBuffer> {
  const t = new BigInt64Array([
    BigInt(atime.sec),
    BigInt(atime.nsec),
    BigInt(mtime.sec),
    BigInt(mtime.nsec),
  ]);
  return new Uint8Array(t.buffer);
}

/** utimensat(2): sets access and modification times of `path` relative to `dirfd`. */
export function utimensat(
  dirfd: number,
  path: string,
  atime: Timespec,
  mtime: Timespec,
  flags = 0,
): void {
  check(
    lib.utimensat(dirfd, cstr(path), timespecs(atime, mtime), flags),
    "utimensat",
    [dirfd, path, `${mtime.sec}.${mtime.nsec}`, flags],
  );
}

/** futimens(3): sets access and modification times of an open file. */
export function futimens(fd: number, atime: Timespec, mtime: Timespec): void {
  check(lib.futimens(fd, timespecs(atime, mtime)), "futimens", [fd, `${mtime.sec}.${mtime.nsec}`]);
}

/** fsetxattr(2). */
export function fsetxattr(fd: number, name: string, value: Uint8Array, flags = 0): void {
  check(
    lib.fsetxattr(fd, cstr(name), value as Uint8Array<ArrayBuffer>, BigInt(value.length), flags),
    "fsetxattr",
    [fd, name],
  );
}

/** lsetxattr(2): sets an xattr on `path` without following a symlink in its final component. */
export function lsetxattr(path: string, name: string, value: Uint8Array, flags = 0): void {
  check(
    lib.lsetxattr(
      cstr(path),
      cstr(name),
      value as Uint8Array<ArrayBuffer>,
      BigInt(value.length),
      flags,
    ),
    "lsetxattr",
    [path, name],
  );
}

/** lgetxattr(2): the value of an xattr, or `null` when the file does not have it. */
export function lgetxattr(path: string, name: string): Uint8Array | null {
  let size = 256;
  for (;;) {
    const buf = new Uint8Array(size);
    const n = Number(lib.lgetxattr(cstr(path), cstr(name), buf, BigInt(size)));
    if (n >= 0) return buf.slice(0, n);
    const e = errno();
    if (e === 61 /* ENODATA */) return null;
    if (e !== ERANGE) throw new SyscallError("lgetxattr", [path, name], e);
    size *= 4;
  }
}

/** lremovexattr(2): removes an xattr without following a symlink; absent is not an error. */
export function lremovexattr(path: string, name: string): void {
  if (lib.lremovexattr(cstr(path), cstr(name)) === 0) return;
  const e = errno();
  if (e === 61 /* ENODATA */) return;
  throw new SyscallError("lremovexattr", [path, name], e);
}

/** llistxattr(2): the names of a file's xattrs (those the caller may see). */
export function llistxattr(path: string): string[] {
  let size = 1024;
  for (;;) {
    const buf = new Uint8Array(size);
    const n = Number(lib.llistxattr(cstr(path), buf, BigInt(size)));
    if (n >= 0) {
      return new TextDecoder().decode(buf.subarray(0, n)).split("\0").filter((s) => s !== "");
    }
    const e = errno();
    if (e === EOPNOTSUPP) return [];
    if (e !== ERANGE) throw new SyscallError("llistxattr", [path], e);
    size *= 4;
  }
}

/**
 * write(2) of all of `data`: loops on short writes and EINTR. The bytes are passed to libc in
 * place, without a copy.
 */
export function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) {
    const view = (off === 0 ? data : data.subarray(off)) as Uint8Array<ArrayBuffer>;
    const n = Number(lib.write(fd, view, BigInt(view.length)));
    if (n < 0) {
      const e = errno();
      if (e === EINTR) continue;
      throw new SyscallError("write", [fd, data.length - off], e);
    }
    off += n;
  }
}

/** write(2): one call; returns the number of bytes written. */
export function write(fd: number, data: Uint8Array): number {
  return Number(
    check(
      lib.write(fd, data as Uint8Array<ArrayBuffer>, BigInt(data.length)),
      "write",
      [fd, data.length],
    ),
  );
}

/** close(2). */
export function close(fd: number): void {
  check(lib.close(fd), "close", [fd]);
}

/** The fields of statx(2) an unpacker needs. */
export interface Stat {
  /** Type and permission bits (S_IF* | 07777). */
  mode: number;
  /** Owner. */
  uid: number;
  /** Group. */
  gid: number;
  /** Number of hard links. */
  nlink: number;
  /** Inode number. */
  ino: bigint;
  /** Device of the filesystem holding the file, as makedev(major, minor). */
  dev: bigint;
  /** Size in bytes. */
  size: number;
  /** Modification time. */
  mtime: Timespec;
  /** Status change time (moved by every write and metadata change; no one can set it). */
  ctime: Timespec;
  /** For devices: the device's major number. */
  rdevMajor: number;
  /** For devices: the device's minor number. */
  rdevMinor: number;
}

const STATX_BASIC_STATS = 0x7ff;

/**
 * fstatat(2), through statx(2) whose struct layout is the same on every architecture. Pass
 * {@link AT_SYMLINK_NOFOLLOW} for lstat semantics, {@link AT_EMPTY_PATH} with `""` for the fd.
 */
export function fstatat(dirfd: number, path: string, flags = 0): Stat {
  const buf = new Uint8Array(256);
  check(
    lib.statx(dirfd, cstr(path), flags, STATX_BASIC_STATS, buf),
    "statx",
    [dirfd, path, flags],
  );
  const v = new DataView(buf.buffer);
  return {
    nlink: v.getUint32(16, true),
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    ino: v.getBigUint64(32, true),
    size: Number(v.getBigUint64(40, true)),
    mtime: { sec: Number(v.getBigInt64(112, true)), nsec: v.getUint32(120, true) },
    ctime: { sec: Number(v.getBigInt64(96, true)), nsec: v.getUint32(104, true) },
    rdevMajor: v.getUint32(128, true),
    rdevMinor: v.getUint32(132, true),
    dev: makedev(v.getUint32(136, true), v.getUint32(140, true)),
  };
}

/** readlinkat(2): the target of the symlink `path` relative to `dirfd`. */
export function readlinkat(dirfd: number, path: string): string {
  let size = 256;
  for (;;) {
    const buf = new Uint8Array(size);
    const n = Number(check(lib.readlinkat(dirfd, cstr(path), buf, BigInt(size)), "readlinkat", [
      dirfd,
      path,
    ]));
    if (n < size) return new TextDecoder().decode(buf.subarray(0, n));
    size *= 4;
  }
}

// Additions for walking a container's root by fd (cp, export, diff, volume copy-up). Kept in a
// table of their own so that additions elsewhere in this file do not collide.
const dirLib = openLibc({
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  getxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  listxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  setxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
});

/** getdents64(2) d_type: unknown (the filesystem does not say; fstatat the entry). */
export const DT_UNKNOWN = 0;
/** getdents64(2) d_type: directory. */
export const DT_DIR = 4;
/** getdents64(2) d_type: regular file. */
export const DT_REG = 8;
/** getdents64(2) d_type: symbolic link. */
export const DT_LNK = 10;

/** One directory entry as getdents64(2) returns it. */
export interface Dirent {
  /** The entry's name (never "." or ".."). */
  name: string;
  /** One of the DT_* values; a hint only, the entry may change before it is opened. */
  type: number;
}

/**
 * The entries of the directory open as `fd` (O_RDONLY|O_DIRECTORY), read with getdents64(2) from
 * the fd's current offset to the end, without "." and "..". Names are decoded as UTF-8.
 */
export function getdents(fd: number): Dirent[] {
  const out: Dirent[] = [];
  const buf = new Uint8Array(64 * 1024);
  const view = new DataView(buf.buffer);
  const decoder = new TextDecoder();
  for (;;) {
    const n = Number(check(dirLib.getdents64(fd, buf, BigInt(buf.length)), "getdents64", [fd]));
    if (n === 0) return out;
    // struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
    for (let off = 0; off < n;) {
      const reclen = view.getUint16(off + 16, true);
      const type = buf[off + 18];
      const start = off + 19;
      const end = buf.indexOf(0, start);
      const name = decoder.decode(
        buf.subarray(start, end < 0 || end > off + reclen ? off + reclen : end),
      );
      if (name !== "." && name !== "..") out.push({ name, type });
      off += reclen;
    }
  }
}

/** read(2) into `buf`: the number of bytes read, 0 at the end of the file. Retries EINTR. */
export function read(fd: number, buf: Uint8Array): number {
  for (;;) {
    const n = Number(dirLib.read(fd, buf as Uint8Array<ArrayBuffer>, BigInt(buf.length)));
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) throw new SyscallError("read", [fd, buf.length], e);
  }
}

/**
 * The xattr `name` of the file open as `fd`, or `null` when it has none. Any fd works, O_PATH
 * ones included (symlinks, devices): the call goes through `/proc/self/fd/N`, which names
 * exactly that file and nothing a path could be swapped for.
 */
export function fdGetxattr(fd: number, name: string): Uint8Array | null {
  const path = `/proc/self/fd/${fd}`;
  let size = 256;
  for (;;) {
    const buf = new Uint8Array(size);
    const n = Number(dirLib.getxattr(cstr(path), cstr(name), buf, BigInt(size)));
    if (n >= 0) return buf.slice(0, n);
    const e = errno();
    if (e === 61 /* ENODATA */) return null;
    if (e !== ERANGE) throw new SyscallError("getxattr", [path, name], e);
    size *= 4;
  }
}

/** The xattr names of the file open as `fd` (any fd, see {@link fdGetxattr}). */
export function fdListxattr(fd: number): string[] {
  const path = `/proc/self/fd/${fd}`;
  let size = 1024;
  for (;;) {
    const buf = new Uint8Array(size);
    const n = Number(dirLib.listxattr(cstr(path), buf, BigInt(size)));
    if (n >= 0) {
      return new TextDecoder().decode(buf.subarray(0, n)).split("\0").filter((s) => s !== "");
    }
    const e = errno();
    if (e === EOPNOTSUPP) return [];
    if (e !== ERANGE) throw new SyscallError("listxattr", [path], e);
    size *= 4;
  }
}

/** Sets xattr `name` on the file open as `fd` (any fd, O_PATH too, see {@link fdGetxattr}). */
export function fdSetxattr(fd: number, name: string, value: Uint8Array, flags = 0): void {
  const path = `/proc/self/fd/${fd}`;
  check(
    dirLib.setxattr(
      cstr(path),
      cstr(name),
      value as Uint8Array<ArrayBuffer>,
      BigInt(value.length),
      flags,
    ),
    "setxattr",
    [path, name],
  );
}
