/**
 * Creating an OCI container from a bundle, as `runc create` does: the cgroup at
 * `linux.cgroupsPath` with the spec's limits, the mounts resolved in the rootfs, the first
 * process cloned into its new namespaces (joined ones by path) running the program of
 * oci_program.ts, its id maps and cgroup set by this process, then released, all through the
 * one handshake of launch.ts and the {@link Host} seam. The process pauses after its mounts,
 * before pivot_root, while the prestart, createRuntime and createContainer hooks run (the
 * launch's pause), and reports "ready" once it waits on the exec fifo (a held launch); this
 * process checks from outside that the command exists in the container (so that `create`
 * fails with "executable file not found" as runc does), forwards the pty master to
 * `--console-socket`, and leaves the process to its caller (whose subreaper it becomes when
 * this process exits).
 *
 * @module
 */
import { S_IFMT, S_IFREG } from "../../ffi/fs.ts";
import type { WindowSize } from "../../ffi/terminal.ts";
import type { Spec } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import type { Cgroup } from "./cgroups.ts";
import { type Host, linuxHost } from "./host.ts";
import { launch, type Launched } from "./launch.ts";
import { CLONE_FLAGS, idMapping, OciConfigError, resourceLimits, rootPath } from "./oci_config.ts";
import { prepareOci } from "./oci_plan.ts";
import { buildOciProgram } from "./oci_program.ts";
import { adjustOciProgram, dumpableUntil, ociPlanExtras } from "./oci_program_extras.ts";
import type { OciRootless } from "./oci_rootless.ts";
import { timeOffsetsOf } from "./oci_time.ts";
import { startError } from "./start_error.ts";

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

/**
 * Creates the container; see the module doc. `host` makes the host-side calls (tests pass a
 * recording fake). When a step fails, what the steps before it did is undone: the process
 * killed and reaped, the cgroup removed, every fd closed.
 */
export async function createOciContainer(
  o: OciCreateOptions,
  host: Host = linuxHost,
): Promise<OciCreated> {
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
    lastCap: host.lastCap(),
    warn: o.warn,
  });
  // Opened here, inherited by the clone, closed once it is made: the exec fifo's directory and
  // the namespaces joined by path.
  const open = new Set<number>();
  const opened = (fd: number) => (open.add(fd), fd);
  const closeOpen = () => {
    for (const fd of [...open]) open.delete(fd), host.closeFd(fd);
  };
  let freed = false;
  const cloned = () => {
    if (!freed) security.free();
    freed = true;
    closeOpen();
  };
  let cgroup: Cgroup | undefined;
  let launched: Launched | undefined;
  try {
    if (!o.rootless?.noCgroup) {
      cgroup = await host.createOciCgroup(cgroupPath, resourceLimits(spec));
    }
    const fifoDir = opened(host.openDirectory(o.stateDir));
    const joins = ns.joins.map((j) => ({
      fd: opened(host.openNamespace(j.path)),
      type: CLONE_FLAGS[j.type],
      what: NS_WHAT[j.type],
    }));
    const pidFd = ns.pidPath !== undefined ? opened(host.openNamespace(ns.pidPath)) : undefined;
    const mapping = idMapping(spec);
    const oomScoreAdj = p.oomScoreAdj;
    const rootless = o.rootless;
    launched = await launch(host, {
      argv0: p.args[0],
      tty: p.terminal === true,
      flags: ns.cloneFlags,
      pidNamespaceFd: pidFd,
      hold: true,
      program: (fds) => {
        const ops = buildOciProgram({
          ...base,
          noPivot: o.noPivot ?? false,
          joins,
          terminal: fds.terminalSocket !== undefined
            ? { socketFd: fds.terminalSocket, size: windowSize(p.consoleSize), uid: p.user.uid }
            : undefined,
          syncFd: fds.syncFd,
          closeFds: fds.closeFds,
          statusFd: fds.statusFd,
          hookSyncFd: fds.pauseFd,
          ...ociPlanExtras(spec, security.plan.seccomp, rootless),
          fifoDirFd: fifoDir,
          preserveFds: o.preserveFds ?? 0,
        });
        adjustOciProgram(ops, { dumpableUntil: dumpableUntil(ns, rootless), newTime: ns.newTime });
        return ops;
      },
      cloned,
      afterClone: ns.newUser && mapping
        ? (pid) => rootless ? rootless.writeIdMaps(pid, mapping) : host.writeIdMaps(pid, mapping)
        : undefined,
      beforeRelease: async (pid) => {
        if (cgroup) host.joinOciCgroup(cgroup, pid);
        if (oomScoreAdj !== undefined && oomScoreAdj !== null) {
          await host.writeOomScoreAdj(pid, oomScoreAdj);
        }
      },
      // As runc: after the namespaces and mounts exist, before pivot_root.
      paused: o.hooks,
    });
    const { pid } = launched;
    checkCommand(host, pid, p.args[0], base.candidates, p.cwd);
    const offsets = ns.newTime ? timeOffsetsOf(spec) : undefined;
    if (offsets) host.writeTimeOffsets(pid, offsets);
    let terminal = launched.terminal;
    if (terminal !== undefined && o.consoleSocket) {
      const master = terminal;
      terminal = undefined;
      host.sendTerminal(o.consoleSocket, master);
    }
    return { pid, cgroupPath: cgroup ? cgroupPath : "", cgroup, terminal };
  } catch (err) {
    if (launched) {
      if (launched.terminal !== undefined) host.closeFd(launched.terminal);
      host.killPid(launched.pid, 9);
      await host.waitPid(launched.pid).catch(() => {});
    }
    await cgroup?.remove().catch(() => {});
    throw err;
  } finally {
    cloned();
  }
}

/**
 * The command must exist in the container before `create` succeeds (runc and crun check it
 * there too): looked up through the waiting process's root with every symlink resolved inside
 * it (RESOLVE_IN_ROOT), as execve will.
 */
function checkCommand(
  host: Host,
  pid: number,
  argv0: string,
  candidates: readonly string[],
  cwd: string,
): void {
  let root: number;
  try {
    root = host.openRoot(pid);
  } catch {
    return; // the process is gone: start will report it
  }
  let denied = false;
  try {
    for (const c of candidates) {
      const path = c.startsWith("/") ? c : `${cwd.replace(/\/$/, "")}/${c}`;
      const mode = host.modeInRoot(root, path);
      if (mode === undefined) continue;
      if ((mode & S_IFMT) === S_IFREG && (mode & 0o111) !== 0) return;
      denied = true;
    }
  } finally {
    host.closeFd(root);
  }
  throw startError({ opIndex: -1, errno: denied ? EACCES : ENOENT }, [], argv0);
}

/** `process.consoleSize` as the terminal code's window size. */
export function windowSize(
  c: { readonly height: number; readonly width: number } | undefined | null,
): WindowSize | undefined {
  return c ? { rows: c.height, cols: c.width } : undefined;
}
