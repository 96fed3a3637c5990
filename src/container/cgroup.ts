/**
 * A container's cgroup found again by id (after its supervisor is gone, or from another
 * process): for `stats`, `top`, `pause` and cleanup. The paths follow createCgroup's layout.
 *
 * @module
 */
import {
  type Cgroup,
  CgroupV1,
  CgroupV2,
  type Controller,
  CONTROLLERS,
  hostLayout,
  removeCgroupDirsSync,
} from "../runtime/cgroups.ts";

/** The container's cgroup (its directories may no longer exist). */
export function containerCgroup(id: string): Cgroup {
  const layout = hostLayout();
  const onV1 = new Map<Controller, string>();
  for (const c of CONTROLLERS) {
    const mount = layout.v1.get(c);
    if (mount) onV1.set(c, `${mount}/tsbox/${id}`);
  }
  const v2Wanted = CONTROLLERS.some((c) => !onV1.has(c) && layout.v2Controllers.includes(c));
  if (onV1.size > 0 && !v2Wanted) return new CgroupV1(onV1);
  return new CgroupV2(`${layout.v2}/tsbox/${id}`);
}

/** The v1 freezer directory for the container, when the host has a v1 freezer. */
export function freezerDir(id: string): string | undefined {
  const mount = hostLayout().v1.get("freezer");
  return mount ? `${mount}/tsbox/${id}` : undefined;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return undefined;
  }
}

async function settle(path: string, want: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if ((await readText(path)) === want) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Freezes (true) or thaws (false) every process of the container. On v1 the processes are
 * moved into a freezer cgroup first (repeated until no new process appears, since one may fork
 * while the others move); on v2 the container's own cgroup has `cgroup.freeze`.
 */
export async function setFrozen(id: string, frozen: boolean): Promise<void> {
  const cg = containerCgroup(id);
  if (cg instanceof CgroupV2) {
    await Deno.writeTextFile(`${cg.dir}/cgroup.freeze`, frozen ? "1" : "0");
    return;
  }
  const dir = freezerDir(id);
  if (!dir) throw new Error("no freezer cgroup on this host");
  if (!frozen) {
    await Deno.writeTextFile(`${dir}/freezer.state`, "THAWED");
    await settle(`${dir}/freezer.state`, "THAWED");
    return;
  }
  await Deno.mkdir(dir, { recursive: true });
  for (let round = 0; round < 20; round++) {
    const inside = new Set(
      ((await readText(`${dir}/cgroup.procs`)) ?? "").split("\n").filter(Boolean).map(Number),
    );
    const missing = (await cg.pids()).filter((p) => !inside.has(p));
    if (missing.length === 0) break;
    for (const pid of missing) {
      await Deno.writeTextFile(`${dir}/cgroup.procs`, String(pid)).catch(() => {});
    }
  }
  await Deno.writeTextFile(`${dir}/freezer.state`, "FROZEN");
  await settle(`${dir}/freezer.state`, "FROZEN");
}

/** Thaws and removes the v1 freezer cgroup, if there is one. */
export async function removeFreezer(id: string): Promise<void> {
  const dir = freezerDir(id);
  if (!dir) return;
  try {
    await Deno.writeTextFile(`${dir}/freezer.state`, "THAWED");
  } catch {
    return; // no freezer cgroup was made
  }
  for (let i = 0; i < 100; i++) {
    try {
      await Deno.remove(dir);
      return;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** {@link removeFreezer} without awaiting (see removeCgroupDirsSync in runtime/cgroups.ts). */
export function removeFreezerSync(id: string): void {
  const dir = freezerDir(id);
  if (!dir) return;
  try {
    Deno.writeTextFileSync(`${dir}/freezer.state`, "THAWED");
  } catch {
    return; // no freezer cgroup was made
  }
  removeCgroupDirsSync([dir]);
}
