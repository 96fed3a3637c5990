/**
 * Walking a container's filesystem from the host by file descriptor only. A container may change
 * its files while the host reads or writes them (swap a file for a symlink to a host path, a
 * directory for a link to `/etc`), so a path is never looked up twice: a container path is
 * resolved once with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from an fd of the
 * container's root, every entry below is opened with O_PATH|O_NOFOLLOW relative to its parent's
 * fd, and all later calls use that fd. Whatever a racing container does, every file touched is
 * one that was inside its root when it was opened (CVE-2018-15664's class of bug cannot occur).
 *
 * @module
 */
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  close,
  type Dirent,
  fdGetxattr,
  fdListxattr,
  fstatat,
  getdents,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOCTTY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  openat,
  openat2,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  S_IFDIR,
  S_IFMT,
  S_IFREG,
  type Stat,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";

/** How a container path is resolved: absolute links and `..` stay in the root; no /proc links. */
export const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

/** One file, pinned by an O_PATH fd, with what fstat said about that fd. */
export interface Node {
  /** O_PATH fd of the file itself (a symlink is not followed). Closed by the opener. */
  readonly fd: number;
  readonly st: Stat;
}

/** The file type bits of a node (S_IFDIR, S_IFREG, S_IFLNK, ...). */
export function typeOf(node: Node): number {
  return node.st.mode & S_IFMT;
}

/**
 * openat2 of `path` inside `root` with {@link IN_ROOT} (absolute symlinks and `..` cannot leave
 * it). EAGAIN, which the kernel returns when a rename raced the lookup, is retried a few times.
 */
export function openInRoot(root: number, path: string, flags: number): number {
  for (let attempt = 0;; attempt++) {
    try {
      return openat2(root, path === "" ? "." : path, flags | O_CLOEXEC, 0, IN_ROOT);
    } catch (err) {
      if (err instanceof SyscallError && err.code === "EAGAIN" && attempt < 16) continue;
      throw err;
    }
  }
}

/** Describes `fd` (any fd, not taken over) as a {@link Node}: fstat of the fd itself. */
export function nodeOf(fd: number): Node {
  return { fd, st: fstatat(fd, "", AT_EMPTY_PATH) };
}

/** Pins a freshly opened fd as a {@link Node}, closing it if fstat fails (the caller owns it). */
export function adopt(fd: number): Node {
  try {
    return nodeOf(fd);
  } catch (err) {
    close(fd);
    throw err;
  }
}

/**
 * Opens entry `name` of directory `dir` without following it (O_PATH|O_NOFOLLOW): a symlink is
 * the link itself. Undefined when the entry is gone (removed since it was listed).
 */
export function openChild(dir: number, name: string): Node | undefined {
  let fd: number;
  try {
    fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  } catch (err) {
    if (err instanceof SyscallError && err.code === "ENOENT") return undefined;
    throw err;
  }
  return adopt(fd);
}

/**
 * Reopens a pinned node for reading through `/proc/self/fd/N`: the very file the O_PATH fd
 * names, never what its path names now. Refused unless the node is a regular file or a
 * directory, so that no device or fifo a container made is ever opened by the host.
 */
export function reopen(node: Node): number {
  const type = typeOf(node);
  if (type !== S_IFREG && type !== S_IFDIR) {
    throw new SyscallError("open", [`/proc/self/fd/${node.fd}`], 22 /* EINVAL */);
  }
  const flags = O_RDONLY | O_NOCTTY | O_CLOEXEC | (type === S_IFDIR ? O_DIRECTORY : 0);
  const fd = openat(AT_FDCWD, `/proc/self/fd/${node.fd}`, flags);
  const st = fstatat(fd, "", AT_EMPTY_PATH);
  if (st.ino !== node.st.ino || st.dev !== node.st.dev) {
    // Cannot happen (the magic link names the fd's own file); checked because it is cheap.
    close(fd);
    throw new SyscallError("open", [`/proc/self/fd/${node.fd}`], 116 /* ESTALE */);
  }
  return fd;
}

/** The entries of directory node `dir`, sorted by name ("." of its fd: the same directory). */
export function listDir(dir: Node): Dirent[] {
  const fd = openat(dir.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  try {
    return getdents(fd).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  } finally {
    close(fd);
  }
}

/**
 * The xattrs of a node, except overlayfs' own bookkeeping (never part of a container's content)
 * and what the filesystem refuses to show.
 */
export function xattrsOf(node: Node): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let names: string[];
  try {
    names = fdListxattr(node.fd);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    if (name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.")) continue;
    try {
      const value = fdGetxattr(node.fd, name);
      if (value) out.set(name, value);
    } catch { /* removed meanwhile, or a namespace we may not read */ }
  }
  return out;
}

/** Runs `fn` with `node`, closing its fd afterwards. */
export function withNode<T>(node: Node, fn: (node: Node) => T): T {
  try {
    return fn(node);
  } finally {
    close(node.fd);
  }
}
