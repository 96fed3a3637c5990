/**
 * Compiles what the container's first process must do into a syscall program for the clone
 * stub (ffi/clone.ts): one small builder per concern, each returning ops, joined in the order
 * runc and crun use. Every path here is either a host path the parent resolved inside the
 * rootfs beforehand (before pivot_root) or a container path (after it).
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
import { MNT_DETACH, MS } from "../../ffi/mount.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { terminalOps, type TerminalPlan } from "./tty.ts";
import { DEFAULT_SHM_SIZE, INIT_PATH } from "./defaults.ts";
import { ipcJoinOps } from "./namespaces.ts";
import type { MountRequest } from "./mount_request.ts";
import {
  deviceOps,
  maskOps,
  noNewPrivsOps,
  rlimitOps,
  seccompOps,
  type SecurityPlan,
} from "./security.ts";

const AT_FDCWD = -100;
const O_RDONLY = 0;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const S_IFREG = 0o100000;
const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;
const IFF_RUNNING = 0x40;
const PR_SET_KEEPCAPS = 8;
const PR_CAPBSET_DROP = 24;
const PR_CAP_AMBIENT = 47;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const CAPABILITY_VERSION_3 = 0x20080522;
const SIG_SETMASK = 2;
const SIGKILL = 9;
const SIGSTOP = 19;
const CLOSE_RANGE_CLOEXEC = 4;
const O_WRONLY = 1;

/** The one mount type; `extraMounts` carries it with resolved targets. */
export type { MountRequest } from "./mount_request.ts";
/** Where `--init`'s binary appears inside the container. */
export { INIT_PATH } from "./defaults.ts";

/** Everything the child's program needs, resolved by the parent. */
export interface ChildPlan {
  /** Host path of the mounted rootfs (a mount point). */
  readonly rootfs: string;
  /** Mount targets resolved in the rootfs (host paths). */
  readonly targets: { readonly proc: string; readonly dev: string; readonly sys: string };
  /** Files tsbox wrote (source) bind-mounted onto resolved targets: hostname, hosts, resolv.conf. */
  readonly etcFiles: readonly { readonly source: string; readonly target: string }[];
  /** The user's mounts, their targets resolved in the rootfs (host paths). */
  readonly extraMounts: readonly MountRequest[];
  readonly readOnly: boolean;
  readonly hostname: string;
  /** Bring `lo` up (private network namespace). */
  readonly loopbackUp: boolean;
  /** `--network container:X`: an fd of X's network namespace, joined with setns. */
  readonly joinNetnsFd?: number;
  /** `--ipc container:X`: an fd of X's IPC namespace, joined with setns (namespaces.ts). */
  readonly joinIpcFd?: number;
  /** `--uts host`: the UTS namespace is the host's, whose hostname is left alone. */
  readonly keepHostname?: boolean;
  /** Unshare a cgroup namespace (after the parent placed the child in its cgroup). */
  readonly cgroupNamespace: boolean;
  readonly cwd: string;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  /** Capabilities kept (bounding, effective, permitted). */
  readonly capabilities: readonly number[];
  /** Highest capability number the kernel knows (/proc/sys/kernel/cap_last_cap). */
  readonly lastCap: number;
  /** The fd the child reads its go-ahead byte from, and the parent-side ends it must close. */
  readonly syncFd: number;
  readonly closeFds: readonly number[];
  /** Fds to install as 0, 1, 2; "null" opens /dev/null, "inherit" keeps what is there. */
  readonly stdio: readonly (number | "null" | "inherit")[];
  readonly argv: readonly string[];
  readonly env: readonly string[];
  /** execve candidates in order (the PATH search). */
  readonly candidates: readonly string[];
  /**
   * The parent already mounted /dev's tmpfs (user namespaces: a tmpfs the child mounted would
   * belong to its namespace, where the child's still-unmapped host uid cannot create nodes).
   */
  readonly devPremounted?: boolean;
  /**
   * Bind the rootfs onto itself first: a mount the parent made is locked in a user namespace's
   * copy of the mount table, and pivot_root refuses a locked new root (EINVAL).
   */
  readonly rebindRootfs?: boolean;
  /**
   * Rootless: the child mounts the overlay on `rootfs` itself, inside its user and mount
   * namespaces (`options` with lower entries relative to `lowerBase`, which it chdirs into).
   */
  readonly overlay?: { readonly lowerBase: string; readonly options: string };
  /** setgroups is denied in the user namespace (only the user's own gid is mapped): skip it. */
  readonly setgroupsDenied?: boolean;
  /** Group of the pty slaves in devpts (`gid=`); 5 (tty) unless set, none when null. */
  readonly ptsGid?: number | null;
  /**
   * Bind the host's /sys instead of mounting sysfs: a user namespace that does not own the
   * network namespace (`--network host`) may not mount sysfs.
   */
  readonly bindSys?: boolean;
  /** Masks, devices, rlimits, no_new_privs, seccomp (security.ts); none when absent. */
  readonly security?: SecurityPlan;
  /** `-t`: open a pty in the container's devpts and make it 0, 1, 2 (see tty.ts). */
  readonly terminal?: TerminalPlan;
  /** Signal PID 1 gets when the process that cloned it dies (PR_SET_PDEATHSIG); none if 0. */
  readonly parentDeathSignal?: number;
  /** `--init`: host path of the init binary, bound read-only at {@link INIT_PATH}. */
  readonly init?: string;
  /** `--shm-size` in bytes; {@link DEFAULT_SHM_SIZE} when absent. */
  readonly shmSize?: number;
  /** `--sysctl`s (key, value), written in the container's /proc/sys before the masks. */
  readonly sysctls?: readonly (readonly [string, string])[];
}

function op(nr: number, what: string, args: Op["args"], flags = 0): Op {
  return { nr, args, flags, what };
}

function mountOp(
  source: string,
  target: string,
  fstype: string,
  flags: number,
  data?: string,
): Op {
  const shown = fstype ? `mount ${fstype} on ${target}` : `mount ${source} on ${target}`;
  return op(SYS.mount, shown, [str(source), str(target), str(fstype), flags, data ? str(data) : 0]);
}

/** Closes the parent's pipe ends and waits for the go-ahead byte (EOF: the parent died). */
export function syncOps(p: ChildPlan): Op[] {
  return [
    ...p.closeFds.map((fd) => op(SYS.close, `close fd ${fd}`, [fd])),
    op(SYS.read, "wait for the parent", [p.syncFd, bytes(new Uint8Array(8)), 1], FAIL_ON_ZERO),
    op(SYS.close, "close the sync pipe", [p.syncFd]),
  ];
}

/**
 * close_range over every gap between the fds to keep (0-2 are always kept): closes, not just
 * marks close-on-exec, so a child that waits before its execve (an OCI container until
 * `start`) holds none of the runtime's fds, such as the copies Deno keeps of its stdout and
 * stderr, whose readers (containerd's shim) wait for their end.
 */
export function closeOtherFdsOps(keep: readonly number[]): Op[] {
  const kept = [...new Set(keep.filter((fd) => fd > 2))].sort((a, b) => a - b);
  const ops: Op[] = [];
  let from = 3;
  for (const fd of kept) {
    if (fd - 1 >= from) {
      ops.push(op(SYS.close_range, `close fds ${from}..${fd - 1}`, [from, fd - 1, 0]));
    }
    from = fd + 1;
  }
  ops.push(op(SYS.close_range, `close fds from ${from}`, [from, 0xffffffff, 0]));
  return ops;
}

/**
 * Resets every signal disposition to default and unblocks all signals: Deno ignores SIGPIPE
 * and blocks some signals, and both survive execve.
 */
export function signalOps(): Op[] {
  const dfl = bytes(new Uint8Array(32)); // struct sigaction { SIG_DFL, 0, 0, empty mask }
  const ops: Op[] = [];
  for (let sig = 1; sig <= 64; sig++) {
    if (sig === SIGKILL || sig === SIGSTOP) continue;
    ops.push(op(SYS.rt_sigaction, `reset signal ${sig}`, [sig, dfl, 0, 8]));
  }
  ops.push(
    op(SYS.rt_sigprocmask, "unblock signals", [SIG_SETMASK, bytes(new Uint8Array(8)), 0, 8]),
  );
  return ops;
}

/** The cgroup namespace, rooted at the container's cgroup because the parent joined it first. */
export function cgroupOps(p: ChildPlan): Op[] {
  return p.cgroupNamespace
    ? [op(SYS.unshare, "unshare the cgroup namespace", [CLONE.NEWCGROUP])]
    : [];
}

/** Makes every mount private, then mounts /proc and a read-only /sys in the rootfs. */
export function mountOps(p: ChildPlan): Op[] {
  return [
    op(SYS.mount, "make / rprivate", [0, str("/"), 0, MS.REC | MS.PRIVATE, 0]),
    ...(p.overlay ? overlayOps(p.rootfs, p.overlay) : []),
    ...(p.rebindRootfs ? [mountOp(p.rootfs, p.rootfs, "", MS.BIND | MS.REC)] : []),
    mountOp("proc", p.targets.proc, "proc", MS.NOSUID | MS.NODEV | MS.NOEXEC),
    ...(p.bindSys ? sysBindOps(p) : [
      mountOp(
        "sysfs",
        p.targets.sys,
        "sysfs",
        (p.security?.sysWritable ? 0 : MS.RDONLY) | MS.NOSUID | MS.NODEV | MS.NOEXEC,
      ),
    ]),
  ];
}

/** The rootless overlay, mounted from inside the user namespace (lower entries are relative). */
export function overlayOps(
  rootfs: string,
  o: { readonly lowerBase: string; readonly options: string },
): Op[] {
  return [
    op(SYS.chdir, `chdir ${o.lowerBase}`, [str(o.lowerBase)]),
    mountOp("overlay", rootfs, "overlay", 0, o.options),
  ];
}

function sysBindOps(p: ChildPlan): Op[] {
  const ops = [mountOp("/sys", p.targets.sys, "", MS.BIND | MS.REC)];
  if (!p.security?.sysWritable) {
    // Flags may be added to a locked mount, never cleared: nosuid, nodev, noexec stay set.
    const ro = MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC;
    ops.push(mountOp("/sys", p.targets.sys, "", ro));
  }
  return ops;
}

/** hostname, hosts and resolv.conf, then the user's -v/--mount/--tmpfs mounts (after /dev). */
export function bindOps(p: ChildPlan): Op[] {
  const ops: Op[] = [];
  for (const f of p.etcFiles) ops.push(mountOp(f.source, f.target, "", MS.BIND));
  for (const m of p.extraMounts) {
    if (m.kind === "tmpfs") {
      ops.push(mountOp("tmpfs", m.target, "tmpfs", MS.NOSUID | MS.NODEV, m.options));
      continue;
    }
    ops.push(mountOp(m.source, m.target, "", MS.BIND | MS.REC));
    if (m.readOnly) {
      ops.push(mountOp(m.source, m.target, "", MS.BIND | MS.REMOUNT | MS.RDONLY));
    }
  }
  return ops;
}

const DEVICES = ["null", "zero", "full", "random", "urandom", "tty"];
const DEV_LINKS: [string, string][] = [
  ["/proc/self/fd", "fd"],
  ["/proc/self/fd/0", "stdin"],
  ["/proc/self/fd/1", "stdout"],
  ["/proc/self/fd/2", "stderr"],
  ["pts/ptmx", "ptmx"],
];

/**
 * /dev: a tmpfs with the host's device nodes bind-mounted (not mknod'ed, so that this also works
 * in a user namespace), the standard links, devpts, shm and mqueue.
 */
export function devOps(p: ChildPlan): Op[] {
  const dev = p.targets.dev;
  const ops: Op[] = p.devPremounted
    ? []
    : [mountOp("tmpfs", dev, "tmpfs", MS.NOSUID | MS.STRICTATIME, "mode=755,size=65536k")];
  for (const name of DEVICES) {
    ops.push(
      op(SYS.mknodat, `create ${dev}/${name}`, [
        AT_FDCWD,
        str(`${dev}/${name}`),
        S_IFREG | 0o666,
        0,
      ]),
    );
    ops.push(mountOp(`/dev/${name}`, `${dev}/${name}`, "", MS.BIND));
  }
  for (const [target, name] of DEV_LINKS) {
    ops.push(
      op(SYS.symlinkat, `link ${dev}/${name}`, [str(target), AT_FDCWD, str(`${dev}/${name}`)]),
    );
  }
  for (const dir of ["pts", "shm", "mqueue"]) {
    ops.push(op(SYS.mkdirat, `mkdir ${dev}/${dir}`, [AT_FDCWD, str(`${dev}/${dir}`), 0o755]));
  }
  ops.push(
    mountOp(
      "devpts",
      `${dev}/pts`,
      "devpts",
      MS.NOSUID | MS.NOEXEC,
      `newinstance,ptmxmode=0666,mode=0620${p.ptsGid === null ? "" : `,gid=${p.ptsGid ?? 5}`}`,
    ),
    mountOp(
      "shm",
      `${dev}/shm`,
      "tmpfs",
      MS.NOSUID | MS.NODEV | MS.NOEXEC,
      `mode=1777,size=${Math.ceil((p.shmSize ?? DEFAULT_SHM_SIZE) / 1024)}k`,
    ),
    mountOp("mqueue", `${dev}/mqueue`, "mqueue", MS.NOSUID | MS.NODEV | MS.NOEXEC),
  );
  if (p.init) ops.push(...initOps(dev, p.init));
  return ops;
}

/**
 * `--init`: an empty file on /dev's tmpfs with the host's init binary bound onto it, then made
 * read-only, so the container can run it but never change the host's copy.
 */
export function initOps(dev: string, source: string): Op[] {
  const target = `${dev}/${INIT_PATH.slice("/dev/".length)}`;
  return [
    op(SYS.mknodat, `create ${target}`, [AT_FDCWD, str(target), S_IFREG | 0o755, 0]),
    mountOp(source, target, "", MS.BIND),
    mountOp(source, target, "", MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV),
  ];
}

/**
 * `--sysctl`: each value written to /proc/sys/KEY after pivot_root, so the container's own
 * proc (its network and IPC namespaces) takes it, and before /proc/sys is made read-only. The
 * opened fd is close-on-exec; a refused value fails the start naming the key.
 */
export function sysctlOps(p: ChildPlan): Op[] {
  if (!p.sysctls?.length) return [];
  // /proc/sys files belong to the root of the namespace's owner: in a user namespace the
  // child is still the unmapped host root here, so it becomes the namespace's root first (a
  // no-op without one). Its capabilities stay; the identity ops set the final ids later.
  const ops: Op[] = [
    op(SYS.setresgid, "set gid 0 for --sysctl", [0, 0, 0]),
    op(SYS.setresuid, "set uid 0 for --sysctl", [0, 0, 0]),
  ];
  for (const [key, value] of p.sysctls ?? []) {
    // Dots separate levels; a "/" in a key is a "." in a name (runc's convention).
    const path = `/proc/sys/${key.replace(/[./]/g, (c) => c === "." ? "/" : ".")}`;
    const data = new TextEncoder().encode(value);
    ops.push(
      op(SYS.openat, `open ${path} for sysctl ${key}`, [
        AT_FDCWD,
        str(path),
        O_WRONLY | O_CLOEXEC,
        0,
      ]),
      op(SYS.write, `write sysctl ${key}=${value}`, [0, bytes(data), data.length], argFromLast(0)),
    );
  }
  return ops;
}

/** Brings `lo` up in the new network namespace (the socket closes at execve). */
export function networkOps(p: ChildPlan): Op[] {
  if (p.joinNetnsFd !== undefined) {
    return [op(SYS.setns, "join the network namespace of the container named by --network", [
      p.joinNetnsFd,
      CLONE.NEWNET,
    ])];
  }
  if (!p.loopbackUp) return [];
  const ifreq = new Uint8Array(40);
  ifreq.set(new TextEncoder().encode("lo"));
  new DataView(ifreq.buffer).setUint16(16, IFF_UP | IFF_LOOPBACK | IFF_RUNNING, true);
  return [
    op(SYS.socket, "socket for lo", [AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0]),
    op(SYS.ioctl, "bring lo up", [0, SIOCSIFFLAGS, bytes(ifreq)], argFromLast(0)),
  ];
}

/** Makes the rootfs the root: pivot_root(".", ".") and detach the old root stacked on it. */
export function pivotOps(p: ChildPlan): Op[] {
  const ops: Op[] = [];
  if (p.readOnly) {
    ops.push(mountOp(p.rootfs, p.rootfs, "", MS.BIND | MS.REMOUNT | MS.RDONLY));
  }
  ops.push(
    op(SYS.chdir, "chdir into the rootfs", [str(p.rootfs)]),
    op(SYS.pivot_root, "pivot_root", [str("."), str(".")]),
    op(SYS.umount2, "detach the old root", [str("."), MNT_DETACH]),
    op(SYS.chdir, "chdir /", [str("/")]),
    ...(p.keepHostname ? [] : [
      op(SYS.sethostname, "set the hostname", [
        str(p.hostname),
        new TextEncoder().encode(p.hostname).length,
      ]),
    ]),
    op(SYS.chdir, `chdir ${p.cwd}`, [str(p.cwd)]),
  );
  return ops;
}

function u32le(values: number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(i * 4, v >>> 0, true));
  return out;
}

/** Keep capabilities over setresuid, then groups, gid, uid. */
export function identityOps(p: ChildPlan): Op[] {
  return [
    op(SYS.prctl, "keep capabilities", [PR_SET_KEEPCAPS, 1, 0, 0, 0]),
    ...boundingOps(p),
    ...(p.setgroupsDenied ? [] : [
      op(SYS.setgroups, "set supplementary groups", [
        p.groups.length,
        bytes(u32le([...p.groups])),
      ]),
    ]),
    op(SYS.setresgid, `set gid ${p.gid}`, [p.gid, p.gid, p.gid]),
    op(SYS.setresuid, `set uid ${p.uid}`, [p.uid, p.uid, p.uid]),
  ];
}

function boundingOps(p: ChildPlan): Op[] {
  const ops: Op[] = [];
  for (let cap = 0; cap <= p.lastCap; cap++) {
    if (p.capabilities.includes(cap)) continue;
    ops.push(
      op(SYS.prctl, `drop capability ${cap} from the bounding set`, [
        PR_CAPBSET_DROP,
        cap,
        0,
        0,
        0,
      ]),
    );
  }
  return ops;
}

/** The capability mask as two u32 words (low, high). */
export function capabilityMask(caps: readonly number[]): [number, number] {
  let lo = 0, hi = 0;
  for (const c of caps) {
    if (c < 32) lo = (lo | (1 << c)) >>> 0;
    else hi = (hi | (1 << (c - 32))) >>> 0;
  }
  return [lo, hi];
}

/** capset: effective = permitted = the kept set; inheritable and ambient empty. */
export function capabilityOps(p: ChildPlan): Op[] {
  const [lo, hi] = capabilityMask(p.capabilities);
  const header = u32le([CAPABILITY_VERSION_3, 0]);
  const data = u32le([lo, lo, 0, hi, hi, 0]); // two { effective, permitted, inheritable }
  return [
    op(SYS.capset, "set capabilities", [bytes(header), bytes(data)]),
    op(SYS.prctl, "clear ambient capabilities", [
      PR_CAP_AMBIENT,
      PR_CAP_AMBIENT_CLEAR_ALL,
      0,
      0,
      0,
    ]),
  ];
}

/** Installs the container's stdio as 0, 1, 2 and marks every other fd close-on-exec. */
export function stdioOps(p: ChildPlan): Op[] {
  const ops: Op[] = [];
  p.stdio.forEach((src, target) => {
    if (src === "inherit" || src === target) return;
    if (src === "null") {
      ops.push(
        op(SYS.openat, "open /dev/null", [
          AT_FDCWD,
          str("/dev/null"),
          (target === 0 ? O_RDONLY : O_RDWR) | O_CLOEXEC,
          0,
        ]),
        op(SYS.dup3, `install /dev/null as fd ${target}`, [0, target, 0], argFromLast(0)),
      );
    } else ops.push(op(SYS.dup3, `install fd ${src} as fd ${target}`, [src, target, 0]));
  });
  ops.push(
    op(SYS.umask, "umask 022", [0o022]),
    op(SYS.close_range, "mark fds above 2 close-on-exec", [3, 0xffffffff, CLOSE_RANGE_CLOEXEC]),
  );
  return ops;
}

const PR_SET_PDEATHSIG = 1;

/**
 * PR_SET_PDEATHSIG, so PID 1 dies with its supervisor instead of running unsupervised. Placed
 * after the uid change, which clears the setting.
 */
export function deathSignalOps(p: ChildPlan): Op[] {
  if (!p.parentDeathSignal) return [];
  return [
    op(SYS.prctl, "set the parent-death signal", [PR_SET_PDEATHSIG, p.parentDeathSignal, 0, 0, 0]),
  ];
}

/** One execve per candidate; failures are remembered and reported when all have failed. */
export function execOps(p: ChildPlan): Op[] {
  const argv = new StringArray(p.argv);
  const env = new StringArray(p.env);
  return p.candidates.map((path) =>
    op(SYS.execve, `execve ${path}`, [str(path), argv, env], IGNORE_ERROR)
  );
}

/**
 * The whole program, in order. The seccomp filter goes in as late as the kernel allows: after
 * everything else when no_new_privs is set or CAP_SYS_ADMIN is kept, else right before the
 * identity change, while CAP_SYS_ADMIN is still held (so the filter must allow the calls that
 * follow, as docker's default does).
 */
export function buildProgram(p: ChildPlan): Op[] {
  const sec = p.security;
  return [
    ...signalOps(),
    ...syncOps(p),
    ...ipcJoinOps(p.joinIpcFd),
    ...cgroupOps(p),
    ...mountOps(p),
    ...devOps(p),
    ...(sec ? deviceOps(p.targets.dev, sec.devices) : []),
    ...bindOps(p),
    ...networkOps(p),
    ...pivotOps(p),
    ...sysctlOps(p),
    ...(p.terminal ? terminalOps(p.terminal) : []),
    ...(sec ? maskOps(sec.masked, sec.readonly) : []),
    ...(sec ? rlimitOps(sec.rlimits) : []),
    ...(sec?.seccomp && !sec.seccompLate ? seccompOps(sec.seccomp) : []),
    ...identityOps(p),
    ...capabilityOps(p),
    ...deathSignalOps(p),
    ...stdioOps(p),
    ...(sec?.noNewPrivileges ? noNewPrivsOps() : []),
    ...(sec?.seccomp && sec.seccompLate ? seccompOps(sec.seccomp) : []),
    ...execOps(p),
  ];
}
