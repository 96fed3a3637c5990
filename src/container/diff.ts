/**
 * `diff`: what a container changed, read from its overlay upper dir: A (added), C (changed),
 * D (deleted: a whiteout), listed in path order as docker prints them.
 *
 * @module
 */
import { join } from "node:path";
import type { Store } from "../store/mod.ts";
import { containerDir } from "./paths.ts";
import type { ContainerRecord } from "./state.ts";

/** One change. */
export interface Change {
  readonly kind: "A" | "C" | "D";
  /** Absolute container path. */
  readonly path: string;
}

function existsIn(dirs: string[], rel: string): boolean {
  return dirs.some((d) => {
    try {
      Deno.lstatSync(join(d, rel));
      return true;
    } catch {
      return false;
    }
  });
}

/** The container's changes against its image. */
export function containerChanges(store: Store, c: ContainerRecord): Promise<Change[]> {
  const upper = `${containerDir(store.root, c.id)}/upper`;
  const lower = c.config.layers.map((l) => join(store.linkDir, l));
  const out: Change[] = [];
  const walk = (rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(join(upper, rel))];
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      const info = Deno.lstatSync(join(upper, path));
      // overlayfs whiteout: a character device 0:0.
      if (info.isCharDevice && info.rdev === 0) {
        out.push({ kind: "D", path: `/${path}` });
        continue;
      }
      out.push({ kind: existsIn(lower, path) ? "C" : "A", path: `/${path}` });
      if (info.isDirectory) walk(path);
    }
  };
  walk("");
  return Promise.resolve(out);
}
