/**
 * Build directories and what a killed build leaves in them. Each build works in
 * `<root>/build/b-<pid>-<start>-<random>`, named after the process that owns it (its pid and
 * its start time from /proc/PID/stat, so a reused pid is not taken for the owner). A build
 * killed with SIGKILL cannot clean up: the overlay of the step it was in stays mounted under
 * the directory, a RUN step's cgroups (named after the step's id, which its `run-<id>`
 * directory carries) stay, and so does the directory. {@link sweepAbandonedBuilds} recognises
 * directories whose owner no longer runs (src/store/build_dirs.ts, which the store's sweep of
 * every command also uses, loading this module only when it found one) and removes all three;
 * nothing that a live build owns is touched, however old.
 *
 * @module
 */
import { join } from "../path.ts";
import { containerCgroup } from "../container/cgroup.ts";
import { startTime } from "../container/proc.ts";
import { submountsOf } from "../container/rootfs_access.ts";
import { TsboxError } from "../errors.ts";
import { unmountRootfs } from "../runtime/rootfs.ts";
import { removeTree } from "../store/layers.ts";
import { abandonedBuildDirs, buildsDir } from "../store/build_dirs.ts";

export { buildsDir, isAbandoned } from "../store/build_dirs.ts";

/** A RUN step's directory: `run-` and the step's 64-hex id, which its cgroups are named after. */
const RUN_DIR = /^run-([0-9a-f]{64})$/;

/** Something a killed build left could not be removed (names the path and the cause). */
export class BuildSweepError extends TsboxError {
  constructor(readonly path: string, detail: string, cause?: unknown) {
    super(`removing the abandoned build directory ${path}: ${detail}`, { cause });
    this.name = "BuildSweepError";
  }
}

/** A fresh name under `parent` that names this process (pid and start time) as its owner. */
function ownedName(parent: string): string {
  const start = startTime(Deno.pid);
  if (start === undefined) throw new TsboxError("cannot read this process's start time in /proc");
  const random = crypto.getRandomValues(new Uint8Array(6));
  const hex = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  return join(parent, `b-${Deno.pid}-${start}-${hex}`);
}

/** Creates this process's directory for one build, named after it as its owner. */
export async function makeBuildDir(root: string): Promise<string> {
  const work = buildsDir(root);
  await Deno.mkdir(work, { recursive: true, mode: 0o700 });
  for (;;) {
    const dir = ownedName(work);
    try {
      await Deno.mkdir(dir, { mode: 0o700 });
      return dir;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
  }
}

/**
 * Removes every build directory under `store.root` whose build no longer runs: unmounts the
 * overlays below it, removes its RUN steps' cgroups (killing anything left in them) and then
 * the directory. Safe to run from several processes at once and at any time; returns the
 * directories it removed.
 *
 * @throws {BuildSweepError} when something of an abandoned build stays mounted or cannot go
 * (the first such; the other directories are swept all the same).
 */
export async function sweepAbandonedBuilds(store: { readonly root: string }): Promise<string[]> {
  const work = buildsDir(store.root);
  const candidates = await abandonedBuildDirs(store.root);
  const removed: string[] = [];
  const failures: BuildSweepError[] = [];
  // One directory that cannot go does not keep the others.
  for (const name of candidates) {
    const dir = join(work, name);
    try {
      if (await sweepOne(dir)) removed.push(dir);
    } catch (err) {
      failures.push(
        err instanceof BuildSweepError
          ? err
          : new BuildSweepError(dir, err instanceof Error ? err.message : String(err), err),
      );
    }
  }
  if (failures.length > 0) throw failures[0];
  return removed;
}

/** Sweeps one abandoned directory; false when another process got there first. */
async function sweepOne(dir: string): Promise<boolean> {
  let real: string;
  try {
    real = await Deno.realPath(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  // Deepest first; a mount point can hold a stack of mounts (each umount takes the top one).
  const below = () =>
    [...submountsOf(Deno.pid)].map((p) => `/${p}`).filter((p) => p.startsWith(`${real}/`))
      .sort((a, b) => b.length - a.length);
  for (const point of below()) {
    try {
      for (let i = 0; i < 8 && unmountRootfs(point); i++) { /* next in the stack */ }
    } catch (err) {
      throw new BuildSweepError(dir, `unmounting ${point}: ${(err as Error).message}`, err);
    }
  }
  const left = below();
  if (left.length > 0) throw new BuildSweepError(dir, `${left[0]} is still mounted`);
  let entries: string[] = [];
  try {
    entries = [...Deno.readDirSync(dir)].map((e) => e.name);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
  for (const name of entries) {
    const id = RUN_DIR.exec(name)?.[1];
    if (!id) continue;
    try {
      await containerCgroup(id).remove();
    } catch (err) {
      const why = `removing the cgroup of step ${id.slice(0, 12)}: ${(err as Error).message}`;
      throw new BuildSweepError(dir, why, err);
    }
  }
  // Claimed by a rename before removing: of several sweepers one wins, and the new name is
  // this process's own, so if it dies while removing, the next sweep takes the rest.
  const claimed = ownedName(dir.slice(0, dir.lastIndexOf("/")));
  try {
    await Deno.rename(dir, claimed);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new BuildSweepError(dir, `claiming it: ${(err as Error).message}`, err);
  }
  try {
    await removeTree(claimed);
  } catch (err) {
    throw new BuildSweepError(claimed, (err as Error).message, err);
  }
  return true;
}
