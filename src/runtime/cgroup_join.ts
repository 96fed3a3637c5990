/**
 * An exec'd process joins the cgroups of the container's PID 1: every hierarchy where PID 1's
 * cgroup differs from tsbox's own.
 *
 * @module
 */
import { hostLayout } from "./cgroups.ts";

/** Moves `pid` into every cgroup of `initPid` that differs from tsbox's own. */
export async function joinContainerCgroups(initPid: number, pid: number): Promise<void> {
  const parse = (text: string) =>
    new Map(
      text.split("\n").filter(Boolean).map((l) => {
        const [id, controllers, ...path] = l.split(":");
        return [`${id}:${controllers}`, path.join(":")] as const;
      }),
    );
  const theirs = parse(await Deno.readTextFile(`/proc/${initPid}/cgroup`));
  const ours = parse(await Deno.readTextFile("/proc/self/cgroup"));
  const layout = hostLayout();
  for (const [key, path] of theirs) {
    if (ours.get(key) === path) continue;
    const controllers = key.slice(key.indexOf(":") + 1);
    const mount = controllers === ""
      ? layout.v2
      : controllers.split(",").map((c) => layout.v1.get(c)).find((m) => m !== undefined);
    if (!mount) continue; // a named hierarchy tsbox does not manage
    await Deno.writeTextFile(`${mount}${path === "/" ? "" : path}/cgroup.procs`, String(pid), {
      create: false,
    });
  }
}
