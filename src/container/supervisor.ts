/**
 * The supervisor of one container: starts it from its recorded config, writes its output to
 * the json-file log (and to the terminal when attached), records every state change, applies
 * the restart policy with backoff, and tears down when it ends. `run -d` runs it in a detached
 * process of its own; foreground `run` and `start -a` run it in-process.
 *
 * @module
 */
import { closeFd, killPid, pipe } from "../../ffi/process.ts";
import { lazyImport } from "../lazy.ts";
import { TsboxError } from "../errors.ts";
import { Container, type ContainerExit } from "../runtime/container.ts";
import type { Store } from "../store/mod.ts";
import {
  type AttachServer,
  attachTee,
  awaitAttachFirst,
  openAttachServer,
  ptyTarget,
  StdinPipe,
} from "./attach.ts";
import { cgroupOwner, removeFreezer } from "./cgroup.ts";
import { LogWriter, pumpToLog } from "./logs.ts";
import type { PortConfig } from "../net/port_views.ts";
import { networkHooks } from "./networking.ts";
import { superviseTerminal, userWindowSize } from "../runtime/tty.ts";
import { containerDir, logPath } from "./paths.ts";
import { probeCommand, startingHealth } from "./health.ts";
import { startTime } from "./proc.ts";
import { startBundle } from "./bundle.ts";
import { mountVolumesOf } from "./volumes.ts";
import { containerEvent } from "../events/log.ts";
import { type ContainerRecord, getContainer, isActive, updateContainer } from "./state.ts";

/** Options of {@link supervise}. */
export interface SuperviseOptions {
  /** Copy the container's output to this process's stdout/stderr, and pass stdin with `-i`. */
  readonly attach?: boolean;
  /** `run -a`: the streams attached (all of them when absent). */
  readonly streams?: {
    readonly stdin: boolean;
    readonly stdout: boolean;
    readonly stderr: boolean;
  };
  /** Called once: after the first start succeeded, or with the error that stopped it. */
  readonly onStarted?: (error?: Error) => void;
  /** Called with PID 1's host pid on every start (signal forwarding). */
  readonly onPid?: (pid: number) => void;
  /** Port publishing and similar: run around every start of the container's process. */
  readonly beforeRelease?: (record: ContainerRecord, pid: number) => Promise<void>;
  readonly afterExit?: (record: ContainerRecord) => Promise<void>;
  /** Claim only a container no user has stopped (a recovery, recover.ts: a `stop` wins). */
  readonly unlessStopped?: boolean;
  /** Warnings (no attach socket, rootless limits); none are printed when absent. */
  readonly warn?: (message: string) => void;
}

/** What the supervisor saw at the end. */
export interface SupervisorResult {
  /** The last exit code (docker's: 128+N for signal N). */
  readonly exitCode: number;
  /** The container was removed (`--rm`, or `rm -f` while it ran). */
  readonly removed: boolean;
}

/** The container is already being supervised by a live process. */
export class AlreadyRunningError extends TsboxError {
  constructor(readonly containerId: string) {
    super(`container ${containerId.slice(0, 12)} is already running`);
    this.name = "AlreadyRunningError";
  }
}

const SIGKILL = 9;
const BACKOFF_START_MS = 100;
const BACKOFF_MAX_MS = 60_000;
/** A run this long resets the backoff, as docker's restart manager does. */
const BACKOFF_RESET_MS = 10_000;

/** Whether the policy restarts after `exitCode`, given the restarts so far. */
export function shouldRestart(c: ContainerRecord, exitCode: number): boolean {
  if (c.stopRequested) return false;
  const p = c.config.restart;
  switch (p.name) {
    case "always":
    case "unless-stopped":
      return true;
    case "on-failure":
      return exitCode !== 0 && (p.maxRetries === 0 || c.restartCount < p.maxRetries);
    default:
      return false;
  }
}

/**
 * Whether `cfg` may publish ports (net/publish.ts's mappingsFor is empty without `-p` or `-P`):
 * only then is the port code loaded.
 */
function mayPublish(cfg: PortConfig): boolean {
  return (cfg.ports?.length ?? 0) > 0 || cfg.publishAll === true;
}

/** Opens a pipe's read end as a Deno file, so reads return what is there (not a full buffer). */
function readablePipe(fd: number): Deno.FsFile {
  const file = Deno.openSync(`/proc/self/fd/${fd}`, { read: true });
  closeFd(fd);
  return file;
}

/**
 * Runs container `id` (state created or exited) until it ends for good. Only one supervisor
 * may hold a container: the claim is a guarded update of the row.
 */
export async function supervise(
  store: Store,
  id: string,
  o: SuperviseOptions = {},
): Promise<SupervisorResult> {
  const me = Deno.pid;
  const myStart = startTime(me);
  const claimed = updateContainer(
    store,
    id,
    { supervisorPid: me, supervisorStart: myStart ?? null, stopRequested: false, error: null },
    (c) =>
      !isActive(c.state) && c.supervisorPid === undefined && !(o.unlessStopped && c.stopRequested),
  );
  if (!claimed) {
    const err = getContainer(store, id)
      ? new AlreadyRunningError(id)
      : new TsboxError(`No such container: ${id}`);
    o.onStarted?.(err);
    throw err;
  }
  let record = claimed;
  const log = await LogWriter.open(logPath(store.root, id), claimed.config.log);
  // `attach` and `start -a` reach the container through this socket while it is supervised.
  const attach = openAttachServer(store.root, id, o.warn);
  let first = true;
  let backoff = BACKOFF_START_MS;
  let exitCode = 0;
  try {
    for (;;) {
      const started = Date.now();
      let run: { exit: ContainerExit; pid: number };
      try {
        run = await startAndWait(store, record, log, o, () => {
          if (first) o.onStarted?.();
          first = false;
        }, attach);
      } catch (err) {
        const code = err instanceof TsboxError ? err.exitCode : 125;
        try {
          updateContainer(store, id, {
            state: first ? "created" : "exited",
            error: (err as Error).message,
            exitCode: code,
            finishedAt: first ? null : Date.now(),
            pid: null,
            pidStart: null,
          });
        } catch {
          // The database cannot be written (a full disk, say): the start's own error is the
          // cause to report; the next command that reads the row sees this supervisor gone.
        }
        if (first) o.onStarted?.(err as Error);
        throw err;
      }
      exitCode = run.exit.exitCode;
      // docker's `oom` comes before the `die` of a container the kernel's OOM killer ended.
      if (run.exit.oomKilled) containerEvent(store.root, "oom", record);
      containerEvent(store.root, "die", record, { exitCode: String(exitCode) });
      await attach?.endRun(exitCode);
      const after = updateContainer(store, id, {
        state: "exited",
        exitCode,
        oomKilled: run.exit.oomKilled,
        finishedAt: Date.now(),
        pid: null,
        pidStart: null,
      });
      if (!after) return { exitCode, removed: true };
      record = after;
      if (!shouldRestart(record, exitCode)) break;
      backoff = Date.now() - started > BACKOFF_RESET_MS
        ? BACKOFF_START_MS
        : Math.min(backoff * 2, BACKOFF_MAX_MS);
      const restarting = updateContainer(
        store,
        id,
        { state: "restarting", restartCount: record.restartCount + 1 },
        (c) => !c.stopRequested,
      );
      if (!restarting) break;
      await sleepUnlessStopped(store, id, backoff);
      const current = getContainer(store, id);
      if (!current) return { exitCode, removed: true };
      if (current.stopRequested) {
        updateContainer(store, id, { state: "exited" });
        break;
      }
      record = current;
    }
  } finally {
    await attach?.close();
    log.close();
    await removeFreezer(cgroupOwner(record));
    try {
      updateContainer(
        store,
        id,
        { supervisorPid: null, supervisorStart: null },
        (c) => c.supervisorPid === me,
      );
    } catch {
      // Never in place of the error being thrown (or of a normal end): a row left claimed by
      // this (soon dead) process is released by the next command that reads it (reconcile).
    }
  }
  if (record.config.autoRemove) {
    const { removeContainerFiles } = await lazyImport<typeof import("./cleanup.ts")>(
      new URL("./cleanup.ts", import.meta.url),
    );
    await removeContainerFiles(store, record);
    return { exitCode, removed: true };
  }
  return { exitCode, removed: false };
}

async function sleepUnlessStopped(store: Store, id: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
    const c = getContainer(store, id);
    if (!c || c.stopRequested) return;
  }
}

async function startAndWait(
  store: Store,
  c: ContainerRecord,
  log: LogWriter,
  o: SuperviseOptions,
  started: () => void,
  attach?: AttachServer,
): Promise<{ exit: ContainerExit; pid: number }> {
  // Host ports are bound first: a taken port fails the start before anything else exists.
  // The port code (listeners, proxy, its worker) is loaded only by a container that publishes.
  const ports = mayPublish(c.config)
    ? (await lazyImport<typeof import("../net/publish.ts")>(
      new URL("../net/publish.ts", import.meta.url),
    )).PublishedPorts.open(store, c.id, c.config)
    : undefined;
  const net = await networkHooks(store, c, o.warn);
  await awaitAttachFirst(attach, store.root, c.id);
  // Detached with -i and no pty: stdin is a pipe that attached clients write to (docker keeps a
  // `run -di` container's stdin open, so `sh` waits for input instead of ending at once).
  const stdinPipe = attach && !o.attach && c.config.interactive && !c.config.tty
    ? pipe()
    : undefined;
  const input = stdinPipe ? new StdinPipe(stdinPipe[1]) : undefined;
  const [outR, outW] = pipe();
  const [errR, errW] = pipe();
  const stdout = readablePipe(outR);
  const stderr = readablePipe(errR);
  let container: Container;
  try {
    // Volumes created with `-o type=...` are mounted on the host before PID 1 binds them.
    mountVolumesOf(store, c.id);
    // The container as its config.json describes it, and what a spec cannot carry.
    // Namespaces and limits too: `tsbox update` rewrites the spec's resources, and the
    // namespace files of joined containers are filled in for their PID 1 now.
    const spec = await startBundle(store, c);
    container = await Container.start(spec, {
      // `--cgroup-parent` is the record's: spec.ts wrote it into cgroupsPath from the same
      // value, and the commands that find the cgroup again (stats, pause, rm) read it there.
      cgroupParent: c.config.resources.cgroupParent,
      id: c.id,
      stateDir: containerDir(store.root, c.id),
      lowerBase: store.linkDir,
      layers: c.config.layers,
      filterCacheDir: `${store.root}/cache/seccomp`,
      warn: o.warn,
      stdio: [
        stdinPipe
          ? stdinPipe[0]
          : o.attach && c.config.interactive && (o.streams?.stdin ?? true)
          ? "inherit"
          : "null",
        outW,
        errW,
      ],
      tty: c.config.tty ? { size: o.attach ? userWindowSize() : attach?.lastSize } : undefined,
      parentDeathSignal: SIGKILL,
      beforeRelease: ports || net || o.beforeRelease
        ? async (pid) => {
          // The proxy is up before PID 1 runs its program, and down once it has ended.
          await net?.connect(pid);
          await ports?.start(pid);
          await o.beforeRelease?.(c, pid);
        }
        : undefined,
      afterExit: ports || net || o.afterExit
        ? async () => {
          await ports?.close();
          net?.disconnect();
          await o.afterExit?.(c);
        }
        : undefined,
    });
  } catch (err) {
    await ports?.close().catch(() => {});
    await input?.end();
    stdout.close();
    stderr.close();
    throw err;
  } finally {
    closeFd(outW);
    closeFd(errW);
    if (stdinPipe) closeFd(stdinPipe[0]);
  }
  // -t: the pty carries all output (logged as stdout, like docker) and the user's input.
  const tty = container.terminal === undefined ? undefined : superviseTerminal(
    container.terminal,
    { attach: o.attach ?? false, interactive: c.config.interactive },
  );
  const pumps = Promise.all([
    pumpToLog(
      stdout.readable,
      "stdout",
      log,
      attachTee(attach, 1, o.attach && (o.streams?.stdout ?? true) ? Deno.stdout : undefined),
    ),
    pumpToLog(
      stderr.readable,
      "stderr",
      log,
      attachTee(attach, 2, o.attach && (o.streams?.stderr ?? true) ? Deno.stderr : undefined),
    ),
    ...(tty ? [pumpToLog(tty.output, "stdout", log, attachTee(attach, 1))] : []),
  ]);
  await attach?.setTarget(
    container.terminal !== undefined ? ptyTarget(container.terminal) : input,
  );
  let running: ContainerRecord | undefined;
  let unrecorded: unknown;
  const startedAt = Date.now();
  // A healthcheck starts over at each start: `starting`, no failures, the old log kept.
  const health = probeCommand(c.config.healthcheck, c.config.shell)
    ? startingHealth(c.health)
    : undefined;
  try {
    running = updateContainer(store, c.id, {
      state: "running",
      pid: container.pid,
      pidStart: startTime(container.pid) ?? null,
      startedAt,
      finishedAt: null,
      exitCode: null,
      oomKilled: false,
      error: null,
      health,
    });
  } catch (err) {
    // A container the database does not know runs is one nobody could stop: end it, tear
    // down below as for any exit, and fail the start with the database's error.
    unrecorded = err;
  }
  if (!running) {
    // Removed while starting (rm -f), or not recorded: end it.
    killPid(container.pid, SIGKILL);
  }
  if (running) containerEvent(store.root, "start", running);
  if (unrecorded === undefined) {
    o.onPid?.(container.pid);
    started();
  }
  // Loaded only for a container with a healthcheck: most supervisors never need exec's code.
  const monitor = running && health
    ? (await lazyImport<typeof import("./health_monitor.ts")>(
      new URL("./health_monitor.ts", import.meta.url),
    )).HealthMonitor.start(
      store,
      running,
      container.pid,
      startedAt,
      health,
    )
    : undefined;
  const exit = await container.wait();
  await monitor?.stop();
  await attach?.setTarget(undefined);
  await input?.end();
  if (tty) {
    await tty.session.stop();
    closeFd(container.terminal!);
  }
  await pumps.catch(() => {});
  if (unrecorded !== undefined) throw unrecorded;
  return { exit, pid: container.pid };
}
