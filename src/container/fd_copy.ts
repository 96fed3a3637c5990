/**
 * Copying a tree from one pinned directory to another by file descriptor only, for `cp` in both
 * directions and for seeding a volume with an image's files. The source is read through fds
 * opened with O_NOFOLLOW (see fd_tree.ts); the destination is written only relative to
 * directory fds: new files with O_CREAT|O_EXCL|O_NOFOLLOW, directories opened with
 * O_NOFOLLOW|O_DIRECTORY, metadata through the new file's fd or with AT_SYMLINK_NOFOLLOW. A
 * symlink already in the destination (say `/o2/pl/victim.conf -> /etc/passwd` made by the
 * container) is therefore replaced, never written through, and a link to a directory is never
 * entered.
 *
 * Existing destination entries are handled as `docker cp` does: a directory merges into a
 * directory, a non-directory replaces a non-directory, and replacing a directory with a
 * non-directory (or the other way round) is refused with {@link CopyConflictError}.
 *
 * @module
 */
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  close,
  fchmod,
  fchmodat,
  fchown,
  fchownat,
  fdSetxattr,
  fsetxattr,
  fstatat,
  futimens,
  linkat,
  makedev,
  mkdirat,
  mknodat,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  openat,
  openat2,
  read,
  readlinkat,
  RESOLVE_BENEATH,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  symlinkat,
  unlinkat,
  UTIME_OMIT,
  utimensat,
  writeAll,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { TsboxError } from "../errors.ts";
import {
  adopt,
  listDir,
  type Node,
  openChild,
  reopen,
  typeOf,
  withNode,
  xattrsOf,
} from "./fd_tree.ts";

/** An existing destination entry that `cp` does not replace (as docker refuses it). */
export class CopyConflictError extends TsboxError {
  constructor(readonly path: string, message: string) {
    super(`${message}: ${path}`);
    this.name = "CopyConflictError";
  }
}

/** A file could not be copied: names the destination path and carries the failed syscall. */
export class CopyError extends TsboxError {
  constructor(readonly path: string, readonly syscall: SyscallError) {
    super(`copy to ${path}: ${syscall.message}`, { cause: syscall });
    this.name = "CopyError";
  }
}

/** What a copy keeps. */
export interface CopyOptions {
  /** The owner to give a copy of a file owned by uid:gid (ids are kept when absent). */
  readonly owner?: (uid: number, gid: number) => { uid: number; gid: number };
  /** Copy extended attributes (overlayfs' own are never copied). */
  readonly xattrs?: boolean;
  /** Keep hard links between copied files as hard links (else each is its own copy). */
  readonly hardlinks?: boolean;
  /** Recreate device nodes and fifos (else they are skipped, as `docker cp` skips them). */
  readonly devices?: boolean;
}

/** Where the copy goes: an fd of the destination tree's top directory, for hard links. */
interface Context {
  readonly opts: CopyOptions;
  /** O_PATH fd of the directory the copy is made in; hard link targets are relative to it. */
  readonly top: number;
  /** `dev:ino` of a multiply-linked source file -> its copy's path relative to {@link top}. */
  readonly links: Map<string, string[]>;
}

/**
 * Copies the file `src` (pinned, see fd_tree.ts) to entry `name` of directory fd `dstDir`;
 * a directory with everything below it. `display` is the destination as the user named it,
 * for error messages.
 */
export function copyNode(
  src: Node,
  dstDir: number,
  name: string,
  display: string,
  opts: CopyOptions = {},
): void {
  const ctx: Context = { opts, top: dstDir, links: new Map() };
  copyEntry(ctx, src, dstDir, name, [name], display);
}

/**
 * Copies the entries of directory `src` into directory fd `dstDir` and then gives `dstDir`
 * the owner, mode, xattrs and times of `src` (a volume's copy-up).
 */
export function copyDirContents(
  src: Node,
  dstDir: number,
  display: string,
  opts: CopyOptions = {},
): void {
  const ctx: Context = { opts, top: dstDir, links: new Map() };
  guard(display, () => {
    copyChildren(ctx, src, dstDir, [], display);
    applyToFd(ctx, src, dstDir);
  });
}

function guard<T>(display: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SyscallError) throw new CopyError(display, err);
    throw err;
  }
}

function copyChildren(ctx: Context, src: Node, dst: number, rel: string[], display: string) {
  for (const e of listDir(src)) {
    const child = openChild(src.fd, e.name);
    if (!child) continue; // removed since it was listed
    withNode(
      child,
      (c) => copyEntry(ctx, c, dst, e.name, [...rel, e.name], `${display}/${e.name}`),
    );
  }
}

/**
 * Makes room for a new entry `name` in `dir` as docker's archive extraction does. Returns true
 * when an existing directory is to be merged into.
 */
function makeRoom(dir: number, name: string, wantDir: boolean, display: string): boolean {
  let type: number;
  try {
    type = fstatat(dir, name, AT_SYMLINK_NOFOLLOW).mode & S_IFMT;
  } catch (err) {
    if (err instanceof SyscallError && err.code === "ENOENT") return false;
    throw err;
  }
  if (type === S_IFDIR && wantDir) return true;
  if (type === S_IFDIR) {
    throw new CopyConflictError(display, "cannot overwrite directory with non-directory");
  }
  if (wantDir) {
    throw new CopyConflictError(display, "cannot overwrite non-directory with directory");
  }
  unlinkat(dir, name);
  return false;
}

function copyEntry(
  ctx: Context,
  src: Node,
  dstDir: number,
  name: string,
  rel: string[],
  display: string,
): void {
  guard(display, () => {
    const type = typeOf(src);
    const special = type === S_IFCHR || type === S_IFBLK || type === S_IFIFO;
    if (type !== S_IFDIR && type !== S_IFREG && type !== S_IFLNK && !special) return; // sockets
    if (special && !ctx.opts.devices) return;
    const merge = makeRoom(dstDir, name, type === S_IFDIR, display);
    if (
      type !== S_IFDIR && ctx.opts.hardlinks && src.st.nlink > 1 &&
      linkCopy(ctx, src, dstDir, name, rel)
    ) {
      return;
    }
    if (type === S_IFDIR) {
      if (!merge) mkdirat(dstDir, name, 0o700);
      // O_NOFOLLOW: if the name was swapped for a symlink since, this fails rather than enter it.
      const fd = openat(dstDir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      try {
        copyChildren(ctx, src, fd, rel, display);
        applyToFd(ctx, src, fd);
      } finally {
        close(fd);
      }
    } else if (type === S_IFREG) {
      const out = openat(dstDir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
      try {
        const input = reopen(src);
        try {
          copyData(input, out);
        } finally {
          close(input);
        }
        applyToFd(ctx, src, out);
      } finally {
        close(out);
      }
    } else if (type === S_IFLNK) {
      symlinkat(readlinkat(src.fd, ""), dstDir, name);
      applyToName(ctx, src, dstDir, name);
    } else {
      const dev = type === S_IFIFO ? 0n : makedev(src.st.rdevMajor, src.st.rdevMinor);
      mknodat(dstDir, name, type | 0o600, dev);
      applyToName(ctx, src, dstDir, name);
    }
  });
}

/**
 * Links entry `name` to the copy already made of the same source file. The first copy's path
 * is resolved beneath the destination's top with no symlink allowed on the way.
 */
function linkCopy(ctx: Context, src: Node, dstDir: number, name: string, rel: string[]): boolean {
  const key = `${src.st.dev}:${src.st.ino}`;
  const first = ctx.links.get(key);
  if (first === undefined) {
    ctx.links.set(key, rel);
    return false;
  }
  const parent = first.length === 1 ? -1 : openat2(
    ctx.top,
    first.slice(0, -1).join("/"),
    O_PATH | O_DIRECTORY | O_CLOEXEC,
    0,
    RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  );
  try {
    linkat(parent === -1 ? ctx.top : parent, first[first.length - 1], dstDir, name, 0);
  } finally {
    if (parent !== -1) close(parent);
  }
  return true;
}

function copyData(input: number, out: number): void {
  const buf = new Uint8Array(256 * 1024);
  for (;;) {
    const n = read(input, buf);
    if (n === 0) return;
    writeAll(out, buf.subarray(0, n));
  }
}

function ownerOf(ctx: Context, src: Node): { uid: number; gid: number } {
  return ctx.opts.owner?.(src.st.uid, src.st.gid) ?? { uid: src.st.uid, gid: src.st.gid };
}

/** Owner, then mode (chown clears set-id bits), xattrs, then the mtime (the rest bumps it). */
function applyToFd(ctx: Context, src: Node, fd: number): void {
  const { uid, gid } = ownerOf(ctx, src);
  fchown(fd, uid, gid);
  fchmod(fd, src.st.mode & 0o7777);
  if (ctx.opts.xattrs) {
    for (const [k, v] of xattrsOf(src)) {
      try {
        fsetxattr(fd, k, v);
      } catch { /* a namespace the destination filesystem refuses (e.g. security.* labels) */ }
    }
  }
  futimens(fd, { sec: 0, nsec: UTIME_OMIT }, src.st.mtime);
}

/**
 * The same for a symlink or a node just made as entry `name` of the pinned directory `dir`:
 * the entry is opened once (O_PATH|O_NOFOLLOW) and changed through that fd, so a swap of the
 * name meanwhile cannot redirect the owner, mode or times to another file.
 */
function applyToName(ctx: Context, src: Node, dir: number, name: string): void {
  const made = adopt(openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  withNode(made, (m) => {
    if (typeOf(m) !== typeOf(src)) {
      throw new SyscallError("openat", [dir, name], 116 /* ESTALE: replaced meanwhile */);
    }
    // `/proc/self/fd/N` names exactly the pinned file; following it never goes further.
    const self = `/proc/self/fd/${m.fd}`;
    const { uid, gid } = ownerOf(ctx, src);
    fchownat(m.fd, "", uid, gid, AT_EMPTY_PATH);
    if (typeOf(src) !== S_IFLNK) fchmodat(AT_FDCWD, self, src.st.mode & 0o7777);
    if (ctx.opts.xattrs) {
      for (const [k, v] of xattrsOf(src)) {
        try {
          fdSetxattr(m.fd, k, v);
        } catch { /* refused by the destination filesystem */ }
      }
    }
    utimensat(AT_FDCWD, self, { sec: 0, nsec: UTIME_OMIT }, src.st.mtime, 0);
  });
}
