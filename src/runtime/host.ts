/**
 * The host seam of a container start: every call that changes the host or needs root (the
 * state directory's owner and mode, the overlay mount, cgroups, namespace files, the clone of
 * PID 1 and its handshake pipes) goes through one {@link Host}. {@link linuxHost} makes the
 * calls through ffi/; src/runtime/host_fake.ts records them instead, so the host-side start
 * logic of container.ts, exec.ts and oci_start.ts (order, and what is undone when a step
 * fails) is unit-tested without root. youki's `Syscall` trait (LinuxSyscall, TestHelperSyscall) is the model.
 *
 * Paths inside the mounted rootfs (mount targets, /etc/passwd) are not in the seam: they are
 * plain files below a directory the caller owns, and resolving them is part of what is tested.
 *
 * @module
 */
import { cloneProgram, CompiledProgram, type Op, SharedWord } from "../../ffi/clone.ts";
import { sendFdToPath } from "../../ffi/fd_passing.ts";
import {
  AT_EMPTY_PATH,
  fstatat,
  O_CLOEXEC,
  O_PATH,
  O_RDONLY,
  openat2,
  RESOLVE_IN_ROOT,
} from "../../ffi/fs.ts";
import { ptyNumber } from "../../ffi/terminal.ts";
import { namespaceId, openNamespaceFile } from "../../ffi/namespace.ts";
import { mount } from "../../ffi/mount.ts";
import { openNamespace } from "../../ffi/net.ts";
import {
  closeFd,
  killPid,
  pipe,
  readFd,
  waitPid,
  type WaitStatus,
  writeFd,
} from "../../ffi/process.ts";
import { type Cgroup, createCgroup, type ResourceLimits } from "./cgroups.ts";
import { writeOomScoreAdj } from "./cgroup_extra.ts";
import { cloneInPidNamespace } from "./namespaces.ts";
import { mountOverlay, type OverlayDirs, unmountRootfs } from "./rootfs.ts";
import {
  currentIdentity,
  type HostIdentity,
  isRootless,
  type RootlessMapping,
  rootlessMapping,
  writeRootlessMaps,
} from "./rootless.ts";
import { receiveTerminal, terminalChannel } from "./tty.ts";
import { idmapLayers, type IdMapping, writeIdMaps } from "./userns.ts";
import { joinContainerCgroups } from "./cgroup_join.ts";
import { createOciCgroup, joinOciCgroup } from "./oci_cgroup.ts";
import { type HeldOverlay, holdOverlay } from "./overlay_holder.ts";
import { type TimeOffsets, writeTimeOffsets } from "./oci_time.ts";

/** Owner and mode of a host path. */
export interface HostStat {
  readonly mode: number | null;
  readonly uid: number | null;
  readonly gid: number | null;
}

/** Layers seen through idmapped mounts (`--userns-remap`). */
export interface IdmappedLayers {
  /** Lower entries relative to the idmap directory. */
  readonly entries: readonly string[];
  /** Detaches the idmapped mounts (the overlay keeps its own references). */
  detach(): void;
}

/** Files of the container's state directory (the rootfs' own files are plain paths). */
export interface HostFiles {
  /** mkdir -p with `mode`. */
  mkdir(path: string, mode: number): Promise<void>;
  stat(path: string): Promise<HostStat>;
  chmod(path: string, mode: number): Promise<void>;
  chown(path: string, uid: number | null, gid: number | null): Promise<void>;
  /** Writes one of the files bound onto /etc in the container (hostname, hosts, resolv.conf). */
  writeTextFile(path: string, content: string, mode: number): Promise<void>;
}

/** Mounts of the rootfs on the host. */
export interface HostMounts {
  /** Mounts the container's overlay on `dirs.target`. */
  mountOverlay(dirs: OverlayDirs): void;
  /** Mounts a tmpfs (the premounted /dev of a remapped container). */
  mountTmpfs(target: string, flags: number, data: string): void;
  /** Detaches the rootfs (and what is mounted below it); false when nothing was mounted. */
  unmount(target: string): boolean;
  /** Idmapped mounts of `layers` under `dir` for a user namespace `mapping`. */
  idmapLayers(
    lowerBase: string,
    layers: readonly string[],
    dir: string,
    mapping: IdMapping,
  ): Promise<IdmappedLayers>;
}

/** The container's cgroup and what is written for PID 1 outside it. */
export interface HostCgroups {
  /** Creates the container's cgroup with its limits written. */
  createCgroup(id: string, limits: ResourceLimits): Promise<Cgroup>;
  writeOomScoreAdj(pid: number, value: number): Promise<void>;
}

/** PID 1: namespace files, the clone, its handshake pipes, id maps, waiting and signals. */
export interface HostProcesses {
  /** Opens a namespace file (`/proc/PID/ns/KIND`), close-on-exec but inherited by the clone. */
  openNamespace(path: string): number;
  /**
   * Clones PID 1 running `ops` (its failure record goes to `statusFd`) with `flags`, into PID
   * namespace `pidnsFd` when given (this thread's pid_for_children, restored right after).
   */
  clone(ops: readonly Op[], statusFd: number, flags: number, pidnsFd?: number): number;
  /** Writes uid_map and gid_map of a child cloned with CLONE_NEWUSER. */
  writeIdMaps(pid: number, mapping: IdMapping): Promise<void>;
  /** A close-on-exec pipe: [read end, write end]. */
  pipe(): [number, number];
  closeFd(fd: number): void;
  writeFd(fd: number, data: Uint8Array): void;
  /** Reads up to `size` bytes; empty at end of file. */
  readFd(fd: number, size: number): Promise<Uint8Array>;
  waitPid(pid: number): Promise<WaitStatus>;
  /** Sends a signal; false when the process is gone. */
  killPid(pid: number, signal: number): boolean;
  /** The socket pair a `-t` child sends its pty master over. */
  terminalChannel(): { parent: number; child: number };
  /** Takes the pty master the child sent. */
  receiveTerminal(parent: number): number;
}

/** A start without root: the user's identity, the overlay holder, the id maps. */
export interface HostRootless {
  /** True when this process is not root (the rootless start path). */
  isRootless(): boolean;
  /** This user and the ids its containers map (its own and subordinate ones). */
  rootlessIdentity(): { who: HostIdentity; maps: RootlessMapping };
  /**
   * Mounts the overlay (`options`, lower entries relative to `lowerBase`) on `rootfs` in a
   * holder's user and mount namespaces, seen from here through its `view`.
   */
  holdOverlay(
    rootfs: string,
    overlay: { readonly lowerBase: string; readonly options: string },
    maps: RootlessMapping,
  ): Promise<HeldOverlay>;
  /** Writes the id maps of a child cloned with CLONE_NEWUSER (newuidmap, ...). */
  writeRootlessMaps(pid: number, maps: RootlessMapping): Promise<void>;
}

/** A word in memory shared with a clone (exec's forked child stores its pid there). */
export interface SharedPid {
  /** Its address, an argument of the child's program. */
  readonly address: bigint;
  /** The value the child stored; 0 when none. */
  read(): number;
  free(): void;
}

/** What an exec reads of a running container and does to enter it. */
export interface HostExec {
  /** The identity of `/proc/PID/ns/KIND` (its link text); NotFound once PID is gone. */
  namespaceId(pid: number | "self", kind: string): string;
  /** An O_PATH fd of PID's root directory, inherited by the clone. */
  openRoot(pid: number): number;
  /** A file of the container read below its root fd (symlinks resolved inside); "" if none. */
  readInRoot(root: number, path: string): string;
  /** The text of /proc/PID/status. */
  procStatus(pid: number): Promise<string>;
  /** Moves `pid` into each cgroup of `initPid` that differs from tsbox's own. */
  joinCgroupsOf(initPid: number, pid: number): Promise<void>;
  /** A shared word for the pid of exec's forked child. */
  sharedWord(): SharedPid;
  /** The highest capability number of the kernel. */
  lastCap(): number;
}

/**
 * What `tsbox runc create` adds (oci_start.ts): the cgroup at the spec's cgroupsPath, written
 * with synchronous calls (oci_cgroup.ts says why), the state dir the process opens exec.fifo
 * in, the command looked up in its root, time offsets, and the pty master sent to the caller.
 */
export interface HostOci {
  /** Creates the cgroup at `path` below the cgroup roots with `limits` written. */
  createOciCgroup(path: string, limits: ResourceLimits): Promise<Cgroup>;
  /** Moves `pid` into a cgroup {@link createOciCgroup} made. */
  joinOciCgroup(cgroup: Cgroup, pid: number): void;
  /** An O_PATH fd of a directory, close-on-exec but inherited by the clone. */
  openDirectory(path: string): number;
  /**
   * st_mode of `path` below the root fd `root`, every symlink resolved inside it (as execve in
   * the container resolves it); undefined when there is nothing there.
   */
  modeInRoot(root: number, path: string): number | undefined;
  /** Writes the offsets of the time namespace `pid` will enter at execve. */
  writeTimeOffsets(pid: number, offsets: TimeOffsets): void;
  /** Sends the pty master to the unix socket at `socketPath` (SCM_RIGHTS) and closes it. */
  sendTerminal(socketPath: string, master: number): void;
}

/** The host-side calls of a container start, stop and wait, by area. */
export interface Host
  extends HostFiles, HostMounts, HostCgroups, HostProcesses, HostRootless, HostExec, HostOci {}

function readInRoot(root: number, path: string): string {
  let fd: number;
  try {
    fd = openat2(root, path, O_RDONLY | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
  } catch {
    return "";
  }
  try {
    return Deno.readTextFileSync(`/proc/self/fd/${fd}`);
  } catch {
    return "";
  } finally {
    closeFd(fd);
  }
}

function modeInRoot(root: number, path: string): number | undefined {
  let fd: number;
  try {
    fd = openat2(root, path, O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
  } catch {
    return undefined;
  }
  try {
    return fstatat(fd, "", AT_EMPTY_PATH).mode;
  } finally {
    closeFd(fd);
  }
}

function sendTerminal(socketPath: string, master: number): void {
  try {
    sendFdToPath(socketPath, master, `/dev/pts/${ptyNumber(master)}`);
  } finally {
    closeFd(master);
  }
}

function lastCap(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/kernel/cap_last_cap").trim());
  } catch {
    return 40;
  }
}

/** The real host: each call made through ffi/ (or Deno's file APIs). */
export const linuxHost: Host = {
  isRootless: () => isRootless(),
  rootlessIdentity: () => {
    const who = currentIdentity();
    return { who, maps: rootlessMapping(who) };
  },
  holdOverlay: (rootfs, overlay, maps) => holdOverlay(linuxHost, rootfs, overlay, maps),
  writeRootlessMaps,
  mkdir: (path, mode) => Deno.mkdir(path, { recursive: true, mode }),
  stat: async (path) => {
    const info = await Deno.stat(path);
    return { mode: info.mode, uid: info.uid, gid: info.gid };
  },
  chmod: (path, mode) => Deno.chmod(path, mode),
  chown: (path, uid, gid) => Deno.chown(path, uid, gid),
  writeTextFile: (path, content, mode) => Deno.writeTextFile(path, content, { mode }),
  mountOverlay,
  mountTmpfs: (target, flags, data) => mount("tmpfs", target, "tmpfs", flags, data),
  unmount: unmountRootfs,
  idmapLayers,
  createCgroup: (id, limits) => createCgroup(id, limits),
  writeOomScoreAdj,
  openNamespace,
  clone(ops, statusFd, flags, pidnsFd) {
    const program = CompiledProgram.compile([...ops], statusFd);
    try {
      return cloneInPidNamespace(pidnsFd, () => cloneProgram(program, flags));
    } finally {
      program.free();
    }
  },
  writeIdMaps: (pid, mapping) => Promise.resolve(writeIdMaps(pid, mapping)),
  pipe: () => pipe(),
  closeFd,
  writeFd,
  readFd,
  waitPid,
  killPid,
  terminalChannel,
  receiveTerminal,
  namespaceId: (pid, kind) => namespaceId(pid, kind),
  openRoot: (pid) => openNamespaceFile(`/proc/${pid}/root`, true),
  readInRoot,
  procStatus: (pid) => Deno.readTextFile(`/proc/${pid}/status`),
  joinCgroupsOf: joinContainerCgroups,
  sharedWord: () => new SharedWord(),
  lastCap,
  createOciCgroup: (path, limits) => createOciCgroup(path, limits),
  joinOciCgroup,
  openDirectory: (path) => openNamespaceFile(path, true),
  modeInRoot,
  writeTimeOffsets,
  sendTerminal,
};
