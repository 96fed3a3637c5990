/**
 * A container's OCI runtime spec from its recorded options: one pure function, {@link specFor},
 * whose inputs are the typed options of `run`/`create` (src/container/state.ts's RunConfig), the
 * identity resolved in the image, and the few host facts docker's defaults depend on (which
 * masked paths exist, the kernel release, the rlimit ceiling). Nothing here reads the disk, so
 * that the flags-to-spec mapping is tested as a table without root.
 *
 * The spec describes what tsbox's runtime does: the same mounts in the same order, docker's
 * capability sets, masks, rlimits, device rules and seccomp profile (resolved for the kept
 * capabilities), so that another OCI runtime given the bundle starts the same container.
 *
 * @module
 */
import type {
  CapabilityName,
  DeviceCgroupRule,
  IdMapping as OciIdMapping,
  Mount,
  Namespace,
  Resources,
  Rlimit,
  Seccomp,
  SeccompSyscall,
  Spec,
} from "../oci/spec.ts";
import { OCI_VERSION } from "../oci/spec.ts";
import { getEnv } from "../runtime/config.ts";
import { DEFAULT_CGROUP_PARENT } from "../runtime/cgroups.ts";
import { DEFAULT_CAPS } from "../runtime/capabilities.ts";
import { DEFAULT_SHM_SIZE, devMounts, INIT_PATH } from "../runtime/defaults.ts";
import { GROUP_ADD_ANNOTATION, USER_ERROR_ANNOTATION } from "../runtime/annotations.ts";
import { ruleApplies, type SeccompProfile } from "../runtime/seccomp.ts";
import { DEFAULT_PROFILE } from "../runtime/seccomp_profile.ts";
import {
  capabilityNames,
  DEFAULT_DEVICE_RULES,
  type HostDevice,
  parseUlimit,
} from "../runtime/security.ts";
import type { IdRange } from "../runtime/userns.ts";
import type { BlkioThrottle } from "../runtime/cgroup_extra.ts";
import type { ResolvedUser } from "../runtime/user.ts";
import type { RunConfig } from "./state.ts";

/** What the host decides about docker's defaults; read by the caller (bundle.ts). */
export interface HostFacts {
  /** docker's masked paths that exist on this kernel. */
  readonly maskedPaths: readonly string[];
  /** docker's read-only paths that exist on this kernel. */
  readonly readonlyPaths: readonly string[];
  /** Kernel release, for seccomp rules with a `minKernel`. */
  readonly kernel: string;
  /** The hard RLIMIT_NOFILE this process may grant: docker's 1048576 is clamped to it. */
  readonly nofileCeiling: number;
  /** Each `--device` source's node type and numbers, by host path. */
  readonly devices: ReadonlyMap<string, HostDevice>;
  /** `--privileged`: the host's top-level /dev nodes, all passed in. */
  readonly privilegedDevices: readonly (HostDevice & { readonly path: string })[];
}

/** The identity PID 1 runs as, once `--user` is resolved in the image's passwd and group. */
export type SpecUser =
  | { readonly resolved: true; readonly user: ResolvedUser; readonly extraGids: readonly number[] }
  /** The image cannot satisfy `--user` (docker's create succeeds; the start fails). */
  | { readonly resolved: false; readonly error: string };

/** Everything {@link specFor} reads. */
export interface SpecInput {
  /** 64 hex digits. */
  readonly id: string;
  readonly config: RunConfig;
  /** `root.path`: the mounted rootfs (the engine prepares it). */
  readonly rootfs: string;
  /** The container's directory: hostname, hosts and resolv.conf are bound from there. */
  readonly stateDir: string;
  readonly user: SpecUser;
  readonly host: HostFacts;
  /** `--network container:X`: the namespace joined (`/proc/PID/ns/net` of X's PID 1). */
  readonly networkPath?: string;
  /** `--ipc container:X`: the namespace joined (`/proc/PID/ns/ipc`), when X runs now. */
  readonly ipcPath?: string;
  /** `--pid container:X`: the namespace joined (`/proc/PID/ns/pid`), when X runs now. */
  readonly pidPath?: string;
}

/** Annotation keys for what the spec has no field for but tsbox's runtime needs. */
export const ANNOTATION = {
  /** `--user` as given, resolved again in the rootfs at each start. */
  user: "io.tsbox.user",
  /** `--group-add` as given (names resolved in the image's /etc/group at start). */
  groupAdd: GROUP_ADD_ANNOTATION,
  /** The network mode (`private`, `none`, `host`, `container:ID`). */
  network: "io.tsbox.network",
  /** `--init`'s host binary. */
  init: "io.tsbox.init",
  /** Why `process.user` is a placeholder: the image cannot satisfy `--user` (the start fails). */
  userError: USER_ERROR_ANNOTATION,
  /**
   * Which tsbox spec this is: "2" carries every limit and the namespace modes, which the
   * runtime reads from it; a bundle without it is brought up to date at its next start.
   */
  specVersion: "io.tsbox.spec-version",
} as const;

/** The {@link ANNOTATION.specVersion} that specFor writes. */
export const SPEC_VERSION = "2";

/** docker's RLIMIT_NOFILE default. */
const DOCKER_NOFILE = 1048576;
/** The placeholder identity of an unresolvable `--user` (the overflow id, never root). */
const NOBODY = 65534;
/** The CFS period docker writes for `--cpus`, microseconds. */
const CPU_PERIOD = 100_000;

const PROC_FLAGS = ["nosuid", "noexec", "nodev"];

/** The container's OCI spec. Pure: the same input gives the same spec. */
export function specFor(input: SpecInput): Spec {
  const c = input.config;
  const privileged = c.security?.security.privileged ?? false;
  const caps: CapabilityName[] = capabilityNames(c.security?.capabilities ?? DEFAULT_CAPS);
  const env = [...c.env];
  if (input.user.resolved && getEnv(env, "HOME") === undefined) {
    env.push(`HOME=${input.user.user.home}`);
  }
  const annotations: Record<string, string> = {
    [ANNOTATION.user]: c.user,
    [ANNOTATION.network]: c.network,
    [ANNOTATION.specVersion]: SPEC_VERSION,
  };
  if (c.groupAdd?.length) annotations[ANNOTATION.groupAdd] = c.groupAdd.join(",");
  if (c.init) annotations[ANNOTATION.init] = c.init;
  if (!input.user.resolved) annotations[ANNOTATION.userError] = input.user.error;
  const uns = c.security?.userns;
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: c.tty,
      user: processUser(input.user),
      // --init: the init is PID 1 and runs the command itself (catatonit's `--`).
      args: c.init ? [INIT_PATH, "--", ...c.argv] : [...c.argv],
      env,
      cwd: c.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: rlimits(c.security?.security.ulimits ?? [], input.host.nofileCeiling),
      noNewPrivileges: c.security?.security.noNewPrivileges ?? false,
      ...(c.resources.oomScoreAdj !== undefined ? { oomScoreAdj: c.resources.oomScoreAdj } : {}),
    },
    root: { path: input.rootfs, readonly: c.readOnly },
    hostname: c.hostname,
    mounts: mounts(input, privileged),
    annotations,
    linux: {
      namespaces: namespaces(input),
      ...(uns ? { uidMappings: idMappings(uns.uid), gidMappings: idMappings(uns.gid) } : {}),
      devices: devices(input, privileged),
      cgroupsPath: `${
        (c.resources.cgroupParent ?? DEFAULT_CGROUP_PARENT).replace(/\/$/, "")
      }/${input.id}`,
      resources: resources(input, privileged),
      ...(privileged ? {} : seccompField(c, caps, input.host.kernel)),
      ...(c.sysctls?.length ? { sysctl: Object.fromEntries(c.sysctls) } : {}),
      maskedPaths: privileged ? [] : [...input.host.maskedPaths],
      readonlyPaths: privileged ? [] : [...input.host.readonlyPaths],
      // The schema's "private"; runtimes (crun, tsbox's oci_mounts.ts) apply it to / recursively.
      rootfsPropagation: "private",
    },
  };
}

function processUser(u: SpecUser): Spec["process"]["user"] {
  if (!u.resolved) return { uid: NOBODY, gid: NOBODY };
  const gids = [...new Set([...u.user.groups, ...u.extraGids])];
  return { uid: u.user.uid, gid: u.user.gid, additionalGids: gids };
}

/** docker's nofile default, clamped, overridden per resource by `--ulimit` (later wins). */
function rlimits(ulimits: readonly string[], ceiling: number): Rlimit[] {
  const nofile = Math.min(DOCKER_NOFILE, ceiling);
  const byName = new Map<string, Rlimit>([
    ["nofile", { type: "RLIMIT_NOFILE", soft: nofile, hard: nofile }],
  ]);
  for (const u of ulimits) {
    const r = parseUlimit(u);
    byName.set(r.name, {
      type: `RLIMIT_${r.name.toUpperCase()}`,
      soft: Number(r.limit.soft),
      hard: Number(r.limit.hard),
    });
  }
  return [...byName.values()];
}

/**
 * The container's namespaces: a kind shared with the host is left out (the spec's rule), one
 * joined from another container has that container's namespace file as `path` (filled in again
 * at each start, bundle.ts, since the target's PID 1 may have changed).
 */
function namespaces(input: SpecInput): Namespace[] {
  const c = input.config;
  const m = c.namespaces;
  const kind = (type: Namespace["type"], mode: string | undefined, path?: string): Namespace[] =>
    mode === "host"
      ? []
      : mode?.startsWith("container:") && path !== undefined
      ? [{ type, path }]
      : [{ type }];
  const out: Namespace[] = [
    ...kind("pid", m?.pid, input.pidPath),
    ...kind("ipc", m?.ipc, input.ipcPath),
    ...kind("uts", m?.uts),
    { type: "mount" },
  ];
  if (c.network !== "host") out.push(...kind("network", c.network, input.networkPath));
  if (c.security?.userns) out.push({ type: "user" });
  out.push(...kind("cgroup", m?.cgroupns));
  return out;
}

function idMappings(ranges: readonly IdRange[]): OciIdMapping[] {
  return ranges.map((r) => ({ containerID: r.inside, hostID: r.outside, size: r.count }));
}

/** The mounts in the order PID 1 makes them (every container's first, then its own). */
function mounts(input: SpecInput, privileged: boolean): Mount[] {
  const c = input.config;
  const shm = Math.ceil((c.shmSize ?? DEFAULT_SHM_SIZE) / 1024);
  const out: Mount[] = [
    { destination: "/proc", type: "proc", source: "proc", options: PROC_FLAGS },
    {
      destination: "/sys",
      type: "sysfs",
      source: "sysfs",
      options: [...PROC_FLAGS, privileged ? "rw" : "ro"],
    },
    ...devMounts(),
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: [...PROC_FLAGS, "mode=1777", `size=${shm}k`],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: PROC_FLAGS },
  ];
  if (c.init) {
    out.push({
      destination: INIT_PATH,
      type: "bind",
      source: c.init,
      options: ["bind", "ro", "nosuid", "nodev"],
    });
  }
  for (const name of ["hostname", "hosts", "resolv.conf"]) {
    out.push({
      destination: `/etc/${name}`,
      type: "bind",
      source: `${input.stateDir}/${name}`,
      options: ["bind"],
    });
  }
  for (const m of c.mounts) {
    out.push(
      m.kind === "tmpfs"
        ? {
          destination: m.target,
          type: "tmpfs",
          source: "tmpfs",
          options: ["nosuid", "nodev", ...m.options.split(",").filter(Boolean)],
        }
        : {
          destination: m.target,
          type: "bind",
          source: m.source,
          options: ["rbind", ...(m.readOnly ? ["ro"] : [])],
        },
    );
  }
  return out;
}

function devices(input: SpecInput, privileged: boolean): NonNullable<Spec["linux"]["devices"]> {
  const requested = input.config.security?.security.devices ?? [];
  const fromHost = privileged
    ? input.host.privilegedDevices.map((d) => ({ ...d, target: d.path }))
    : [];
  const own = requested.flatMap((d) => {
    const h = input.host.devices.get(d.source);
    return h ? [{ ...h, target: d.target }] : [];
  });
  return [...fromHost, ...own].map((d) => ({
    type: d.type,
    path: d.target,
    major: d.major,
    minor: d.minor,
    fileMode: 0o666,
    uid: 0,
    gid: 0,
  }));
}

function resources(input: SpecInput, privileged: boolean): Resources {
  const r = input.config.resources;
  const out: { -readonly [K in keyof Resources]: Resources[K] } = {};
  out.devices = privileged ? [{ allow: true, access: "rwm" }] : [
    ...DEFAULT_DEVICE_RULES.map((d): DeviceCgroupRule => ({
      allow: d.allow,
      type: d.type,
      ...(d.major === "*" ? {} : { major: d.major }),
      ...(d.minor === "*" ? {} : { minor: d.minor }),
      access: d.access,
    })),
    ...(input.config.security?.security.devices ?? []).flatMap((d): DeviceCgroupRule[] => {
      const h = input.host.devices.get(d.source);
      return h
        ? [{ allow: true, type: h.type, major: h.major, minor: h.minor, access: d.permissions }]
        : [];
    }),
    // --device-cgroup-rule: allowed after the rules above (checked at create).
    ...(r.deviceCgroupRules ?? []).map(cgroupRule),
  ];
  const memory = defined({
    limit: r.memory,
    reservation: r.memoryReservation,
    swap: r.memorySwap,
    swappiness: r.memorySwappiness,
    disableOOMKiller: r.oomKillDisable || undefined,
  });
  if (memory) out.memory = memory;
  const cpu = defined({
    shares: r.cpuShares,
    quota: r.cpus !== undefined ? Math.round(r.cpus * CPU_PERIOD) : r.cpuQuota,
    period: r.cpus !== undefined ? CPU_PERIOD : r.cpuPeriod,
    cpus: r.cpusetCpus,
    mems: r.cpusetMems,
  });
  if (cpu) out.cpu = cpu;
  if (r.pidsLimit !== undefined) out.pids = { limit: r.pidsLimit };
  const throttles = (kind: BlkioThrottle["kind"]) => {
    const list = (r.blkioThrottle ?? []).filter((t) => t.kind === kind).map((t) => {
      const [major, minor] = t.device.split(":").map(Number);
      return { major, minor, rate: t.rate };
    });
    return list.length ? list : undefined;
  };
  const weightDevice = (r.blkioWeightDevices ?? []).map((w) => {
    const [major, minor] = w.device.split(":").map(Number);
    return { major, minor, weight: w.weight };
  });
  const blockIO = defined({
    weight: r.blkioWeight,
    weightDevice: weightDevice.length ? weightDevice : undefined,
    throttleReadBpsDevice: throttles("read_bps"),
    throttleWriteBpsDevice: throttles("write_bps"),
    throttleReadIOPSDevice: throttles("read_iops"),
    throttleWriteIOPSDevice: throttles("write_iops"),
  });
  if (blockIO) out.blockIO = blockIO;
  return out;
}

/** `o` without its undefined fields; undefined when none is left. */
function defined<T extends object>(o: T): T | undefined {
  const kept = Object.entries(o).filter(([, v]) => v !== undefined);
  return kept.length ? Object.fromEntries(kept) as T : undefined;
}

/** A `--device-cgroup-rule` line (`c 1:3 rwm`, `a *:* rwm`) as a spec device rule. */
function cgroupRule(line: string): DeviceCgroupRule {
  const [type, numbers, access] = line.split(" ");
  const [major, minor] = numbers.split(":");
  return {
    allow: true,
    type: type as DeviceCgroupRule["type"],
    ...(major === "*" ? {} : { major: Number(major) }),
    ...(minor === "*" ? {} : { minor: Number(minor) }),
    access,
  };
}

function seccompField(
  c: RunConfig,
  caps: readonly string[],
  kernel: string,
): { seccomp?: Seccomp } {
  const profile = c.security?.security.seccomp;
  if (profile === "unconfined") return {};
  return { seccomp: ociSeccomp(profile ?? DEFAULT_PROFILE, { capabilities: caps, kernel }) };
}

/**
 * A docker profile in the spec's form: the rules whose `includes`/`excludes` hold for the kept
 * capabilities and this kernel on x86-64, as tsbox's compiler chooses them (seccomp.ts).
 */
export function ociSeccomp(
  profile: SeccompProfile,
  ctx: { readonly capabilities: readonly string[]; readonly kernel: string },
): Seccomp {
  const syscalls = profile.syscalls.filter((r) => ruleApplies(r, ctx)).map(
    (r): SeccompSyscall => ({
      names: [...r.names],
      action: r.action,
      ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
      ...(r.args?.length
        ? {
          args: r.args.map((a) => ({
            index: a.index,
            value: Number(a.value),
            ...(a.valueTwo !== undefined ? { valueTwo: Number(a.valueTwo) } : {}),
            op: a.op,
          })),
        }
        : {}),
    }),
  );
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    // tsbox's filter kills x32 and i386 calls; only native calls are described.
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls,
  };
}
