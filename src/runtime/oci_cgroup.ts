/**
 * The cgroup of an OCI container at the spec's `linux.cgroupsPath` (podman's
 * `/libpod_parent/libpod-ID`, kubelet's `/kubepods/...`), not tsbox's own `/tsbox/ID`: on cgroup
 * v1 one directory in every mounted hierarchy (the freezer too, for pause/resume), on v2 one
 * directory of the unified tree. Limits are written by cgroups.ts's writers.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import {
  type Cgroup,
  CgroupError,
  type CgroupLayout,
  CgroupV1,
  CgroupV2,
  type Controller,
  hostLayout,
  removeCgroupDirsSync,
  type ResourceLimits,
  subtreeControlLine,
} from "./cgroups.ts";

/** The path below the cgroup roots: `cgroupsPath`, or `/<id>` (runc's default). */
export function cgroupPathFor(cgroupsPath: string | undefined, id: string): string {
  const raw = cgroupsPath && cgroupsPath !== "" ? cgroupsPath : `/${id}`;
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) {
    throw new TsboxError(`cgroupsPath ${JSON.stringify(raw)} must name a cgroup below the root`);
  }
  return `/${parts.join("/")}`;
}

/**
 * The cgroup at `path` under `layout`: v1 when the host has the memory controller there (a
 * dir per hierarchy), else v2.
 */
export function ociCgroup(path: string, layout: CgroupLayout = hostLayout()): CgroupV1 | CgroupV2 {
  if (layout.v1.has("memory") || layout.v1.has("pids")) {
    const byController = new Map<string, string>();
    for (const [controller, mount] of layout.v1) byController.set(controller, `${mount}${path}`);
    return new CgroupV1(byController as Map<Controller, string>);
  }
  if (!layout.v2) throw new TsboxError("no cgroup hierarchy found");
  return new CgroupV2(`${layout.v2}${path}`);
}

async function write(path: string, value: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, value, { create: false });
  } catch (err) {
    throw new CgroupError(path, err, value);
  }
}

function writeSync(path: string, value: string): void {
  try {
    Deno.writeTextFileSync(path, value, { create: false });
  } catch (err) {
    throw new CgroupError(path, err, value);
  }
}

/**
 * A new v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, which refuse tasks:
 * each level down to `dir` gets its parent's (cgroup_extra.ts's fillCpuset, synchronous).
 */
function fillCpusetSync(mount: string, dir: string): void {
  let parent = mount;
  for (const part of dir.slice(mount.length).split("/").filter(Boolean)) {
    const here = `${parent}/${part}`;
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      if (Deno.readTextFileSync(`${here}/${file}`).trim() !== "") continue;
      writeSync(`${here}/${file}`, Deno.readTextFileSync(`${parent}/${file}`).trim());
    }
    parent = here;
  }
}

/**
 * Creates the cgroup at `path` and writes `limits`; removes it again when a write fails.
 *
 * The directories are made (and {@link joinOciCgroup} and {@link removeOciCgroup} work)
 * with synchronous calls: each runtime command is a short process, whose first use of each
 * asynchronous file op costs far more than the op (a dozen v1 hierarchies: ~10 ms async
 * against under 1 ms sync, measured), and nothing else waits on its event loop meanwhile.
 */
export async function createOciCgroup(
  path: string,
  limits: ResourceLimits,
  layout: CgroupLayout = hostLayout(),
): Promise<Cgroup> {
  const cg = ociCgroup(path, layout);
  try {
    if (cg instanceof CgroupV1) {
      for (const dir of cg.dirs) {
        try {
          Deno.mkdirSync(dir, { recursive: true });
        } catch (err) {
          throw new CgroupError(dir, err);
        }
      }
      const cpuset = layout.v1.get("cpuset");
      if (cpuset) fillCpusetSync(cpuset, `${cpuset}${path}`);
    } else {
      // Enable the controllers on the way down (a v2 leaf gets only what its parent enables).
      const offered = layout.v2Controllers.filter((c) =>
        ["memory", "cpu", "pids", "cpuset", "io"].includes(c)
      );
      const parts = path.split("/").filter(Boolean);
      let dir = layout.v2!;
      for (const part of parts) {
        if (offered.length) {
          await write(`${dir}/cgroup.subtree_control`, subtreeControlLine(offered)).catch(() => {});
        }
        dir = `${dir}/${part}`;
        await Deno.mkdir(dir).catch((err) => {
          if (!(err instanceof Deno.errors.AlreadyExists)) throw new CgroupError(dir, err);
        });
      }
    }
    if (cg instanceof CgroupV1) {
      // The device rules (a dozen writes for every container) synchronously, see above.
      await cg.apply({ ...limits, devices: [] });
      const devices = cg.byController.get("devices");
      for (const rule of devices ? limits.devices ?? [] : []) {
        writeSync(`${devices}/devices.${rule.allow ? "allow" : "deny"}`, rule.line);
      }
    } else await cg.apply(limits);
  } catch (err) {
    await cg.remove().catch(() => {});
    throw err;
  }
  return cg;
}

/** Moves `pid` into the cgroup (cgroup.procs of each directory); synchronous, see above. */
export function joinOciCgroup(cg: Cgroup, pid: number): void {
  const dirs = cg instanceof CgroupV2 ? [cg.dir] : cg.dirs;
  for (const dir of dirs) writeSync(`${dir}/cgroup.procs`, String(pid));
}

/** Kills what is left in the cgroup and removes its directories; synchronous, see above. */
export function removeOciCgroup(cg: Cgroup): void {
  removeCgroupDirsSync(cg instanceof CgroupV2 ? [cg.dir] : cg.dirs);
}

/**
 * The freezer of the cgroup: v1 `freezer.state` (which reads FREEZING until every task
 * stopped), or v2 `cgroup.freeze`, whose effect shows in `cgroup.events` (`frozen 1`).
 */
function freezerFile(
  cg: Cgroup,
): { file: string; frozen: string; thawed: string; reached: () => string } | undefined {
  if (cg instanceof CgroupV1) {
    const dir = (cg.byController as ReadonlyMap<string, string>).get("freezer");
    if (!dir) return undefined;
    const file = `${dir}/freezer.state`;
    return { file, frozen: "FROZEN", thawed: "THAWED", reached: () => read(file) };
  }
  if (cg instanceof CgroupV2) {
    const events = `${cg.dir}/cgroup.events`;
    return {
      file: `${cg.dir}/cgroup.freeze`,
      frozen: "1",
      thawed: "0",
      reached: () => /^frozen ([01])$/m.exec(read(events))?.[1] ?? "",
    };
  }
  return undefined;
}

function read(path: string): string {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return "";
  }
}

/** Freezes (pause) or thaws (resume) every process of the cgroup and waits until it holds. */
export async function setFrozen(cg: Cgroup, frozen: boolean): Promise<void> {
  const f = freezerFile(cg);
  if (!f) {
    throw new TsboxError("pause/resume need the freezer cgroup controller, which is not mounted");
  }
  const want = frozen ? f.frozen : f.thawed;
  await write(f.file, want);
  for (let i = 0; i < 2500; i++) {
    const state = f.reached();
    if (state === want) return;
    await new Promise((r) => setTimeout(r, 2));
    // v1 can stay FREEZING while a task is in an uninterruptible sleep: ask again.
    if (frozen && state === "FREEZING") await write(f.file, want);
  }
  throw new TsboxError(`the cgroup did not become ${want} (${f.file})`);
}

/** Whether the cgroup is frozen or freezing (paused). */
export function isFrozen(cg: Cgroup): boolean {
  const f = freezerFile(cg);
  if (!f) return false;
  const state = read(f.file);
  return state === f.frozen || state === "FREEZING";
}
