/**
 * Recognising the build directories of builds that no longer run, without loading the builder
 * or the code that unmounts: the store's sweep, which every command runs, reads
 * `<root>/build` (empty but for running builds) with {@link abandonedBuildDirs} and loads the
 * remover (src/builder/sweep.ts) only when it found one. Each build works in
 * `<root>/build/b-<pid>-<start>-<hex>`, named after the process that owns it (its pid and
 * start time from /proc/PID/stat, so a reused pid is not taken for the owner).
 *
 * @module
 */
import { join } from "../path.ts";
import { processAlive } from "../container/proc.ts";

/** `b-<pid>-<start>-<hex>`: a build directory and its owner. */
const OWNED = /^b-(\d+)-(\d+)-[0-9a-f]+$/;
/** Directories of builds before owners were recorded (`Deno.makeTempDir`'s `b-XXXXXX`). */
const LEGACY = /^b-[^-]+$/;
/** A legacy directory's owner is unknown: only one this old is surely abandoned. */
const LEGACY_AGE_MS = 24 * 3600_000;

/** The directory builds work in under a store root. */
export function buildsDir(root: string): string {
  return join(root, "build");
}

/** Whether the build directory `name` (a base name) belongs to no running process. */
export function isAbandoned(name: string, mtime?: Date | null): boolean {
  const owned = OWNED.exec(name);
  if (owned) return !processAlive(Number(owned[1]), Number(owned[2]));
  if (LEGACY.test(name)) return Date.now() - (mtime?.getTime() ?? 0) > LEGACY_AGE_MS;
  return false;
}

/**
 * The base names of the build directories under `root` whose build no longer runs: one readdir
 * (and a /proc read per directory found). A store without builds has none.
 */
export async function abandonedBuildDirs(root: string): Promise<string[]> {
  const work = buildsDir(root);
  const found: string[] = [];
  try {
    for await (const e of Deno.readDir(work)) {
      if (!e.isDirectory) continue;
      const mtime = LEGACY.test(e.name)
        ? (await Deno.lstat(join(work, e.name)).catch(() => undefined))?.mtime
        : undefined;
      if (isAbandoned(e.name, mtime)) found.push(e.name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  return found;
}
