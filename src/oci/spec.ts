/**
 * The OCI runtime-spec 1.x container configuration (`config.json`), the Linux parts tsbox writes
 * and reads, with the spec's own field names so that a bundle tsbox writes is one any OCI runtime
 * (crun, runc, youki) runs. Types only: importing this costs nothing at start.
 *
 * Field docs quote the spec's meaning where it is not obvious; the schema kept in
 * tests/fixtures/oci-runtime-spec-v1.1.0 is the reference these types are checked against.
 *
 * @module
 */

/** The spec release tsbox writes. */
export const OCI_VERSION = "1.1.0";

/** `process.user`: numeric ids, resolved in the image's /etc/passwd and /etc/group beforehand. */
export interface User {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups. */
  readonly additionalGids?: readonly number[];
  /** Bits cleared from file modes (umask); the runtime's default when absent. */
  readonly umask?: number;
}

/** A capability name as the spec writes it: `CAP_` and the kernel's name in capitals. */
export type CapabilityName = `CAP_${string}`;

/** `process.capabilities`: the five sets, each a list of names. */
export interface Capabilities {
  readonly bounding?: readonly CapabilityName[];
  readonly effective?: readonly CapabilityName[];
  readonly inheritable?: readonly CapabilityName[];
  readonly permitted?: readonly CapabilityName[];
  readonly ambient?: readonly CapabilityName[];
}

/** One `process.rlimits` entry; `type` is `RLIMIT_NOFILE` and the like. */
export interface Rlimit {
  readonly type: `RLIMIT_${string}`;
  /** uint64 in the spec; numbers above 2^53 (RLIM_INFINITY) lose precision as JSON numbers. */
  readonly soft: number;
  readonly hard: number;
}

/** `process.consoleSize`. */
export interface ConsoleSize {
  readonly height: number;
  readonly width: number;
}

/** `process`: what PID 1 runs and as whom. */
export interface Process {
  /** Allocate a pseudo-terminal for the process (its stdio then go to the console socket). */
  readonly terminal?: boolean;
  readonly consoleSize?: ConsoleSize;
  readonly user: User;
  /** argv; `args[0]` is looked up in the PATH of {@link env}. */
  readonly args: readonly string[];
  /** `KEY=value` entries. */
  readonly env?: readonly string[];
  /** Absolute path inside the container. */
  readonly cwd: string;
  readonly capabilities?: Capabilities;
  readonly rlimits?: readonly Rlimit[];
  readonly noNewPrivileges?: boolean;
  /** `oom_score_adj` of the process. */
  readonly oomScoreAdj?: number;
  readonly apparmorProfile?: string;
  readonly selinuxLabel?: string;
}

/** `root`: the root filesystem, already prepared (mounted) by the engine. */
export interface Root {
  /** Absolute, or relative to the bundle. */
  readonly path: string;
  readonly readonly?: boolean;
}

/** One entry of `mounts`, applied in order after the root is in place. */
export interface Mount {
  /** Absolute path inside the container. */
  readonly destination: string;
  /** A host path (binds), or the filesystem's device name (`proc`, `tmpfs`). */
  readonly source?: string;
  /** `bind`, `proc`, `tmpfs`, `sysfs`, `devpts`, `mqueue`, `cgroup`... */
  readonly type?: string;
  /** mount(8) options: `bind`/`rbind`, `ro`, `nosuid`, `mode=755`, `size=65536k`... */
  readonly options?: readonly string[];
}

/** One hook: a host program the runtime runs at a point of the lifecycle. */
export interface Hook {
  readonly path: string;
  readonly args?: readonly string[];
  readonly env?: readonly string[];
  readonly timeout?: number;
}

/** `hooks`, by lifecycle point. */
export interface Hooks {
  readonly prestart?: readonly Hook[];
  readonly createRuntime?: readonly Hook[];
  readonly createContainer?: readonly Hook[];
  readonly startContainer?: readonly Hook[];
  readonly poststart?: readonly Hook[];
  readonly poststop?: readonly Hook[];
}

/** Namespace kinds of `linux.namespaces`. */
export type NamespaceType =
  | "pid"
  | "network"
  | "mount"
  | "ipc"
  | "uts"
  | "user"
  | "cgroup"
  | "time";

/**
 * One namespace of the container: a new one, or, with `path`, an existing one joined (a
 * `/proc/PID/ns/net` of another container, a bind-mounted netns of the engine's).
 */
export interface Namespace {
  readonly type: NamespaceType;
  readonly path?: string;
}

/** One range of `linux.uidMappings` / `linux.gidMappings`. */
export interface IdMapping {
  /** First id inside the container. */
  readonly containerID: number;
  /** First id on the host it maps to. */
  readonly hostID: number;
  readonly size: number;
}

/** A device node `linux.devices` creates in the container. */
export interface Device {
  readonly type: "c" | "b" | "u" | "p";
  /** Absolute path inside the container. */
  readonly path: string;
  readonly major?: number;
  readonly minor?: number;
  readonly fileMode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** A device cgroup rule of `linux.resources.devices`. */
export interface DeviceCgroupRule {
  readonly allow: boolean;
  /** `a` (all), `c` or `b`; absent means all. */
  readonly type?: "a" | "c" | "b";
  /** Absent (or -1 in some runtimes) means any. */
  readonly major?: number;
  readonly minor?: number;
  /** Some of `r`, `w`, `m`. */
  readonly access?: string;
}

/** `linux.resources.memory`, in bytes. */
export interface MemoryResources {
  readonly limit?: number;
  readonly reservation?: number;
  /** Memory plus swap; -1 unlimited. */
  readonly swap?: number;
  readonly kernel?: number;
  readonly swappiness?: number;
  readonly disableOOMKiller?: boolean;
}

/** `linux.resources.cpu`. */
export interface CpuResources {
  /** v1 weight (cpu.shares). */
  readonly shares?: number;
  /** CFS quota per period, microseconds. */
  readonly quota?: number;
  /** CFS period, microseconds. */
  readonly period?: number;
  readonly cpus?: string;
  readonly mems?: string;
}

/** One device's block I/O throttle (`linux.resources.blockIO.throttle*Device`). */
export interface ThrottleDevice {
  readonly major: number;
  readonly minor: number;
  readonly rate: number;
}

/** One device's block I/O weight (`linux.resources.blockIO.weightDevice`). */
export interface WeightDevice {
  readonly major: number;
  readonly minor: number;
  readonly weight?: number;
}

/** `linux.resources.blockIO`. */
export interface BlockIO {
  readonly weight?: number;
  readonly weightDevice?: readonly WeightDevice[];
  readonly throttleReadBpsDevice?: readonly ThrottleDevice[];
  readonly throttleWriteBpsDevice?: readonly ThrottleDevice[];
  readonly throttleReadIOPSDevice?: readonly ThrottleDevice[];
  readonly throttleWriteIOPSDevice?: readonly ThrottleDevice[];
}

/** `linux.resources`: what the runtime writes into the container's cgroup. */
export interface Resources {
  readonly devices?: readonly DeviceCgroupRule[];
  readonly memory?: MemoryResources;
  readonly cpu?: CpuResources;
  /** `limit` 0 or below is unlimited (`pids.max` = max). */
  readonly pids?: { readonly limit: number };
  readonly blockIO?: BlockIO;
}

/** A seccomp action name (the spec's `SCMP_ACT_*`). */
export type SeccompAction =
  | "SCMP_ACT_KILL"
  | "SCMP_ACT_KILL_PROCESS"
  | "SCMP_ACT_KILL_THREAD"
  | "SCMP_ACT_TRAP"
  | "SCMP_ACT_ERRNO"
  | "SCMP_ACT_TRACE"
  | "SCMP_ACT_ALLOW"
  | "SCMP_ACT_LOG"
  | "SCMP_ACT_NOTIFY";

/** A seccomp argument operator (the spec's `SCMP_CMP_*`). */
export type SeccompOperator =
  | "SCMP_CMP_NE"
  | "SCMP_CMP_LT"
  | "SCMP_CMP_LE"
  | "SCMP_CMP_EQ"
  | "SCMP_CMP_GE"
  | "SCMP_CMP_GT"
  | "SCMP_CMP_MASKED_EQ";

/** One argument condition of a syscall rule. */
export interface SeccompArg {
  readonly index: number;
  readonly value: number;
  readonly valueTwo?: number;
  readonly op: SeccompOperator;
}

/** One syscall rule: these names, when every arg matches, get `action`. */
export interface SeccompSyscall {
  readonly names: readonly string[];
  readonly action: SeccompAction;
  readonly errnoRet?: number;
  readonly args?: readonly SeccompArg[];
}

/**
 * `linux.seccomp` in the spec's JSON form: rules already chosen for the container (docker's
 * `includes`/`excludes` on capabilities and kernel versions are resolved before it is written).
 */
export interface Seccomp {
  readonly defaultAction: SeccompAction;
  readonly defaultErrnoRet?: number;
  /** `SCMP_ARCH_X86_64` and the like. */
  readonly architectures?: readonly string[];
  readonly flags?: readonly string[];
  readonly syscalls?: readonly SeccompSyscall[];
}

/** `linux`: the Linux-specific part. */
export interface Linux {
  readonly namespaces?: readonly Namespace[];
  readonly uidMappings?: readonly IdMapping[];
  readonly gidMappings?: readonly IdMapping[];
  readonly devices?: readonly Device[];
  /** The container's cgroup, absolute from the cgroup roots (`/tsbox/<id>`). */
  readonly cgroupsPath?: string;
  readonly resources?: Resources;
  readonly seccomp?: Seccomp;
  /** Namespaced sysctls written in the container's /proc/sys. */
  readonly sysctl?: Readonly<Record<string, string>>;
  /** Paths hidden (a /dev/null or an empty read-only tmpfs over them). */
  readonly maskedPaths?: readonly string[];
  /** Paths made read-only. */
  readonly readonlyPaths?: readonly string[];
  /** The root mount's propagation (the schema's four values; applied recursively). */
  readonly rootfsPropagation?: "private" | "shared" | "slave" | "unbindable";
}

/** The whole `config.json`. */
export interface Spec {
  readonly ociVersion: string;
  readonly process: Process;
  readonly root: Root;
  readonly hostname?: string;
  readonly domainname?: string;
  readonly mounts?: readonly Mount[];
  readonly hooks?: Hooks;
  /** Free-form strings; tsbox keeps what no spec field says under `io.tsbox.*` keys. */
  readonly annotations?: Readonly<Record<string, string>>;
  readonly linux: Linux;
}
