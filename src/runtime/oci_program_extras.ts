/**
 * What `tsbox runc` adds to the OCI program of oci_program.ts, kept apart so that the
 * program's builder stays one piece shared with tsbox's own start: seccomp filter flags,
 * a rootless runtime's setgroups and dumpable rules, and a time namespace.
 *
 * - Rootless, the runtime writes the process's id maps itself or through newuidmap; those
 *   /proc files are root's while the process is non-dumpable, so it stays dumpable until
 *   released ("sync", as runc's nsexec does for its usermap step), or until execve ("exec")
 *   when it is alone in new user and PID namespaces: no container process can see it then
 *   and the user's own processes may, which lets createContainer and startContainer hooks
 *   enter it (runc runs those from its init instead).
 * - A time namespace is unshared right after the namespaces are set up (the process has every
 *   capability of its user namespace then); the process enters it at execve (oci_time.ts).
 *
 * @module
 */
import type { Op } from "../../ffi/clone.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import type { Spec } from "../oci/spec.ts";
import type { NamespacePlan } from "./oci_config.ts";
import type { OciChildPlan } from "./oci_program.ts";
import type { OciRootless } from "./oci_rootless.ts";
import { withSeccompFlags } from "./oci_seccomp_flags.ts";
import { timeOffsetsOf } from "./oci_time.ts";
import type { InstalledFilter } from "./security.ts";

const CLONE_NEWTIME = 0x80;
const NON_DUMPABLE = "make the process non-dumpable";
const RELEASED = "close the sync pipe";

/**
 * Plan fields from the config and the runtime (checked before the clone: a bad flag or offset
 * fails create before anything exists).
 */
export function ociPlanExtras(
  spec: Spec,
  seccomp: InstalledFilter | undefined,
  rootless: OciRootless | undefined,
): Partial<OciChildPlan> {
  timeOffsetsOf(spec);
  return {
    seccomp: withSeccompFlags(seccomp, spec.linux.seccomp?.flags),
    ...(rootless ? { setgroupsDenied: rootless.setgroupsDenied } : {}),
    // Root of a user namespace may not mknod: the host's nodes are bound, as runc does.
    ...(rootless?.nsRoot ? { bindDevices: true } : {}),
  };
}

/** How long a rootless process stays dumpable (see the module doc); none as root. */
export function dumpableUntil(
  ns: NamespacePlan,
  rootless: OciRootless | undefined,
): "sync" | "exec" | undefined {
  if (!rootless || rootless.nsRoot || !ns.newUser) return undefined;
  return ns.has("pid") && ns.pidPath === undefined ? "exec" : "sync";
}

/** Edits the built program in place: the dumpable rule and the time namespace. */
export function adjustOciProgram(
  ops: Op[],
  o: { readonly dumpableUntil?: "sync" | "exec"; readonly newTime?: boolean },
): void {
  if (o.dumpableUntil) {
    const at = ops.findIndex((op) => op.what === NON_DUMPABLE);
    if (at < 0) throw new Error("OCI program without its non-dumpable op");
    const [nonDumpable] = ops.splice(at, 1);
    if (o.dumpableUntil === "sync") {
      const released = ops.findIndex((op) => op.what === RELEASED);
      if (released < 0) throw new Error("OCI program without its release");
      ops.splice(released + 1, 0, nonDumpable);
    }
  }
  if (o.newTime) {
    // After the namespaces: becoming root in a new user namespace, joins, the cgroup unshare.
    let at = ops.findIndex((op) => op.what === "umask 0 for the setup");
    if (at < 0) throw new Error("OCI program without its setup umask");
    at++;
    while (
      at < ops.length &&
      /^(become [ug]id 0 |join the |close the \w+ namespace fd|unshare the )/.test(ops[at].what)
    ) at++;
    ops.splice(at, 0, {
      nr: SYS.unshare,
      args: [CLONE_NEWTIME],
      flags: 0,
      what: "unshare the time namespace",
    });
  }
}
