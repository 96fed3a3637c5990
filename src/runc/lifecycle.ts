/**
 * The lifecycle commands on an existing container: start, kill, delete, pause, resume (create
 * and run, which need the whole runtime, are in create.ts: these load less).
 *
 * @module
 */
import { AT_FDCWD, O_CLOEXEC, O_NONBLOCK, O_RDONLY, openat, read } from "../../ffi/fs.ts";
import { closeFd, killPid, waitReadable } from "../../ffi/process.ts";
import { TsboxError } from "../errors.ts";
import { ociCgroup, removeOciCgroup, setFrozen } from "../runtime/oci_cgroup.ts";
import { parseSignal } from "../runtime/oci_signals.ts";
import { runHooks, runtimePlace, startContainerPlace } from "./hooks.ts";
import type { RuncContext } from "./context.ts";
import {
  cgroupOf,
  checkId,
  ContainerNotExistError,
  type ContainerRecord,
  readRecord,
  stateDir,
  stateJson,
  statusOf,
} from "./state.ts";

/** Removes `path` if it is there (synchronous: see {@link readRecord}). */
function removeQuietly(path: string, recursive = false): void {
  try {
    Deno.removeSync(path, { recursive });
  } catch { /* already gone */ }
}

function idArg(ctx: RuncContext): string {
  return checkId(ctx.args[0]);
}

/** `start`: opens the fifo's read end, which releases the waiting process into execve. */
export async function start(ctx: RuncContext): Promise<number> {
  const rec = await readRecord(ctx.root, idArg(ctx));
  await startContainer(ctx, rec);
  return 0;
}

export async function startContainer(ctx: RuncContext, rec: ContainerRecord): Promise<void> {
  const status = statusOf(ctx.root, rec);
  if (status !== "created") {
    throw new TsboxError(
      `cannot start a container that has ${status === "stopped" ? "stopped" : `status ${status}`}`,
    );
  }
  const fifo = `${stateDir(ctx.root, rec.id)}/exec.fifo`;
  if (rec.config.hooks?.startContainer?.length) {
    // Before the fifo releases the process: inside the container, its command not yet run.
    // A failure ends the container, as runc's init exits when its hook fails.
    try {
      await runHooks(
        "startContainer",
        rec.config.hooks.startContainer,
        { ...stateJson(ctx.root, rec), status: "created" },
        startContainerPlace(rec.pid, rec.config),
      );
    } catch (err) {
      killPid(rec.pid, 9);
      throw err;
    }
  }
  const fd = openat(AT_FDCWD, fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  try {
    for (;;) {
      if (await waitReadable(fd, 100)) {
        const buf = new Uint8Array(1);
        if (read(fd, buf) === 1) break;
      }
      if (statusOf(ctx.root, rec) === "stopped") {
        throw new TsboxError("container init exited before start");
      }
    }
  } finally {
    closeFd(fd);
  }
  removeQuietly(fifo);
  await runHooks(
    "poststart",
    rec.config.hooks?.poststart,
    stateJson(ctx.root, rec),
    runtimePlace(rec.bundle),
  )
    .catch((err) => ctx.log.warn((err as Error).message));
}

/** `kill [--all] ID [SIGNAL]`. */
export async function kill(ctx: RuncContext): Promise<number> {
  const rec = await readRecord(ctx.root, idArg(ctx));
  const sigText = ctx.args[1] ?? "SIGTERM";
  const sig = parseSignal(sigText);
  if (sig === undefined) throw new TsboxError(`unknown signal "${sigText}"`);
  const status = statusOf(ctx.root, rec);
  if (ctx.flags.all === true) {
    // Rootless without a cgroup: the container's first process is all that can be found.
    const pids = rec.cgroupPath
      ? await ociCgroup(rec.cgroupPath).pids()
      : status === "stopped"
      ? []
      : [rec.pid];
    for (const pid of pids) killPid(pid, sig);
    return 0;
  }
  if (status === "stopped") throw new TsboxError("container not running");
  killPid(rec.pid, sig);
  return 0;
}

/** Kills what is left, removes the cgroup, runs poststop hooks and removes the state dir. */
export async function destroy(
  ctx: RuncContext,
  rec: ContainerRecord,
  force: boolean,
): Promise<void> {
  const status = statusOf(ctx.root, rec);
  if (status !== "stopped" && !force) {
    throw new TsboxError(`cannot delete container ${rec.id} that is not stopped: ${status}`);
  }
  const cg = rec.cgroupPath ? ociCgroup(rec.cgroupPath) : undefined;
  if (cg && status === "paused") await setFrozen(cg, false).catch(() => {});
  if (status !== "stopped") killPid(rec.pid, 9);
  if (cg) removeOciCgroup(cg);
  await runHooks("poststop", rec.config.hooks?.poststop, {
    ...stateJson(ctx.root, rec),
    status: "stopped",
  }, runtimePlace(rec.bundle))
    .catch((err) => ctx.log.warn((err as Error).message));
  removeQuietly(stateDir(ctx.root, rec.id), true);
}

/** `delete [--force] ID`; with --force an unknown container is no error (containerd relies on it). */
export async function del(ctx: RuncContext): Promise<number> {
  const force = ctx.flags.force === true;
  let rec: ContainerRecord;
  try {
    rec = await readRecord(ctx.root, idArg(ctx));
  } catch (err) {
    if (err instanceof ContainerNotExistError && force) {
      // A state dir left without its record (a create that died half-way) goes too.
      removeQuietly(stateDir(ctx.root, idArg(ctx)), true);
      return 0;
    }
    throw err;
  }
  await destroy(ctx, rec, force);
  return 0;
}

/** `pause ID` / `resume ID`: the cgroup freezer. */
export async function freeze(ctx: RuncContext, frozen: boolean): Promise<number> {
  const rec = await readRecord(ctx.root, idArg(ctx));
  const status = statusOf(ctx.root, rec);
  if (frozen && status !== "running") throw new TsboxError(`container not running`);
  if (!frozen && status !== "paused") throw new TsboxError(`container not paused`);
  await setFrozen(cgroupOf(rec, frozen ? "pause" : "resume"), frozen);
  return 0;
}
