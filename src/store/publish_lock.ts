/**
 * The publish lock of a store: a `flock` on `<root>/publish.lock` that keeps a sweep from
 * removing an unrecorded layer or blob some live process is about to record.
 *
 * A pull, load or build may find a layer directory or a blob already in place that no image
 * row names yet (a concurrent publisher's, or one a killed process left) and build its record
 * on it. So every process that writes layers or blobs holds the lock shared, from its first
 * temp layer or blob (or, for load, from its first look at the store) until it closes the
 * store or exits; the kernel drops a killed process's lock. Removing unrecorded layers and
 * blobs needs the lock exclusive and only ever tries for it: while anyone publishes, the
 * leftovers wait for a later command, and no command waits for a pull.
 *
 * @module
 */
import { join } from "../path.ts";

/** The lock file of the store at `root`. */
export function publishLockPath(root: string): string {
  return join(root, "publish.lock");
}

/** Shared locks this process holds, by store root. */
const held = new Map<string, Promise<Deno.FsFile>>();

async function openLock(root: string): Promise<Deno.FsFile> {
  return await Deno.open(publishLockPath(root), { create: true, write: true, mode: 0o600 });
}

/**
 * Takes the publish lock of `root` shared for this process, once; waits while a sweep holds it
 * exclusive (a sweep only removes, and is short). Held until {@link releasePublishLock}.
 */
export async function holdPublishLock(root: string): Promise<void> {
  let lock = held.get(root);
  if (!lock) {
    lock = (async () => {
      const file = await openLock(root);
      try {
        await file.lock(false);
      } catch (err) {
        file.close();
        throw err;
      }
      return file;
    })();
    held.set(root, lock);
    lock.catch(() => held.delete(root));
  }
  await lock;
}

/** Drops this process's shared lock of `root`, if it holds one (Store.close). */
export function releasePublishLock(root: string): void {
  const lock = held.get(root);
  if (!lock) return;
  held.delete(root);
  lock.then((file) => file.close(), () => {});
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
