/**
 * `--cpuset-cpus/-mems`, `--cpu-quota/--cpu-period`, `--memory-reservation`, `--kernel-memory`,
 * `--oom-kill-disable` and `--blkio-weight` of `run`, `create` and `update`: parsed and checked
 * as docker's daemon checks them (moby's verifyPlatformContainerResources, same messages), with
 * docker's warnings where the kernel cannot enforce a limit and the limit is discarded. Pure
 * but for {@link hostResources}, which reads what the host offers.
 *
 * @module
 */
import type { BlkioThrottle, ExtraLimits } from "../runtime/cgroup_extra.ts";
import { hostDevice } from "../runtime/security.ts";
import { blkioWeightFile } from "../runtime/cgroup_extra.ts";
import { cgroupParentPath, hostLayout, type ResourceLimits } from "../runtime/cgroups.ts";
import { parseBytes, parseInteger } from "./flag_values.ts";
import { LimitError, MIN_MEMORY } from "./limits.ts";

/** The flags as the command line hands them over. */
export interface ExtraLimitFlags {
  cpusetCpus?: string;
  cpusetMems?: string;
  cpuQuota?: string;
  cpuPeriod?: string;
  memoryReservation?: string;
  kernelMemory?: string;
  oomKillDisable?: boolean;
  blkioWeight?: string;
  deviceReadBps?: string[];
  deviceWriteBps?: string[];
  deviceReadIops?: string[];
  deviceWriteIops?: string[];
  deviceCgroupRule?: string[];
  oomScoreAdj?: string;
  cpuRtRuntime?: string;
  cpuRtPeriod?: string;
  cgroupParent?: string;
  /** `--memory-swappiness` (0..100; -1: the kernel's). */
  memorySwappiness?: string;
  /** `--blkio-weight-device PATH:WEIGHT` values. */
  blkioWeightDevice?: string[];
}

/** What the host offers, for the checks. */
export interface HostResources {
  /** Online CPUs in list syntax (`0-1`). */
  readonly cpus: string;
  /** Online memory nodes in list syntax. */
  readonly mems: string;
  /** A blkio weight file exists (v1 `blkio.weight` or BFQ's). */
  readonly blkioWeight: boolean;
  /** The memory controller has v1's `memory.oom_control` (v2 has no OOM switch). */
  readonly oomKillDisable: boolean;
  /** The memory controller can take a soft limit. */
  readonly memoryReservation: boolean;
  /** v1's `memory.swappiness` exists (v2 has none: docker discards the value there). */
  readonly memorySwappiness?: boolean;
  /** A per-device blkio weight file exists (v1 `blkio.weight_device` or BFQ's; v2 io). */
  readonly blkioWeightDevice?: boolean;
}

function readTrim(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return undefined;
  }
}

/** Reads {@link HostResources} from /sys. */
export function hostResources(): HostResources {
  const layout = hostLayout();
  const memory = layout.v1.get("memory");
  const v2Memory = layout.v2Controllers.includes("memory");
  return {
    cpus: readTrim("/sys/devices/system/cpu/online") ?? "0",
    mems: readTrim("/sys/devices/system/node/online") ?? "0",
    blkioWeight: blkioWeightFile(layout.v1.get("blkio")) !== undefined ||
      layout.v2Controllers.includes("io"),
    oomKillDisable: memory !== undefined && readTrim(`${memory}/memory.oom_control`) !== undefined,
    memoryReservation: memory !== undefined || v2Memory,
    memorySwappiness: memory !== undefined &&
      readTrim(`${memory}/memory.swappiness`) !== undefined,
    blkioWeightDevice: (() => {
      const blkio = layout.v1.get("blkio");
      const file = blkioWeightFile(blkio);
      if (file !== undefined) return readTrim(`${blkio}/${file}_device`) !== undefined;
      return layout.v2Controllers.includes("io");
    })(),
  };
}

/** The numbers of a kernel list (`0-2,4`); undefined when it does not parse. */
export function parseList(text: string): Set<number> | undefined {
  const out = new Set<number>();
  if (text.trim() === "") return out;
  for (const part of text.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const [from, to] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (to < from) return undefined;
    for (let n = from; n <= to; n++) out.add(n);
  }
  return out;
}

function checkCpuset(value: string, available: string, what: "cpus" | "mems"): string {
  const wanted = parseList(value);
  if (!wanted) throw new LimitError(`Invalid value ${value} for cpuset ${what}`);
  const have = parseList(available) ?? new Set<number>();
  if ([...wanted].some((n) => !have.has(n))) {
    throw new LimitError(
      what === "cpus"
        ? `Requested CPUs are not available - requested ${value}, available: ${available}`
        : `Requested memory nodes are not available - requested ${value}, available: ${available}`,
    );
  }
  return value;
}

/**
 * `base` (the checked memory, cpus, ... limits) with the limits these flags name added; throws
 * {@link LimitError} with docker's message for a refused value, and reports discarded ones
 * through `warn` with docker's warning text.
 */
export function withExtraLimits(
  base: ResourceLimits,
  flags: ExtraLimitFlags,
  host: HostResources,
  warn: (message: string) => void,
): ResourceLimits {
  const out: { -readonly [K in keyof ExtraLimits]: ExtraLimits[K] } = {};
  if (flags.cpusetCpus !== undefined && flags.cpusetCpus !== "") {
    out.cpusetCpus = checkCpuset(flags.cpusetCpus, host.cpus, "cpus");
  }
  if (flags.cpusetMems !== undefined && flags.cpusetMems !== "") {
    out.cpusetMems = checkCpuset(flags.cpusetMems, host.mems, "mems");
  }
  const period = flags.cpuPeriod !== undefined ? parseInteger(flags.cpuPeriod, "--cpu-period") : 0;
  const quota = flags.cpuQuota !== undefined ? parseInteger(flags.cpuQuota, "--cpu-quota") : 0;
  if (base.cpus !== undefined && period !== 0) {
    throw new LimitError("Conflicting options: Nano CPUs and CPU Period cannot both be set");
  }
  if (base.cpus !== undefined && quota !== 0) {
    throw new LimitError("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
  }
  if (period !== 0 && (period < 1000 || period > 1_000_000)) {
    throw new LimitError(
      "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
    );
  }
  if (quota > 0 && quota < 1000) {
    throw new LimitError("CPU cfs quota can not be less than 1ms (i.e. 1000)");
  }
  if (period !== 0) out.cpuPeriod = period;
  if (quota !== 0) out.cpuQuota = quota < 0 ? -1 : quota;
  if (flags.memoryReservation !== undefined) {
    const r = parseBytes(flags.memoryReservation, "--memory-reservation");
    if (r > 0 && r < MIN_MEMORY) throw new LimitError("Minimum memory reservation allowed is 6MB");
    if (r > 0 && base.memory !== undefined && base.memory < r) {
      throw new LimitError(
        "Minimum memory limit can not be less than memory reservation limit, see usage",
      );
    }
    if (r > 0 && !host.memoryReservation) {
      warn(
        "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.",
      );
    } else if (r > 0) out.memoryReservation = r;
  }
  if (flags.kernelMemory !== undefined) {
    parseBytes(flags.kernelMemory, "--kernel-memory");
    // As docker 20.10+ with runc 1.1: accepted, never applied (the kernel deprecated kmem).
    warn("Specifying a kernel memory limit is deprecated and will be removed in a future release.");
  }
  if (flags.oomKillDisable) {
    if (!host.oomKillDisable) {
      warn("Your kernel does not support OomKillDisable. OomKillDisable discarded.");
    } else {
      out.oomKillDisable = true;
      if (base.memory === undefined) {
        warn(
          "Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous.",
        );
      }
    }
  }
  if (flags.blkioWeight !== undefined) {
    const w = parseInteger(flags.blkioWeight, "--blkio-weight");
    if (w > 0 && !host.blkioWeight) {
      warn(
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
      );
    } else if (w > 0 && (w < 10 || w > 1000)) {
      throw new LimitError("Range of blkio weight is from 10 to 1000");
    } else if (w > 0) out.blkioWeight = w;
  }
  const weights = blkioWeightDevices(flags.blkioWeightDevice ?? []);
  if (weights.length > 0 && !host.blkioWeightDevice) {
    warn(
      "Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.",
    );
  } else if (weights.length > 0) {
    out.blkioWeightDevices = weights.map(({ path, weight }) => {
      const dev = hostDevice(path);
      return { device: `${dev.major}:${dev.minor}`, path, weight };
    });
  }
  if (flags.memorySwappiness !== undefined) {
    const s = parseInteger(flags.memorySwappiness, "--memory-swappiness");
    // -1 is docker's "not set": the kernel's default stays.
    if (s !== -1 && !host.memorySwappiness) {
      warn(
        "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.",
      );
    } else if (s !== -1 && (s < 0 || s > 100)) {
      throw new LimitError(`Invalid value: ${s}, valid memory swappiness range is 0-100`);
    } else if (s !== -1) out.memorySwappiness = s;
  }
  const throttles = blkioThrottles(flags);
  if (throttles.length > 0) out.blkioThrottle = throttles;
  for (const rule of flags.deviceCgroupRule ?? []) {
    if (!DEVICE_RULE.test(rule)) throw new LimitError(`invalid device cgroup format '${rule}'`);
  }
  if (flags.deviceCgroupRule?.length) out.deviceCgroupRules = flags.deviceCgroupRule;
  if (flags.oomScoreAdj !== undefined) {
    const adj = parseInteger(flags.oomScoreAdj, "--oom-score-adj");
    if (adj < -1000 || adj > 1000) {
      throw new LimitError(`Invalid value ${adj}, range for oom score adj is [-1000, 1000]`);
    }
    out.oomScoreAdj = adj;
  }
  for (
    const [flag, value] of [["--cpu-rt-runtime", flags.cpuRtRuntime], [
      "--cpu-rt-period",
      flags.cpuRtPeriod,
    ]]
  ) {
    // Real-time group scheduling needs a daemon-wide budget docker hands down the tree.
    if (value !== undefined) throw new LimitError(`${flag} is not supported by tsbox`);
  }
  const placed = flags.cgroupParent !== undefined && flags.cgroupParent !== ""
    ? { cgroupParent: cgroupParentPath(flags.cgroupParent) }
    : {};
  return { ...base, ...out, ...placed };
}

/** docker's --device-cgroup-rule syntax. */
const DEVICE_RULE = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/;

/** `--blkio-weight-device PATH:WEIGHT` values checked as docker's client checks them. */
function blkioWeightDevices(values: readonly string[]): { path: string; weight: number }[] {
  return values.map((value) => {
    const i = value.lastIndexOf(":");
    const [path, text] = i < 0 ? [value, ""] : [value.slice(0, i), value.slice(i + 1)];
    if (i < 0) throw new LimitError(`bad format: ${value}`);
    if (!path.startsWith("/dev/")) throw new LimitError(`bad format for device path: ${value}`);
    const weight = /^\d+$/.test(text) ? Number(text) : -1;
    if (weight < 10 || weight > 1000) {
      throw new LimitError(`invalid weight for device: ${value}`);
    }
    return { path, weight };
  });
}

/** `--device-read-bps PATH:RATE` and the others, with docker's messages. */
function blkioThrottles(flags: ExtraLimitFlags): BlkioThrottle[] {
  const out: BlkioThrottle[] = [];
  const kinds = [
    ["read_bps", flags.deviceReadBps],
    ["write_bps", flags.deviceWriteBps],
    ["read_iops", flags.deviceReadIops],
    ["write_iops", flags.deviceWriteIops],
  ] as const;
  for (const [kind, values] of kinds) {
    for (const value of values ?? []) {
      const i = value.indexOf(":");
      if (i < 0) throw new LimitError(`bad format: ${value}`);
      const [path, rateText] = [value.slice(0, i), value.slice(i + 1)];
      if (!path.startsWith("/dev/")) throw new LimitError(`bad format for device path: ${value}`);
      const bps = kind.endsWith("bps");
      let rate: number;
      try {
        rate = bps ? parseBytes(rateText, "rate") : parseInteger(rateText, "rate");
      } catch {
        rate = -1;
      }
      if (rate < 0) {
        throw new LimitError(
          `invalid rate for device: ${value}. The correct format is <device-path>:<number>${
            bps ? "[<unit>]" : ""
          }. Number must be a positive integer${
            bps ? ". Unit is optional and can be kb, mb, or gb" : ""
          }`,
        );
      }
      const dev = hostDevice(path);
      out.push({ kind, device: `${dev.major}:${dev.minor}`, path, rate });
    }
  }
  return out;
}

/** `inspect`'s HostConfig fields for these limits, named as docker's. */
export function inspectExtraLimits(l: ResourceLimits): Record<string, unknown> {
  return {
    CpusetCpus: l.cpusetCpus ?? "",
    CpusetMems: l.cpusetMems ?? "",
    CpuQuota: l.cpuQuota ?? 0,
    CpuPeriod: l.cpuPeriod ?? 0,
    MemoryReservation: l.memoryReservation ?? 0,
    OomKillDisable: l.oomKillDisable ?? false,
    BlkioWeight: l.blkioWeight ?? 0,
    BlkioWeightDevice: (l.blkioWeightDevices ?? []).map((w) => ({
      Path: w.path ?? w.device,
      Weight: w.weight,
    })),
    MemorySwappiness: l.memorySwappiness ?? null,
    BlkioDeviceReadBps: throttleView(l, "read_bps"),
    BlkioDeviceWriteBps: throttleView(l, "write_bps"),
    BlkioDeviceReadIOps: throttleView(l, "read_iops"),
    BlkioDeviceWriteIOps: throttleView(l, "write_iops"),
    DeviceCgroupRules: l.deviceCgroupRules ?? null,
    OomScoreAdj: l.oomScoreAdj ?? 0,
    KernelMemory: 0,
    CgroupParent: l.cgroupParent ?? "",
  };
}

/** docker's inspect shape of one kind of throttle. */
function throttleView(l: ResourceLimits, kind: BlkioThrottle["kind"]) {
  const list = (l.blkioThrottle ?? []).filter((t) => t.kind === kind);
  return list.length ? list.map((t) => ({ Path: t.path ?? t.device, Rate: t.rate })) : null;
}
