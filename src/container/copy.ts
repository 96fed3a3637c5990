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
import { basename, dirname, join } from "node:path";
import {
  AT_FDCWD,
  close,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  openat,
  read,
  S_IFDIR,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { NotFoundError, TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { resolveUser } from "../runtime/user.ts";
import { archiveOf } from "./export.ts";
import { CopyError, copyNode, type CopyOptions } from "./fd_copy.ts";
import { extractTar } from "./tar_extract.ts";
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

/** Opens `src` (O_PATH, not followed) below the container's root fd `root`, as `cp` names it. */
function openSource(root: number, c: ContainerRecord, src: string): Node {
  try {
    return adopt(openInRoot(root, absolute(src), O_PATH));
  } catch (err) {
    if (missing(err)) throw new NotFoundError("file or directory", `${c.name}:${src}`);
    if (err instanceof SyscallError) throw new CopyError(`${c.name}:${src}`, err);
    throw err;
  }
}

/** `cp CONTAINER:SRC DEST`. */
export async function copyFromContainer(
  store: Store,
  c: ContainerRecord,
  src: string,
  dest: string,
): Promise<void> {
  await withRootfs(store, c, (root) => {
    const node = openSource(root.fd, c, src);
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

/** `cp CONTAINER:SRC -`: a tar of SRC (named by its last part) written to `out`. */
export async function archiveFromContainer(
  store: Store,
  c: ContainerRecord,
  src: string,
  out: WritableStream<Uint8Array>,
): Promise<void> {
  await withRootfs(store, c, async (root) => {
    const node = openSource(root.fd, c, src);
    try {
      await archiveOf(node, sourceName(src)).pipeTo(out);
    } finally {
      close(node.fd);
    }
  }, { volumes: true });
}

/** A small text file of the container (its /etc/passwd), read by fd; "" when it has none. */
function readInRoot(root: number, path: string): string {
  let fd: number;
  try {
    fd = openInRoot(root, path, O_RDONLY);
  } catch {
    return "";
  }
  try {
    // passwd and group files are small: 4 MiB is far beyond any real one.
    const buf = new Uint8Array(4 * 1024 * 1024);
    let total = 0;
    while (total < buf.length) {
      const n = read(fd, buf.subarray(total));
      if (n === 0) break;
      total += n;
    }
    return new TextDecoder().decode(buf.subarray(0, total));
  } finally {
    close(fd);
  }
}

/**
 * `cp -a`'s owner for what is copied into the container: the container's user (its `--user`
 * or the image's, looked up in the container's own passwd and group files), as docker's
 * daemon chowns a `cp -a` copy.
 */
export async function containerUserOwner(
  store: Store,
  c: ContainerRecord,
): Promise<{ uid: number; gid: number }> {
  return await withRootfs(store, c, (root) => {
    const user = resolveUser(
      c.config.user ?? "",
      readInRoot(root.fd, "/etc/passwd"),
      readInRoot(root.fd, "/etc/group"),
    );
    return Promise.resolve({ uid: user.uid, gid: user.gid });
  });
}

/**
 * `cp - CONTAINER:DEST`: the tar `input` extracted into DEST, which must be a directory. The
 * tar is first unpacked by fd into a private directory of the host (tar_extract.ts refuses
 * entries that would leave it), then copied in as `cp DIR/ENTRY CONTAINER:DEST` copies.
 */
export async function extractToContainer(
  store: Store,
  c: ContainerRecord,
  input: ReadableStream<Uint8Array>,
  dest: string,
  opts: CopyOptions = {},
): Promise<void> {
  const target = absolute(dest);
  await withRootfs(store, c, (root) => {
    try {
      close(openInRoot(root.fd, target, O_PATH | O_DIRECTORY));
    } catch (err) {
      if (err instanceof SyscallError && err.code === "ENOTDIR") {
        throw new TsboxError(`destination "${c.name}:${dest}" must be a directory`);
      }
      if (missing(err)) throw new NotFoundError("directory", `${c.name}:${dest}`);
      throw err;
    }
    return Promise.resolve();
  }, { volumes: true });
  const tmp = await Deno.makeTempDir({ prefix: "tsbox-cp-" });
  try {
    const dir = openat(AT_FDCWD, tmp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    let top: string[];
    try {
      top = await extractTar(input, dir);
    } finally {
      close(dir);
    }
    for (const name of top) await copyToContainer(store, c, join(tmp, name), target, opts);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

/** `cp SRC CONTAINER:DEST`; `opts.owner` gives the copies another owner (`cp -a`). */
export async function copyToContainer(
  store: Store,
  c: ContainerRecord,
  src: string,
  dest: string,
  opts: CopyOptions = {},
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
        (dir, name, shown) => copyNode(node, dir, name, shown, opts),
      );
      return Promise.resolve();
    }, { volumes: true });
  } finally {
    close(node.fd);
  }
}
