/**
 * The resource limits of issue 21 beyond memory, cpus, shares and pids: cpusets, CFS quota and
 * period, the memory reservation (soft limit), the OOM killer switch and the block I/O weight.
 * Each maps to cgroup v1 files of its controller and to cgroup v2 files, written by the cgroup
 * classes of cgroups.ts through the small hooks here.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";

/** Limits of this module, part of `ResourceLimits`. */
export interface ExtraLimits {
  /** `--cpuset-cpus`, kernel list syntax (`0-2,4`). */
  readonly cpusetCpus?: string;
  /** `--cpuset-mems`, memory nodes in list syntax. */
  readonly cpusetMems?: string;
  /** `--cpu-quota` in µs per period; -1 is no quota. */
  readonly cpuQuota?: number;
  /** `--cpu-period` in µs. */
  readonly cpuPeriod?: number;
  /** `--memory-reservation` in bytes (the soft limit reclaim aims for under pressure). */
  readonly memoryReservation?: number;
  /** `--oom-kill-disable`. */
  readonly oomKillDisable?: boolean;
  /** `--blkio-weight`, 10..1000. */
  readonly blkioWeight?: number;
  /** `--device-read-bps/-write-bps/-read-iops/-write-iops`, per device. */
  readonly blkioThrottle?: readonly BlkioThrottle[];
  /** `--device-cgroup-rule` lines (`c 1:3 rwm`), allowed after the default rules. */
  readonly deviceCgroupRules?: readonly string[];
  /** `--oom-score-adj`, written for PID 1 before it runs (not a cgroup file). */
  readonly oomScoreAdj?: number;
  /** `--memory-swappiness` (HostConfig.MemorySwappiness), 0..100; v1 only, as docker's. */
  readonly memorySwappiness?: number;
  /** `--blkio-weight-device` (HostConfig.BlkioWeightDevice): a weight per block device. */
  readonly blkioWeightDevices?: readonly BlkioWeightDevice[];
}

/** One block device's I/O weight. */
export interface BlkioWeightDevice {
  /** `MAJOR:MINOR`. */
  readonly device: string;
  /** The device path as given (for inspect). */
  readonly path?: string;
  /** 10..1000. */
  readonly weight: number;
}

/** One block device throttle: which limit, the device's numbers and the rate. */
export interface BlkioThrottle {
  readonly kind: "read_bps" | "write_bps" | "read_iops" | "write_iops";
  /** `MAJOR:MINOR`. */
  readonly device: string;
  /** The device path as given (for inspect). */
  readonly path?: string;
  readonly rate: number;
}

/** v2's io.max key for each throttle kind. */
const IO_MAX_KEY = { read_bps: "rbps", write_bps: "wbps", read_iops: "riops", write_iops: "wiops" };

/** A v1 controller these limits write to. */
export type ExtraController = "cpuset" | "cpu" | "memory" | "blkio" | "devices";

/**
 * The v1 writes for `l`: controller, file, value, in order (the period before the quota it is
 * a share of). The blkio weight file is `blkio.weight`, or `blkio.bfq.weight` on kernels whose
 * weight is BFQ's ({@link blkioWeightFile} tells which the host has).
 */
export function v1ExtraWrites(
  l: ExtraLimits,
  weightFile = "blkio.weight",
): [ExtraController, string, string][] {
  const out: [ExtraController, string, string][] = [];
  if (l.cpusetCpus !== undefined) out.push(["cpuset", "cpuset.cpus", l.cpusetCpus]);
  if (l.cpusetMems !== undefined) out.push(["cpuset", "cpuset.mems", l.cpusetMems]);
  if (l.cpuPeriod !== undefined) out.push(["cpu", "cpu.cfs_period_us", String(l.cpuPeriod)]);
  if (l.cpuQuota !== undefined) out.push(["cpu", "cpu.cfs_quota_us", String(l.cpuQuota)]);
  if (l.memoryReservation !== undefined) {
    out.push(["memory", "memory.soft_limit_in_bytes", String(l.memoryReservation)]);
  }
  if (l.oomKillDisable) out.push(["memory", "memory.oom_control", "1"]);
  if (l.memorySwappiness !== undefined) {
    out.push(["memory", "memory.swappiness", String(l.memorySwappiness)]);
  }
  if (l.blkioWeight !== undefined) out.push(["blkio", weightFile, String(l.blkioWeight)]);
  // CFQ's per-device file is blkio.weight_device, BFQ's blkio.bfq.weight_device.
  for (const w of l.blkioWeightDevices ?? []) {
    out.push(["blkio", `${weightFile}_device`, `${w.device} ${w.weight}`]);
  }
  for (const t of l.blkioThrottle ?? []) {
    out.push(["blkio", `blkio.throttle.${t.kind}_device`, `${t.device} ${t.rate}`]);
  }
  for (const rule of l.deviceCgroupRules ?? []) out.push(["devices", "devices.allow", rule]);
  return out;
}

/** The v2 writes for `l` (no OOM switch in v2: docker discards it there with a warning). */
export function v2ExtraWrites(l: ExtraLimits): [string, string][] {
  const out: [string, string][] = [];
  if (l.cpusetCpus !== undefined) out.push(["cpuset.cpus", l.cpusetCpus]);
  if (l.cpusetMems !== undefined) out.push(["cpuset.mems", l.cpusetMems]);
  if (l.cpuQuota !== undefined || l.cpuPeriod !== undefined) {
    const quota = l.cpuQuota === undefined || l.cpuQuota < 0 ? "max" : String(l.cpuQuota);
    out.push(["cpu.max", `${quota} ${l.cpuPeriod ?? 100_000}`]);
  }
  if (l.memoryReservation !== undefined) out.push(["memory.low", String(l.memoryReservation)]);
  if (l.blkioWeight !== undefined) out.push(["io.bfq.weight", String(l.blkioWeight)]);
  for (const w of l.blkioWeightDevices ?? []) {
    out.push(["io.bfq.weight", `${w.device} ${w.weight}`]);
  }
  for (const t of l.blkioThrottle ?? []) {
    out.push(["io.max", `${t.device} ${IO_MAX_KEY[t.kind]}=${t.rate}`]);
  }
  return out;
}

/** The v1 blkio weight file this host has under `blkioRoot`, if any. */
export function blkioWeightFile(blkioRoot: string | undefined): string | undefined {
  if (!blkioRoot) return undefined;
  for (const file of ["blkio.weight", "blkio.bfq.weight"]) {
    try {
      Deno.statSync(`${blkioRoot}/${file}`);
      return file;
    } catch { /* try the next */ }
  }
  return undefined;
}

/**
 * A new v1 cpuset cgroup starts with no CPUs and no memory nodes, and the kernel refuses to
 * move a process into it (ENOSPC): each directory from `mount` down to `dir` that has none yet
 * gets its parent's, as docker's cgroupfs driver does.
 */
export async function fillCpuset(
  mount: string,
  dir: string,
  write: (path: string, value: string) => Promise<void>,
): Promise<void> {
  const parts = dir.slice(mount.length).split("/").filter(Boolean);
  let parent = mount;
  for (const part of parts) {
    const here = `${parent}/${part}`;
    for (const file of ["cpuset.cpus", "cpuset.mems"]) {
      const own = (await Deno.readTextFile(`${here}/${file}`)).trim();
      if (own !== "") continue;
      await write(`${here}/${file}`, (await Deno.readTextFile(`${parent}/${file}`)).trim());
    }
    parent = here;
  }
}

/**
 * `--oom-score-adj`: written by the starting process into /proc/PID/oom_score_adj of PID 1
 * before it is released (its children inherit it). Lowering it needs CAP_SYS_RESOURCE, which
 * the kernel may refuse even to root: the error names the file and the value.
 */
export async function writeOomScoreAdj(pid: number, value: number): Promise<void> {
  const path = `/proc/${pid}/oom_score_adj`;
  try {
    await Deno.writeTextFile(path, String(value), { create: false });
  } catch (err) {
    const reason = (err as Error).message.replace(/ \(os error \d+\).*$/s, "");
    throw new TsboxError(`cannot write "${value}" to ${path}: ${reason}`, { cause: err });
  }
}
