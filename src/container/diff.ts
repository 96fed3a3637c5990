/**
 * `diff`: what a container changed, read from its overlay upper dir: A (added), C (changed),
 * D (deleted: a whiteout), listed in path order as docker prints them.
 *
 * @module
 */
import { join } from "node:path";
import { lgetxattr } from "../../ffi/fs.ts";
import type { Store } from "../store/mod.ts";
import { containerDir } from "./paths.ts";
import type { ContainerRecord } from "./state.ts";

/** One change. */
export interface Change {
  readonly kind: "A" | "C" | "D";
  /** Absolute container path. */
  readonly path: string;
}

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

function hasXattr(path: string, names: readonly string[]): boolean {
  return names.some((n) => {
    try {
      return lgetxattr(path, n) !== null;
    } catch {
      return false;
    }
  });
}

/** A whiteout in overlay form: a 0/0 character device, or a file with the whiteout xattr. */
function isWhiteout(path: string, info: Deno.FileInfo): boolean {
  if (info.isCharDevice && info.rdev === 0) return true;
  return info.isFile && info.size === 0 && hasXattr(path, WHITEOUT_XATTRS);
}

const WHITEOUT_XATTRS = ["trusted.overlay.whiteout", "user.overlay.whiteout"];
const OPAQUE_XATTRS = ["trusted.overlay.opaque", "user.overlay.opaque"];

/**
 * Whether `rel` exists in the image: the merged view of `layers` (top first), where a whiteout
 * deletes a path and an opaque directory hides what lower layers have below it.
 */
function existsIn(layers: string[], rel: string): boolean {
  const parts = rel.split("/");
  for (const layer of layers) {
    const info = lstatOrUndefined(join(layer, rel));
    if (info) return !isWhiteout(join(layer, rel), info);
    // Not in this layer: an ancestor here may still hide the lower layers' copy.
    for (let i = parts.length - 1; i > 0; i--) {
      const dir = join(layer, ...parts.slice(0, i));
      const a = lstatOrUndefined(dir);
      if (!a) continue;
      if (!a.isDirectory || hasXattr(dir, OPAQUE_XATTRS)) return false;
    }
  }
  return false;
}

/**
 * Mount targets the runtime creates in every container when the image lacks them. docker keeps
 * them in an init layer that `diff` does not show; here they sit in the upper dir, so they are
 * left out when they were added (not when the image had them and the container changed them).
 */
const RUNTIME_TARGETS = new Set([
  "dev",
  "proc",
  "sys",
  "etc/hostname",
  "etc/hosts",
  "etc/resolv.conf",
]);

/** The container's changes against its image. */
export function containerChanges(store: Store, c: ContainerRecord): Promise<Change[]> {
  const upper = `${containerDir(store.root, c.id)}/upper`;
  const lower = c.config.layers.map((l) => join(store.linkDir, l)).reverse();
  const out: Change[] = [];
  /** Lists `rel`'s changes; returns false when it had entries and every one was left out. */
  const walk = (rel: string): boolean => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(join(upper, rel))];
    } catch {
      return true;
    }
    let shown = entries.length === 0;
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      const info = Deno.lstatSync(join(upper, path));
      // overlayfs whiteout: a character device 0:0.
      if (info.isCharDevice && info.rdev === 0) {
        out.push({ kind: "D", path: `/${path}` });
        shown = true;
        continue;
      }
      const kind = existsIn(lower, path) ? "C" : "A";
      if (kind === "A" && RUNTIME_TARGETS.has(path)) continue;
      const at = out.length;
      out.push({ kind, path: `/${path}` });
      // A directory copied up only to hold runtime targets (/etc) is no change of its own.
      if (info.isDirectory && !walk(path) && kind === "C") out.splice(at, 1);
      else shown = true;
    }
    return shown;
  };
  walk("");
  return Promise.resolve(out);
}
