/**
 * A real cgroup2 directory for tests of tsbox's v2 code path. Our machines are v1 hybrid: the
 * cgroup2 tree exists (at /sys/fs/cgroup/unified) but every controller tsbox manages is bound
 * to v1, so a v2 cgroup here has the core files (cgroup.procs, cgroup.freeze, cgroup.kill,
 * cgroup.events, cgroup.type, cpu.stat) and no memory.*, cpu.max or pids.* files. What the
 * kernel does with those core files is tested for real through this helper; limits are not.
 *
 * @module
 */
import { mount, umount } from "../ffi/mount.ts";
import type { CgroupLayout } from "../src/runtime/cgroups.ts";
import { hostLayout } from "../src/runtime/cgroups.ts";
import { readStat } from "../src/container/proc.ts";

/** Whether this process can make cgroup2 directories (root, with cgroup2 in the kernel). */
export const canUseCgroup2: boolean = Deno.uid() === 0 && (() => {
  try {
    return /\tcgroup2$/m.test(Deno.readTextFileSync("/proc/filesystems"));
  } catch {
    return false;
  }
})();

let serial = 0;

/**
 * Runs `fn` with a layout whose v2 root is a fresh directory of a real cgroup2 mount (the
 * host's; where the host has none, one mounted for the test in a temp dir) and no v1
 * controllers, so that tsbox's placement puts containers' cgroups below it. Afterwards every
 * process left in it is killed and every directory, and the mount if one was made, is removed.
 */
export async function withCgroup2(
  fn: (layout: CgroupLayout, root: string) => Promise<void>,
): Promise<void> {
  let mountPoint = hostLayout().v2;
  let ownMount: string | undefined;
  if (!mountPoint) {
    ownMount = await Deno.makeTempDir({ prefix: "tsbox-cg2-" });
    mount("none", ownMount, "cgroup2", 0);
    mountPoint = ownMount;
  }
  const root = `${mountPoint}/tsbox-test-${Deno.pid}-${serial++}`;
  try {
    await Deno.mkdir(root);
    const controllers = (await Deno.readTextFile(`${root}/cgroup.controllers`)).trim();
    await fn(
      { v1: new Map(), v2: root, v2Controllers: controllers.split(/\s+/).filter(Boolean) },
      root,
    );
  } finally {
    try {
      await removeTree(root);
    } finally {
      if (ownMount) {
        umount(ownMount);
        await Deno.remove(ownMount);
      }
    }
  }
}

/** Removes a cgroup2 subtree bottom-up, killing what is left inside (cgroup.kill) first. */
async function removeTree(dir: string): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  for (const e of entries) if (e.isDirectory) await removeTree(`${dir}/${e.name}`);
  await Deno.writeTextFile(`${dir}/cgroup.kill`, "1", { create: false }).catch(() => {});
  await poll(
    `${dir} empty`,
    () => !/^populated 1$/m.test(Deno.readTextFileSync(`${dir}/cgroup.events`)),
  );
  await Deno.remove(dir);
}

/** Polls `check` every 20 ms until it holds; throws naming `what` after `deadlineMs`. */
export async function poll(
  what: string,
  check: () => boolean | Promise<boolean>,
  deadlineMs = 15_000,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A cgroup's cgroup.events as a map (populated, frozen). */
export function cgroupEvents(dir: string): Map<string, string> {
  const text = Deno.readTextFileSync(`${dir}/cgroup.events`);
  return new Map(text.trim().split("\n").map((l) => l.split(" ") as [string, string]));
}

/** A process's state letter (field 3 of /proc/PID/stat); undefined once it is reaped. */
export function procState(pid: number): string | undefined {
  return readStat(pid)?.[0];
}

/** CPU time (utime + stime, clock ticks) a process has used. */
export function cpuTicks(pid: number): number {
  const stat = readStat(pid);
  return stat ? Number(stat[11]) + Number(stat[12]) : NaN;
}

/** Whether `pid` is gone or a zombie (a killed orphan may stay Z for a while on our init). */
export function dead(pid: number): boolean {
  const state = procState(pid);
  return state === undefined || state === "Z" || state === "X";
}
