/**
 * A container's cgroup found again by id (after its supervisor is gone, or from another
 * process): for `stats`, `top`, `pause` and cleanup. The paths follow createCgroup's layout.
 *
 * @module
 */
import {
  type Cgroup,
  type CgroupLayout,
  CgroupV2,
  DEFAULT_CGROUP_PARENT,
  hostLayout,
  locateCgroup,
  removeCgroupDirsSync,
} from "../runtime/cgroups.ts";
import type { ContainerRecord } from "./state.ts";

/**
 * Whose cgroup: a container id (its cgroup under the default parent), or the id with the
 * `--cgroup-parent` it was created with ({@link cgroupOwner} of its record).
 */
export type CgroupOwner = string | { readonly id: string; readonly parent?: string };

/** The {@link CgroupOwner} of a recorded container. */
export function cgroupOwner(c: Pick<ContainerRecord, "id" | "config">): CgroupOwner {
  return { id: c.id, parent: c.config.resources?.cgroupParent };
}

/** The {@link CgroupOwner} from a container row's id and its config column (JSON). */
export function cgroupOwnerOf(id: string, configJson: string | undefined): CgroupOwner {
  try {
    return { id, parent: JSON.parse(configJson ?? "{}")?.resources?.cgroupParent };
  } catch {
    return id; // an unreadable config: the default place is the best guess
  }
}

function ownerParts(owner: CgroupOwner): { id: string; parent: string } {
  return typeof owner === "string"
    ? { id: owner, parent: DEFAULT_CGROUP_PARENT }
    : { id: owner.id, parent: owner.parent ?? DEFAULT_CGROUP_PARENT };
}

/**
 * The container's cgroup (its directories may no longer exist). `layout` defaults to the
 * host's; tests pass one whose v2 root is a directory of a real cgroup2 mount.
 */
export function containerCgroup(owner: CgroupOwner, layout: CgroupLayout = hostLayout()): Cgroup {
  const { id, parent } = ownerParts(owner);
  return locateCgroup(id, layout, parent);
}

/** The v1 freezer directory for the container, when the host has a v1 freezer. */
export function freezerDir(
  owner: CgroupOwner,
  layout: CgroupLayout = hostLayout(),
): string | undefined {
  const mount = layout.v1.get("freezer");
  if (!mount) return undefined;
  const { id, parent } = ownerParts(owner);
  return `${mount}${parent === "/" ? "" : parent}/${id}`;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch {
    return undefined;
  }
}

async function settle(path: string, want: string | RegExp): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const text = await readText(path);
    // A file gone with its cgroup (the container ended meanwhile) has nothing left to settle.
    if (text === undefined) return;
    if (typeof want === "string" ? text === want : want.test(text)) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Freezes (true) or thaws (false) every process of the container. On v1 the processes are
 * moved into a freezer cgroup first (repeated until no new process appears, since one may fork
 * while the others move); on v2 the container's own cgroup has `cgroup.freeze`. Either way it
 * returns once the kernel reports the new state (v2: `frozen` in cgroup.events, since freezing
 * is asynchronous there too), or after about five seconds.
 */
export async function setFrozen(
  owner: CgroupOwner,
  frozen: boolean,
  layout: CgroupLayout = hostLayout(),
): Promise<void> {
  const cg = containerCgroup(owner, layout);
  if (cg instanceof CgroupV2) {
    await Deno.writeTextFile(`${cg.dir}/cgroup.freeze`, frozen ? "1" : "0", { create: false });
    await settle(`${cg.dir}/cgroup.events`, new RegExp(`^frozen ${frozen ? 1 : 0}$`, "m"));
    return;
  }
  const dir = freezerDir(owner, layout);
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
export async function removeFreezer(owner: CgroupOwner): Promise<void> {
  const dir = freezerDir(owner);
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
export function removeFreezerSync(owner: CgroupOwner): void {
  const dir = freezerDir(owner);
  if (!dir) return;
  try {
    Deno.writeTextFileSync(`${dir}/freezer.state`, "THAWED");
  } catch {
    return; // no freezer cgroup was made
  }
  removeCgroupDirsSync([dir]);
}
