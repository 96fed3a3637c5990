/**
 * OCI hooks at their lifecycle points, as runc runs them (runtime-spec "Lifecycle"):
 *
 * - prestart (deprecated) and createRuntime: in the runtime's namespaces, once the container's
 *   namespaces and mounts exist and before pivot_root; state "creating".
 * - createContainer: in the container's namespaces (its mount namespace, before pivot_root, so
 *   the path resolves in the host's tree as that namespace sees it), as root of the container;
 *   state "creating".
 * - startContainer: inside the container (its root, its user, capabilities and seccomp), when
 *   `start` is called and before the process's command is executed; state "created".
 * - poststart: in the runtime's namespaces after the command started; a failure only warns.
 * - poststop: in the runtime's namespaces at `delete`; a failure only warns.
 *
 * Each gets the state JSON on stdin, its own `env` only, its `args` as argv (argv[0]
 * included), and its `timeout`. A failure reads as runc's: `error running createRuntime hook
 * #0: error running hook: exit status 1, stdout: ..., stderr: ...`.
 *
 * @module
 */
import type { Hook, Spec } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import { type HookPlace, runHookProcess } from "../runtime/oci_hook_exec.ts";
import { capabilitySets, rlimitSettings, rootPath } from "../runtime/oci_config.ts";
import type { SeccompProfile } from "../runtime/seccomp.ts";

/** A hook that failed. */
export class HookError extends TsboxError {
  constructor(point: string, index: number, detail: string) {
    super(`error running ${point} hook #${index}: ${detail}`);
    this.name = "HookError";
  }
}

/** Runs `hooks` in order at `place` with `state` on stdin; throws {@link HookError}. */
export async function runHooks(
  point: string,
  hooks: readonly Hook[] | undefined,
  state: Record<string, unknown>,
  place: HookPlace,
): Promise<void> {
  const text = JSON.stringify(state);
  for (const [i, h] of (hooks ?? []).entries()) {
    if (!h.path?.startsWith("/")) {
      throw new HookError(point, i, `hook path ${JSON.stringify(h.path)} is not absolute`);
    }
    let out;
    try {
      out = await runHookProcess(h, text, place);
    } catch (err) {
      throw new HookError(point, i, `error running hook: ${(err as Error).message}`);
    }
    if (out.timedOut) {
      throw new HookError(point, i, `hook ran past specified timeout of ${h.timeout!.toFixed(1)}s`);
    }
    if (out.exitCode !== 0) {
      const how = out.signal !== undefined ? `signal ${out.signal}` : `exit status ${out.exitCode}`;
      throw new HookError(
        point,
        i,
        `error running hook: ${how}, stdout: ${out.stdout.trim()}, stderr: ${out.stderr.trim()}`,
      );
    }
  }
}

function lastCap(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/kernel/cap_last_cap").trim());
  } catch {
    return 40;
  }
}

/** Whether the user namespace of `pid` denies setgroups (a rootless self mapping). */
function setgroupsDenied(pid: number): boolean {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/setgroups`).trim() === "deny";
  } catch {
    return false;
  }
}

/** The runtime's namespaces, in the bundle (runc's working directory). */
export function runtimePlace(bundle: string): HookPlace {
  return { cwd: bundle };
}

/** The effective capabilities of `pid` (/proc/PID/status). */
function effectiveCaps(pid: number): number[] {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
  const mask = BigInt(`0x${hex ?? "0"}`);
  return Array.from({ length: 64 }, (_, c) => c).filter((c) => (mask >> BigInt(c)) & 1n);
}

/**
 * createContainer's place: the container's namespaces before pivot_root, as its root with
 * the capabilities its process holds then (all a runtime has: runc's init is in that state),
 * in the rootfs directory (runc chdirs there).
 */
export function createContainerPlace(pid: number, bundle: string, spec: Spec): HookPlace {
  return {
    container: {
      pid,
      uid: 0,
      gid: 0,
      groups: [],
      setgroupsDenied: setgroupsDenied(pid),
      capabilities: effectiveCaps(pid),
    },
    cwd: rootPath(bundle, spec),
  };
}

/**
 * startContainer's place: inside the container as its process is about to be: its root and
 * cwd, user, bounding capabilities (what a root process keeps over execve), rlimits,
 * no_new_privs and seccomp filter.
 */
export function startContainerPlace(pid: number, spec: Spec): HookPlace {
  const p = spec.process;
  return {
    container: {
      pid,
      uid: p.user.uid,
      gid: p.user.gid,
      groups: [...(p.user.additionalGids ?? [])],
      setgroupsDenied: setgroupsDenied(pid),
      capabilities: capabilitySets(p, lastCap()).bounding,
      seccomp: spec.linux.seccomp as unknown as SeccompProfile | undefined,
      noNewPrivileges: p.noNewPrivileges ?? false,
      rlimits: rlimitSettings(p),
    },
    cwd: p.cwd,
  };
}
