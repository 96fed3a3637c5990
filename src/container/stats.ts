/**
 * `top` and `stats`: the container's processes from its cgroup and /proc, and memory, CPU and
 * pid counts from its cgroup files (v1 or v2).
 *
 * @module
 */
import { type CgroupLayout, type CgroupV1, CgroupV2, hostLayout } from "../runtime/cgroups.ts";
import { type CgroupOwner, containerCgroup } from "./cgroup.ts";
import { readStat } from "./proc.ts";

/** One process as `top` shows it. */
export interface ProcessRow {
  readonly pid: number;
  readonly ppid: number;
  readonly uid: number;
  /** Start time, HH:MM. */
  readonly stime: string;
  /** CPU time, HH:MM:SS. */
  readonly time: string;
  readonly cmd: string;
}

const TICKS = 100;

function bootTimeMs(): number {
  const stat = Deno.readTextFileSync("/proc/stat");
  return Number(/^btime (\d+)/m.exec(stat)?.[1] ?? 0) * 1000;
}

/** The processes in the container's cgroup (`layout`: the host's unless a test passes one). */
export async function containerProcesses(
  id: CgroupOwner,
  layout: CgroupLayout = hostLayout(),
): Promise<ProcessRow[]> {
  const rows: ProcessRow[] = [];
  const boot = bootTimeMs();
  for (const pid of (await containerCgroup(id, layout).pids()).sort((a, b) => a - b)) {
    const stat = readStat(pid);
    if (!stat) continue;
    let cmd = "";
    let uid = 0;
    try {
      cmd = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter(Boolean).join(" ");
      uid = Number(/^Uid:\s+(\d+)/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1]);
    } catch {
      continue;
    }
    const cpu = Math.floor((Number(stat[11]) + Number(stat[12])) / TICKS);
    const started = new Date(boot + (Number(stat[19]) / TICKS) * 1000);
    const two = (n: number) => String(n).padStart(2, "0");
    rows.push({
      pid,
      ppid: Number(stat[1]),
      uid,
      stime: `${two(started.getHours())}:${two(started.getMinutes())}`,
      time: `${two(Math.floor(cpu / 3600))}:${two(Math.floor(cpu / 60) % 60)}:${two(cpu % 60)}`,
      cmd,
    });
  }
  return rows;
}

/** One resource sample. */
export interface StatsSample {
  readonly memoryUsage: number;
  readonly memoryLimit: number;
  readonly memoryPercent: number;
  readonly cpuPercent: number;
  readonly pids: number;
}

function readNumber(path: string): number | undefined {
  try {
    const v = Deno.readTextFileSync(path).trim();
    return v === "max" ? Infinity : Number(v.split(/\s+/)[0]);
  } catch {
    return undefined;
  }
}

function countLines(path: string): number {
  try {
    return Deno.readTextFileSync(path).split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
}

function hostMemory(): number {
  const info = Deno.readTextFileSync("/proc/meminfo");
  return Number(/^MemTotal:\s+(\d+)/m.exec(info)?.[1] ?? 0) * 1024;
}

/**
 * CPU time used in ns, from cpuacct (v1) or cpu.stat (v2). Where v1 mounts cpuacct apart from
 * cpu (tsbox joins cpu only), it is the CPU time of the container's live processes instead.
 */
async function cpuNs(id: CgroupOwner, layout: CgroupLayout): Promise<number> {
  const cg = containerCgroup(id, layout);
  if (cg instanceof CgroupV2) {
    try {
      const text = Deno.readTextFileSync(`${cg.dir}/cpu.stat`);
      return Number(/^usage_usec (\d+)/m.exec(text)?.[1] ?? 0) * 1000;
    } catch {
      return 0;
    }
  }
  const dir = (cg as CgroupV1).byController.get("cpu");
  const usage = dir ? readNumber(`${dir}/cpuacct.usage`) : undefined;
  if (usage !== undefined) return usage;
  let ticks = 0;
  for (const pid of await cg.pids()) {
    const stat = readStat(pid);
    if (stat) ticks += Number(stat[11]) + Number(stat[12]);
  }
  return ticks * (1e9 / TICKS);
}

/** Memory, CPU (over `intervalMs`) and pids of the container (`layout` as for top). */
export async function sampleStats(
  id: CgroupOwner,
  intervalMs = 500,
  layout: CgroupLayout = hostLayout(),
): Promise<StatsSample> {
  const cg = containerCgroup(id, layout);
  const host = hostMemory();
  let usage = 0, limit = host, pids = 0;
  if (cg instanceof CgroupV2) {
    usage = readNumber(`${cg.dir}/memory.current`) ?? 0;
    limit = Math.min(readNumber(`${cg.dir}/memory.max`) ?? host, host);
    // Without the pids controller (not delegated, or bound to v1) the kernel still lists the
    // cgroup's tasks, which is what pids.current would count.
    pids = readNumber(`${cg.dir}/pids.current`) ?? countLines(`${cg.dir}/cgroup.threads`);
  } else {
    const v1 = cg as CgroupV1;
    const mem = v1.byController.get("memory");
    const pid = v1.byController.get("pids");
    if (mem) {
      usage = readNumber(`${mem}/memory.usage_in_bytes`) ?? 0;
      limit = Math.min(readNumber(`${mem}/memory.limit_in_bytes`) ?? host, host);
    }
    if (pid) pids = readNumber(`${pid}/pids.current`) ?? 0;
  }
  const t0 = performance.now();
  const c0 = await cpuNs(id, layout);
  await new Promise((r) => setTimeout(r, intervalMs));
  const c1 = await cpuNs(id, layout);
  const elapsedNs = (performance.now() - t0) * 1e6;
  return {
    memoryUsage: usage,
    memoryLimit: limit,
    memoryPercent: limit > 0 ? (usage / limit) * 100 : 0,
    cpuPercent: elapsedNs > 0 ? ((c1 - c0) / elapsedNs) * 100 : 0,
    pids,
  };
}
