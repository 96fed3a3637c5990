/**
 * The container's root filesystem on the host side: the overlay mount (lower dirs through short
 * links, so that 100+ layers fit overlay's one-page option string) and resolving paths inside it
 * the way the container will see them, so that an image symlink such as `/etc -> /tmp` or
 * `/proc -> /` can never send a mount outside the rootfs.
 *
 * @module
 */
import { MNT_DETACH, mount, umount } from "../../ffi/mount.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { TsboxError } from "../errors.ts";

const MAX_SYMLINKS = 40;

/** A path inside the rootfs that cannot be resolved or created safely. */
export class RootfsPathError extends TsboxError {
  constructor(readonly path: string, detail: string) {
    super(`rootfs path ${path}: ${detail}`);
    this.name = "RootfsPathError";
  }
}

function lstat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Resolves container path `path` within `root` (an absolute host dir) like RESOLVE_IN_ROOT:
 * every symlink, absolute or relative, is followed inside `root`, and `..` never climbs above
 * it. Components that do not exist are kept as they are. Returns the host path.
 */
export function resolveInRoot(root: string, path: string): string {
  const done: string[] = [];
  const todo = path.split("/").filter((c) => c !== "" && c !== ".");
  let links = 0;
  while (todo.length > 0) {
    const comp = todo.shift()!;
    if (comp === ".") continue;
    if (comp === "..") {
      done.pop();
      continue;
    }
    const host = `${root}/${[...done, comp].join("/")}`;
    const info = lstat(host);
    if (info?.isSymlink) {
      if (++links > MAX_SYMLINKS) throw new RootfsPathError(path, "too many symbolic links");
      const target = Deno.readLinkSync(host);
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...target.split("/").filter((c) => c !== "" && c !== "."));
      continue;
    }
    done.push(comp);
    if (!info) {
      // Nothing below a missing component can be a symlink yet.
      done.push(...todo.filter((c) => c !== "." && c !== ".."));
      if (todo.includes("..")) throw new RootfsPathError(path, "'..' below a missing directory");
      break;
    }
  }
  return done.length === 0 ? root : `${root}/${done.join("/")}`;
}

/**
 * Resolves `path` in `root` and makes sure a directory (or, for `kind` "file", a regular file)
 * exists there to mount onto. Returns the host path of the mount target.
 */
export function ensureMountTarget(root: string, path: string, kind: "dir" | "file"): string {
  const target = resolveInRoot(root, path);
  const info = lstat(target);
  if (info) {
    if (kind === "dir" && !info.isDirectory) {
      throw new RootfsPathError(path, "exists and is not a directory");
    }
    if (kind === "file" && info.isDirectory) throw new RootfsPathError(path, "is a directory");
    return target;
  }
  const parent = target.slice(0, target.lastIndexOf("/"));
  // Every missing component was resolved above without symlinks, so mkdir -p stays inside.
  Deno.mkdirSync(parent, { recursive: true, mode: 0o755 });
  if (kind === "dir") Deno.mkdirSync(target, { mode: 0o755 });
  else Deno.writeFileSync(target, new Uint8Array(), { mode: 0o644, createNew: true });
  return target;
}

/** Where one container's filesystem lives. */
export interface OverlayDirs {
  /** Directory the lower entries are relative to (the store's link dir). */
  readonly lowerBase: string;
  /** Lower entries relative to `lowerBase`, top layer first. */
  readonly lower: readonly string[];
  readonly upper: string;
  readonly work: string;
  /** Mount point. */
  readonly target: string;
}

/** overlayfs option string (relative lower entries; see {@link mountOverlay}). */
export function overlayOptions(dirs: OverlayDirs): string {
  for (const l of dirs.lower) {
    if (/[,:]/.test(l)) throw new TsboxError(`layer path ${l} contains ',' or ':'`);
  }
  return `lowerdir=${dirs.lower.join(":")},upperdir=${dirs.upper},workdir=${dirs.work}`;
}

/**
 * Mounts the overlay in the current (host) mount namespace. The working directory is switched
 * to `lowerBase` for the call so the lower entries stay short; it is shared by every thread, so
 * this stays synchronous from chdir to chdir.
 */
export function mountOverlay(dirs: OverlayDirs): void {
  const options = overlayOptions(dirs);
  if (options.length >= 4096) {
    throw new TsboxError(`too many layers (${dirs.lower.length}) for one overlay mount`);
  }
  const cwd = Deno.cwd();
  Deno.chdir(dirs.lowerBase);
  try {
    mount("overlay", dirs.target, "overlay", 0, options);
  } finally {
    Deno.chdir(cwd);
  }
}

/**
 * Detaches the rootfs mount; false when nothing was mounted there. Rootless, the rootfs is only
 * ever mounted inside the container's own namespaces, so the host has nothing to detach (and
 * umount2 says EPERM before it would say EINVAL).
 */
export function unmountRootfs(target: string): boolean {
  try {
    return umount(target, MNT_DETACH);
  } catch (err) {
    if (err instanceof SyscallError && err.code === "EPERM" && Deno.uid() !== 0) return false;
    throw err;
  }
}
