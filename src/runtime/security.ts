/**
 * docker-grade confinement decided in the parent and compiled into the child's program: which
 * masks, devices, rlimits and seccomp filter a container gets (prepareSecurity), and the
 * no_new_privs and seccomp install ops. Each part lives in its own file (masks.ts, devices.ts,
 * rlimits.ts, inside_root.ts), re-exported here for the code that imports them from this
 * module. The flags that ask for them are parsed in src/container/security_flags.ts.
 *
 * @module
 */
import { bytes, type Op } from "../../ffi/clone.ts";
import { NativeBuffer } from "../../ffi/security.ts";
import { CAP } from "./capabilities.ts";
import { compileProfile, encodeFilter, type SeccompProfile } from "./seccomp.ts";
import { DEFAULT_PROFILE } from "./seccomp_profile.ts";
import { cachedDefaultFilter } from "./seccomp_cache.ts";
import { SYSCALLS_X86_64 as NR } from "./seccomp_syscalls.ts";
import { op } from "./security_ops.ts";
import { existingMasks, existingReadonly, type MaskedPath } from "./masks.ts";
import {
  allHostDevices,
  DEFAULT_DEVICE_RULES,
  type DeviceRequest,
  deviceRuleLine,
  hostDevice,
} from "./devices.ts";
import { mergeRlimits, type RlimitSetting } from "./rlimits.ts";

export {
  existingMasks,
  existingReadonly,
  MASKED_PATHS,
  type MaskedPath,
  maskOps,
  READONLY_PATHS,
} from "./masks.ts";
export {
  allHostDevices,
  DEFAULT_DEVICE_RULES,
  type DeviceRequest,
  type DeviceRule,
  deviceRuleLine,
  type HostDevice,
  hostDevice,
} from "./devices.ts";
export {
  defaultRlimits,
  mergeRlimits,
  parseUlimit,
  rlimitOps,
  type RlimitSetting,
} from "./rlimits.ts";
export { checkInsideRoot, OutsideRootError } from "./inside_root.ts";

/** Every capability by name, without the CAP_ prefix. */
export const CAPABILITIES: Readonly<Record<string, number>> = CAP;

/** `CAP_*` names of `caps` (numbers the table does not know are left out). */
export function capabilityNames(caps: readonly number[]): `CAP_${string}`[] {
  const byNumber = new Map(
    Object.entries(CAPABILITIES).map(([k, v]): [number, `CAP_${string}`] => [v, `CAP_${k}`]),
  );
  return caps.flatMap((c) => byNumber.has(c) ? [byNumber.get(c)!] : []);
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
  /** SECCOMP_FILTER_FLAG_* to install it with (oci_seccomp_flags.ts); 0 when absent. */
  readonly flags?: number;
}

/** seccomp(SECCOMP_SET_MODE_FILTER, flags, &fprog) with fprog pointing at the inherited filter. */
export function seccompOps(filter: InstalledFilter): Op[] {
  const fprog = new Uint8Array(16); // struct sock_fprog { u16 len; (pad); sock_filter *filter }
  const view = new DataView(fprog.buffer);
  view.setUint16(0, filter.length, true);
  view.setBigUint64(8, filter.address, true);
  return [
    op(NR.seccomp, "install the seccomp filter", [
      SECCOMP_SET_MODE_FILTER,
      filter.flags ?? 0,
      bytes(fprog),
    ]),
  ];
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
