/**
 * The ops every cloned process's syscall program shares (ffi/clone.ts): the sync handshake,
 * signal reset, closing inherited fds, the rootless overlay, sysctls, `lo`, identity and
 * capabilities, stdio, the parent-death signal and the execve candidates. A container's first
 * process is built from them by oci_program.ts (tsbox's own start and `tsbox runc` alike), an
 * exec'd process by exec.ts.
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
import { SYS } from "../../ffi/syscall_numbers.ts";
import type { CapabilitySets } from "./oci_config.ts";

const AT_FDCWD = -100;
const O_RDONLY = 0;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
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
const PR_CAP_AMBIENT_RAISE = 2;
const PR_CAP_AMBIENT_CLEAR_ALL = 4;
const CAPABILITY_VERSION_3 = 0x20080522;
const SIG_SETMASK = 2;
const SIGKILL = 9;
const SIGSTOP = 19;
const CLOSE_RANGE_CLOEXEC = 4;
const O_WRONLY = 1;

/** What an fd 0, 1 or 2 of the process is: an fd of this process, /dev/null, or left alone. */
export type StdioSource = number | "null" | "inherit";

/** The process a program starts, everything resolved by the parent (exec.ts's shape). */
export interface ChildPlan {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  /** The capability sets the process runs with. */
  readonly caps: CapabilitySets;
  /** Highest capability number the kernel knows (/proc/sys/kernel/cap_last_cap). */
  readonly lastCap: number;
  /** The fd the child reads its go-ahead byte from, and the parent-side ends it must close. */
  readonly syncFd: number;
  readonly closeFds: readonly number[];
  /** Fds to install as 0, 1, 2; "null" opens /dev/null, "inherit" keeps what is there. */
  readonly stdio: readonly StdioSource[];
  readonly argv: readonly string[];
  readonly env: readonly string[];
  /** execve candidates in order (the PATH search). */
  readonly candidates: readonly string[];
  /** setgroups is denied in the user namespace (only the user's own gid is mapped): skip it. */
  readonly setgroupsDenied?: boolean;
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
export function syncOps(p: Pick<ChildPlan, "syncFd" | "closeFds">): Op[] {
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

/**
 * `--sysctl`: each value written to /proc/sys/KEY after pivot_root, so the container's own
 * proc (its network and IPC namespaces) takes it, and before /proc/sys is made read-only. The
 * opened fd is close-on-exec; a refused value fails the start naming the key.
 */
export function sysctlOps(sysctls: readonly (readonly [string, string])[]): Op[] {
  if (!sysctls.length) return [];
  // /proc/sys files belong to the root of the namespace's owner: in a user namespace the
  // child is still the unmapped host root here, so it becomes the namespace's root first (a
  // no-op without one). Its capabilities stay; the identity ops set the final ids later.
  const ops: Op[] = [
    op(SYS.setresgid, "set gid 0 for --sysctl", [0, 0, 0]),
    op(SYS.setresuid, "set uid 0 for --sysctl", [0, 0, 0]),
  ];
  for (const [key, value] of sysctls) {
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
export function loopbackOps(): Op[] {
  const ifreq = new Uint8Array(40);
  ifreq.set(new TextEncoder().encode("lo"));
  new DataView(ifreq.buffer).setUint16(16, IFF_UP | IFF_LOOPBACK | IFF_RUNNING, true);
  return [
    op(SYS.socket, "socket for lo", [AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0]),
    op(SYS.ioctl, "bring lo up", [0, SIOCSIFFLAGS, bytes(ifreq)], argFromLast(0)),
  ];
}

function u32le(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 4);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setUint32(i * 4, v >>> 0, true));
  return out;
}

/** What {@link identityOps} and {@link capabilityOps} read of a plan. */
export type IdentityPlan = Pick<
  ChildPlan,
  "uid" | "gid" | "groups" | "setgroupsDenied" | "caps" | "lastCap"
>;

/** Keep capabilities over the uid change, the bounding set, groups, gid, uid. */
export function identityOps(p: IdentityPlan): Op[] {
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

function boundingOps(p: IdentityPlan): Op[] {
  const ops: Op[] = [];
  for (let cap = 0; cap <= p.lastCap; cap++) {
    if (p.caps.bounding.includes(cap)) continue;
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

/** The two 32-bit halves of a capability set. */
export function capabilityMask(caps: readonly number[]): [number, number] {
  let lo = 0, hi = 0;
  for (const c of caps) {
    if (c < 32) lo = (lo | (1 << c)) >>> 0;
    else hi = (hi | (1 << (c - 32))) >>> 0;
  }
  return [lo, hi];
}

/** capset of the effective, permitted and inheritable sets, then the ambient set. */
export function capabilityOps(p: Pick<IdentityPlan, "caps">): Op[] {
  const [eLo, eHi] = capabilityMask(p.caps.effective);
  const [pLo, pHi] = capabilityMask(p.caps.permitted);
  const [iLo, iHi] = capabilityMask(p.caps.inheritable);
  const ops = [
    op(SYS.capset, "set capabilities", [
      bytes(u32le([CAPABILITY_VERSION_3, 0])),
      bytes(u32le([eLo, pLo, iLo, eHi, pHi, iHi])),
    ]),
    op(SYS.prctl, "clear ambient capabilities", [
      PR_CAP_AMBIENT,
      PR_CAP_AMBIENT_CLEAR_ALL,
      0,
      0,
      0,
    ]),
  ];
  for (const cap of p.caps.ambient) {
    // As runc: an ambient capability the sets do not allow is skipped, not fatal.
    ops.push(
      op(SYS.prctl, `raise ambient capability ${cap}`, [
        PR_CAP_AMBIENT,
        PR_CAP_AMBIENT_RAISE,
        cap,
        0,
        0,
      ], IGNORE_ERROR),
    );
  }
  return ops;
}

/**
 * Docker's sets from one list (`tsbox exec`, hooks): bounding, effective and permitted are the
 * list; inheritable and ambient are empty.
 */
export function dockerCapabilitySets(caps: readonly number[]): CapabilitySets {
  return { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] };
}

/** Installs `stdio` as fds 0, 1, 2 ("null": /dev/null as the process sees it). */
export function stdioInstallOps(stdio: readonly StdioSource[]): Op[] {
  const ops: Op[] = [];
  stdio.forEach((src, target) => {
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
  return ops;
}

/** Installs the process's stdio as 0, 1, 2 and marks every other fd close-on-exec. */
export function stdioOps(p: Pick<ChildPlan, "stdio">): Op[] {
  const ops = stdioInstallOps(p.stdio);
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
export function deathSignalOps(signal: number | undefined): Op[] {
  if (!signal) return [];
  return [op(SYS.prctl, "set the parent-death signal", [PR_SET_PDEATHSIG, signal, 0, 0, 0])];
}

/** One execve per candidate; failures are remembered and reported when all have failed. */
export function execOps(p: ChildPlan): Op[] {
  const argv = new StringArray(p.argv);
  const env = new StringArray(p.env);
  return p.candidates.map((path) =>
    op(SYS.execve, `execve ${path}`, [str(path), argv, env], IGNORE_ERROR)
  );
}
