/**
 * `cp` between the host and a container. The container side is an fd of the container's root
 * (rootfs_access.ts): its path is resolved once with RESOLVE_IN_ROOT, so symlinks lead nowhere
 * outside it, and every file below is read or written through fds (fd_copy.ts), so a container
 * that swaps files for symlinks while the copy runs cannot make the host read or write a host
 * file. A running container is written through its own mount namespace (/proc/PID/root),
 * never by touching its upper dir.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import {
  AT_FDCWD,
  close,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  openat,
  S_IFDIR,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { NotFoundError, TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { CopyError, copyNode } from "./fd_copy.ts";
import { adopt, type Node, openInRoot, typeOf, withNode } from "./fd_tree.ts";
import { withRootfs } from "./rootfs_access.ts";
import type { ContainerRecord } from "./state.ts";

function absolute(path: string): string {
  return path.startsWith("/") ? path : `/${path}`;
}

/** Whether a failed lookup means "not there" (rather than a real failure). */
function missing(err: unknown): boolean {
  return err instanceof SyscallError && (err.code === "ENOENT" || err.code === "ENOTDIR");
}

/**
 * Runs `fn` with the directory fd to copy into and the entry name to create there, given a
 * destination that is an existing directory (copy into it, under `srcName`) or a new name in
 * an existing directory. `open` opens a path of the destination side.
 */
function withDestination<T>(
  open: (path: string, flags: number) => number,
  dest: string,
  srcName: string,
  srcIsDir: boolean,
  display: (path: string) => string,
  fn: (dir: number, name: string, shown: string) => T,
): T {
  let existing: Node | undefined;
  try {
    existing = adopt(open(dest, O_PATH));
  } catch (err) {
    if (!missing(err)) throw err;
  }
  if (existing && typeOf(existing) === S_IFDIR) {
    const shown = srcName === "." ? dest : `${dest.replace(/\/+$/, "")}/${srcName}`;
    return withNode(existing, (d) => fn(d.fd, srcName, display(shown)));
  }
  if (existing) close(existing.fd);
  if (existing && srcIsDir) {
    throw new TsboxError(`cannot copy a directory to a file: ${display(dest)}`);
  }
  if (dest.endsWith("/")) throw new NotFoundError("directory", display(dest));
  let parent: number;
  try {
    parent = open(dirname(dest), O_PATH | O_DIRECTORY);
  } catch (err) {
    if (missing(err)) throw new NotFoundError("directory", display(dirname(dest)));
    throw err;
  }
  try {
    return fn(parent, basename(dest), display(dest));
  } finally {
    close(parent);
  }
}

/** The name a copied source gets inside a destination directory ("." merges into it). */
function sourceName(src: string): string {
  const name = basename(src);
  return name === "" || name === ".." ? "." : name;
}

/** `cp CONTAINER:SRC DEST`. */
export async function copyFromContainer(
  store: Store,
  c: ContainerRecord,
  src: string,
  dest: string,
): Promise<void> {
  await withRootfs(store, c, (root) => {
    let node: Node;
    try {
      node = adopt(openInRoot(root.fd, absolute(src), O_PATH));
    } catch (err) {
      if (missing(err)) throw new NotFoundError("file or directory", `${c.name}:${src}`);
      if (err instanceof SyscallError) throw new CopyError(`${c.name}:${src}`, err);
      throw err;
    }
    withNode(node, (n) => {
      // The host side is the user's own: its path is taken as given (symlinks followed).
      const open = (path: string, flags: number) =>
        openat(AT_FDCWD, path, flags | O_CLOEXEC | (path.endsWith("/") ? O_DIRECTORY : 0));
      withDestination(
        open,
        dest,
        sourceName(src),
        typeOf(n) === S_IFDIR,
        (p) => p,
        (dir, name, shown) => copyNode(n, dir, name, shown),
      );
    });
    return Promise.resolve();
  }, { volumes: true });
}

/** `cp SRC CONTAINER:DEST`. */
export async function copyToContainer(
  store: Store,
  c: ContainerRecord,
  src: string,
  dest: string,
): Promise<void> {
  let node: Node;
  try {
    // The source itself is copied, a symlink as a symlink.
    node = adopt(openat(AT_FDCWD, src, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  } catch (err) {
    if (missing(err)) throw new NotFoundError("file or directory", src);
    throw err;
  }
  try {
    await withRootfs(store, c, (root) => {
      const open = (path: string, flags: number) => openInRoot(root.fd, path, flags);
      withDestination(
        open,
        absolute(dest),
        sourceName(src),
        typeOf(node) === S_IFDIR,
        (p) => `${c.name}:${p}`,
        (dir, name, shown) => copyNode(node, dir, name, shown),
      );
      return Promise.resolve();
    }, { volumes: true });
  } finally {
    close(node.fd);
  }
}
