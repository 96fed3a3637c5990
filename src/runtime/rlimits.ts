/**
 * Resource limits of a container: `--ulimit` values, docker's default RLIMIT_NOFILE clamped to
 * what this process may grant, and the child's prlimit64 ops.
 *
 * @module
 */
import { bytes, type Op } from "../../ffi/clone.ts";
import { getRlimit, RLIM_INFINITY, RLIMIT, type Rlimit, rlimitBytes } from "../../ffi/security.ts";
import { UsageError } from "../errors.ts";
import { SYSCALLS_X86_64 as NR } from "./seccomp_syscalls.ts";
import { op } from "./security_ops.ts";

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
