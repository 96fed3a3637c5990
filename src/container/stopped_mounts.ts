/**
 * The bind mounts (named and anonymous volumes, `-v HOST:CTR`) of a stopped container, mounted
 * onto the temporary overlay of its root for `cp`, so that a path under a volume reaches the
 * volume as it does while the container runs (docker's cp works on the volume then too).
 *
 * Each target is opened inside the root with RESOLVE_IN_ROOT and mounted onto through
 * /proc/self/fd/N: a symlink the container left in the path can never send the mount, or what
 * cp then writes, outside its root. A target a never-started container lacks is made first, as
 * its start would make it. The mounts go with the root's lazy unmount.
 *
 * @module
 */
import { close, O_PATH } from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { mount, MS } from "../../ffi/mount.ts";
import type { MountRequest } from "../runtime/container.ts";
import { ensureMountTarget } from "../runtime/rootfs.ts";
import { openInRoot } from "./fd_tree.ts";

/**
 * Mounts the bind mounts of `mounts` below the root open as `rootFd`, mounted at `rootPath`
 * (tmpfs ones are not: what a stopped container had there is gone).
 */
export function mountBindsInto(
  rootFd: number,
  rootPath: string,
  mounts: readonly MountRequest[],
): void {
  for (const m of mounts) {
    if (m.kind !== "bind") continue;
    let fd: number;
    try {
      fd = openInRoot(rootFd, m.target, O_PATH);
    } catch (err) {
      if (!(err instanceof SyscallError && err.code === "ENOENT")) throw err;
      // Never started: made where its start would make it, then opened as any other.
      ensureMountTarget(rootPath, m.target, Deno.statSync(m.source).isDirectory ? "dir" : "file");
      fd = openInRoot(rootFd, m.target, O_PATH);
    }
    try {
      const at = `/proc/self/fd/${fd}`;
      mount(m.source, at, "", MS.BIND | MS.REC);
    } finally {
      close(fd);
    }
    if (m.readOnly) {
      // The fd above names the directory under the new mount: the remount needs the mount
      // itself, which the same path now resolves to.
      const mounted = openInRoot(rootFd, m.target, O_PATH);
      try {
        mount(m.source, `/proc/self/fd/${mounted}`, "", MS.BIND | MS.REMOUNT | MS.RDONLY);
      } finally {
        close(mounted);
      }
    }
  }
}
