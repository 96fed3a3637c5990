/**
 * Confinement stated explicitly, as an OCI spec states it: the masked and read-only paths, the
 * device nodes and cgroup rules, the rlimits, no_new_privs and a seccomp profile already
 * resolved for the container. Nothing is implied by a `privileged` switch or filled in from
 * docker's defaults here: the engine wrote those into the spec (src/container/spec.ts).
 *
 * @module
 */
import { NativeBuffer } from "../../ffi/security.ts";
import { compileProfile, encodeFilter, type SeccompProfile } from "./seccomp.ts";
import { cachedFilter } from "./seccomp_cache.ts";
import {
  CAPABILITIES,
  type DeviceRequest,
  existingMasks,
  existingReadonly,
  type PreparedSecurity,
  type RlimitSetting,
} from "./security.ts";

/** A container's confinement, every part given. */
export interface SecuritySettings {
  readonly kind: "explicit";
  /** Paths to hide (those missing on this kernel are skipped). */
  readonly masked: readonly string[];
  /** Paths to make read-only (those missing on this kernel are skipped). */
  readonly readonly: readonly string[];
  /** /sys mounted read-write. */
  readonly sysWritable: boolean;
  /** Host device nodes bound into the container's /dev. */
  readonly devices: readonly DeviceRequest[];
  /** Device cgroup rules in order (`a`, `c 1:3 rwm`...). */
  readonly deviceRules: readonly { readonly allow: boolean; readonly line: string }[];
  readonly rlimits: readonly RlimitSetting[];
  readonly noNewPrivileges: boolean;
  /** The filter's profile, rules already chosen for the container; none: unconfined. */
  readonly seccomp?: SeccompProfile;
}

/** Masks, devices, rlimits and the compiled seccomp filter for a container keeping `caps`. */
export function prepareSettings(
  s: SecuritySettings,
  caps: readonly number[],
  filterCacheDir?: string,
): PreparedSecurity {
  let buffer: NativeBuffer | undefined;
  const profile = s.seccomp;
  if (profile) {
    // The profile is resolved: the kept capabilities and the kernel no longer choose rules.
    const compile = () =>
      encodeFilter(compileProfile(profile, { capabilities: [], kernel: Deno.osRelease() }));
    buffer = new NativeBuffer(
      filterCacheDir !== undefined
        ? cachedFilter(filterCacheDir, "spec", JSON.stringify(profile), compile)
        : compile(),
    );
  }
  return {
    plan: {
      masked: existingMasks(s.masked),
      readonly: existingReadonly(s.readonly),
      sysWritable: s.sysWritable,
      devices: s.devices,
      rlimits: s.rlimits,
      noNewPrivileges: s.noNewPrivileges,
      seccomp: buffer ? { address: buffer.address, length: buffer.bytes.length / 8 } : undefined,
      seccompLate: s.noNewPrivileges || caps.includes(CAPABILITIES.SYS_ADMIN),
    },
    deviceRules: [...s.deviceRules],
    free: () => buffer?.free(),
  };
}
