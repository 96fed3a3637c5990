/**
 * `run`'s security flags as docker spells them, parsed into typed options: capabilities from
 * `--cap-add/--cap-drop/--privileged`, `--security-opt` values, `--device` and `--ulimit`
 * checks, and the `--userns-remap` mapping. The runtime (src/runtime/security.ts) only sees the
 * parsed values.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import {
  CAPABILITIES,
  type DeviceRequest,
  hostDevice,
  parseUlimit,
  type SecurityOptions,
} from "../runtime/security.ts";
import { parseProfile } from "../runtime/seccomp.ts";
import { type IdMapping, remapMapping } from "../runtime/userns.ts";

/** `CAP_SYS_ADMIN`, `sys_admin`, `SYS_ADMIN` -> 21. */
export function parseCapability(name: string): number {
  const key = name.trim().toUpperCase().replace(/^CAP_/, "");
  const n = CAPABILITIES[key];
  if (n === undefined) throw new UsageError(`unknown capability: "${name}"`);
  return n;
}

/** What the capability flags ask for. */
export interface CapabilityFlags {
  readonly capAdd?: readonly string[];
  readonly capDrop?: readonly string[];
  readonly privileged?: boolean;
}

/**
 * The capability set docker computes: the defaults, minus drops, plus adds (`ALL` in either
 * list; a drop of ALL keeps only what is added), or every capability for `--privileged`.
 */
export function resolveCapabilities(
  flags: CapabilityFlags,
  defaults: readonly number[],
  available: readonly number[],
): number[] {
  const all = [...available];
  const lastCap = Math.max(...available);
  if (flags.privileged) return all;
  const isAll = (s: string) => s.trim().toUpperCase() === "ALL";
  const adds = flags.capAdd ?? [], drops = flags.capDrop ?? [];
  let set = new Set(drops.some(isAll) ? [] : defaults);
  for (const d of drops) if (!isAll(d)) set.delete(parseCapability(d));
  if (adds.some(isAll)) set = new Set(all);
  for (const a of adds) {
    if (isAll(a)) continue;
    const n = parseCapability(a);
    if (n > lastCap || !available.includes(n)) {
      throw new UsageError(`capability ${a} is not available to tsbox on this host`);
    }
    set.add(n);
  }
  return [...set].sort((a, b) => a - b);
}

/** What `--security-opt` values ask for. */
export interface SecurityOpts {
  readonly noNewPrivileges: boolean;
  /** "default", "unconfined", or a profile file path. */
  readonly seccomp: string;
}

/** Parses `--security-opt` values (`no-new-privileges[:true|false]`, `seccomp=...`). */
export function parseSecurityOpts(values: readonly string[]): SecurityOpts {
  let noNewPrivileges = false;
  let seccomp = "default";
  for (const v of values) {
    const m = /^([a-z-]+)(?:[=:](.*))?$/.exec(v.trim());
    const key = m?.[1], value = m?.[2];
    if (key === "no-new-privileges") {
      if (value !== undefined && !["true", "false"].includes(value)) {
        throw new UsageError(`invalid --security-opt ${v}: expected true or false`);
      }
      noNewPrivileges = value !== "false";
    } else if (key === "seccomp" && value) {
      seccomp = value;
    } else {
      throw new UsageError(
        `unsupported --security-opt ${v} (supported: no-new-privileges, seccomp=unconfined|FILE)`,
      );
    }
  }
  return { noNewPrivileges, seccomp };
}

/** `--device /dev/X[:/dev/Y][:rwm]`. */
export function parseDevice(spec: string): DeviceRequest {
  const parts = spec.split(":");
  const isPerm = (s: string) => /^[rwm]{1,3}$/.test(s);
  let permissions = "rwm";
  if (parts.length > 1 && isPerm(parts[parts.length - 1])) permissions = parts.pop()!;
  if (parts.length > 2 || !parts[0].startsWith("/")) {
    throw new UsageError(`invalid --device ${spec}: expected /dev/X[:/dev/Y][:rwm]`);
  }
  const target = parts[1] ?? parts[0];
  if (!target.startsWith("/dev/") || target.split("/").includes("..")) {
    throw new UsageError(`invalid --device ${spec}: the container path must be under /dev`);
  }
  return { source: parts[0], target, permissions };
}

/** `run`'s security flags as the CLI hands them over. */
export interface SecurityFlags {
  capAdd?: string[];
  capDrop?: string[];
  privileged?: boolean;
  securityOpt?: string[];
  device?: string[];
  ulimit?: string[];
  /** `--userns=host` opts out of the daemon-wide `--userns-remap`. */
  userns?: string;
}

/** What the security flags decide (written into the container's spec, spec.ts). */
export interface SecuritySpec {
  readonly capabilities: number[];
  readonly security: SecurityOptions;
  readonly userns?: IdMapping;
}

function lastCapability(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/kernel/cap_last_cap").trim());
  } catch {
    return 40;
  }
}

/**
 * Capabilities this process can hand on (its bounding set): `--privileged` and `ALL` mean these,
 * as with docker, since capset cannot grant more (our machines lack CAP_SYS_RESOURCE).
 */
export function boundingSet(status?: string): number[] {
  const text = status ?? Deno.readTextFileSync("/proc/self/status");
  const hex = /^CapBnd:\s*([0-9a-f]+)/m.exec(text)?.[1];
  if (!hex) return Array.from({ length: lastCapability() + 1 }, (_, i) => i);
  const mask = BigInt(`0x${hex}`);
  const out: number[] = [];
  for (let c = 0; c < 64; c++) if ((mask >> BigInt(c)) & 1n) out.push(c);
  return out;
}

/**
 * Turns `run`'s flags (and the global `--userns-remap`) into spec fields: capabilities on top of
 * `defaults`, security options (a `seccomp=FILE` profile is read and checked here), the mapping.
 */
export async function securitySpec(
  flags: SecurityFlags,
  defaults: readonly number[],
  usernsRemap?: string,
): Promise<SecuritySpec> {
  const opts = parseSecurityOpts(flags.securityOpt ?? []);
  let seccomp: SecurityOptions["seccomp"];
  if (opts.seccomp === "unconfined") seccomp = "unconfined";
  else if (opts.seccomp !== "default") {
    let text: string;
    try {
      text = await Deno.readTextFile(opts.seccomp);
    } catch (err) {
      throw new UsageError(`seccomp profile ${opts.seccomp}: ${(err as Error).message}`);
    }
    seccomp = parseProfile(text);
  }
  if (flags.userns !== undefined && !["host", ""].includes(flags.userns)) {
    throw new UsageError(`--userns ${flags.userns}: only "host" is supported`);
  }
  const devices = (flags.device ?? []).map(parseDevice);
  for (const d of devices) hostDevice(d.source);
  for (const u of flags.ulimit ?? []) parseUlimit(u);
  return {
    capabilities: resolveCapabilities(flags, defaults, boundingSet()),
    security: {
      privileged: flags.privileged ?? false,
      noNewPrivileges: opts.noNewPrivileges,
      seccomp,
      devices,
      ulimits: flags.ulimit ?? [],
    },
    userns: usernsRemap && flags.userns !== "host" ? remapMapping(usernsRemap) : undefined,
  };
}
