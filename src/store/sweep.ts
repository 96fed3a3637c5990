/**
 * Removal of what killed tsbox processes left in a store: the one entry point,
 * {@link sweepAbandoned}, that every command opening the store for writing runs. It stays cheap
 * (a readdir of the few directories temp entries live in, a /proc read per temp entry found)
 * because it is on the start path of `run`.
 *
 * Other parts of tsbox that leave per-process leftovers (build directories, later veths) add
 * theirs with {@link registerSweeper}. The built-in sweeps read two directories:
 * `blobs/sha256` (blob temp files) and `layers`, where every other temp entry of the store is
 * made (layer dirs being unpacked, short links being renamed into `l/`, the database of a store
 * being created), so that nothing else needs reading.
 *
 * @module
 */
import { join } from "../path.ts";
import { abandoned } from "./owner.ts";
import { removeTree } from "./layers.ts";

/** Removes abandoned leftovers of one kind under a store root; must not throw for one entry. */
export type Sweeper = (root: string) => Promise<void>;

const extra: Sweeper[] = [];

/** Adds a sweep that {@link sweepAbandoned} runs after the built-in ones. */
export function registerSweeper(sweeper: Sweeper): void {
  if (!extra.includes(sweeper)) extra.push(sweeper);
}

/**
 * Removes the entries of `dir` named `.tmp-*` whose owner process is gone (see
 * {@link abandoned}): files and whole trees. A missing `dir` is fine. Returns the paths removed.
 */
export async function sweepTempEntries(dir: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return removed;
    throw err;
  }
  for (const e of entries) {
    if (!e.name.startsWith(".tmp-")) continue;
    const path = join(dir, e.name);
    try {
      // Only entries without an owner in their name need their age.
      const mtime = /^\.tmp-\d+-\d+-/.test(e.name) ? null : (await Deno.lstat(path)).mtime;
      if (!abandoned(e.name, mtime)) continue;
      if (e.isDirectory) await removeTree(path);
      else await Deno.remove(path);
      removed.push(path);
    } catch (err) {
      // Another sweeper got there first.
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return removed;
}

/**
 * Removes every abandoned temp entry of the store at `root` and runs the registered sweepers.
 * Returns the paths the built-in sweeps removed.
 */
export async function sweepAbandoned(root: string): Promise<string[]> {
  const removed = [
    ...await sweepTempEntries(join(root, "blobs", "sha256")),
    ...await sweepTempEntries(join(root, "layers")),
  ];
  for (const sweeper of extra) await sweeper(root);
  return removed;
}
