/**
 * Mount points a RUN step's container needed but the step did not make: the runtime creates
 * them in the rootfs when the image lacks them (/proc, /dev, /sys, /etc/hosts, ...; and the
 * targets of `RUN --mount`, with their missing parent directories). They land in the step's
 * upper directory as empty files and directories and are removed before it becomes a layer,
 * as BuildKit leaves them out.
 *
 * @module
 */
import { join } from "node:path";
import type { Store } from "../store/mod.ts";
import type { BuildState } from "./state.ts";

/**
 * The runtime creates mount points (/proc, /dev, /sys, /etc/hosts, ...) in the rootfs when the
 * image lacks them; those empty stubs are not the RUN's doing and stay out of its layer.
 */
export async function removeMountStubs(
  upper: string,
  state: BuildState,
  store: Store,
  mountTargets: readonly string[] = [],
): Promise<void> {
  const inLowers = (rel: string) =>
    state.layers.some((l) => {
      try {
        Deno.lstatSync(join(store.layers.dir(l.diffId), rel));
        return true;
      } catch {
        return false;
      }
    });
  // RUN --mount targets and the directories made for them, deepest first.
  const made = new Set<string>();
  for (const t of mountTargets) {
    const parts = t.split("/").filter((p) => p !== "");
    for (let n = parts.length; n > 0; n--) made.add(parts.slice(0, n).join("/"));
  }
  const candidates = [
    ...made,
    ...["etc/hostname", "etc/hosts", "etc/resolv.conf", "proc", "dev", "sys", "etc"],
  ].sort((a, b) => b.split("/").length - a.split("/").length);
  for (const rel of new Set(candidates)) {
    const path = join(upper, rel);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      continue;
    }
    if (inLowers(rel)) continue;
    const empty = info.isFile ? info.size === 0 : info.isDirectory && (await isEmpty(path));
    if (empty) await Deno.remove(path);
  }
}

async function isEmpty(dir: string): Promise<boolean> {
  for await (const _ of Deno.readDir(dir)) return false;
  return true;
}
