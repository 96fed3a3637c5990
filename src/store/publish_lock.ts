/**
 * The publish lock of a store: a `flock` on `<root>/publish.lock` that keeps a sweep from
 * removing an unrecorded layer or blob some live process is about to record.
 *
 * A pull, load or build may find a layer directory or a blob already in place that no image
 * row names yet (a concurrent publisher's, or one a killed process left) and build its record
 * on it. So every writer holds the lock shared while it may: each pending layer and blob from
 * its creation until it is discarded (after the record, in every caller), and `load` from its
 * first look at the store to its end; the kernel drops a killed process's lock. Removing
 * unrecorded layers and blobs needs the lock exclusive and only ever tries for it: while
 * anyone publishes, the leftovers wait for a later command, and no command waits for a pull.
 *
 * @module
 */
import { join } from "../path.ts";

/** The lock file of the store at `root`. */
export function publishLockPath(root: string): string {
  return join(root, "publish.lock");
}

/** The shared lock this process holds on a store, with how many writers use it. */
interface Held {
  count: number;
  file: Promise<Deno.FsFile>;
}

/** Shared locks this process holds, by store root. */
const held = new Map<string, Held>();

async function openLock(root: string): Promise<Deno.FsFile> {
  return await Deno.open(publishLockPath(root), { create: true, write: true, mode: 0o600 });
}

/**
 * Takes the publish lock of `root` shared for one writer of this process; waits while a sweep
 * holds it exclusive (a sweep only removes, and is short). Call the function it returns once
 * the writer has recorded what it published, or given up: the lock goes when the last writer
 * of the process lets go (or the process ends).
 */
export async function holdPublishLock(root: string): Promise<() => void> {
  let entry = held.get(root);
  if (entry) {
    entry.count++;
  } else {
    const file = (async () => {
      const f = await openLock(root);
      try {
        await f.lock(false);
      } catch (err) {
        f.close();
        throw err;
      }
      return f;
    })();
    entry = { count: 1, file };
    held.set(root, entry);
  }
  const mine = entry;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (--mine.count > 0) return;
    if (held.get(root) === mine) held.delete(root);
    mine.file.then((f) => f.close(), () => {});
  };
  try {
    await mine.file;
  } catch (err) {
    release();
    throw err;
  }
  return release;
}

/**
 * Runs `work` with the publish lock of `root` held exclusive, when no process (this one
 * included) publishes into the store; returns undefined without running it otherwise.
 */
export async function whileNobodyPublishes<T>(
  root: string,
  work: () => Promise<T>,
): Promise<T | undefined> {
  // flock locks of one process's two open files exclude each other too: do not even try.
  if (held.has(root)) return undefined;
  let file: Deno.FsFile;
  try {
    file = await openLock(root);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined; // no store here
    throw err;
  }
  try {
    if (!await file.tryLock(true)) return undefined;
    return await work();
  } finally {
    file.close();
  }
}
