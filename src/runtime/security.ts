/**
 * docker-grade confinement decided in the parent and compiled into the child's program: masked
 * and read-only /proc and /sys paths, device nodes and the device cgroup rules, rlimits,
 * no_new_privs and the seccomp filter install. The flags that ask for them are parsed in
 * src/container/security_flags.ts.
 *
 * @module
 */
import { bytes, type Op, str } from "../../ffi/clone.ts";
import { MS } from "../../ffi/mount.ts";
import {
  getRlimit,
  NativeBuffer,
  RLIM_INFINITY,
  RLIMIT,
  type Rlimit,
  rlimitBytes,
} from "../../ffi/security.ts";
import { UsageError } from "../errors.ts";
import { CAP } from "./capabilities.ts";
import { compileProfile, encodeFilter, type SeccompProfile } from "./seccomp.ts";
import { DEFAULT_PROFILE } from "./seccomp_profile.ts";
import { cachedDefaultFilter } from "./seccomp_cache.ts";
import { SYSCALLS_X86_64 as NR } from "./seccomp_syscalls.ts";

/** Every capability by name, without the CAP_ prefix. */
export const CAPABILITIES: Readonly<Record<string, number>> = CAP;

/** `CAP_*` names of `caps` (numbers the table does not know are left out). */
export function capabilityNames(caps: readonly number[]): `CAP_${string}`[] {
  const byNumber = new Map(
    Object.entries(CAPABILITIES).map(([k, v]): [number, `CAP_${string}`] => [v, `CAP_${k}`]),
  );
  return caps.flatMap((c) => byNumber.has(c) ? [byNumber.get(c)!] : []);
}

/** Paths docker hides: files get /dev/null bound over them, directories an empty r/o tmpfs. */
export const MASKED_PATHS: readonly string[] = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/interrupts",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** Paths docker makes read-only. */
export const READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/** A masked path and whether it is a directory (both as the host's /proc and /sys show it). */
export interface MaskedPath {
  readonly path: string;
  readonly dir: boolean;
}

/**
 * The masked paths that exist: /proc and /sys show the same kernel inside and out, so the
 * host's view decides; missing ones are skipped, as runc does.
 */
export function existingMasks(paths: readonly string[] = MASKED_PATHS): MaskedPath[] {
  return paths.flatMap((path) => {
    try {
      return [{ path, dir: Deno.statSync(path).isDirectory }];
    } catch {
      return [];
    }
  });
}

/** The read-only paths that exist on this kernel. */
export function existingReadonly(paths: readonly string[] = READONLY_PATHS): string[] {
  return paths.filter((p) => {
    try {
      Deno.statSync(p);
      return true;
    } catch {
      return false;
    }
  });
}

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

function mountOp(source: string, target: string, fstype: string, flags: number, data = ""): Op {
  return op(
    NR.mount,
    fstype ? `mount ${fstype} on ${target}` : `bind ${source} on ${target}`,
    [str(source), str(target), str(fstype), flags, data ? str(data) : 0],
  );
}

// proc is mounted nosuid,nodev,noexec; a remount must repeat locked flags in a user namespace.
const PROC_FLAGS = MS.NOSUID | MS.NODEV | MS.NOEXEC;

/** After pivot_root: hide the masked paths, remount the read-only ones. */
export function maskOps(masked: readonly MaskedPath[], readonly: readonly string[]): Op[] {
  const ops: Op[] = [];
  for (const m of masked) {
    ops.push(
      m.dir
        ? mountOp("tmpfs", m.path, "tmpfs", MS.RDONLY | PROC_FLAGS, "size=0,mode=555")
        : mountOp("/dev/null", m.path, "", MS.BIND),
    );
  }
  for (const p of readonly) {
    ops.push(
      mountOp(p, p, "", MS.BIND | MS.REC),
      mountOp(p, p, "", MS.BIND | MS.REMOUNT | MS.RDONLY | PROC_FLAGS),
    );
  }
  return ops;
}

/** One device made available in the container. */
export interface DeviceRequest {
  /** Host device node. */
  readonly source: string;
  /** Path inside the container (under /dev). */
  readonly target: string;
  /** cgroup permissions: some of r, w, m. */
  readonly permissions: string;
}

/** A device cgroup rule (`c 1:3 rwm`); `*` for any major or minor. */
export interface DeviceRule {
  readonly allow: boolean;
  readonly type: "a" | "c" | "b";
  readonly major: number | "*";
  readonly minor: number | "*";
  readonly access: string;
}

/** The rule's line for devices.allow / devices.deny. */
export function deviceRuleLine(r: DeviceRule): string {
  return r.type === "a" ? "a" : `${r.type} ${r.major}:${r.minor} ${r.access}`;
}

function allow(type: "c" | "b", major: number | "*", minor: number | "*", access = "rwm") {
  return { allow: true, type, major, minor, access } as const;
}

/** docker's default device rules: deny all, mknod anything, use only the standard nodes. */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  { allow: false, type: "a", major: "*", minor: "*", access: "rwm" },
  allow("c", "*", "*", "m"),
  allow("b", "*", "*", "m"),
  allow("c", 1, 3), // null
  allow("c", 1, 5), // zero
  allow("c", 1, 7), // full
  allow("c", 1, 8), // random
  allow("c", 1, 9), // urandom
  allow("c", 5, 0), // tty
  allow("c", 5, 1), // console
  allow("c", 5, 2), // ptmx
  allow("c", 136, "*"), // pts/*
  allow("c", 10, 200), // net/tun
];

/** A host device node's type and numbers. */
export interface HostDevice {
  readonly type: "c" | "b";
  readonly major: number;
  readonly minor: number;
}

/** Stats a host device node; throws a UsageError when it is not one. */
export function hostDevice(path: string): HostDevice {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    throw new UsageError(`--device ${path}: no such device on the host`);
  }
  if (!info.isCharDevice && !info.isBlockDevice) {
    throw new UsageError(`--device ${path}: not a device node`);
  }
  const rdev = info.rdev ?? 0;
  // glibc's gnu_dev_major/minor, for rdev values below 2^32.
  const major = ((rdev >>> 8) & 0xfff) >>> 0;
  const minor = ((rdev & 0xff) | ((rdev >>> 12) & 0xfff00)) >>> 0;
  return { type: info.isCharDevice ? "c" : "b", major, minor };
}

/** Top-level device nodes of the host's /dev, for `--privileged`. */
export function allHostDevices(): DeviceRequest[] {
  const out: DeviceRequest[] = [];
  for (const e of Deno.readDirSync("/dev")) {
    const path = `/dev/${e.name}`;
    try {
      const info = Deno.lstatSync(path);
      if (info.isCharDevice || info.isBlockDevice) {
        out.push({ source: path, target: path, permissions: "rwm" });
      }
    } catch { /* raced away */ }
  }
  return out;
}

const AT_FDCWD = -100;
const S_IFREG = 0o100000;

/** What tsbox's /dev already holds (files, links and directories made by the program). */
const STANDARD_DEV = new Set([
  "null",
  "zero",
  "full",
  "random",
  "urandom",
  "tty",
  "fd",
  "stdin",
  "stdout",
  "stderr",
  "ptmx",
  "pts",
  "shm",
  "mqueue",
]);

/**
 * Before pivot_root: each device gets an empty file in the container's fresh /dev tmpfs (`dev`
 * is its host path) and the host node bound over it, which also works in a user namespace.
 * Standard names are already there and only get the bind; links and the pts/shm/mqueue
 * directories are left alone.
 */
export function deviceOps(dev: string, devices: readonly DeviceRequest[]): Op[] {
  const ops: Op[] = [];
  const made = new Set<string>();
  for (const d of devices) {
    const rel = d.target.replace(/^\/dev\//, "");
    const top = rel.split("/")[0];
    if (["fd", "stdin", "stdout", "stderr", "ptmx", "pts", "shm", "mqueue"].includes(top)) continue;
    if (rel === "" || rel.split("/").some((c) => c === ".." || c === "." || c === "")) continue;
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (made.has(dir)) continue;
      made.add(dir);
      ops.push(op(NR.mkdirat, `mkdir ${dev}/${dir}`, [AT_FDCWD, str(`${dev}/${dir}`), 0o755]));
    }
    if (!STANDARD_DEV.has(rel) && !made.has(rel)) {
      made.add(rel);
      ops.push(
        op(NR.mknodat, `create ${dev}/${rel}`, [
          AT_FDCWD,
          str(`${dev}/${rel}`),
          S_IFREG | 0o666,
          0,
        ]),
      );
    }
    ops.push(mountOp(d.source, `${dev}/${rel}`, "", MS.BIND));
  }
  return ops;
}

/** One rlimit to set in the container. */
export interface RlimitSetting {
  readonly name: string;
  readonly resource: number;
  readonly limit: Rlimit;
}

function parseLimitValue(v: string, spec: string): bigint {
  if (v === "-1" || v === "unlimited") return RLIM_INFINITY;
  if (!/^[0-9]+$/.test(v)) throw new UsageError(`invalid --ulimit ${spec}`);
  return BigInt(v);
}

/** `--ulimit nofile=1024[:2048]`. */
export function parseUlimit(spec: string): RlimitSetting {
  const m = /^([a-z]+)=([^:]+)(?::(.+))?$/.exec(spec.trim());
  if (!m) throw new UsageError(`invalid --ulimit ${spec}: expected NAME=SOFT[:HARD]`);
  const resource = RLIMIT[m[1]];
  if (resource === undefined) throw new UsageError(`unknown --ulimit type ${m[1]}`);
  const soft = parseLimitValue(m[2], spec);
  const hard = m[3] === undefined ? soft : parseLimitValue(m[3], spec);
  if (soft > hard) throw new UsageError(`--ulimit ${spec}: soft limit above the hard limit`);
  return { name: m[1], resource, limit: { soft, hard } };
}

/** docker's RLIMIT_NOFILE (1048576), clamped to what this process may grant. */
export function defaultRlimits(): RlimitSetting[] {
  const want = 1048576n;
  let hard = want;
  try {
    const own = getRlimit(RLIMIT.nofile).hard;
    if (own < hard) hard = own;
  } catch { /* keep docker's value */ }
  return [{ name: "nofile", resource: RLIMIT.nofile, limit: { soft: hard, hard } }];
}

/** The defaults overridden by `--ulimit` values (later flags win per resource). */
export function mergeRlimits(specs: readonly string[]): RlimitSetting[] {
  const byRes = new Map<number, RlimitSetting>();
  for (const d of defaultRlimits()) byRes.set(d.resource, d);
  for (const s of specs) {
    const u = parseUlimit(s);
    byRes.set(u.resource, u);
  }
  return [...byRes.values()];
}

/** prlimit64(0, resource, &limit, NULL) for each setting. */
export function rlimitOps(limits: readonly RlimitSetting[]): Op[] {
  return limits.map((l) =>
    op(NR.prlimit64, `set rlimit ${l.name} ${l.limit.soft}:${l.limit.hard}`, [
      0,
      l.resource,
      bytes(rlimitBytes(l.limit)),
      0,
    ])
  );
}

const PR_SET_NO_NEW_PRIVS = 38;
const SECCOMP_SET_MODE_FILTER = 1;

/** prctl(PR_SET_NO_NEW_PRIVS, 1). */
export function noNewPrivsOps(): Op[] {
  return [op(NR.prctl, "set no_new_privs", [PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0])];
}

/** A compiled filter in memory the child inherits (see ffi/security.ts NativeBuffer). */
export interface InstalledFilter {
  /** Address of the `struct sock_filter` array. */
  readonly address: bigint;
  /** Number of instructions. */
  readonly length: number;
}

/** seccomp(SECCOMP_SET_MODE_FILTER, 0, &fprog) with fprog pointing at the inherited filter. */
export function seccompOps(filter: InstalledFilter): Op[] {
  const fprog = new Uint8Array(16); // struct sock_fprog { u16 len; (pad); sock_filter *filter }
  const view = new DataView(fprog.buffer);
  view.setUint16(0, filter.length, true);
  view.setBigUint64(8, filter.address, true);
  return [op(NR.seccomp, "install the seccomp filter", [SECCOMP_SET_MODE_FILTER, 0, bytes(fprog)])];
}

/** Everything security adds to the child's program, decided by the parent. */
export interface SecurityPlan {
  /** Masked paths (none for --privileged). */
  readonly masked: readonly MaskedPath[];
  /** Read-only paths (none for --privileged). */
  readonly readonly: readonly string[];
  /** /sys mounted read-write (--privileged). */
  readonly sysWritable: boolean;
  /** Devices to bind into the container's /dev. */
  readonly devices: readonly DeviceRequest[];
  readonly rlimits: readonly RlimitSetting[];
  readonly noNewPrivileges: boolean;
  /** The filter, or undefined for unconfined. */
  readonly seccomp?: InstalledFilter;
  /**
   * Install the filter after capabilities are set (needs no_new_privs or CAP_SYS_ADMIN kept);
   * otherwise it goes in before the identity change, while CAP_SYS_ADMIN is still held.
   */
  readonly seccompLate: boolean;
}

/** Confinement options of one container (docker's defaults when fields are absent). */
export interface SecurityOptions {
  /** All capabilities and devices, no masks, no seccomp, writable /sys and /proc/sys. */
  readonly privileged?: boolean;
  readonly noNewPrivileges?: boolean;
  /** A profile, "unconfined", or docker's default profile when absent. */
  readonly seccomp?: SeccompProfile | "unconfined";
  /** `--device` requests. */
  readonly devices?: readonly DeviceRequest[];
  /** `--ulimit` values (NAME=SOFT[:HARD]). */
  readonly ulimits?: readonly string[];
}

/** A security plan with the native memory it points into. */
export interface PreparedSecurity {
  readonly plan: SecurityPlan;
  /** Device cgroup rules, in order. */
  readonly deviceRules: { readonly allow: boolean; readonly line: string }[];
  /** Frees the filter memory (after clone: the child has its copy). */
  free(): void;
}

/** Decides masks, devices, rlimits and the seccomp filter for a container keeping `caps`. */
export function prepareSecurity(
  opts: SecurityOptions,
  caps: readonly number[],
  filterCacheDir?: string,
): PreparedSecurity {
  const privileged = opts.privileged ?? false;
  const devices = [...(privileged ? allHostDevices() : []), ...(opts.devices ?? [])];
  const deviceRules = privileged ? [{ allow: true, line: "a" }] : [
    ...DEFAULT_DEVICE_RULES.map((r) => ({ allow: r.allow, line: deviceRuleLine(r) })),
    ...(opts.devices ?? []).map((d) => {
      const h = hostDevice(d.source);
      return { allow: true, line: `${h.type} ${h.major}:${h.minor} ${d.permissions}` };
    }),
  ];
  const rlimits = mergeRlimits(opts.ulimits ?? []);
  let buffer: NativeBuffer | undefined;
  const profile = opts.seccomp;
  if (!privileged && profile !== "unconfined") {
    const capabilities = capabilityNames(caps);
    const kernel = Deno.osRelease();
    const compile = () =>
      encodeFilter(compileProfile(profile ?? DEFAULT_PROFILE, { capabilities, kernel }));
    buffer = new NativeBuffer(
      profile === undefined && filterCacheDir !== undefined
        ? cachedDefaultFilter(filterCacheDir, capabilities, kernel, compile)
        : compile(),
    );
  }
  const noNewPrivileges = opts.noNewPrivileges ?? false;
  return {
    plan: {
      masked: privileged ? [] : existingMasks(),
      readonly: privileged ? [] : existingReadonly(),
      sysWritable: privileged,
      devices,
      rlimits,
      noNewPrivileges,
      seccomp: buffer ? { address: buffer.address, length: buffer.bytes.length / 8 } : undefined,
      seccompLate: noNewPrivileges || caps.includes(CAPABILITIES.SYS_ADMIN),
    },
    deviceRules,
    free: () => buffer?.free(),
  };
}

/** A working directory or mount target that would leave the container's root. */
export class OutsideRootError extends UsageError {
  constructor(readonly path: string, what: string, where: string) {
    super(`${what} ${path} is outside the container's root filesystem (inside ${where})`);
    this.name = "OutsideRootError";
  }
}

/**
 * Refuses a working directory or mount target that resolves (in the rootfs, symlinks followed
 * inside it) into /proc or /sys, or below /dev: their magic links (`/proc/self/fd/N`,
 * `/dev/fd`) lead to whatever the runtime has open, the CVE-2024-21626 pattern.
 */
export function checkInsideRoot(
  resolve: (path: string) => string,
  path: string,
  what: string,
): void {
  const resolved = resolve(path);
  for (const special of ["/proc", "/sys", "/dev"]) {
    const base = resolve(special);
    const below = resolved.startsWith(`${base}/`);
    if (below || (resolved === base && special !== "/dev")) {
      throw new OutsideRootError(path, what, special);
    }
  }
}
