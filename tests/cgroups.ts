/**
 * The host's cgroups as tests look at them: which container cgroups the processes of a command
 * sit in, and which directories a container id has in the hierarchies.
 *
 * @module
 */
import { join } from "node:path";
import { hostLayout } from "../src/runtime/cgroups.ts";

/** Ids of tsbox container cgroups that processes whose command line holds `marker` are in. */
export function cgroupIdsOf(marker: string): string[] {
  const ids = new Set<string>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll("\0", " ");
      if (!cmdline.includes(marker)) continue;
      for (const line of Deno.readTextFileSync(`/proc/${e.name}/cgroup`).split("\n")) {
        const id = /\/tsbox\/([0-9a-f]{64})$/.exec(line)?.[1];
        if (id) ids.add(id);
      }
    } catch { /* gone meanwhile */ }
  }
  return [...ids];
}

/** Cgroup directories named after `id`, over every hierarchy under /sys/fs/cgroup. */
export function cgroupDirs(id: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync("/sys/fs/cgroup")) {
    const dir = join("/sys/fs/cgroup", e.name, "tsbox", id);
    try {
      if (Deno.statSync(dir).isDirectory) out.push(dir);
    } catch { /* not in this hierarchy */ }
  }
  return out;
}

/** controller -> path, from the text of a /proc/PID/cgroup. */
export function cgroupPaths(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.trim().split("\n")) {
    const [, controllers, path] = line.split(":");
    for (const c of controllers.split(",")) out.set(c, path);
  }
  return out;
}

/**
 * Removes a test's parent cgroups `top` (a path below each hierarchy's root) bottom-up in every
 * hierarchy, v1 and v2 (they hold no process by then).
 */
export function removeParentCgroups(top: string): void {
  const layout = hostLayout();
  for (const mount of new Set([...layout.v1.values(), ...(layout.v2 ? [layout.v2] : [])])) {
    const walk = (dir: string) => {
      let entries: Deno.DirEntry[];
      try {
        entries = [...Deno.readDirSync(dir)];
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory) walk(`${dir}/${e.name}`);
      try {
        Deno.removeSync(dir);
      } catch { /* already gone */ }
    };
    walk(`${mount}${top}`);
  }
}
