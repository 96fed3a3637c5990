/**
 * Work other tsbox processes are doing in a store right now, told by the files that work leaves
 * while it runs: a pull, load or build writes blobs and unpacks layers into `.tmp-*` entries
 * before publishing them, and a build keeps its scratch directory `build/b-*` until it ends.
 * Such work may reuse any layer already in the store, or hold layers and cache entries that no
 * image names yet, so a prune waits until the store is quiet before it removes anything.
 *
 * @module
 */
import { join } from "../path.ts";
import { TsboxError } from "../errors.ts";

/**
 * A marker untouched this long belongs to a process that died (the sweep of interrupted pulls
 * uses a day); it no longer holds a prune back.
 */
const STALE_MS = 3600_000;

const PLACES: readonly { dir: string[]; prefix: string; what: string }[] = [
  { dir: ["layers"], prefix: ".tmp-", what: "a layer being unpacked" },
  { dir: ["blobs", "sha256"], prefix: ".tmp-", what: "a blob being written" },
  { dir: ["build"], prefix: "b-", what: "a build" },
];

/** Descriptions of the work in progress in the store at `root` (empty when quiet). */
export async function storeActivity(root: string, now = Date.now()): Promise<string[]> {
  const found: string[] = [];
  for (const place of PLACES) {
    const dir = join(root, ...place.dir);
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    for (const e of entries) {
      if (!e.name.startsWith(place.prefix)) continue;
      const path = join(dir, e.name);
      try {
        const info = await Deno.lstat(path);
        const touched = Math.max(info.mtime?.getTime() ?? 0, info.ctime?.getTime() ?? 0);
        if (now - touched < STALE_MS) found.push(`${place.what} (${path})`);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }
  return found;
}

/** Options of {@link waitForQuietStore}. */
export interface QuietOptions {
  /** Give up after this long (default 60 s). */
  readonly timeoutMs?: number;
  /** Called once, with what is in progress, when the store is not quiet at first. */
  readonly onWait?: (activity: readonly string[]) => void;
}

/**
 * Returns once no pull, load or build is in progress in the store at `root`; fails with a
 * {@link TsboxError} naming the work still going on after the timeout.
 */
export async function waitForQuietStore(root: string, options: QuietOptions = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let told = false;
  for (;;) {
    const activity = await storeActivity(root);
    if (activity.length === 0) return;
    if (Date.now() >= deadline) {
      throw new TsboxError(
        `another tsbox process is working in ${root} (${activity.join(", ")}): ` +
          "nothing was pruned; try again when it has finished (what a killed process left " +
          "stops counting an hour after its last change)",
      );
    }
    if (!told) options.onWait?.(activity);
    told = true;
    await new Promise((r) => setTimeout(r, 250));
  }
}
