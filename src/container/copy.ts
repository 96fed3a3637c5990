/**
 * `cp` between the host and a container. Container paths are resolved inside the container's
 * root (symlinks cannot lead out); a running container is written through its own mount
 * namespace (/proc/PID/root), never by touching its upper dir.
 *
 * @module
 */
import { basename, dirname, join } from "node:path";
import { fchownat } from "../../ffi/fs.ts";
import { NotFoundError } from "../errors.ts";
import { resolveInRoot } from "../runtime/rootfs.ts";
import type { Store } from "../store/mod.ts";
import { withRootfs } from "./rootfs_access.ts";
import type { ContainerRecord } from "./state.ts";

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;

function lstat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

/** Copies a tree, keeping modes, owners and symlinks (never following them). */
async function copyTree(src: string, dst: string): Promise<void> {
  const info = Deno.lstatSync(src);
  if (info.isSymlink) {
    await Deno.symlink(await Deno.readLink(src), dst);
  } else if (info.isDirectory) {
    await Deno.mkdir(dst, { recursive: true });
    for await (const e of Deno.readDir(src)) await copyTree(join(src, e.name), join(dst, e.name));
  } else if (info.isFile) {
    await Deno.copyFile(src, dst);
  } else {
    return; // devices, fifos and sockets are not copied, as docker cp skips them
  }
  if (!info.isSymlink) await Deno.chmod(dst, (info.mode ?? 0o644) & 0o7777);
  if (info.uid !== null && info.gid !== null) {
    fchownat(AT_FDCWD, dst, info.uid, info.gid, AT_SYMLINK_NOFOLLOW);
  }
}

function destination(dest: string, srcName: string): string {
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.statSync(dest);
  } catch { /* missing: dest is the new name */ }
  return info?.isDirectory ? join(dest, srcName) : dest;
}

/** `cp CONTAINER:SRC DEST`. */
export async function copyFromContainer(
  store: Store,
  c: ContainerRecord,
  src: string,
  dest: string,
): Promise<void> {
  await withRootfs(store, c, async (root) => {
    const from = resolveInRoot(root, src.startsWith("/") ? src : `/${src}`);
    if (!lstat(from)) throw new NotFoundError("file or directory", `${c.name}:${src}`);
    await copyTree(from, destination(dest, basename(from)));
  });
}

/** `cp SRC CONTAINER:DEST`. */
export async function copyToContainer(
  store: Store,
  c: ContainerRecord,
  src: string,
  dest: string,
): Promise<void> {
  if (!lstat(src)) throw new NotFoundError("file or directory", src);
  await withRootfs(store, c, async (root) => {
    const to = resolveInRoot(root, dest.startsWith("/") ? dest : `/${dest}`);
    // stat, not lstat: the root itself may be the /proc/PID/root link.
    let parent: Deno.FileInfo | undefined;
    try {
      parent = Deno.statSync(dirname(to));
    } catch { /* missing */ }
    if (!parent?.isDirectory) throw new NotFoundError("directory", `${c.name}:${dirname(dest)}`);
    await copyTree(src, destination(to, basename(src)));
  });
}
