/**
 * Reaching a container's filesystem from the host: a running container's root through
 * /proc/PID/root (its own mount namespace, so writes go through its overlay), a stopped one
 * through a temporary overlay mount of its layers and upper dir.
 *
 * @module
 */
import { mountOverlay, unmountRootfs } from "../runtime/rootfs.ts";
import type { Store } from "../store/mod.ts";
import { processAlive } from "./proc.ts";
import { containerDir } from "./paths.ts";
import { type ContainerRecord, reconcile } from "./state.ts";

/** Runs `fn` with a host path that is the container's `/`. */
export async function withRootfs<T>(
  store: Store,
  record: ContainerRecord,
  fn: (root: string) => Promise<T>,
): Promise<T> {
  const c = reconcile(store, record);
  if (c.pid !== undefined && processAlive(c.pid, c.pidStart)) {
    return await fn(`/proc/${c.pid}/root`);
  }
  const dir = containerDir(store.root, c.id);
  const target = `${dir}/export-${crypto.randomUUID().slice(0, 8)}`;
  for (const d of ["upper", "work", target]) {
    await Deno.mkdir(d.startsWith("/") ? d : `${dir}/${d}`, { recursive: true, mode: 0o700 });
  }
  mountOverlay({
    lowerBase: store.linkDir,
    lower: [...c.config.layers].reverse(),
    upper: `${dir}/upper`,
    work: `${dir}/work`,
    target,
  });
  try {
    return await fn(target);
  } finally {
    unmountRootfs(target);
    await Deno.remove(target).catch(() => {});
  }
}
