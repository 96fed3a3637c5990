/**
 * mount(8)-style options of an OCI `mounts` entry turned into mount(2) flags, the propagation
 * changes made after the mount, and the filesystem's data string, as runc reads them. Pure.
 *
 * @module
 */

/** mount(2) flags (include/uapi/linux/mount.h). */
export const MOUNT_FLAGS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
} as const;

const F = MOUNT_FLAGS;

/** Options that set (`set`) or clear (`clear`) a flag. */
const FLAG_OPTIONS: Readonly<Record<string, { set?: number; clear?: number }>> = {
  ro: { set: F.RDONLY },
  rw: { clear: F.RDONLY },
  nosuid: { set: F.NOSUID },
  suid: { clear: F.NOSUID },
  nodev: { set: F.NODEV },
  dev: { clear: F.NODEV },
  noexec: { set: F.NOEXEC },
  exec: { clear: F.NOEXEC },
  sync: { set: F.SYNCHRONOUS },
  async: { clear: F.SYNCHRONOUS },
  dirsync: { set: F.DIRSYNC },
  remount: { set: F.REMOUNT },
  mand: { set: F.MANDLOCK },
  nomand: { clear: F.MANDLOCK },
  atime: { clear: F.NOATIME },
  noatime: { set: F.NOATIME },
  diratime: { clear: F.NODIRATIME },
  nodiratime: { set: F.NODIRATIME },
  relatime: { set: F.RELATIME },
  norelatime: { clear: F.RELATIME },
  strictatime: { set: F.STRICTATIME },
  nostrictatime: { clear: F.STRICTATIME },
  nosymfollow: { set: F.NOSYMFOLLOW },
  symfollow: { clear: F.NOSYMFOLLOW },
  bind: { set: F.BIND },
  rbind: { set: F.BIND | F.REC },
  silent: { set: F.SILENT },
  loud: { clear: F.SILENT },
};

/** Propagation options, applied with a second mount(2) call after the mount itself. */
const PROPAGATION: Readonly<Record<string, number>> = {
  private: F.PRIVATE,
  rprivate: F.PRIVATE | F.REC,
  shared: F.SHARED,
  rshared: F.SHARED | F.REC,
  slave: F.SLAVE,
  rslave: F.SLAVE | F.REC,
  unbindable: F.UNBINDABLE,
  runbindable: F.UNBINDABLE | F.REC,
};

/** Options runtimes accept and tsbox has nothing to do for (or cannot do; see `ignored`). */
const IGNORED = new Set(["tmpcopyup", "defaults", "X-mount.mkdir"]);

/** The mount(2) calls one `mounts` entry needs. */
export interface MountOptions {
  /** Flags for the mount itself (with MS_BIND|MS_REC for `rbind`). */
  readonly flags: number;
  /** A bind mount (`bind`/`rbind` option or type `bind`). */
  readonly bind: boolean;
  /** Recursive bind (`rbind`). */
  readonly recursive: boolean;
  /** Propagation flags applied afterwards, in order. */
  readonly propagation: readonly number[];
  /** The filesystem's data string (`mode=755,size=65536k`). */
  readonly data: string;
  /**
   * Flags a bind mount needs in a remount (MS_BIND|MS_REMOUNT|these): the kernel ignores
   * ro/nosuid/nodev/noexec/atime flags on the bind call itself. 0 when no remount is needed.
   */
  readonly remountFlags: number;
  /** Options tsbox accepted without acting on them (tmpcopyup, ...). */
  readonly ignored: readonly string[];
}

/** An option tsbox refuses (idmapped mounts, unknown `X-` options are ignored, not refused). */
export class MountOptionError extends Error {
  constructor(readonly option: string, readonly destination: string, reason: string) {
    super(`mount ${destination}: option ${option}: ${reason}`);
    this.name = "MountOptionError";
  }
}

/** Flags that a bind mount carries only through a remount. */
const BIND_REMOUNT_MASK = F.RDONLY | F.NOSUID | F.NODEV | F.NOEXEC | F.NOATIME | F.NODIRATIME |
  F.RELATIME | F.STRICTATIME | F.NOSYMFOLLOW;

/**
 * Reads `options` of a mount of `type` at `destination`. Unknown options without `=` that are
 * no flag become data (as runc does: the filesystem decides), except idmap ones, refused.
 */
export function parseMountOptions(
  type: string | undefined,
  options: readonly string[],
  destination: string,
): MountOptions {
  let flags = 0;
  const propagation: number[] = [];
  const data: string[] = [];
  const ignored: string[] = [];
  for (const raw of options) {
    const option = raw.trim();
    if (option === "") continue;
    const flag = FLAG_OPTIONS[option];
    if (flag) {
      if (flag.set) flags |= flag.set;
      if (flag.clear) flags &= ~flag.clear;
      continue;
    }
    const prop = PROPAGATION[option];
    if (prop !== undefined) {
      propagation.push(prop);
      continue;
    }
    if (option === "idmap" || option === "ridmap" || option.startsWith("idmap=")) {
      throw new MountOptionError(option, destination, "idmapped mounts are not supported");
    }
    if (IGNORED.has(option) || option.startsWith("X-") || option.startsWith("x-")) {
      ignored.push(option);
      continue;
    }
    data.push(option);
  }
  const bind = type === "bind" || (flags & F.BIND) !== 0;
  if (bind) flags |= F.BIND;
  const recursive = bind && (flags & F.REC) !== 0;
  const remountFlags = bind && (flags & BIND_REMOUNT_MASK) !== 0 ? flags & BIND_REMOUNT_MASK : 0;
  return {
    flags: flags >>> 0,
    bind,
    recursive,
    propagation,
    data: data.join(","),
    remountFlags,
    ignored,
  };
}

/** The propagation flags of `linux.rootfsPropagation` (private, rshared, ...). */
export function rootPropagation(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const flags = PROPAGATION[value];
  if (flags === undefined) {
    throw new MountOptionError(value, "/", "unknown rootfsPropagation");
  }
  return flags;
}
