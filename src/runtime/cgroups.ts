/**
 * Per-container cgroups, behind one interface for cgroup v1 (one hierarchy per controller) and
 * v2 (one unified tree). Detection is per controller: a hybrid host can have memory on v1 and
 * hugetlb on v2, so each controller goes where the kernel mounted it.
 *
 * @module
 */
import { killPid } from "../../ffi/process.ts";
import { TsboxError, UsageError } from "../errors.ts";
import {
  blkioWeightFile,
  type ExtraLimits,
  fillCpuset,
  v1ExtraWrites,
  v2ExtraWrites,
} from "./cgroup_extra.ts";

/** Resource limits from `run`'s flags (cpusets, quota, reservation, ...: cgroup_extra.ts). */
export interface ResourceLimits extends ExtraLimits {
  /** --memory, bytes. */
  readonly memory?: number;
  /** --memory-swap, bytes of memory plus swap; -1 unlimited. */
  readonly memorySwap?: number;
  /** --cpus, e.g. 0.5. */
  readonly cpus?: number;
  /** --cpu-shares (v1 weight, 2..262144). */
  readonly cpuShares?: number;
  /** --pids-limit; 0 or negative is unlimited. */
  readonly pidsLimit?: number;
  /**
   * Device access rules (`a`, `c 1:3 rwm`, ...) in order, deny-all first. Enforced through the
   * v1 devices controller; cgroup v2 would need a BPF device program, which tsbox does not load.
   */
  readonly devices?: readonly { readonly allow: boolean; readonly line: string }[];
  /**
   * `--cgroup-parent`: the cgroup (an absolute path below each hierarchy's root, as
   * {@link cgroupParentPath} normalizes it) under which the container's own is made.
   * Unset: {@link DEFAULT_CGROUP_PARENT}.
   */
  readonly cgroupParent?: string;
}

/** Where containers' cgroups go without `--cgroup-parent` (docker's is `/docker`). */
export const DEFAULT_CGROUP_PARENT = "/tsbox";

/**
 * `--cgroup-parent`'s value as an absolute cgroup path: `/` for the root, no empty or `.`
 * parts. A relative path is taken from the hierarchy's root too: tsbox has no daemon whose
 * cgroup it could be relative to (docker's rule), and the cgroup of whichever process runs
 * `create` would put the same container's parent somewhere else each time. `..` is refused, so
 * that a parent never names a directory outside the cgroup mount.
 */
export function cgroupParentPath(text: string): string {
  const parts = text.split("/").filter((p) => p !== "" && p !== ".");
  if (text.trim() === "" || parts.some((p) => p === ".." || p.includes("\0"))) {
    throw new UsageError(`invalid --cgroup-parent "${text}": want a cgroup path without ".."`);
  }
  return "/" + parts.join("/");
}

/** One container's cgroup(s). */
export interface Cgroup {
  /** The directories that make it up (one per v1 controller, or one v2 dir). */
  readonly dirs: readonly string[];
  /** Writes the limits. */
  apply(limits: ResourceLimits): Promise<void>;
  /** Moves `pid` in (cgroup.procs of each dir). */
  join(pid: number): Promise<void>;
  /** Pids currently inside. */
  pids(): Promise<number[]>;
  /** Whether the kernel's OOM killer killed a process inside. */
  oomKilled(): Promise<boolean>;
  /** Kills what is left inside and removes the directories. */
  remove(): Promise<void>;
}

/** The controllers tsbox manages. */
export const CONTROLLERS = ["memory", "cpu", "pids", "devices", "cpuset", "blkio"] as const;
/** The controllers only some limits need (cgroup_extra.ts). */
const EXTRA_CONTROLLERS: readonly string[] = ["cpuset", "blkio"];
/** One of {@link CONTROLLERS}. */
export type Controller = typeof CONTROLLERS[number];

/** Where the kernel put each controller. */
export interface CgroupLayout {
  /** v1 mount point per controller. */
  readonly v1: ReadonlyMap<string, string>;
  /** The cgroup2 mount point, if any. */
  readonly v2?: string;
  /** Controllers the v2 root offers (cgroup.controllers). */
  readonly v2Controllers: readonly string[];
}

/**
 * A cgroup file could not be written (or a cgroup directory made or removed): names the file,
 * the value and the kernel's errno, so that a refused limit never shows up as a bare EINVAL.
 */
export class CgroupError extends TsboxError {
  /** The errno name ("EINVAL", "EBUSY", ...) when the failure carried one. */
  readonly code?: string;
  constructor(readonly path: string, cause: unknown, readonly value?: string) {
    const code = (cause as { code?: unknown })?.code;
    const text = String((cause as Error)?.message ?? cause).replace(/ \(os error \d+\).*$/s, "");
    const what = value === undefined ? `cgroup ${path}` : `cannot write "${value}" to ${path}`;
    super(`${what}: ${text}${typeof code === "string" ? ` (${code})` : ""}`, { cause });
    this.name = "CgroupError";
    if (typeof code === "string") this.code = code;
  }
}

/** Reads the layout from /proc/self/mountinfo text. */
export function parseLayout(
  mountinfo: string,
  v2Controllers: (mount: string) => string[],
): CgroupLayout {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const fields = line.slice(0, sep).split(" ");
    const [fstype, , superOpts] = line.slice(sep + 3).split(" ");
    const mountPoint = fields[4]?.replace(/\\040/g, " ");
    if (!mountPoint) continue;
    if (fstype === "cgroup2") v2 ??= mountPoint;
    else if (fstype === "cgroup") {
      for (const opt of (superOpts ?? "").split(",")) {
        if (["rw", "ro"].includes(opt) || opt.startsWith("name=") || opt.includes("=")) continue;
        if (!v1.has(opt)) v1.set(opt, mountPoint);
      }
    }
  }
  return { v1, v2, v2Controllers: v2 ? v2Controllers(v2) : [] };
}

/** The host's layout. */
export function hostLayout(): CgroupLayout {
  return parseLayout(Deno.readTextFileSync("/proc/self/mountinfo"), (mount) => {
    try {
      return Deno.readTextFileSync(`${mount}/cgroup.controllers`).trim().split(/\s+/).filter(
        Boolean,
      );
    } catch {
      return [];
    }
  });
}

async function write(path: string, value: string): Promise<void> {
  try {
    await Deno.writeTextFile(path, value, { create: false });
  } catch (err) {
    throw new CgroupError(path, err, value);
  }
}

async function makeDir(path: string, recursive: boolean): Promise<void> {
  try {
    await Deno.mkdir(path, { recursive });
  } catch (err) {
    throw new CgroupError(path, err);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readPids(dir: string): Promise<number[]> {
  try {
    return (await Deno.readTextFile(`${dir}/cgroup.procs`)).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Kills every process in the cgroup `dir` at once through its `cgroup.kill` (cgroup v2, Linux
 * 5.14+): the kernel also catches processes forked while it works, which a loop of kill(2) over
 * cgroup.procs can miss. Returns false where there is no such file (v1, older kernels), so the
 * caller falls back to that loop.
 */
export async function killCgroup(dir: string): Promise<boolean> {
  try {
    await Deno.writeTextFile(`${dir}/cgroup.kill`, "1", { create: false });
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw new CgroupError(`${dir}/cgroup.kill`, err, "1");
  }
}

/** {@link killCgroup} for the synchronous removal; best effort, like its caller's kill loop. */
function killCgroupSync(dir: string): void {
  try {
    Deno.writeTextFileSync(`${dir}/cgroup.kill`, "1", { create: false });
  } catch { /* no cgroup.kill, or not ours to write: the kill loop that follows does it */ }
}

async function killAndRemove(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) {
    // Best effort: where cgroup.kill is missing or refused, the loop below signals each pid
    // (and catches any process cgroup.kill has not reached yet).
    await killCgroup(dir).catch(() => false);
    for (let round = 0; round < 100; round++) {
      const pids = await readPids(dir);
      if (pids.length === 0) break;
      for (const pid of pids) killPid(pid, 9);
      await new Promise((r) => setTimeout(r, 10));
    }
    // rmdir can see EBUSY for a moment while the last task is being released.
    for (let tries = 0; tries < 50; tries++) {
      try {
        await Deno.remove(dir);
        break;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) break;
        if (tries === 49) throw new CgroupError(dir, err);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }
}

/** Blocks the thread for `ms` (no event-loop turn), for the synchronous removal below. */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readPidsSync(dir: string): number[] {
  try {
    return Deno.readTextFileSync(`${dir}/cgroup.procs`).split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * {@link Cgroup.remove} without awaiting: kills what is left in `dirs` and removes them. For
 * callers that must stay synchronous (reconciling a row whose supervisor died, while the row
 * still keeps everyone else from starting the container); a dead container's cgroup is empty
 * or about to be, so the waits here are short.
 */
export function removeCgroupDirsSync(dirs: readonly string[]): void {
  for (const dir of dirs) {
    killCgroupSync(dir);
    for (let round = 0; round < 100; round++) {
      const pids = readPidsSync(dir);
      if (pids.length === 0) break;
      for (const pid of pids) killPid(pid, 9);
      sleepSync(10);
    }
    for (let tries = 0; tries < 50; tries++) {
      try {
        Deno.removeSync(dir);
        break;
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) break;
        if (tries === 49) throw new CgroupError(dir, err);
        sleepSync(10);
      }
    }
  }
}

const PERIOD = 100_000;

/** cgroup v1: `<mount of controller>/tsbox/<id>` for each controller. */
export class CgroupV1 implements Cgroup {
  constructor(readonly byController: ReadonlyMap<Controller, string>) {}

  get dirs(): string[] {
    return [...new Set(this.byController.values())];
  }

  async apply(l: ResourceLimits): Promise<void> {
    const mem = this.byController.get("memory");
    if (mem && l.memory !== undefined) {
      await write(`${mem}/memory.limit_in_bytes`, String(l.memory));
      if (await exists(`${mem}/memory.memsw.limit_in_bytes`)) {
        const swap = l.memorySwap ?? l.memory * 2;
        await write(`${mem}/memory.memsw.limit_in_bytes`, String(swap));
      }
    }
    const cpu = this.byController.get("cpu");
    if (cpu && l.cpus !== undefined) {
      await write(`${cpu}/cpu.cfs_period_us`, String(PERIOD));
      await write(`${cpu}/cpu.cfs_quota_us`, String(Math.round(l.cpus * PERIOD)));
    }
    if (cpu && l.cpuShares !== undefined) await write(`${cpu}/cpu.shares`, String(l.cpuShares));
    const pids = this.byController.get("pids");
    if (pids && l.pidsLimit !== undefined) {
      await write(`${pids}/pids.max`, l.pidsLimit > 0 ? String(l.pidsLimit) : "max");
    }
    const devices = this.byController.get("devices");
    for (const rule of devices ? l.devices ?? [] : []) {
      await write(`${devices}/devices.${rule.allow ? "allow" : "deny"}`, rule.line);
    }
    const weightFile = blkioWeightFile(this.byController.get("blkio"));
    for (const [controller, file, value] of v1ExtraWrites(l, weightFile)) {
      const dir = this.byController.get(controller);
      if (dir) await write(`${dir}/${file}`, value);
    }
  }

  async join(pid: number): Promise<void> {
    for (const dir of this.dirs) await write(`${dir}/cgroup.procs`, String(pid));
  }

  async pids(): Promise<number[]> {
    const all = await Promise.all(this.dirs.map(readPids));
    return [...new Set(all.flat())];
  }

  async oomKilled(): Promise<boolean> {
    const mem = this.byController.get("memory");
    if (!mem) return false;
    try {
      const text = await Deno.readTextFile(`${mem}/memory.oom_control`);
      return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0) > 0;
    } catch {
      return false;
    }
  }

  remove(): Promise<void> {
    return killAndRemove(this.dirs);
  }
}

/** cgroup v2 weight from docker's v1 cpu shares (the OCI conversion). */
export function sharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/**
 * The files a cgroup v2 directory gets for `l` and the exact text written to each, in order.
 * Pure, so that these bytes are tested on hosts (like ours) whose v2 tree has no memory, cpu or
 * pids controller and therefore none of these files.
 */
export function v2LimitWrites(l: ResourceLimits): [file: string, value: string][] {
  const out: [string, string][] = [];
  if (l.memory !== undefined) {
    out.push(["memory.max", String(l.memory)]);
    const swap = l.memorySwap === undefined
      ? l.memory
      : (l.memorySwap < 0 ? "max" : Math.max(0, l.memorySwap - l.memory));
    out.push(["memory.swap.max", String(swap)]);
  }
  if (l.cpus !== undefined) out.push(["cpu.max", `${Math.round(l.cpus * PERIOD)} ${PERIOD}`]);
  if (l.cpuShares !== undefined) out.push(["cpu.weight", String(sharesToWeight(l.cpuShares))]);
  if (l.pidsLimit !== undefined) {
    out.push(["pids.max", l.pidsLimit > 0 ? String(l.pidsLimit) : "max"]);
  }
  out.push(...v2ExtraWrites(l));
  return out;
}

/** The line written to `cgroup.subtree_control` to enable `controllers` below a v2 dir. */
export function subtreeControlLine(controllers: readonly string[]): string {
  return controllers.map((c) => `+${c}`).join(" ");
}

/**
 * The v2 directories from the root down to `parent` (absolute, {@link cgroupParentPath}'s
 * form), root first: each gets the controllers in its `cgroup.subtree_control`, since a
 * controller reaches a cgroup only when every ancestor enables it for its children.
 */
export function v2ParentLevels(v2Root: string, parent: string): string[] {
  const out = [v2Root];
  for (const part of parent.split("/").filter(Boolean)) out.push(`${out.at(-1)}/${part}`);
  return out;
}

/** cgroup v2: one directory `<mount><parent>/<id>` (parent `/tsbox` by default). */
export class CgroupV2 implements Cgroup {
  constructor(readonly dir: string) {}

  get dirs(): string[] {
    return [this.dir];
  }

  async apply(l: ResourceLimits): Promise<void> {
    for (const [file, value] of v2LimitWrites(l)) await write(`${this.dir}/${file}`, value);
  }

  /**
   * Kills every process inside at once (cgroup.kill); false where the kernel has no
   * cgroup.kill (before 5.14). The directory stays: {@link remove} takes it away.
   */
  kill(): Promise<boolean> {
    return killCgroup(this.dir);
  }

  join(pid: number): Promise<void> {
    return write(`${this.dir}/cgroup.procs`, String(pid));
  }

  pids(): Promise<number[]> {
    return readPids(this.dir);
  }

  async oomKilled(): Promise<boolean> {
    try {
      const text = await Deno.readTextFile(`${this.dir}/memory.events`);
      return Number(/^oom_kill (\d+)/m.exec(text)?.[1] ?? 0) > 0;
    } catch {
      return false;
    }
  }

  remove(): Promise<void> {
    return killAndRemove([this.dir]);
  }
}

/** `mount` + `parent` (absolute, `/` for the root) + `/id`. */
function under(mount: string, parent: string, id: string): string {
  return `${mount}${parent === "/" ? "" : parent}/${id}`;
}

function v1Dirs(id: string, layout: CgroupLayout, parent: string): Map<Controller, string> {
  const onV1 = new Map<Controller, string>();
  for (const c of CONTROLLERS) {
    const mount = layout.v1.get(c);
    if (mount) onV1.set(c, under(mount, parent, id));
  }
  return onV1;
}

/** Managed controllers that only the unified tree offers under `layout`. */
function v2Wanted(layout: CgroupLayout, onV1: ReadonlyMap<Controller, string>): Controller[] {
  return CONTROLLERS.filter((c) => !onV1.has(c) && layout.v2Controllers.includes(c));
}

/**
 * Where container `id`'s cgroup is (or would be) under `layout`: v1 `<mount><parent>/<id>` per
 * controller while v1 holds every managed controller the host offers, otherwise one v2 dir
 * `<v2 root><parent>/<id>`; `parent` is `--cgroup-parent` ({@link cgroupParentPath}'s form),
 * `/tsbox` by default. The one placement rule that {@link createCgroup}, the commands that
 * find a container's cgroup again (stats, pause, cleanup) and the tests share. The directories
 * may not exist. `layout` is the seam for tests: a layout whose `v2` is any directory of a real
 * cgroup2 mount puts the container's cgroup below it.
 */
export function locateCgroup(
  id: string,
  layout: CgroupLayout = hostLayout(),
  parent: string = DEFAULT_CGROUP_PARENT,
): CgroupV1 | CgroupV2 {
  const onV1 = v1Dirs(id, layout, parent);
  // Placed by the controllers every container needs: a cpuset or blkio controller that only
  // the unified tree has must not move a v1 host's memory and pids limits to v2.
  const core = v2Wanted(layout, onV1).filter((c) => !EXTRA_CONTROLLERS.includes(c));
  if (onV1.size > 0 && core.length === 0) return new CgroupV1(onV1);
  return new CgroupV2(under(layout.v2 ?? "", parent, id));
}

/**
 * Creates the container's cgroup where {@link locateCgroup} puts it (below
 * `limits.cgroupParent`, made as needed); when the unified tree is used, the managed
 * controllers it offers are enabled on every level of the path down to it.
 */
export async function createCgroup(
  id: string,
  limits: ResourceLimits,
  layout: CgroupLayout = hostLayout(),
): Promise<Cgroup> {
  const parentPath = limits.cgroupParent ?? DEFAULT_CGROUP_PARENT;
  const cg = locateCgroup(id, layout, parentPath);
  if (cg instanceof CgroupV1) {
    for (const dir of cg.dirs) await makeDir(dir, true);
    const cpuset = layout.v1.get("cpuset");
    const cpusetDir = cg.byController.get("cpuset");
    if (cpuset && cpusetDir) await fillCpuset(cpuset, cpusetDir, write);
  } else {
    if (!layout.v2) throw new TsboxError("no cgroup hierarchy found for memory, cpu or pids");
    const enable = subtreeControlLine(v2Wanted(layout, v1Dirs(id, layout, parentPath)));
    for (const [i, level] of v2ParentLevels(layout.v2, parentPath).entries()) {
      if (i > 0) {
        await makeDir(level, false).catch((err) => {
          if (!(err.cause instanceof Deno.errors.AlreadyExists)) throw err;
        });
      }
      if (enable) await write(`${level}/cgroup.subtree_control`, enable);
    }
    await makeDir(cg.dir, false);
  }
  try {
    await cg.apply(limits);
  } catch (err) {
    await cg.remove().catch(() => {});
    throw err;
  }
  return cg;
}
