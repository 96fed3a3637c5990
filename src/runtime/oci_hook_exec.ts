/**
 * One OCI hook process, where the runtime-spec says it runs: in the runtime's namespaces
 * (prestart, createRuntime, poststart, poststop) or in the container's (createContainer,
 * startContainer). Either way it is a clone running a syscall program (ffi/clone.ts), not
 * `Deno.Command`: that is how a process enters a container's user and mount namespaces from a
 * threaded runtime (design.md), and it lets `args[0]` be what the hook asked for (execve's
 * argv, which Deno.Command cannot set).
 *
 * In the container the program is exec's (exec.ts buildExecProgram, the one `tsbox exec` and
 * `tsbox runc exec` run): setns into each namespace of the
 * container's process that differs from the runtime's, a fork into its PID namespace, then
 * fchdir+chroot to that process's root. Before pivot_root (createContainer) that root is the
 * mount namespace's own `/`, the host's tree as the container's mount namespace sees it, so the
 * hook's path resolves there, as runc's init resolves it; after (startContainer) it is the
 * container's root. The hook is moved into the container's cgroups, as a child of runc's init
 * would be.
 *
 * stdin is the state JSON (an unlinked file, so that a large state never blocks the runtime
 * on a full pipe); stdout and stderr are captured for the error message; the environment is
 * exactly the hook's `env`. A `timeout` kills the hook with SIGKILL.
 *
 * @module
 */
import { type Op, str } from "../../ffi/clone.ts";
import { AT_FDCWD, O_CLOEXEC, O_RDONLY, openat } from "../../ffi/fs.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { closeFd, pipe, readAvailable, waitReadable } from "../../ffi/process.ts";
import type { SeccompProfile } from "./seccomp.ts";
import { type Host, linuxHost, type SharedPid } from "./host.ts";
import { buildExecProgram, dumpableOps, openContainer } from "./exec.ts";
import { launch } from "./launch.ts";
import {
  type ChildPlan,
  closeOtherFdsOps,
  dockerCapabilitySets,
  execOps,
  signalOps,
  stdioOps,
  syncOps,
} from "./program.ts";
import { prepareSecurity, type RlimitSetting } from "./security.ts";

/** The hook as config.json gives it. */
export interface HookCommand {
  readonly path: string;
  readonly args?: readonly string[];
  readonly env?: readonly string[];
  /** Seconds; none or 0: no limit. */
  readonly timeout?: number;
}

/** The identity and confinement of a hook run inside a container. */
export interface InContainer {
  /** Host pid of the container's process: its namespaces, root and cgroups are entered. */
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  /** setgroups is denied in its user namespace (a rootless self mapping): skipped. */
  readonly setgroupsDenied?: boolean;
  /** Capabilities kept (bounding, effective, permitted). */
  readonly capabilities: readonly number[];
  /** The container's seccomp profile; none: unconfined. */
  readonly seccomp?: SeccompProfile;
  readonly noNewPrivileges?: boolean;
  /** The container process's rlimits (the hook runs as that process would). */
  readonly rlimits?: readonly RlimitSetting[];
}

/** Where a hook runs. */
export interface HookPlace {
  /** The container's namespaces; absent: the runtime's. */
  readonly container?: InContainer;
  /** Working directory (in the container: below its root). */
  readonly cwd: string;
}

/** How a hook ended. */
export interface HookOutcome {
  /** Exit status, or undefined when a signal ended it. */
  readonly exitCode?: number;
  readonly signal?: number;
  /** Killed after its timeout. */
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Output kept of each stream: enough for an error message, bounded against a chatty hook. */
const KEEP = 64 << 10;
const ENOMEM = 12;

/** An fd reading `text` from its start: an unlinked temp file. */
function stdinFile(text: string): number {
  const path = Deno.makeTempFileSync({ prefix: "tsbox-hook-state-" });
  try {
    Deno.writeTextFileSync(path, text);
    return openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  } finally {
    Deno.removeSync(path);
  }
}

/**
 * Reads `fd` until end of file, or until `ended()` and nothing more is there: a hook that left
 * a background child holding its stdout must not hold the runtime forever.
 */
async function drain(fd: number, ended: () => boolean): Promise<string> {
  const chunks: Uint8Array[] = [];
  let kept = 0;
  const buf = new Uint8Array(8192);
  for (;;) {
    if (!(await waitReadable(fd, 100))) {
      if (ended()) break;
      continue;
    }
    let n: number;
    try {
      n = readAvailable(fd, buf);
    } catch {
      break;
    }
    if (n === 0) break;
    if (kept < KEEP) {
      chunks.push(buf.slice(0, Math.min(n, KEEP - kept)));
      kept += n;
    }
  }
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) out.set(c, at), at += c.length;
  return new TextDecoder().decode(out);
}

/** The fields the shared builders (sync, identity, capabilities, stdio, exec) read. */
type ReadFields =
  | "uid"
  | "gid"
  | "groups"
  | "setgroupsDenied"
  | "caps"
  | "lastCap"
  | "syncFd"
  | "closeFds"
  | "stdio"
  | "argv"
  | "env"
  | "candidates";

/** A plan with only {@link ReadFields}: the hook needs none of a container start's. */
function plan(
  fds: { syncFd: number; closeFds: readonly number[] },
  hook: HookCommand,
  stdio: readonly number[],
  c: InContainer | undefined,
  lastCap: number,
): ChildPlan {
  const read: Pick<ChildPlan, ReadFields> = {
    uid: c?.uid ?? 0,
    gid: c?.gid ?? 0,
    groups: c?.groups ?? [],
    setgroupsDenied: c?.setgroupsDenied,
    caps: dockerCapabilitySets(c?.capabilities ?? []),
    lastCap,
    syncFd: fds.syncFd,
    closeFds: fds.closeFds,
    stdio,
    argv: hook.args?.length ? hook.args : [hook.path],
    env: hook.env ?? [],
    candidates: [hook.path],
  };
  return read as ChildPlan;
}

function op(nr: number, what: string, args: Op["args"]): Op {
  return { nr, args, flags: 0, what };
}

/** Runs `hook` at `place` with `state` on its stdin and waits for it (or its timeout). */
export async function runHookProcess(
  hook: HookCommand,
  state: string,
  place: HookPlace,
  host: Host = linuxHost,
): Promise<HookOutcome> {
  const owned: number[] = [];
  const own = (fd: number) => (owned.push(fd), fd);
  const c = place.container;
  const target = c ? openContainer(c.pid, host) : undefined;
  const security = c
    ? prepareSecurity(
      { seccomp: c.seccomp ?? "unconfined", noNewPrivileges: c.noNewPrivileges },
      c.capabilities,
    )
    : undefined;
  let shared: SharedPid | undefined;
  let outR = -1, errR = -1;
  try {
    const stdin = own(stdinFile(state));
    const [oR, oW] = pipe().map(own);
    const [eR, eW] = pipe().map(own);
    outR = oR, errR = eR;
    if (target?.pidNamespace !== undefined) shared = host.sharedWord();
    const pidFork = shared && target?.pidNamespace !== undefined
      ? { fd: target.pidNamespace, childPidAddress: shared.address }
      : undefined;
    const lastCap = host.lastCap();
    const sharedWord = shared;
    const launched = await launch(host, {
      argv0: hook.path,
      tty: false,
      flags: 0,
      program: (fds) => {
        const p = plan(fds, hook, [stdin, oW, eW], c, lastCap);
        const keep = [fds.statusFd, stdin, oW, eW];
        if (!target) {
          return [
            ...dumpableOps(),
            ...signalOps(),
            ...syncOps(p),
            ...closeOtherFdsOps(keep),
            op(SYS.chdir, `chdir ${place.cwd}`, [str(place.cwd)]),
            ...stdioOps(p),
            ...execOps(p),
          ];
        }
        const sec = security!.plan;
        return buildExecProgram({
          ...p,
          keepFds: [
            ...keep,
            target.root,
            ...target.joins.map((j) => j.fd),
            ...(pidFork ? [pidFork.fd] : []),
          ],
          joins: target.joins,
          pidFork,
          root: target.root,
          cwd: place.cwd,
          // The container process's own rlimits, not docker's defaults.
          security: { ...sec, rlimits: c!.rlimits ?? [] },
        });
      },
      cloned: () => {
        security?.free();
        target?.close();
      },
      beforeRelease: c ? (pid) => host.joinCgroupsOf(c.pid, pid) : undefined,
      settle: sharedWord ? () => Promise.resolve(sharedWord.read() || -1) : undefined,
      failure: (failure, ops) =>
        ops[failure.opIndex]?.nr === SYS.clone && failure.errno === ENOMEM
          ? new Error(`the container's process ${c?.pid} is gone`)
          : undefined,
    });
    // Only the hook holds the write ends now: their end of file is the hook's.
    for (const fd of [stdin, oW, eW]) closeFd(fd), owned.splice(owned.indexOf(fd), 1);
    let ended = false;
    const stdout = drain(outR, () => ended);
    const stderr = drain(errR, () => ended);
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (hook.timeout && hook.timeout > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        host.killPid(launched.pid, 9);
      }, hook.timeout * 1000);
    }
    const status = await host.waitPid(launched.pid).finally(() => clearTimeout(timer));
    ended = true;
    return {
      exitCode: status.exitCode,
      signal: status.signal,
      timedOut,
      stdout: await stdout,
      stderr: await stderr,
    };
  } finally {
    for (const fd of owned) closeFd(fd);
    target?.close();
    security?.free();
    shared?.free();
  }
}
