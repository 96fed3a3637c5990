/**
 * Storage of `RUN --mount=type=cache` directories: one cache per id per store, kept across
 * builds under `<root>/cache-mounts/<sha256 of the id>/`:
 *
 *     data/        the cache itself, bind-mounted read-write into RUN steps
 *     lock         flock(2) target for `sharing=locked|shared|private`, held for the step
 *     create.lock  held only while a new cache is made (and seeded) by a step holding `lock`
 *     id           the id as written in the Dockerfile (for listings)
 *
 * The lock lives beside the cache, never in it: a step that wipes or chmods its cache cannot
 * remove or lock out the lock of later steps (buildah #4342, fixed by #4349). Caches belong to
 * one store (so to one user and id mapping), never shared between stores (buildah #4404).
 * `builder prune` and `system df` use {@link listCacheMounts} and {@link removeCacheMounts}.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "../path.ts";
import { removeTree } from "../store/layers.ts";
import type { CacheSharing } from "./run_mounts.ts";

/** The directory cache mounts live in under a store root. */
export function cacheMountsDir(root: string): string {
  return join(root, "cache-mounts");
}

function entryDir(root: string, id: string): string {
  return join(cacheMountsDir(root), createHash("sha256").update(id).digest("hex"));
}

/** A cache mount in the store. */
export interface CacheMountInfo {
  readonly id: string;
  /** `<root>/cache-mounts/<hex>`; the cache's files are in its `data/`. */
  readonly dir: string;
  /** Bytes of the regular files in the cache. */
  readonly size: number;
}

async function treeSize(dir: string): Promise<number> {
  let total = 0;
  try {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) total += await treeSize(p);
      else if (e.isFile) total += (await Deno.lstat(p)).size;
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return total;
}

/** Every cache mount in the store at `root`. */
export async function listCacheMounts(root: string): Promise<CacheMountInfo[]> {
  const out: CacheMountInfo[] = [];
  try {
    for await (const e of Deno.readDir(cacheMountsDir(root))) {
      if (!e.isDirectory) continue;
      const dir = join(cacheMountsDir(root), e.name);
      let id: string;
      try {
        id = await Deno.readTextFile(join(dir, "id"));
      } catch {
        continue; // being created
      }
      out.push({ id, dir, size: await treeSize(join(dir, "data")) });
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Removes the cache mounts no build is using (those whose lock can be taken at once); returns
 * what it removed.
 */
export async function removeCacheMounts(root: string): Promise<CacheMountInfo[]> {
  const removed: CacheMountInfo[] = [];
  for (const c of await listCacheMounts(root)) {
    const lock = await openLock(c.dir);
    try {
      if (!await lock.tryLock(true)) continue;
      await removeTree(join(c.dir, "data"));
      await Deno.remove(join(c.dir, "id"));
      removed.push(c);
    } finally {
      lock.close();
    }
  }
  return removed;
}

async function openLock(dir: string, name = "lock"): Promise<Deno.FsFile> {
  return await Deno.open(join(dir, name), { read: true, write: true, create: true, mode: 0o600 });
}

/** What a step asks of its cache mount. */
export interface CacheMountRequest {
  readonly id: string;
  readonly sharing: CacheSharing;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Fills a cache made new (`from`/`source`), before anyone else can see it. */
  readonly seed?: (dir: string) => Promise<void>;
}

/** A cache mount held by one step: the directory to mount, and its release. */
export interface HeldCacheMount {
  readonly dir: string;
  release(): Promise<void>;
}

/**
 * Takes the cache `req.id` for one step, creating it on first use. `locked` waits until no
 * other step holds it; `shared` holds it together with other shared users (and waits for a
 * locked one); `private` takes it alone when it is free and otherwise gets a fresh directory
 * of its own (`privateDir`), thrown away at release.
 */
export async function acquireCacheMount(
  root: string,
  req: CacheMountRequest,
  privateDir: string,
): Promise<HeldCacheMount> {
  const dir = entryDir(root, req.id);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const data = join(dir, "data");
  const lock = await openLock(dir);
  try {
    if (req.sharing === "private") {
      if (!await lock.tryLock(true)) {
        lock.close();
        await create(privateDir, req);
        return { dir: privateDir, release: () => removeTree(privateDir) };
      }
    } else await lock.lock(req.sharing === "locked");
    // Made (first use, or pruned since) while this step holds it, under a lock of its own:
    // shared users never see a half-seeded cache, and prune (which needs `lock` free) cannot
    // remove it before the step has its mount.
    const creating = await openLock(dir, "create.lock");
    try {
      await creating.lock(true);
      if (!await exists(data)) await create(data, req);
      await Deno.writeTextFile(join(dir, "id"), req.id, { mode: 0o600 });
    } finally {
      creating.close();
    }
  } catch (err) {
    lock.close();
    throw err;
  }
  return {
    dir: data,
    release: () => {
      // Closing the file drops the flock.
      lock.close();
      return Promise.resolve();
    },
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

async function create(path: string, req: CacheMountRequest): Promise<void> {
  const tmp = `${path}.new`;
  await removeTree(tmp);
  await Deno.mkdir(tmp, { mode: 0o700 });
  if (req.seed) await req.seed(tmp);
  await Deno.chown(tmp, req.uid, req.gid);
  await Deno.chmod(tmp, req.mode);
  await Deno.rename(tmp, path);
}
