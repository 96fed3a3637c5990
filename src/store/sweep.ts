/**
 * Removal of what killed tsbox processes left in a store: the one entry point,
 * {@link sweepAbandoned}, that every command opening the store for writing runs. It stays cheap
 * (a readdir of the few directories temp entries live in, a /proc read per temp entry found)
 * because it is on the start path of `run`.
 *
 * Other parts of tsbox that leave per-process leftovers (later veths) add theirs with
 * {@link registerSweeper}. The built-in sweeps read three directories: `blobs/sha256` (blob
 * temp files), `layers`, where every other temp entry of the store is made (layer dirs being
 * unpacked, short links being renamed into `l/`, archives being spooled by `load`, the
 * database of a store being created) and the claims of publishers (unrecorded.ts), and
 * `build`, empty but for running builds (build_dirs.ts). Only what they find costs more: the
 * rows of a dead claim's layers, or loading the code that unmounts a dead build's overlays.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";
import { join } from "../path.ts";
import { abandoned } from "./owner.ts";
import { removeTree } from "./layers.ts";
import type { Database } from "./db.ts";
import { abandonedBuildDirs } from "./build_dirs.ts";
import { CLAIM_PREFIX, isDeadClaim, sweepDeadClaims } from "./unrecorded.ts";

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
  return await sweepTempsOf(dir, await entriesOf(dir));
}

/** The entries of `dir`; none when it does not exist. */
async function entriesOf(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
}

async function sweepTempsOf(dir: string, entries: Deno.DirEntry[]): Promise<string[]> {
  const removed: string[] = [];
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
 * Removes every abandoned temp entry of the store at `root`, the build directories of builds
 * that no longer run, and, given the store's database `db`, the layers and blobs that killed
 * pulls and loads published without recording them (see unrecorded.ts); then runs the
 * registered sweepers. Returns the paths the built-in sweeps removed.
 */
export async function sweepAbandoned(root: string, db?: Database): Promise<string[]> {
  const layers = join(root, "layers");
  const layerEntries = await entriesOf(layers);
  const removed = [
    ...await sweepTempEntries(join(root, "blobs", "sha256")),
    ...await sweepTempsOf(layers, layerEntries),
  ];
  if (db) {
    const dead = layerEntries.filter((e) => e.name.startsWith(CLAIM_PREFIX) && isDeadClaim(e.name))
      .map((e) => e.name);
    removed.push(...await sweepDeadClaims(root, db, dead));
  }
  let failure: unknown;
  if ((await abandonedBuildDirs(root)).length > 0) {
    try {
      // Only now the code that unmounts and removes cgroups: most commands never load it.
      // By a computed name (src/lazy.ts): a literal one would have every command read its graph.
      const { sweepAbandonedBuilds } = await lazyImport<typeof import("../builder/sweep.ts")>(
        new URL("../builder/sweep.ts", import.meta.url),
      );
      removed.push(...await sweepAbandonedBuilds({ root }));
    } catch (err) {
      failure = err; // after the other sweeps
    }
  }
  for (const sweeper of extra) await sweeper(root);
  if (failure !== undefined) throw failure;
  return removed;
}
