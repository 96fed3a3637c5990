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

/** Undoes mountinfo's octal escapes (space, tab, newline, backslash). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Mount points below the root of process `pid`, relative to that root ("proc", "etc/hosts"):
 * what is mounted there (proc, the /etc files, volumes) is not the container's filesystem.
 */
export function submountsOf(pid: number): Set<string> {
  const out = new Set<string>();
  let text = "";
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/mountinfo`);
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const point = line.split(" ")[4];
    if (!point || point === "/" || !point.startsWith("/")) continue;
    out.add(unescapeMountPath(point).slice(1));
  }
  return out;
}

/**
 * Runs `fn` with a host path that is the container's `/`, and the paths (relative to it) where
 * something else is mounted: empty for a stopped container.
 */
export async function withRootfs<T>(
  store: Store,
  record: ContainerRecord,
  fn: (root: string, submounts: ReadonlySet<string>) => Promise<T>,
): Promise<T> {
  const c = reconcile(store, record);
  if (c.pid !== undefined && processAlive(c.pid, c.pidStart)) {
    return await fn(`/proc/${c.pid}/root`, submountsOf(c.pid));
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
    return await fn(target, new Set());
  } finally {
    unmountRootfs(target);
    await Deno.remove(target).catch(() => {});
  }
}
