/**
 * The parent's side of an OCI config.json before the clone: its namespaces, capability sets,
 * mounts resolved in the rootfs, the working directory made, HOME filled in, and the
 * confinement compiled (rlimits, masks, seccomp). Both starts use it: `tsbox runc create`
 * (oci_start.ts) and tsbox's own (container.ts), so one reading of the spec decides what a
 * container's first process does; each adds the fds of its own handshake.
 *
 * @module
 */
import type { Spec } from "../oci/spec.ts";
import { execCandidates, getEnv } from "./config.ts";
import { cgroupPathFor } from "./oci_cgroup.ts";
import {
  type CapabilitySets,
  capabilitySets,
  type NamespacePlan,
  namespacePlan,
  rlimitSettings,
} from "./oci_config.ts";
import { type MountPlan, planMounts } from "./oci_mounts.ts";
import { rootPropagation } from "./oci_mount_options.ts";
import type { OciChildPlan } from "./oci_program.ts";
import { resolveInRoot } from "./rootfs.ts";
import {
  CAPABILITIES,
  existingMasks,
  existingReadonly,
  type PreparedSecurity,
} from "./security.ts";
import { prepareSettings } from "./security_settings.ts";
import type { SeccompProfile } from "./seccomp.ts";
import { parsePasswd } from "./user.ts";

/** The plan fields the parent decides before it opens the handshake's fds. */
export type OciPlanBase = Omit<
  OciChildPlan,
  | "joins"
  | "terminal"
  | "syncFd"
  | "closeFds"
  | "statusFd"
  | "hookSyncFd"
  | "fifoDirFd"
  | "preserveFds"
  | "noPivot"
>;

/** A spec read for a start. */
export interface OciPrepared {
  readonly base: OciPlanBase;
  readonly ns: NamespacePlan;
  readonly caps: CapabilitySets;
  readonly cgroupPath: string;
  /** The compiled seccomp filter and the rest; free it once the child is cloned. */
  readonly security: PreparedSecurity;
}

/** Options of {@link prepareOci}. */
export interface OciPrepareOptions {
  /** The container id (the cgroup path's default). */
  readonly id: string;
  /** Highest capability number of this kernel. */
  readonly lastCap: number;
  /** Warnings (capabilities this kernel does not know). */
  readonly warn: (message: string) => void;
  /**
   * Where this process sees the rootfs when it is not `rootfs` (rootless: through the
   * holder of the overlay, rootless.ts): paths are resolved and created there and handed to
   * the child as the paths below `rootfs` it will see.
   */
  readonly view?: string;
  /** A directory where compiled seccomp filters are cached between starts. */
  readonly filterCacheDir?: string;
}

/** Reads `spec` for a start of its first process in `rootfs`; see the module doc. */
export function prepareOci(spec: Spec, rootfs: string, o: OciPrepareOptions): OciPrepared {
  const seen = o.view ?? rootfs;
  const ns = namespacePlan(spec);
  const p = spec.process;
  const caps = capabilitySets(p, o.lastCap, o.warn);
  const cgroupPath = cgroupPathFor(spec.linux.cgroupsPath, o.id);
  const mounts = rebase(
    planMounts(seen, spec.mounts ?? [], spec.linux.devices ?? [], cgroupPath),
    seen,
    rootfs,
  );
  // cwd: created in the image when missing (runc does the same), resolved inside it.
  if (
    !(spec.mounts ?? []).some((m) =>
      p.cwd === m.destination || p.cwd.startsWith(`${m.destination}/`)
    )
  ) {
    const at = resolveInRoot(seen, p.cwd);
    try {
      Deno.mkdirSync(at, { recursive: true, mode: 0o755 });
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
  }
  const env = [...(p.env ?? [])];
  if (getEnv(env, "HOME") === undefined) {
    const entry = parsePasswd(readIfExists(resolveInRoot(seen, "/etc/passwd")))
      .find((e) => e.uid === p.user.uid);
    env.push(`HOME=${entry?.home ?? "/"}`);
  }
  const security = prepareSettings(
    {
      kind: "explicit",
      masked: spec.linux.maskedPaths ?? [],
      readonly: spec.linux.readonlyPaths ?? [],
      sysWritable: false,
      devices: [],
      deviceRules: [],
      rlimits: rlimitSettings(p),
      noNewPrivileges: p.noNewPrivileges ?? false,
      seccomp: spec.linux.seccomp as unknown as SeccompProfile | undefined,
    },
    caps.effective.includes(CAPABILITIES.SYS_ADMIN) ? [CAPABILITIES.SYS_ADMIN] : [],
    o.filterCacheDir,
  );
  return {
    ns,
    caps,
    cgroupPath,
    security,
    base: {
      rootfs,
      readonlyRoot: spec.root.readonly ?? false,
      rootPropagation: rootPropagation(spec.linux.rootfsPropagation),
      mounts,
      newUser: ns.newUser,
      newCgroup: ns.newCgroup,
      newNetwork: ns.newNetwork,
      newUts: ns.has("uts") && !ns.joins.some((j) => j.type === "uts"),
      hostname: spec.hostname,
      domainname: spec.domainname,
      sysctls: Object.entries(spec.linux.sysctl ?? {}),
      masked: existingMasks(spec.linux.maskedPaths ?? []),
      readonlyPaths: existingReadonly(spec.linux.readonlyPaths ?? []),
      cwd: p.cwd,
      rlimits: security.plan.rlimits,
      seccomp: security.plan.seccomp,
      seccompLate: security.plan.seccompLate,
      noNewPrivileges: p.noNewPrivileges ?? false,
      uid: p.user.uid,
      gid: p.user.gid,
      groups: [...(p.user.additionalGids ?? [])],
      umask: p.user.umask ?? 0o022,
      caps,
      lastCap: o.lastCap,
      argv: p.args,
      env,
      candidates: execCandidates(p.args[0], env),
    },
  };
}

function readIfExists(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** `plan` with its paths below `from` (where this process resolved them) moved below `to`. */
function rebase(plan: MountPlan, from: string, to: string): MountPlan {
  if (from === to) return plan;
  const move = (p: string) =>
    p === from || p.startsWith(`${from}/`) ? to + p.slice(from.length) : p;
  return {
    mounts: plan.mounts.map((m) => ({ ...m, target: move(m.target), create: m.create.map(move) })),
    freshDev: plan.freshDev === undefined ? undefined : move(plan.freshDev),
    devpts: plan.devpts,
    devices: plan.devices.map((d) => ({
      ...d,
      target: move(d.target),
      create: d.create.map(move),
    })),
  };
}
