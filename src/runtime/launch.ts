/**
 * The launch handshake every cloned process goes through (a container's PID 1, an exec'd
 * process, the process `tsbox runc create` leaves waiting): two close-on-exec pipes, the clone
 * of a child running its syscall program, the host-side steps while the child waits on the sync
 * pipe (id maps, cgroups, hooks), the release byte, and the status pipe's answer: empty once
 * execve succeeded, or the failing op and its errno, mapped to docker's errors. Whatever fails,
 * the child is killed and reaped and every fd of the handshake closed. Every call goes through
 * the {@link Host} seam.
 *
 * Two records on the status pipe are not failures: {@link PAUSE_RECORD}, a child paused in its
 * program (an OCI container's mounts made, before pivot_root) until a byte on its pause pipe,
 * and {@link READY_RECORD}, a held child set up and blocked until someone else releases it (on
 * the exec fifo, until `runc start`).
 *
 * @module
 */
import { decodeStatus, type Op, type ProgramFailure } from "../../ffi/clone.ts";
import { TsboxError } from "../errors.ts";
import type { Host } from "./host.ts";
import { startError } from "./start_error.ts";

/** The status record of a held child that is set up and waits (see {@link LaunchRequest.hold}). */
export const READY_RECORD = -2;
/** The status record of a paused child (see {@link LaunchRequest.paused}). */
export const PAUSE_RECORD = -3;

/** The handshake's fds a child program is built around. */
export interface HandshakeFds {
  /** The child blocks reading it until released (program.ts syncOps). */
  readonly syncFd: number;
  /** Parent-side ends the child closes first. */
  readonly closeFds: readonly number[];
  /** The status pipe's write end: close-on-exec, the child's failure record goes there. */
  readonly statusFd: number;
  /** With `tty`: the child's end of the socket pair it sends its pty master over (tty.ts). */
  readonly terminalSocket?: number;
  /**
   * With {@link LaunchRequest.paused}: after writing {@link PAUSE_RECORD} the child reads one
   * byte from it before it goes on.
   */
  readonly pauseFd?: number;
}

/** What one launch clones and does while the child is held. */
export interface LaunchRequest {
  /** The command's argv[0], for the exec errors (126/127). */
  readonly argv0: string;
  /** `-t`: open the socket pair the child sends its pty master over. */
  readonly tty: boolean;
  /** CLONE_* flags of the clone. */
  readonly flags: number;
  /** A PID namespace to clone into (a joined `--pid`), see {@link Host.clone}. */
  readonly pidNamespaceFd?: number;
  /** The child's program around the handshake fds. */
  program(fds: HandshakeFds): readonly Op[];
  /** Called once the clone was made (or failed): frees native memory the program points into. */
  cloned?(): void;
  /** Right after the clone (the id maps of a new user namespace). */
  afterClone?(pid: number): Promise<void>;
  /** The child is in its namespaces, still held: cgroups, oom score, the caller's hook. */
  beforeRelease?(pid: number): Promise<void>;
  /**
   * Run while the released child is paused: it reported {@link PAUSE_RECORD} and waits for a
   * byte on {@link HandshakeFds.pauseFd}, written once this resolves (OCI hooks that run before
   * pivot_root). Without it, a pause record is a failure.
   */
  paused?(pid: number): Promise<void>;
  /**
   * The child does not execve once released: it reports {@link READY_RECORD} and blocks until
   * released otherwise (`runc start` opening the exec fifo); the launch returns then, with the
   * child waiting. A child that ends its program without that record fails the launch.
   */
  readonly hold?: boolean;
  /**
   * Once the status pipe has answered: the pid of the process that runs the command (exec forks
   * once more into the container's PID namespace), or -1 when there is none. The cloned pid
   * when absent.
   */
  settle?(cloned: number): Promise<number>;
  /** A failure record's error when it is not docker's usual one ({@link startError}). */
  failure?(failure: ProgramFailure, ops: readonly Op[]): Error | undefined;
  /** Called when the launch fails after the clone (the caller's hook may have run). */
  abandoned?(): Promise<void>;
}

/** The started process: its host pid, and the pty master with `tty`. */
export interface Launched {
  readonly pid: number;
  readonly terminal?: number;
}

/**
 * Clones the child of `req` and runs the handshake on `host`; returns once its execve
 * succeeded. On failure nothing is left: the child killed and reaped, every fd closed.
 */
export async function launch(host: Host, req: LaunchRequest): Promise<Launched> {
  const open = new Set<number>();
  const close = (fd: number) => {
    if (open.delete(fd)) host.closeFd(fd);
  };
  const opened = (fd: number) => (open.add(fd), fd);
  let pid = -1;
  let clonedAny = false;
  try {
    const [syncR, syncW] = host.pipe().map(opened);
    const [statusR, statusW] = host.pipe().map(opened);
    const channel = req.tty ? host.terminalChannel() : undefined;
    if (channel) open.add(channel.parent).add(channel.child);
    const [pauseR, pauseW] = req.paused ? host.pipe().map(opened) : [];
    let ops: readonly Op[] = [];
    try {
      ops = req.program({
        syncFd: syncR,
        closeFds: [
          syncW,
          statusR,
          ...(channel ? [channel.parent] : []),
          ...(pauseW !== undefined ? [pauseW] : []),
        ],
        statusFd: statusW,
        terminalSocket: channel?.child,
        pauseFd: pauseR,
      });
      pid = host.clone(ops, statusW, req.flags, req.pidNamespaceFd);
      clonedAny = true;
    } finally {
      req.cloned?.();
    }
    await req.afterClone?.(pid);
    close(syncR);
    close(statusW);
    if (channel) close(channel.child);
    if (pauseR !== undefined) close(pauseR);
    await req.beforeRelease?.(pid);
    host.writeFd(syncW, new Uint8Array([1]));
    close(syncW);
    let failure = decodeStatus(await host.readFd(statusR, 16));
    if (req.paused && pauseW !== undefined && failure?.opIndex === PAUSE_RECORD) {
      await req.paused(pid);
      host.writeFd(pauseW, new Uint8Array([1]));
      close(pauseW);
      failure = decodeStatus(await host.readFd(statusR, 16));
    }
    if (req.hold) {
      if (!failure) {
        throw new TsboxError(`${req.argv0}: ended without reporting (exec before start?)`);
      }
      if (failure.opIndex === READY_RECORD) failure = undefined;
    }
    if (req.settle) {
      // The cloned process has ended (its status pipe closed): what runs is its child.
      const cloned = pid;
      pid = -1;
      await host.waitPid(cloned);
      pid = await req.settle(cloned);
    }
    if (failure) {
      if (pid > 0) await host.waitPid(pid);
      pid = -1;
      throw req.failure?.(failure, ops) ?? startError(failure, ops.map((o) => o.what), req.argv0);
    }
    if (pid <= 0) throw new TsboxError(`${req.argv0}: the started process is missing`);
    return { pid, terminal: channel ? host.receiveTerminal(channel.parent) : undefined };
  } catch (err) {
    if (pid > 0) {
      // Blocked on the sync pipe or somewhere in its program: end it and reap it.
      host.killPid(pid, 9);
      await host.waitPid(pid).catch(() => {});
    }
    if (clonedAny) await req.abandoned?.().catch(() => {});
    throw err;
  } finally {
    for (const fd of [...open]) close(fd);
  }
}
