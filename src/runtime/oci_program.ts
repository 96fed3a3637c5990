/**
 * The syscall program of an OCI container's first process (see ffi/clone.ts), in runc's order:
 * join namespaces by path, mounts in the config's order, /dev, pivot_root, hostname, sysctls,
 * masked and read-only paths, terminal, rlimits, identity, the five capability sets, umask,
 * no_new_privs and seccomp; then a "ready" record on the status pipe and a blocking open of
 * the state dir's exec fifo, which holds the created container until `start` opens the other
 * end; then execve.
 *
 * The process starts as a copy of this runtime, with every fd Deno has (marked close-on-exec
 * or not): its copies of the runtime's stdout and stderr, its cache databases. It closes them
 * itself, as runc's init does, first everything but what the setup uses and, before it waits
 * for `start`, everything but stdio, the preserved fds, the status pipe and the state dir. A
 * waiting process that still held the runtime's stdout would keep a reader of create's output
 * (containerd's shim, which reads it to the end before it takes the console) waiting.
 *
 * @module
 */
import {
  argFromLast,
  bytes,
  FAIL_ON_ZERO,
  IGNORE_ERROR,
  type Op,
  str,
  StringArray,
} from "../../ffi/clone.ts";
import { CLONE } from "../../ffi/clone.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import type { CapabilitySets } from "./oci_config.ts";
import {
  devOps,
  enterRootOps,
  mountEntryOps,
  type MountPlan,
  rootBindOps,
  rootPropagationOps,
} from "./oci_mounts.ts";
import {
  capabilityOps,
  closeOtherFdsOps,
  deathSignalOps,
  identityOps,
  loopbackOps,
  overlayOps,
  signalOps,
  stdioInstallOps,
  type StdioSource,
  syncOps,
  sysctlOps,
} from "./program.ts";
import {
  type InstalledFilter,
  type MaskedPath,
  maskOps,
  noNewPrivsOps,
  rlimitOps,
  type RlimitSetting,
  seccompOps,
} from "./security.ts";
import { terminalOps, type TerminalPlan } from "./tty.ts";
import { PAUSE_RECORD, READY_RECORD } from "./launch.ts";

const PR_SET_DUMPABLE = 4;
const O_WRONLY = 1;
const O_CLOEXEC = 0o2000000;
const SYS_SETDOMAINNAME = 171;

/** The status record an OCI child writes when it is set up and waits for `start` (launch.ts). */
export const READY_OP_INDEX = READY_RECORD;
/** The status record of a child whose mounts are made, waiting for its hooks (before pivot). */
export const HOOKS_OP_INDEX = PAUSE_RECORD;

/** Everything the OCI child's program needs, resolved by the parent. */
export interface OciChildPlan {
  /** The rootfs as the child sees it before pivot_root. */
  readonly rootfs: string;
  readonly readonlyRoot: boolean;
  readonly noPivot: boolean;
  /** Propagation for `/` (rslave when absent) and, after pivot, for the new root. */
  readonly rootPropagation?: number;
  readonly mounts: MountPlan;
  /** Namespaces joined by path: fds the parent opened (inherited), with their CLONE type. */
  readonly joins: readonly { readonly fd: number; readonly type: number; readonly what: string }[];
  readonly newUser: boolean;
  readonly newCgroup: boolean;
  readonly newNetwork: boolean;
  readonly newUts: boolean;
  readonly hostname?: string;
  readonly domainname?: string;
  readonly sysctls: readonly (readonly [string, string])[];
  readonly masked: readonly MaskedPath[];
  readonly readonlyPaths: readonly string[];
  readonly terminal?: TerminalPlan;
  readonly cwd: string;
  readonly rlimits: readonly RlimitSetting[];
  readonly seccomp?: InstalledFilter;
  readonly seccompLate: boolean;
  readonly noNewPrivileges: boolean;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  readonly umask: number;
  readonly caps: CapabilitySets;
  readonly lastCap: number;
  readonly syncFd: number;
  readonly closeFds: readonly number[];
  /** The status pipe's write end (for the ready record). */
  readonly statusFd: number;
  /**
   * Pause for hooks: after the mounts, before pivot_root, the child reports {@link
   * HOOKS_OP_INDEX} and waits for a byte on this fd (prestart, createRuntime and
   * createContainer hooks run in between, as runc runs them).
   */
  readonly hookSyncFd?: number;
  /**
   * O_PATH fd of the state dir holding `exec.fifo`: the process reports "ready" and waits for
   * `start` there. Without it (tsbox's own start) it runs its command at once.
   */
  readonly fifoDirFd?: number;
  /**
   * Rootless: the child mounts the overlay on `rootfs` itself, inside its user and mount
   * namespaces (`options` with lower entries relative to `lowerBase`, which it chdirs into).
   */
  readonly overlay?: { readonly lowerBase: string; readonly options: string };
  /**
   * With a new user namespace, keep the host ids this process started with until the
   * identity ops (tsbox's `--userns-remap`): the rootfs lies below the store's directories,
   * which only the host's root may enter, and /dev's tmpfs is then mounted by the parent
   * (a tmpfs of the namespace would refuse nodes from an unmapped uid).
   */
  readonly hostIdsUntilIdentity?: boolean;
  /**
   * Stay dumpable while held: rootless, the helpers that join the process's namespaces
   * (slirp4netns, pasta) run as the same unprivileged user, and /proc/PID/ns of a
   * non-dumpable process is closed to them.
   */
  readonly dumpable?: boolean;
  /** setgroups is denied in the user namespace (only the user's own gid is mapped): skip it. */
  readonly setgroupsDenied?: boolean;
  /** Bind the host's device nodes instead of mknod (the runtime is in a user namespace). */
  readonly bindDevices?: boolean;
  /**
   * Fds this process installs as 0, 1, 2 ("null": the container's /dev/null, "inherit": kept
   * as they are); an OCI runtime's children inherit its own stdio when absent.
   */
  readonly stdio?: readonly StdioSource[];
  /** Signal the process gets when the one that cloned it dies (PR_SET_PDEATHSIG); none if 0. */
  readonly parentDeathSignal?: number;
  /** Fds 3..3+N-1 stay open for the process (`--preserve-fds`). */
  readonly preserveFds: number;
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly candidates: readonly string[];
}

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

/** The ready record: opIndex -2, errno 0 (see container start in oci_start.ts). */
export function readyRecord(index = READY_OP_INDEX): Uint8Array {
  const rec = new Uint8Array(16);
  new DataView(rec.buffer).setBigInt64(0, BigInt(index), true);
  return rec;
}

/** Reports "mounts done" and waits until the parent has run the hooks. */
export function hookPauseOps(p: OciChildPlan): Op[] {
  if (p.hookSyncFd === undefined) return [];
  return [
    op(SYS.write, "report the mounts made (hooks)", [
      p.statusFd,
      bytes(readyRecord(HOOKS_OP_INDEX)),
      16,
    ]),
    op(SYS.read, "wait for the hooks", [p.hookSyncFd, bytes(new Uint8Array(8)), 1], FAIL_ON_ZERO),
    op(SYS.close, "close the hook pipe", [p.hookSyncFd]),
  ];
}

/** Bounding set, groups, gid, uid (capabilities kept over the uid change), then the sets. */
export function ociIdentityOps(p: OciChildPlan): Op[] {
  return [...identityOps(p), ...capabilityOps(p)];
}

/**
 * /dev/console is the container's pty (runc binds the slave there): an empty file on /dev
 * with fd 0, the slave after terminalOps, bound over it. Skipped where /dev cannot take it.
 */
export function consoleOps(): Op[] {
  return [
    op(SYS.mknodat, "create /dev/console", [-100, str("/dev/console"), 0o100600, 0], IGNORE_ERROR),
    op(SYS.mount, "bind the pty on /dev/console", [
      str("/proc/self/fd/0"),
      str("/dev/console"),
      str(""),
      0x1000, // MS_BIND
      0,
    ], IGNORE_ERROR),
  ];
}

/** Reports "ready", then blocks opening exec.fifo for writing until `start` reads it. */
export function waitForStartOps(statusFd: number, fifoDirFd: number): Op[] {
  return [
    op(SYS.write, "report the container created", [statusFd, bytes(readyRecord()), 16]),
    op(SYS.openat, "wait for start (open exec.fifo)", [
      fifoDirFd,
      str("exec.fifo"),
      O_WRONLY | O_CLOEXEC,
      0,
    ]),
    op(
      SYS.write,
      "tell start the process runs",
      [0, bytes(new Uint8Array([0x30])), 1],
      argFromLast(0),
    ),
  ];
}

/** The fds 3..3+N-1 of `--preserve-fds N`. */
function preservedFds(p: OciChildPlan): number[] {
  return Array.from({ length: p.preserveFds }, (_, i) => 3 + i);
}

/** Fds above 2 the process keeps while it waits for `start` (see the module doc). */
export function waitingFds(p: OciChildPlan): number[] {
  return [...preservedFds(p), p.statusFd, ...(p.fifoDirFd !== undefined ? [p.fifoDirFd] : [])];
}

/** Fds above 2 the setup still uses: the waiting ones, namespaces, hook pipe, console socket. */
export function setupFds(p: OciChildPlan): number[] {
  return [
    ...waitingFds(p),
    ...p.joins.map((j) => j.fd),
    ...(p.hookSyncFd !== undefined ? [p.hookSyncFd] : []),
    ...(p.terminal ? [p.terminal.socketFd] : []),
    ...(p.stdio ?? []).filter((s): s is number => typeof s === "number"),
  ];
}

/** The whole program. */
export function buildOciProgram(p: OciChildPlan): Op[] {
  const ops: Op[] = [
    // Non-dumpable until execve: the process is a copy of this runtime, and a process of a
    // shared PID namespace must not reach its /proc/PID/exe (the host's deno binary) or its
    // fds (the state dir) through /proc (runc's CVE-2019-5736 class). execve resets it.
    ...(p.dumpable
      ? []
      : [op(SYS.prctl, "make the process non-dumpable", [PR_SET_DUMPABLE, 0, 0, 0, 0])]),
    ...signalOps(),
    ...syncOps(p),
    ...closeOtherFdsOps(setupFds(p)),
    // Modes of the nodes, dirs and files made below are the spec's, not filtered by a umask.
    op(SYS.umask, "umask 0 for the setup", [0]),
  ];
  if (p.newUser && !p.hostIdsUntilIdentity) {
    // Become the namespace's root: the host ids this process started with are not mapped.
    ops.push(
      op(SYS.setresgid, "become gid 0 in the user namespace", [0, 0, 0]),
      op(SYS.setresuid, "become uid 0 in the user namespace", [0, 0, 0]),
    );
  }
  for (const j of p.joins) {
    ops.push(
      op(SYS.setns, `join the ${j.what} namespace`, [j.fd, j.type]),
      op(SYS.close, `close the ${j.what} namespace fd`, [j.fd]),
    );
  }
  if (p.newCgroup) ops.push(op(SYS.unshare, "unshare the cgroup namespace", [CLONE.NEWCGROUP]));
  // Rootless: the overlay is mounted once `/` no longer propagates, before it is bound.
  const [propagate, ...bindRoot] = rootBindOps(p.rootfs, p.rootPropagation);
  ops.push(propagate, ...(p.overlay ? overlayOps(p.rootfs, p.overlay) : []), ...bindRoot);
  for (const m of p.mounts.mounts) ops.push(...mountEntryOps(m));
  ops.push(...devOps(p.mounts, p.newUser || (p.bindDevices ?? false)));
  if (p.newNetwork) ops.push(...loopbackOps());
  ops.push(...hookPauseOps(p));
  ops.push(...enterRootOps(p.rootfs, p.readonlyRoot, p.noPivot));
  ops.push(...rootPropagationOps(p.rootPropagation));
  if (p.newUts && p.hostname) {
    ops.push(
      op(SYS.sethostname, "set the hostname", [
        str(p.hostname),
        new TextEncoder().encode(p.hostname).length,
      ]),
    );
  }
  if (p.newUts && p.domainname) {
    ops.push(
      op(SYS_SETDOMAINNAME, "set the domain name", [
        str(p.domainname),
        new TextEncoder().encode(p.domainname).length,
      ]),
    );
  }
  ops.push(...sysctlOps(p.sysctls));
  ops.push(...maskOps(p.masked, p.readonlyPaths));
  if (p.terminal) ops.push(...terminalOps(p.terminal), ...consoleOps());
  ops.push(op(SYS.chdir, `chdir ${p.cwd}`, [str(p.cwd)]));
  ops.push(...rlimitOps(p.rlimits));
  if (p.seccomp && !p.seccompLate) ops.push(...seccompOps(p.seccomp));
  ops.push(...ociIdentityOps(p));
  // After the uid change, which clears it.
  ops.push(...deathSignalOps(p.parentDeathSignal));
  if (p.stdio) ops.push(...stdioInstallOps(p.stdio));
  ops.push(
    op(SYS.umask, `umask ${p.umask.toString(8)}`, [p.umask]),
    // Also what the program opened itself (the pty slave's first fd, sockets, sysctl files).
    ...closeOtherFdsOps(waitingFds(p)),
  );
  if (p.noNewPrivileges) ops.push(...noNewPrivsOps());
  if (p.seccomp && p.seccompLate) ops.push(...seccompOps(p.seccomp));
  if (p.fifoDirFd !== undefined) ops.push(...waitForStartOps(p.statusFd, p.fifoDirFd));
  const argv = new StringArray(p.argv);
  const env = new StringArray(p.env);
  for (const path of p.candidates) {
    ops.push(op(SYS.execve, `execve ${path}`, [str(path), argv, env], IGNORE_ERROR));
  }
  return ops;
}
