/**
 * `diff`: what a container changed, read from its overlay upper dir: A (added), C (changed),
 * D (deleted: a whiteout), listed in path order as docker prints them.
 *
 * @module
 */
import { join } from "node:path";
import {
  AT_FDCWD,
  close,
  fdGetxattr,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  openat,
  openat2,
  RESOLVE_BENEATH,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
  S_IFCHR,
  S_IFDIR,
  S_IFREG,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { adopt, listDir, type Node, nodeOf, openChild, typeOf, withNode } from "./fd_tree.ts";
import type { Store } from "../store/mod.ts";
import { containerDir } from "./paths.ts";
import type { ContainerRecord } from "./state.ts";

/** One change. */
export interface Change {
  readonly kind: "A" | "C" | "D";
  /** Absolute container path. */
  readonly path: string;
}

/** Whether node `node` carries one of the xattrs `names`. */
export function hasXattr(node: Node, names: readonly string[]): boolean {
  return names.some((n) => {
    try {
      return fdGetxattr(node.fd, n) !== null;
    } catch {
      return false;
    }
  });
}

/** A whiteout in overlay form: a 0/0 character device, or a file with the whiteout xattr. */
export function isWhiteout(node: Node): boolean {
  const type = typeOf(node);
  if (type === S_IFCHR && node.st.rdevMajor === 0 && node.st.rdevMinor === 0) return true;
  return type === S_IFREG && node.st.size === 0 && hasXattr(node, WHITEOUT_XATTRS);
}

const WHITEOUT_XATTRS = ["trusted.overlay.whiteout", "user.overlay.whiteout"];
/** The xattrs overlayfs marks an opaque directory with (trusted, or user in a namespace). */
export const OPAQUE_XATTRS = ["trusted.overlay.opaque", "user.overlay.opaque"];

/** How a layer path is looked up: beneath the layer, and no symlink on the way is followed. */
const IN_LAYER = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/**
 * `rel` in the layer whose root is `layer`, never following a symlink (a symlink where a
 * directory is expected means the path is not in this layer's view): "missing" when nothing is
 * there, "blocked" when a non-directory is on the way.
 */
function lookup(layer: number, rel: string): Node | "missing" | "blocked" {
  let fd: number;
  try {
    // O_PATH|O_NOFOLLOW: a final symlink is returned as itself despite RESOLVE_NO_SYMLINKS.
    fd = openat2(layer, rel, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0, IN_LAYER);
  } catch (err) {
    if (err instanceof SyscallError && err.code === "ENOENT") return "missing";
    if (err instanceof SyscallError && (err.code === "ELOOP" || err.code === "ENOTDIR")) {
      return "blocked";
    }
    throw err;
  }
  return adopt(fd);
}

/**
 * Whether `rel` exists in the image: the merged view of `layers` (fds, top first), where a
 * whiteout deletes a path and an opaque directory hides what lower layers have below it.
 */
export function existsIn(layers: readonly number[], rel: string): boolean {
  const parts = rel.split("/");
  for (const layer of layers) {
    const found = lookup(layer, rel);
    if (found === "blocked") return false;
    if (found !== "missing") return withNode(found, (n) => !isWhiteout(n));
    // Not in this layer: an ancestor here may still hide the lower layers' copy.
    for (let i = parts.length - 1; i > 0; i--) {
      const a = lookup(layer, parts.slice(0, i).join("/"));
      if (a === "missing") continue;
      if (a === "blocked") return false;
      if (withNode(a, (n) => typeOf(n) !== S_IFDIR || hasXattr(n, OPAQUE_XATTRS))) return false;
    }
  }
  return false;
}

/**
 * Mount targets the runtime creates in every container when the image lacks them. docker keeps
 * them in an init layer that `diff` does not show; here they sit in the upper dir, so they are
 * left out when they were added (not when the image had them and the container changed them).
 */
export const RUNTIME_TARGETS = new Set([
  "dev",
  "proc",
  "sys",
  "etc/hostname",
  "etc/hosts",
  "etc/resolv.conf",
]);

/** Opens directory `path` of the store as an O_PATH fd (following tsbox's own links). */
export function openStoreDir(path: string): number | undefined {
  try {
    return openat(AT_FDCWD, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  } catch (err) {
    if (err instanceof SyscallError && err.code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * The container's changes against its image. The upper dir is what the container writes, and
 * a running one may change it meanwhile, so it is walked by fd (never following a symlink it
 * made); the image's layers are looked into the same way.
 */
export function containerChanges(store: Store, c: ContainerRecord): Promise<Change[]> {
  const out: Change[] = [];
  const upper = openStoreDir(`${containerDir(store.root, c.id)}/upper`);
  if (upper === undefined) return Promise.resolve(out);
  const lower: number[] = [];
  try {
    for (const l of [...c.config.layers].reverse()) {
      const fd = openStoreDir(join(store.linkDir, l));
      if (fd !== undefined) lower.push(fd);
    }
    /** Lists `dir`'s changes; returns false when it had entries and every one was left out. */
    const walk = (dir: Node, rel: string): boolean => {
      const entries = listDir(dir);
      let shown = entries.length === 0;
      for (const e of entries) {
        const node = openChild(dir.fd, e.name);
        if (!node) continue;
        const path = rel ? `${rel}/${e.name}` : e.name;
        withNode(node, (n) => {
          // overlayfs whiteout: a character device 0:0.
          if (typeOf(n) === S_IFCHR && n.st.rdevMajor === 0 && n.st.rdevMinor === 0) {
            out.push({ kind: "D", path: `/${path}` });
            shown = true;
            return;
          }
          const kind = existsIn(lower, path) ? "C" : "A";
          if (kind === "A" && RUNTIME_TARGETS.has(path)) return;
          const at = out.length;
          out.push({ kind, path: `/${path}` });
          // A directory copied up only to hold runtime targets (/etc) is no change of its own.
          if (typeOf(n) === S_IFDIR && !walk(n, path) && kind === "C") out.splice(at, 1);
          else shown = true;
        });
      }
      return shown;
    };
    walk(nodeOf(upper), "");
  } finally {
    close(upper);
    for (const fd of lower) close(fd);
  }
  return Promise.resolve(out);
}
