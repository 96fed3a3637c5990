/**
 * `exec`: a new process inside a running container, in all of its namespaces and cgroups, under
 * its root, confined as its PID 1 is: capabilities, seccomp filter, no_new_privs and rlimits as
 * configured at `run` (docker's exec takes them from the container's spec too).
 *
 * Route: setns into user and mount namespaces is impossible for a multi-threaded process such as
 * Deno, but the cloned stub child is single-threaded. The parent opens the namespace files of the
 * container's PID 1 (inherited by the clone), and the child's syscall program starts with
 * `setns(fd, type)` ops. A PID namespace applies only to children, so the child then joins it
 * (`pid_for_children`) and forks once more with a raw `clone` op: CLONE_PARENT makes the new
 * process tsbox's own child (tsbox waits for it and signals it), CLONE_PARENT_SETTID stores its
 * pid in a page shared with tsbox, and the op's EXIT_IF_NONZERO flag ends the intermediate
 * process. Joining the PID namespace there, after the user namespace, is what works without
 * privileges: tsbox's own threads may not enter a namespace owned by a child user namespace.
 *
 * Before any of that, the child makes itself non-dumpable: once cloned it is visible in the
 * container's /proc, and a dumpable tsbox process there would let a container process open
 * /proc/PID/exe (the tsbox binary on the host; the runc CVE-2019-5736 class). It also closes
 * every fd it does not need, so nothing of tsbox's is reachable through /proc/PID/fd either.
 *
 * @module
 */
import { CLONE, EXIT_IF_NONZERO, type Op, SIGCHLD, str } from "../../ffi/clone.ts";
import { NAMESPACE_TYPES, type NamespaceKind } from "../../ffi/namespace.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import type { WindowSize } from "../../ffi/terminal.ts";
import { TsboxError } from "../errors.ts";
import { execCandidates, getEnv } from "./config.ts";
import { type Host, linuxHost, type SharedPid } from "./host.ts";
import { launch } from "./launch.ts";
import type { CapabilitySets } from "./oci_config.ts";
import {
  capabilityOps,
  type ChildPlan,
  closeOtherFdsOps,
  dockerCapabilitySets,
  execOps,
  identityOps,
  signalOps,
  stdioOps,
  syncOps,
} from "./program.ts";
import {
  noNewPrivsOps,
  prepareSecurity,
  rlimitOps,
  type RlimitSetting,
  seccompOps,
  type SecurityOptions,
  type SecurityPlan,
} from "./security.ts";
import { terminalOps, type TerminalPlan } from "./tty.ts";
import { parsePasswd, resolveUser } from "./user.ts";

export { joinContainerCgroups } from "./cgroup_join.ts";

/** What to run in the container. */
export interface ExecSpec {
  readonly argv: readonly string[];
  /** The whole environment (image + container + `-e`); HOME is added from the user if unset. */
  readonly env: readonly string[];
  /** Working directory in the container. */
  readonly cwd: string;
  /**
   * `-u` (`uid[:gid]` or `name[:group]`, looked up in the container's /etc/passwd and
   * /etc/group), "" for root; or an OCI process's user, taken as it is (its groups exactly
   * `additionalGids`, as `tsbox runc create` sets them for the first process).
   */
  readonly user: string | ProcessUser;
  /** 0, 1, 2: "inherit" tsbox's own, "null" for /dev/null, or an fd of this process. */
  readonly stdio: readonly ("inherit" | "null" | number)[];
  /**
   * Allocate a pty in the container's devpts (`-t`) with this initial size (undefined fields:
   * no size yet). The master is {@link ExecProcess.terminal}.
   */
  readonly tty?: { readonly size?: WindowSize };
  /**
   * The capability sets; by default docker's from the container PID 1's bounding set (bounding,
   * effective and permitted alike: {@link dockerCapabilitySets}).
   */
  readonly capabilities?: CapabilitySets;
  /**
   * The container's confinement as given at `run` (seccomp, no_new_privs, rlimits); docker's
   * defaults (its seccomp profile, nofile) when absent, as for the container's PID 1.
   */
  readonly security?: SecurityOptions;
  /** SECCOMP_FILTER_FLAG_* to install the filter with (an OCI config's `seccomp.flags`). */
  readonly seccompFlags?: number;
  /**
   * Exactly these rlimits (an OCI process's), in place of {@link SecurityOptions.ulimits} and
   * docker's default RLIMIT_NOFILE.
   */
  readonly rlimits?: readonly RlimitSetting[];
}

/** An OCI process's user: ids as they are, no lookup. */
export interface ProcessUser {
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids?: readonly number[];
}

/** The identity `user` runs as, read from the container's passwd and group files. */
function identityOf(
  user: string | ProcessUser,
  passwd: string,
  group: string,
): { uid: number; gid: number; groups: readonly number[]; home: string } {
  if (typeof user === "string") return resolveUser(user, passwd, group);
  const entry = parsePasswd(passwd).find((e) => e.uid === user.uid);
  return {
    uid: user.uid,
    gid: user.gid,
    groups: [...(user.additionalGids ?? [])],
    home: entry?.home || "/",
  };
}

/** The container is not running (its PID 1 is gone). */
export class ContainerNotRunningError extends TsboxError {
  constructor(readonly initPid: number) {
    super(`container is not running (PID 1, host pid ${initPid}, is gone)`);
    this.name = "ContainerNotRunningError";
  }
}

/**
 * Namespace types in the order the child joins them: user first (it owns the others); time
 * where the kernel has time namespaces (an OCI container may have one of its own).
 */
const JOIN_ORDER: readonly NamespaceKind[] = [
  "user",
  "ipc",
  "uts",
  "net",
  "cgroup",
  "mnt",
  ...(hasTimeNamespaces() ? ["time" as const] : []),
];

function hasTimeNamespaces(): boolean {
  try {
    Deno.lstatSync("/proc/self/ns/time");
    return true;
  } catch {
    return false;
  }
}

/** Open handles on a running container's namespaces and root, from its PID 1. */
export interface ContainerHandles {
  readonly initPid: number;
  /** Namespaces that differ from tsbox's own, in join order. */
  readonly joins: readonly { readonly kind: NamespaceKind; readonly fd: number }[];
  /** The PID namespace, when it differs from tsbox's. */
  readonly pidNamespace?: number;
  /** O_PATH fd of PID 1's root directory. */
  readonly root: number;
  /** Closes every fd above (the clone has its own copies). */
  close(): void;
}

/**
 * Opens the namespaces and root of `initPid`, skipping namespaces tsbox already shares. The
 * namespaces are opened through `host`'s {@link Host.openNamespace} and closed with its closeFd.
 */
export function openContainer(initPid: number, host: Host = linuxHost): ContainerHandles {
  const fds: number[] = [];
  const close = () => {
    for (const fd of fds.splice(0)) host.closeFd(fd);
  };
  try {
    const joins: { kind: NamespaceKind; fd: number }[] = [];
    for (const kind of JOIN_ORDER) {
      if (host.namespaceId(initPid, kind) === host.namespaceId("self", kind)) continue;
      const fd = host.openNamespace(`/proc/${initPid}/ns/${kind}`);
      fds.push(fd);
      joins.push({ kind, fd });
    }
    let pidNamespace: number | undefined;
    if (host.namespaceId(initPid, "pid") !== host.namespaceId("self", "pid")) {
      pidNamespace = host.openNamespace(`/proc/${initPid}/ns/pid`);
      fds.push(pidNamespace);
    }
    const root = host.openRoot(initPid);
    fds.push(root);
    return { initPid, joins, pidNamespace, root, close };
  } catch (err) {
    close();
    if (err instanceof Deno.errors.NotFound || (err as { code?: string }).code === "ENOENT") {
      throw new ContainerNotRunningError(initPid);
    }
    throw err;
  }
}

/** Everything the exec child's program needs. */
export interface ExecPlan {
  readonly syncFd: number;
  /** Parent-side fds the child closes first. */
  readonly closeFds: readonly number[];
  /** Fds above 2 the child keeps until exec (status pipe, namespaces, root, stdio sources). */
  readonly keepFds: readonly number[];
  readonly joins: ContainerHandles["joins"];
  /**
   * The container's PID namespace when it is not tsbox's, and the shared word the pid of the
   * process forked into it is stored at (see {@link pidForkOps}).
   */
  readonly pidFork?: { readonly fd: number; readonly childPidAddress: bigint };
  readonly root: number;
  readonly cwd: string;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  /** setgroups is denied in the container's user namespace (a rootless self mapping): skipped. */
  readonly setgroupsDenied?: boolean;
  readonly caps: CapabilitySets;
  readonly lastCap: number;
  readonly stdio: readonly (number | "null" | "inherit")[];
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly candidates: readonly string[];
  readonly terminal?: TerminalPlan;
  /** Rlimits, no_new_privs and seccomp (masks and devices are the container's already). */
  readonly security?: SecurityPlan;
}

const PR_SET_DUMPABLE = 4;
const ENOMEM = 12;

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

/** Makes the child non-dumpable: must be the program's first op (see the module comment). */
export function dumpableOps(): Op[] {
  return [op(SYS.prctl, "make the process non-dumpable", [PR_SET_DUMPABLE, 0, 0, 0, 0])];
}

/** setns into each namespace, then close the namespace fds. */
export function joinOps(p: ExecPlan): Op[] {
  return [
    ...p.joins.map((j) =>
      op(SYS.setns, `join the ${j.kind} namespace`, [j.fd, NAMESPACE_TYPES[j.kind]])
    ),
    ...p.joins.map((j) => op(SYS.close, `close the ${j.kind} namespace fd`, [j.fd])),
  ];
}

/**
 * Joins the PID namespace (for children only) and forks into it: the intermediate process
 * exits at once (EXIT_IF_NONZERO), its child, tsbox's own through CLONE_PARENT, runs the rest.
 */
export function pidForkOps(p: ExecPlan): Op[] {
  if (!p.pidFork) return [];
  const flags = CLONE.PARENT | CLONE.PARENT_SETTID | SIGCHLD;
  return [
    op(SYS.setns, "join the pid namespace", [p.pidFork.fd, NAMESPACE_TYPES.pid]),
    op(SYS.close, "close the pid namespace fd", [p.pidFork.fd]),
    // Raw clone(flags, newsp = 0: the copied stack, parent_tid, child_tid, tls).
    op(
      SYS.clone,
      "fork into the pid namespace",
      [flags, 0, p.pidFork.childPidAddress, 0, 0],
      EXIT_IF_NONZERO,
    ),
  ];
}

/** After setns(mnt) the root is not the container's yet: fchdir to its root fd and chroot. */
export function rootOps(p: ExecPlan): Op[] {
  return [
    op(SYS.fchdir, "enter the container's root", [p.root]),
    op(SYS.chroot, "chroot to the container's root", [str(".")]),
    op(SYS.close, "close the root fd", [p.root]),
    op(SYS.chdir, `chdir ${p.cwd}`, [str(p.cwd)]),
  ];
}

/** The ChildPlan fields the shared identity/capability/stdio/exec builders read. */
function asChildPlan(p: ExecPlan): ChildPlan {
  return {
    uid: p.uid,
    gid: p.gid,
    groups: p.groups,
    setgroupsDenied: p.setgroupsDenied,
    caps: p.caps,
    lastCap: p.lastCap,
    syncFd: p.syncFd,
    closeFds: p.closeFds,
    stdio: p.terminal ? ["inherit", "inherit", "inherit"] : p.stdio,
    argv: p.argv,
    env: p.env,
    candidates: p.candidates,
  };
}

/**
 * The exec child's whole program, in order: `tsbox exec`, `tsbox runc exec`, healthcheck
 * probes and OCI hooks run in a container (oci_hook_exec.ts) all run it. Security ops sit where
 * oci_program.ts puts them for PID 1: the filter goes in early (before the identity change, while CAP_SYS_ADMIN is held)
 * unless no_new_privs or a kept CAP_SYS_ADMIN lets it go in last.
 */
export function buildExecProgram(p: ExecPlan): Op[] {
  const c = asChildPlan(p);
  const sec = p.security;
  return [
    ...dumpableOps(),
    ...signalOps(),
    ...syncOps(c),
    ...closeOtherFdsOps(p.keepFds),
    ...joinOps(p),
    ...pidForkOps(p),
    ...rootOps(p),
    ...(p.terminal ? terminalOps(p.terminal) : []),
    ...(sec ? rlimitOps(sec.rlimits) : []),
    ...(sec?.seccomp && !sec.seccompLate ? seccompOps(sec.seccomp) : []),
    ...identityOps(c),
    ...capabilityOps(c),
    ...stdioOps(c),
    ...(sec?.noNewPrivileges ? noNewPrivsOps() : []),
    ...(sec?.seccomp && sec.seccompLate ? seccompOps(sec.seccomp) : []),
    ...execOps(c),
  ];
}

/** The capabilities in PID 1's bounding set (docker exec keeps the container's set). */
export async function boundingSet(initPid: number, host: Host = linuxHost): Promise<number[]> {
  const status = await host.procStatus(initPid);
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!hex) throw new TsboxError(`no CapBnd in /proc/${initPid}/status`);
  const mask = BigInt(`0x${hex}`);
  const caps: number[] = [];
  for (let c = 0; c < 64; c++) if ((mask >> BigInt(c)) & 1n) caps.push(c);
  return caps;
}

/** A process started by {@link execInContainer}. */
export class ExecProcess {
  #waited?: Promise<number>;

  constructor(
    /** Host pid of the process. */
    readonly pid: number,
    /** The pty master (with `tty`); the caller closes it. */
    readonly terminal?: number,
    /** Signals and waits go through it. */
    readonly host: Host = linuxHost,
  ) {}

  /** Sends `signal`; false when the process is gone. */
  kill(signal: number): boolean {
    return this.host.killPid(this.pid, signal);
  }

  /** Waits for the process: its exit status, or 128+N when signal N killed it. */
  wait(): Promise<number> {
    this.#waited ??= this.host.waitPid(this.pid).then((s) =>
      s.signal !== undefined ? 128 + s.signal : s.exitCode ?? 0
    );
    return this.#waited;
  }
}

/**
 * Starts `spec` in the running container whose PID 1 is `initPid` (a host pid) and returns once
 * its execve succeeded, through the launch handshake of container starts (launch.ts). Fails with
 * ExecError (126/127) when the command cannot be run. `host` makes the host-side calls (tests
 * pass a recording fake).
 */
export async function execInContainer(
  initPid: number,
  spec: ExecSpec,
  host: Host = linuxHost,
): Promise<ExecProcess> {
  if (spec.argv.length === 0) throw new TsboxError("exec: no command given");
  const target = openContainer(initPid, host);
  let security: ReturnType<typeof prepareSecurity> | undefined;
  let childPid: SharedPid | undefined;
  try {
    if (target.pidNamespace !== undefined) childPid = host.sharedWord();
    const user = identityOf(
      spec.user,
      host.readInRoot(target.root, "/etc/passwd"),
      host.readInRoot(target.root, "/etc/group"),
    );
    const env = [...spec.env];
    if (getEnv(env, "HOME") === undefined) env.push(`HOME=${user.home}`);
    const caps = spec.capabilities ?? dockerCapabilitySets(await boundingSet(initPid, host));
    // The filter lives in native memory the clone inherits; freed once the clone exists.
    const confinement = security = prepareSecurity(spec.security ?? {}, caps.bounding);
    const stdioFds = spec.stdio.filter((s): s is number => typeof s === "number");
    const pidFork = childPid && target.pidNamespace !== undefined
      ? { fd: target.pidNamespace, childPidAddress: childPid.address }
      : undefined;
    const lastCap = host.lastCap();
    const shared = childPid;
    const launched = await launch(host, {
      argv0: spec.argv[0],
      tty: spec.tty !== undefined,
      flags: 0,
      program: (fds) =>
        buildExecProgram({
          syncFd: fds.syncFd,
          closeFds: fds.closeFds,
          keepFds: [
            fds.statusFd,
            target.root,
            ...target.joins.map((j) => j.fd),
            ...(pidFork ? [pidFork.fd] : []),
            ...stdioFds,
            ...(fds.terminalSocket !== undefined ? [fds.terminalSocket] : []),
          ],
          joins: target.joins,
          pidFork,
          root: target.root,
          cwd: spec.cwd,
          uid: user.uid,
          gid: user.gid,
          groups: user.groups,
          caps,
          lastCap,
          stdio: spec.stdio,
          argv: spec.argv,
          env,
          candidates: execCandidates(spec.argv[0], env),
          terminal: fds.terminalSocket !== undefined
            ? { socketFd: fds.terminalSocket, size: spec.tty?.size, uid: user.uid }
            : undefined,
          security: {
            ...confinement.plan,
            ...(spec.rlimits ? { rlimits: spec.rlimits } : {}),
            ...(spec.seccompFlags && confinement.plan.seccomp
              ? { seccomp: { ...confinement.plan.seccomp, flags: spec.seccompFlags } }
              : {}),
          },
        }),
      cloned: () => {
        confinement.free();
        target.close();
      },
      // Joined while the child is held before its fork: the forked process inherits them.
      beforeRelease: (pid) => host.joinCgroupsOf(initPid, pid),
      // The cloned process forked the command into the PID namespace and exited.
      settle: shared ? () => Promise.resolve(shared.read() || -1) : undefined,
      failure: (failure, ops) =>
        // A PID namespace whose init has died refuses new members with ENOMEM.
        ops[failure.opIndex]?.nr === SYS.clone && failure.errno === ENOMEM
          ? new ContainerNotRunningError(initPid)
          : undefined,
    });
    return new ExecProcess(launched.pid, launched.terminal, host);
  } finally {
    target.close();
    security?.free();
    childPid?.free();
  }
}
