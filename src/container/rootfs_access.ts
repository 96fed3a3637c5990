/**
 * Reaching a container's filesystem from the host, as an fd of its root: a running container's
 * through /proc/PID/root opened once (its own mount namespace, so writes go through its
 * overlay), a stopped one's through a temporary overlay mount of its layers and upper dir.
 * Callers resolve paths from that fd with RESOLVE_IN_ROOT (fd_tree.ts), never by a host path:
 * `/proc/PID/root/<path>` resolves a container's absolute symlinks against the host's root.
 *
 * @module
 */
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  close,
  fstatat,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  openat,
} from "../../ffi/fs.ts";
import { TsboxError } from "../errors.ts";
import { mountOverlay, unmountRootfs } from "../runtime/rootfs.ts";
import type { Store } from "../store/mod.ts";
import { processAlive } from "./proc.ts";
import { mountBindsInto } from "./stopped_mounts.ts";
import { containerDir } from "./paths.ts";
import { type ContainerRecord, reconcile } from "./state.ts";

/** Undoes mountinfo's octal escapes (space, tab, newline, backslash). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Mount points below the root of process `pid`, relative to that root ("proc", "etc/hosts"):
 * what is mounted there (proc, the /etc files, volumes) is not the container's filesystem.
 */
export function submountsOf(pid: number): Set<string> {
  const out = new Set<string>();
  let text = "";
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/mountinfo`);
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const point = line.split(" ")[4];
    if (!point || point === "/" || !point.startsWith("/")) continue;
    out.add(unescapeMountPath(point).slice(1));
  }
  return out;
}

/** A container's root, open for fd-relative work (see fd_tree.ts). */
export interface RootfsHandle {
  /** O_PATH fd of the container's `/`: resolve paths in it with `openInRoot`. */
  readonly fd: number;
  /** Paths (relative to the root) where something else is mounted; empty when stopped. */
  readonly submounts: ReadonlySet<string>;
  /** The container's process runs: the root is its live root, through its mount namespace. */
  readonly running: boolean;
}

/** The container's root could not be opened safely (for example while it is starting). */
export class RootfsAccessError extends TsboxError {
  constructor(readonly container: string, reason: string) {
    super(`container ${container}: ${reason}`);
    this.name = "RootfsAccessError";
  }
}

/**
 * Opens `/proc/PID/root` of a running container once, as a directory fd: the container's root
 * in its own mount namespace (a write through it goes through its overlay, as the container's
 * own would). Refused when the process is not the container's any more or has not made its
 * root yet (its root is still the host's `/`).
 */
function openLiveRoot(c: ContainerRecord, pid: number): number {
  const fd = openat(AT_FDCWD, `/proc/${pid}/root`, O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    if (!processAlive(pid, c.pidStart)) {
      throw new RootfsAccessError(c.name, "the container's process exited while opening its root");
    }
    const root = fstatat(fd, "", AT_EMPTY_PATH);
    const host = fstatat(AT_FDCWD, "/", 0);
    if (root.dev === host.dev && root.ino === host.ino) {
      throw new RootfsAccessError(
        c.name,
        "the container is still starting (its root is not set up)",
      );
    }
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  }
}

/**
 * Runs `fn` with an fd of the container's `/`: a running container's live root (opened once
 * from /proc/PID/root), a stopped one's through a temporary overlay mount of its layers and
 * upper dir, with its volumes and bind mounts on it when `o.volumes` is set (cp). The fd is
 * closed (and the mounts removed) when `fn` settles.
 */
export async function withRootfs<T>(
  store: Store,
  record: ContainerRecord,
  fn: (root: RootfsHandle) => Promise<T>,
  o: { readonly volumes?: boolean } = {},
): Promise<T> {
  const c = reconcile(store, record);
  if (c.pid !== undefined && processAlive(c.pid, c.pidStart)) {
    const submounts = submountsOf(c.pid);
    const fd = openLiveRoot(c, c.pid);
    try {
      return await fn({ fd, submounts, running: true });
    } finally {
      close(fd);
    }
  }
  const dir = containerDir(store.root, c.id);
  const target = `${dir}/export-${crypto.randomUUID().slice(0, 8)}`;
  for (const d of ["upper", "work", target]) {
    await Deno.mkdir(d.startsWith("/") ? d : `${dir}/${d}`, { recursive: true, mode: 0o700 });
  }
  mountOverlay({
    lowerBase: store.linkDir,
    lower: [...c.config.layers].reverse(),
    upper: `${dir}/upper`,
    work: `${dir}/work`,
    target,
  });
  try {
    const fd = openat(AT_FDCWD, target, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    try {
      if (o.volumes) mountBindsInto(fd, target, c.config.mounts);
      return await fn({ fd, submounts: new Set(), running: false });
    } finally {
      close(fd);
    }
  } finally {
    unmountRootfs(target);
    await Deno.remove(target).catch(() => {});
  }
}
