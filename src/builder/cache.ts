/**
 * The build cache: one row per build step, keyed by everything that decides its result (the
 * parent state, the instruction as expanded, the build arguments in effect, and for COPY/ADD a
 * digest of the files' contents, modes and owners), holding the state the step produced. A hit
 * is used only while every layer it names is still in the store.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { storedLayerBlob } from "../image/images.ts";
import { hasLayerBlob } from "../image/layer_blob.ts";
import type { Store } from "../store/mod.ts";
import type { BuildState } from "./state.ts";

/** The cache key of a step: sha256 over its inputs, each length-prefixed so none can run into another. */
export function cacheKey(parts: readonly string[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(`${p.length}:${p}\n`);
  return `sha256:${h.digest("hex")}`;
}

/** Looks a step up; undefined when absent or when one of its layers has left the store. */
export async function cacheGet(store: Store, key: string): Promise<BuildState | undefined> {
  const row = store.db.get<{ state: string }>("SELECT state FROM build_cache WHERE key = ?", key);
  if (!row) return undefined;
  const state = JSON.parse(row.state) as BuildState;
  const layers = [];
  for (const l of state.layers) {
    if (!await store.layers.exists(l.diffId)) return undefined;
    // A built layer needs only its directory (its blob is made from it when it leaves).
    if (await hasLayerBlob(store, l)) {
      layers.push(l);
      continue;
    }
    // rmi took the built blob and `load` of a docker archive brought the layer back as a plain
    // tar: the image made from this hit names the blob the store now has.
    const blob = await storedLayerBlob(store, l.diffId);
    if (!blob) return undefined;
    layers.push({ ...l, ...blob });
  }
  return { ...state, layers };
}

/** Records the state a step produced. */
export function cachePut(store: Store, key: string, state: BuildState): void {
  store.db.run(
    "INSERT OR REPLACE INTO build_cache (key, state, created_at) VALUES (?, ?, ?)",
    key,
    JSON.stringify(state),
    Date.now(),
  );
}

/** One build cache entry as housekeeping sees it (`system df`, `builder prune`). */
export interface CacheEntry {
  readonly key: string;
  /** The layers of the state the step produced, bottom first. */
  readonly layers: BuildState["layers"];
  /** ms since epoch. */
  readonly createdAt: number;
}

/**
 * Every cache entry, oldest first; with `remove`, deletes those it picks in the same
 * transaction and returns only them (a step recorded meanwhile is not lost).
 */
export function cacheEntries(
  store: Store,
  remove?: (entry: CacheEntry) => boolean,
): CacheEntry[] {
  const read = () =>
    store.db.all<{ key: string; state: string; created_at: number }>(
      "SELECT key, state, created_at FROM build_cache ORDER BY created_at, key",
    ).map((r): CacheEntry => ({
      key: r.key,
      layers: (JSON.parse(r.state) as BuildState).layers,
      createdAt: r.created_at,
    }));
  if (!remove) return read();
  return store.db.transaction(() => {
    const picked = read().filter(remove);
    for (const e of picked) store.db.run("DELETE FROM build_cache WHERE key = ?", e.key);
    return picked;
  });
}
