/**
 * What the runtime starts, read from an OCI runtime spec (the container's `config.json`): the
 * process, its identity, mounts, namespaces, resources and confinement. The host side that a
 * spec cannot carry (stdio fds, callbacks, the storage the engine mounts) is the caller's, see
 * {@link ContainerSpec}. No docker flag is known here: the engine decided them all when it
 * wrote the spec (src/container/spec.ts).
 *
 * The spec's first mounts are the ones every container gets (proc, sys, dev, devpts, shm,
 * mqueue, the init binary, the /etc files), which tsbox's program makes itself; the rest are the
 * container's own binds and tmpfs mounts.
 *
 * @module
 */
import { RLIM_INFINITY, RLIMIT } from "../../ffi/security.ts";
import type { Mount, Spec } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import type { ResourceLimits } from "./cgroups.ts";
import type { BlkioThrottle } from "./cgroup_extra.ts";
import type { NamespaceSource, SharedNamespaces } from "./namespaces.ts";
import type { ContainerSpec, MountRequest, NetworkMode } from "./container.ts";
import { INIT_PATH } from "./defaults.ts";
import type { SeccompProfile } from "./seccomp.ts";
import { CAPABILITIES, type DeviceRequest, hostDevice, type RlimitSetting } from "./security.ts";
import type { SecuritySettings } from "./security_settings.ts";
import type { IdRange } from "./userns.ts";
import { UserError } from "./user.ts";

/** The fields of {@link ContainerSpec} an OCI spec decides. */
export type SpecFields = Pick<
  ContainerSpec,
  | "argv"
  | "env"
  | "cwd"
  | "user"
  | "groupAdd"
  | "hostname"
  | "network"
  | "networkPath"
  | "namespaces"
  | "resources"
  | "mounts"
  | "readOnly"
  | "capabilities"
  | "security"
  | "userns"
  | "init"
  | "shmSize"
  | "sysctls"
>;

/** A spec tsbox's runtime cannot run as it is written. */
export class SpecError extends TsboxError {
  constructor(message: string) {
    super(`config.json: ${message}`);
    this.name = "SpecError";
  }
}

/** The annotation a spec carries when the image could not satisfy `--user` at create. */
export const USER_ERROR_ANNOTATION = "io.tsbox.user-error";

const STANDARD = ["/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"];
const ETC = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/** The runtime's start fields from `spec`; host device nodes are looked up for its devices. */
export function fromSpec(spec: Spec): SpecFields {
  const userError = spec.annotations?.[USER_ERROR_ANNOTATION];
  if (userError !== undefined) throw new UserError(userError);
  const { standard, own } = splitMounts(spec.mounts ?? []);
  const init = standard.find((m) => m.destination === INIT_PATH)?.source;
  const args = spec.process.args;
  if (init !== undefined && (args[0] !== INIT_PATH || args[1] !== "--")) {
    throw new SpecError(`${INIT_PATH} is mounted but process.args do not start with it`);
  }
  const shm = standard.find((m) => m.destination === "/dev/shm")?.options
    ?.find((o) => o.startsWith("size="));
  const sys = standard.find((m) => m.destination === "/sys");
  const caps = (spec.process.capabilities?.bounding ?? []).map(capability);
  const uns = spec.linux.uidMappings && spec.linux.gidMappings
    ? { uid: ranges(spec.linux.uidMappings), gid: ranges(spec.linux.gidMappings) }
    : undefined;
  const user = spec.process.user;
  const netPath = spec.linux.namespaces?.find((n) => n.type === "network")?.path;
  return {
    argv: init !== undefined ? args.slice(2) : [...args],
    env: [...(spec.process.env ?? [])],
    cwd: spec.process.cwd,
    // Numeric: passwd gives HOME and membership groups again at start; the spec's groups are
    // added to those.
    user: `${user.uid}:${user.gid}`,
    groupAdd: (user.additionalGids ?? []).map(String),
    hostname: spec.hostname ?? "",
    network: network(spec),
    ...(netPath !== undefined ? { networkPath: netPath } : {}),
    namespaces: shared(spec),
    resources: resources(spec),
    mounts: own.map(mountRequest),
    readOnly: spec.root.readonly ?? false,
    capabilities: caps,
    security: settings(spec, sys?.options?.includes("rw") ?? false),
    userns: uns,
    init,
    shmSize: shm ? kib(shm.slice("size=".length)) : undefined,
    sysctls: Object.entries(spec.linux.sysctl ?? {}),
  };
}

/** The standard mounts at the front of the list (in the order specFor writes them), the rest. */
function splitMounts(mounts: readonly Mount[]): { standard: Mount[]; own: Mount[] } {
  const expected = [...STANDARD, INIT_PATH, ...ETC];
  let i = 0;
  for (const destination of expected) {
    if (mounts[i]?.destination === destination) i++;
    else if (destination !== INIT_PATH) {
      throw new SpecError(`expected the mount of ${destination} at position ${i}`);
    }
  }
  return { standard: mounts.slice(0, i), own: mounts.slice(i) };
}

function mountRequest(m: Mount): MountRequest {
  const options = m.options ?? [];
  if (m.type === "bind" && m.source !== undefined && options.includes("rbind")) {
    return {
      kind: "bind",
      source: m.source,
      target: m.destination,
      readOnly: options.includes("ro"),
    };
  }
  if (m.type === "tmpfs" && options[0] === "nosuid" && options[1] === "nodev") {
    return { kind: "tmpfs", target: m.destination, options: options.slice(2).join(",") };
  }
  throw new SpecError(`unsupported mount of ${m.destination} (${m.type} ${options.join(",")})`);
}

function kib(value: string): number {
  const m = /^([0-9]+)k$/.exec(value);
  if (!m) throw new SpecError(`unsupported /dev/shm size ${value}`);
  return Number(m[1]) * 1024;
}

function capability(name: string): number {
  const n = CAPABILITIES[name.replace(/^CAP_/, "")];
  if (n === undefined) throw new SpecError(`unknown capability ${name}`);
  return n;
}

function ranges(m: readonly { containerID: number; hostID: number; size: number }[]): IdRange[] {
  return m.map((r) => ({ inside: r.containerID, outside: r.hostID, count: r.size }));
}

/** The host's network (no namespace), or one of its own (joined by the caller's pid, if any). */
function network(spec: Spec): NetworkMode {
  return spec.linux.namespaces?.some((n) => n.type === "network") ? "private" : "host";
}

/**
 * The namespaces the container does not own: a kind missing from `linux.namespaces` is the
 * host's; one with a `path` is joined.
 */
function shared(spec: Spec): SharedNamespaces {
  const ns = spec.linux.namespaces ?? [];
  const source = (type: "ipc" | "pid"): NamespaceSource | undefined => {
    const n = ns.find((x) => x.type === type);
    return !n ? "host" : n.path !== undefined ? { path: n.path } : undefined;
  };
  const has = (type: "uts" | "cgroup") => ns.some((x) => x.type === type);
  if (!ns.some((x) => x.type === "mount")) throw new SpecError("no mount namespace");
  return {
    ...defined({ ipc: source("ipc"), pid: source("pid") }),
    ...(has("uts") ? {} : { uts: "host" as const }),
    ...(has("cgroup") ? {} : { cgroup: "host" as const }),
  };
}

/** docker's `--cpus` period: a quota over it is given back as `cpus`, as the flags had it. */
const CPU_PERIOD = 100_000;

/** The cgroup limits, as the flags that asked for them (the same cgroup writes). */
function resources(spec: Spec): ResourceLimits {
  const r = spec.linux.resources ?? {};
  const quota = r.cpu?.quota, period = r.cpu?.period;
  const cpus = quota !== undefined && quota > 0 && period === CPU_PERIOD;
  const io = r.blockIO;
  const throttles: BlkioThrottle[] = [];
  for (
    const [kind, list] of [
      ["read_bps", io?.throttleReadBpsDevice],
      ["write_bps", io?.throttleWriteBpsDevice],
      ["read_iops", io?.throttleReadIOPSDevice],
      ["write_iops", io?.throttleWriteIOPSDevice],
    ] as const
  ) {
    for (const t of list ?? []) {
      throttles.push({ kind, device: `${t.major}:${t.minor}`, rate: t.rate });
    }
  }
  return defined({
    memory: r.memory?.limit,
    memorySwap: r.memory?.swap,
    memoryReservation: r.memory?.reservation,
    memorySwappiness: r.memory?.swappiness,
    oomKillDisable: r.memory?.disableOOMKiller || undefined,
    cpus: cpus ? quota / period : undefined,
    cpuQuota: cpus ? undefined : quota,
    cpuPeriod: cpus ? undefined : period,
    cpuShares: r.cpu?.shares,
    cpusetCpus: r.cpu?.cpus,
    cpusetMems: r.cpu?.mems,
    pidsLimit: r.pids?.limit,
    blkioWeight: io?.weight,
    blkioWeightDevices: io?.weightDevice?.length
      ? io.weightDevice.flatMap((w) =>
        w.weight === undefined ? [] : [{ device: `${w.major}:${w.minor}`, weight: w.weight }]
      )
      : undefined,
    blkioThrottle: throttles.length ? throttles : undefined,
    oomScoreAdj: spec.process.oomScoreAdj,
  });
}

/** `o` without its undefined fields. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function settings(spec: Spec, sysWritable: boolean): SecuritySettings {
  const rules = spec.linux.resources?.devices ?? [];
  return {
    kind: "explicit",
    masked: spec.linux.maskedPaths ?? [],
    readonly: spec.linux.readonlyPaths ?? [],
    sysWritable,
    devices: (spec.linux.devices ?? []).map(hostNode),
    deviceRules: rules.map((d) => ({
      allow: d.allow,
      line: (d.type ?? "a") === "a"
        ? "a"
        : `${d.type} ${d.major ?? "*"}:${d.minor ?? "*"} ${d.access ?? "rwm"}`,
    })),
    rlimits: (spec.process.rlimits ?? []).map(rlimit),
    noNewPrivileges: spec.process.noNewPrivileges ?? false,
    seccomp: spec.linux.seccomp as SeccompProfile | undefined,
  };
}

/** uint64 limits travel as JSON numbers: anything at 2^64-1 or above is RLIM_INFINITY. */
function limit(n: number): bigint {
  return n >= 2 ** 64 - 1 ? RLIM_INFINITY : BigInt(n);
}

function rlimit(r: { type: string; soft: number; hard: number }): RlimitSetting {
  const name = r.type.replace(/^RLIMIT_/, "").toLowerCase();
  const resource = RLIMIT[name];
  if (resource === undefined) throw new SpecError(`unknown rlimit ${r.type}`);
  return { name, resource, limit: { soft: limit(r.soft), hard: limit(r.hard) } };
}

/**
 * The host node a spec device is bound from: the same path on the host when it is that device
 * (`--device /dev/kmsg`, `--privileged`), else one found under /dev with its type and numbers.
 */
function hostNode(d: NonNullable<Spec["linux"]["devices"]>[number]): DeviceRequest {
  const same = (path: string) => {
    try {
      const h = hostDevice(path);
      return h.type === d.type && h.major === d.major && h.minor === d.minor;
    } catch {
      return false;
    }
  };
  if (same(d.path)) return { source: d.path, target: d.path, permissions: "rwm" };
  const found = findUnder("/dev", same);
  if (!found) {
    throw new SpecError(`no host device ${d.type} ${d.major}:${d.minor} for ${d.path}`);
  }
  return { source: found, target: d.path, permissions: "rwm" };
}

function findUnder(dir: string, match: (path: string) => boolean, depth = 0): string | undefined {
  if (depth > 3) return undefined;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (!e.isDirectory && !e.isSymlink && match(path)) return path;
  }
  for (const e of entries) {
    if (!e.isDirectory) continue;
    const hit = findUnder(`${dir}/${e.name}`, match, depth + 1);
    if (hit) return hit;
  }
  return undefined;
}
