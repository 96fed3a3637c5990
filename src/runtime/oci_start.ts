/**
 * Creating an OCI container from a bundle, as `runc create` does: the cgroup at
 * `linux.cgroupsPath` with the spec's limits, the mounts resolved in the rootfs, the first
 * process cloned into its new namespaces (joined ones by path) running the program of
 * oci_program.ts, its id maps and cgroup set by this process, then released. It reports
 * "ready" once it waits on the exec fifo; this process checks from outside that the command
 * exists in the container (so that `create` fails with "executable file not found" as runc
 * does), forwards the pty master to `--console-socket`, and leaves the process to its caller
 * (whose subreaper it becomes when this process exits).
 *
 * @module
 */
import { cloneProgram, CompiledProgram, decodeStatus } from "../../ffi/clone.ts";
import { sendFdToPath } from "../../ffi/fd_passing.ts";
import {
  fstatat,
  O_CLOEXEC,
  O_PATH,
  openat2,
  RESOLVE_IN_ROOT,
  S_IFMT,
  S_IFREG,
} from "../../ffi/fs.ts";
import { closeNamespaceFd, openNamespaceFile } from "../../ffi/namespace.ts";
import { closeFd, killPid, pipe, readFd, waitPid, writeFd } from "../../ffi/process.ts";
import { ptyNumber, type WindowSize } from "../../ffi/terminal.ts";
import type { Spec } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import { writeOomScoreAdj } from "./cgroup_extra.ts";
import type { Cgroup } from "./cgroups.ts";
import { startError } from "./container.ts";
import { cloneInPidNamespace } from "./namespaces.ts";
import { createOciCgroup, joinOciCgroup } from "./oci_cgroup.ts";
import { CLONE_FLAGS, idMapping, OciConfigError, resourceLimits, rootPath } from "./oci_config.ts";
import { prepareOci } from "./oci_plan.ts";
import { buildOciProgram, HOOKS_OP_INDEX, READY_OP_INDEX } from "./oci_program.ts";
import { receiveTerminal, terminalChannel } from "./tty.ts";
import { writeIdMaps } from "./userns.ts";
import { adjustOciProgram, dumpableUntil, ociPlanExtras } from "./oci_program_extras.ts";
import type { OciRootless } from "./oci_rootless.ts";
import { timeOffsetsOf, writeTimeOffsets } from "./oci_time.ts";

/** What `create` needs besides the bundle's config. */
export interface OciCreateOptions {
  readonly id: string;
  /** Absolute bundle directory. */
  readonly bundle: string;
  readonly spec: Spec;
  /** The container's state dir: `exec.fifo` is made there. */
  readonly stateDir: string;
  /** Unix socket the pty master is sent to (with `process.terminal`). */
  readonly consoleSocket?: string;
  /**
   * With `process.terminal` and no console socket: return the pty master to the caller
   * (a foreground `run` connects it to its own terminal).
   */
  readonly keepTerminal?: boolean;
  readonly noPivot?: boolean;
  readonly preserveFds?: number;
  /** Warnings (ignored capabilities, AppArmor/SELinux labels). */
  readonly warn: (message: string) => void;
  /**
   * Runs the prestart, createRuntime and createContainer hooks with the host pid of the
   * container's process, while it has its namespaces and mounts but has not pivoted yet.
   */
  readonly hooks?: (pid: number) => Promise<void>;
  /** An unprivileged runtime (oci_rootless.ts); absent: root. */
  readonly rootless?: OciRootless;
}

/** A created container, waiting on its exec fifo. */
export interface OciCreated {
  readonly pid: number;
  /** The cgroup path below the roots. */
  readonly cgroupPath: string;
  /** None when a rootless runtime had no cgroup to use. */
  readonly cgroup?: Cgroup;
  /** The pty master, with {@link OciCreateOptions.keepTerminal}; the caller closes it. */
  readonly terminal?: number;
}

const ENOENT = 2;
const EACCES = 13;

function lastCap(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/kernel/cap_last_cap").trim());
  } catch {
    return 40;
  }
}

/** The namespace file types setns takes, by spec name. */
const NS_WHAT: Record<string, string> = {
  network: "net",
  mount: "mnt",
  ipc: "ipc",
  uts: "uts",
  cgroup: "cgroup",
  pid: "pid",
  user: "user",
};

/** Creates the container; see the module doc. */
export async function createOciContainer(o: OciCreateOptions): Promise<OciCreated> {
  const { spec } = o;
  const rootfs = rootPath(o.bundle, spec);
  try {
    if (!Deno.statSync(rootfs).isDirectory) {
      throw new OciConfigError(`root.path ${rootfs} is not a directory`);
    }
  } catch (err) {
    if (err instanceof OciConfigError) throw err;
    throw new OciConfigError(`root.path ${rootfs}: ${(err as Error).message}`);
  }
  const p = spec.process;
  if (p.apparmorProfile) o.warn(`AppArmor profile ${p.apparmorProfile} ignored: not supported`);
  if (p.selinuxLabel) o.warn(`SELinux label ignored: not supported`);
  if (p.terminal && !o.consoleSocket && !o.keepTerminal) {
    throw new TsboxError("process.terminal is set: --console-socket is required");
  }
  const { base, ns, cgroupPath, security } = prepareOci(spec, rootfs, {
    id: o.id,
    lastCap: lastCap(),
    warn: o.warn,
  });
  const candidates = base.candidates;
  const open = new Set<number>();
  const track = (fd: number) => (open.add(fd), fd);
  const close = (fd: number) => {
    if (open.delete(fd)) closeFd(fd);
  };
  let cgroup: Cgroup | undefined;
  let pid = -1;
  try {
    if (!o.rootless?.noCgroup) cgroup = await createOciCgroup(cgroupPath, resourceLimits(spec));
    const [syncR, syncW] = pipe().map(track);
    const [statusR, statusW] = pipe().map(track);
    const hookPipe = o.hooks ? pipe().map(track) : undefined;
    const fifoDir = track(openNamespaceFile(o.stateDir, true));
    const joins = ns.joins.map((j) => ({
      fd: track(openNamespaceFile(j.path)),
      type: CLONE_FLAGS[j.type],
      what: NS_WHAT[j.type],
    }));
    const pidFd = ns.pidPath !== undefined ? track(openNamespaceFile(ns.pidPath)) : undefined;
    const channel = p.terminal ? terminalChannel() : undefined;
    if (channel) track(channel.parent), track(channel.child);
    const ops = buildOciProgram({
      ...base,
      noPivot: o.noPivot ?? false,
      joins,
      terminal: channel
        ? { socketFd: channel.child, size: windowSize(p.consoleSize), uid: p.user.uid }
        : undefined,
      syncFd: syncR,
      closeFds: [
        syncW,
        statusR,
        ...(channel ? [channel.parent] : []),
        ...(hookPipe ? [hookPipe[1]] : []),
      ],
      statusFd: statusW,
      hookSyncFd: hookPipe?.[0],
      ...ociPlanExtras(spec, security.plan.seccomp, o.rootless),
      fifoDirFd: fifoDir,
      preserveFds: o.preserveFds ?? 0,
    });
    adjustOciProgram(ops, { dumpableUntil: dumpableUntil(ns, o.rootless), newTime: ns.newTime });
    const program = CompiledProgram.compile(ops, statusW);
    try {
      pid = cloneInPidNamespace(pidFd, () => cloneProgram(program, ns.cloneFlags));
    } finally {
      program.free();
      security.free();
    }
    for (
      const fd of [
        syncR,
        statusW,
        fifoDir,
        ...joins.map((j) => j.fd),
        ...(pidFd !== undefined ? [pidFd] : []),
      ]
    ) {
      close(fd);
    }
    if (channel) close(channel.child);
    const mapping = idMapping(spec);
    if (ns.newUser && mapping) {
      if (o.rootless) await o.rootless.writeIdMaps(pid, mapping);
      else writeIdMaps(pid, mapping);
    }
    if (cgroup) joinOciCgroup(cgroup, pid);
    if (p.oomScoreAdj !== undefined && p.oomScoreAdj !== null) {
      await writeOomScoreAdj(pid, p.oomScoreAdj);
    }
    writeFd(syncW, new Uint8Array([1]));
    close(syncW);
    let failure = decodeStatus(await readFd(statusR, 16));
    if (hookPipe && failure?.opIndex === HOOKS_OP_INDEX) {
      await o.hooks!(pid);
      writeFd(hookPipe[1], new Uint8Array([1]));
      close(hookPipe[1]);
      failure = decodeStatus(await readFd(statusR, 16));
    }
    if (!failure) {
      throw new TsboxError("container init: ended without reporting (exec before start?)");
    }
    if (failure.opIndex !== READY_OP_INDEX) {
      await waitPid(pid);
      pid = -1;
      throw startError(failure, ops.map((op) => op.what), p.args[0]);
    }
    checkCommand(pid, p.args[0], candidates, p.cwd);
    if (ns.newTime) writeTimeOffsets(pid, timeOffsetsOf(spec));
    let terminal: number | undefined;
    if (channel) {
      const master = receiveTerminal(channel.parent);
      if (!o.consoleSocket) terminal = master;
      else {
        try {
          sendFdToPath(o.consoleSocket, master, `/dev/pts/${ptyNumber(master)}`);
        } finally {
          closeFd(master);
        }
      }
    }
    return { pid, cgroupPath: cgroup ? cgroupPath : "", cgroup, terminal };
  } catch (err) {
    if (pid > 0) {
      killPid(pid, 9);
      await waitPid(pid).catch(() => {});
    }
    await cgroup?.remove().catch(() => {});
    throw err;
  } finally {
    for (const fd of [...open]) close(fd);
  }
}

/**
 * The command must exist in the container before `create` succeeds (runc and crun check it
 * there too): looked up through the waiting process's root with every symlink resolved inside
 * it (RESOLVE_IN_ROOT), as execve will.
 */
function checkCommand(
  pid: number,
  argv0: string,
  candidates: readonly string[],
  cwd: string,
): void {
  let root: number;
  try {
    root = openNamespaceFile(`/proc/${pid}/root`, true);
  } catch {
    return; // the process is gone: start will report it
  }
  let denied = false;
  try {
    for (const c of candidates) {
      const path = c.startsWith("/") ? c : `${cwd.replace(/\/$/, "")}/${c}`;
      let fd: number;
      try {
        fd = openat2(root, path, O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
      } catch {
        continue;
      }
      try {
        const st = fstatat(fd, "", 0x1000 /* AT_EMPTY_PATH */);
        if ((st.mode & S_IFMT) === S_IFREG && (st.mode & 0o111) !== 0) return;
        denied = true;
      } finally {
        closeFd(fd);
      }
    }
  } finally {
    closeNamespaceFd(root);
  }
  throw startError({ opIndex: -1, errno: denied ? EACCES : ENOENT }, [], argv0);
}

/** `process.consoleSize` as the terminal code's window size. */
export function windowSize(
  c: { readonly height: number; readonly width: number } | undefined | null,
): WindowSize | undefined {
  return c ? { rows: c.height, cols: c.width } : undefined;
}
