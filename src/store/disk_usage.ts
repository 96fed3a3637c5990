/**
 * What a file tree really takes on disk: the blocks allocated to each of its inodes (files,
 * directories, symlinks), a hard-linked inode counted once, and nothing below another mount (a
 * stopped container's rootfs may still be mounted in its directory). Prunes report this figure,
 * so that "Total reclaimed space" is what a `du` of the store loses.
 *
 * @module
 */
import { join } from "../path.ts";
import type { Store } from "./mod.ts";

/** Bytes allocated to the tree at `path` (0 when it does not exist). */
export async function diskUsage(path: string): Promise<number> {
  let top: Deno.FileInfo;
  try {
    top = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
  const seen = new Set<number>();
  const sizeOf = (info: Deno.FileInfo): number => {
    if ((info.nlink ?? 1) > 1 && info.ino !== null) {
      if (seen.has(info.ino)) return 0;
      seen.add(info.ino);
    }
    return (info.blocks ?? 0) * 512;
  };
  let total = sizeOf(top);
  if (!top.isDirectory) return total;
  const dirs = [path];
  while (dirs.length > 0) {
    const dir = dirs.pop()!;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (err) {
      // Removed meanwhile, or unreadable: it counts for nothing rather than failing a report.
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.PermissionDenied) {
        continue;
      }
      throw err;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      let info: Deno.FileInfo;
      try {
        info = await Deno.lstat(p);
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) continue;
        throw err;
      }
      if (info.dev !== top.dev) continue;
      total += sizeOf(info);
      if (info.isDirectory) dirs.push(p);
    }
  }
  return total;
}

/**
 * Removes a layer (directory and short link, by the store's own removal) and returns the bytes
 * both took: the link is a symlink long enough to take a block of its own on most filesystems.
 */
export async function removeLayerMeasured(
  store: Store,
  diffId: string,
  shortId: string,
): Promise<number> {
  const bytes = await diskUsage(store.layers.dir(diffId)) +
    await diskUsage(join(store.linkDir, shortId));
  await store.layers.remove(diffId, shortId);
  return bytes;
}

/** Removes a blob and returns the bytes it took. */
export async function removeBlobMeasured(store: Store, digest: string): Promise<number> {
  const bytes = await diskUsage(store.blobs.path(digest));
  await store.blobs.remove(digest);
  return bytes;
}
