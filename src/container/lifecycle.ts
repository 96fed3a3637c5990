/**
 * Lifecycle operations on recorded containers: start (detached supervisor), stop, kill,
 * restart, pause/unpause, wait, rm, prune. Each works from the database and /proc, so any
 * tsbox process can act on a container another one started.
 *
 * @module
 */
import { containerEvent } from "../events/log.ts";
import { killPid } from "../../ffi/process.ts";
import { TsboxError } from "../errors.ts";
import { type PendingSupervisor, superviseDetached } from "./supervisor_spawn.ts";
import type { Store } from "../store/mod.ts";
import { cgroupOwner, setFrozen } from "./cgroup.ts";
import { removeContainerFiles } from "./cleanup.ts";
import { processAlive } from "./proc.ts";
import {
  type ContainerRecord,
  getContainer,
  isActive,
  listContainers,
  reconcile,
  updateContainer,
} from "./state.ts";

const SIGKILL = 9;

/** The container is in a state that does not allow the operation. */
export class ContainerStateError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "ContainerStateError";
  }
}

export { StartFailedError } from "./supervisor_spawn.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Starts container `c` under a detached supervisor (`pending`, spawned early by `run -d`, or a
 * new one) and returns once its process runs (or throws what stopped it). The supervisor
 * outlives this process.
 */
export async function startDetached(
  store: Store,
  c: ContainerRecord,
  pending?: PendingSupervisor,
): Promise<void> {
  const current = reconcile(store, c);
  if (isActive(current.state)) {
    await pending?.dismiss();
    return; // docker start on a running container is a no-op
  }
  await superviseDetached(store.root, c.id, pending);
}

/** Waits until `c` is no longer active (reconciled), or `timeoutMs` passed; returns the record. */
export async function waitInactive(
  store: Store,
  id: string,
  timeoutMs = Infinity,
): Promise<ContainerRecord | undefined> {
  const until = Date.now() + timeoutMs;
  for (let delay = 10;; delay = Math.min(delay * 2, 100)) {
    const row = getContainer(store, id);
    if (!row) return undefined;
    const c = reconcile(store, row);
    if (!isActive(c.state)) return c;
    if (Date.now() >= until) return c;
    await sleep(delay);
  }
}

/** Waits until the supervisor process of `c` (if any) has gone. */
async function waitSupervisorGone(c: ContainerRecord, timeoutMs: number): Promise<boolean> {
  if (c.supervisorPid === undefined) return true;
  const until = Date.now() + timeoutMs;
  while (processAlive(c.supervisorPid, c.supervisorStart)) {
    if (Date.now() >= until) return false;
    await sleep(20);
  }
  return true;
}

function signalPid1(c: ContainerRecord, signal: number): boolean {
  if (c.pid === undefined || !processAlive(c.pid, c.pidStart)) return false;
  return killPid(c.pid, signal);
}

/** Sends `signal` to the container's PID 1 (`kill`); a paused container is thawed for SIGKILL. */
export async function killContainer(store: Store, c: ContainerRecord, signal = SIGKILL) {
  const current = reconcile(store, c);
  if (current.state !== "running" && current.state !== "paused") {
    throw new ContainerStateError(`container ${c.id.slice(0, 12)} is not running`);
  }
  signalPid1(current, signal);
  containerEvent(store.root, "kill", current, { signal: String(signal) });
  if (current.state === "paused" && signal === SIGKILL) await unpauseContainer(store, current);
}

/**
 * Stops `c` as docker does: `signal` (default: its stop signal), then SIGKILL after `timeoutSec`;
 * the restart policy stands down. Returns once the container is recorded as exited.
 */
export async function stopContainer(
  store: Store,
  c: ContainerRecord,
  timeoutSec?: number,
  signal?: number,
): Promise<void> {
  const marked = updateContainer(store, c.id, { stopRequested: true });
  if (!marked) return;
  let current = reconcile(store, marked);
  if (!isActive(current.state)) return;
  const seconds = timeoutSec ?? current.config.stopTimeout;
  // -1 (docker's "no timeout"): wait for the container however long it takes.
  const timeout = seconds < 0 ? Infinity : seconds * 1000;
  const paused = current.state === "paused";
  if (timeout > 0) {
    signalPid1(current, signal ?? current.config.stopSignal);
    containerEvent(store.root, "kill", current, {
      signal: String(signal ?? current.config.stopSignal),
    });
    if (paused) await setFrozen(cgroupOwner(c), false);
    current = await waitInactive(store, c.id, timeout) ?? current;
  }
  if (isActive(current.state)) {
    signalPid1(current, SIGKILL);
    containerEvent(store.root, "kill", current, { signal: String(SIGKILL) });
    if (paused) await setFrozen(cgroupOwner(c), false).catch(() => {});
    await waitInactive(store, c.id);
  }
  containerEvent(store.root, "stop", current);
}

/** `restart`: stop, then start again under a new supervisor. */
export async function restartContainer(
  store: Store,
  c: ContainerRecord,
  timeoutSec?: number,
): Promise<void> {
  await stopContainer(store, c, timeoutSec);
  const after = getContainer(store, c.id);
  if (!after) throw new ContainerStateError(`container ${c.id.slice(0, 12)} was removed`);
  await waitSupervisorGone(after, 10_000);
  await startDetached(store, getContainer(store, c.id)!);
  containerEvent(store.root, "restart", after);
}

/** `pause`: freezes every process of a running container. */
export async function pauseContainer(store: Store, c: ContainerRecord): Promise<void> {
  const current = reconcile(store, c);
  if (current.state !== "running") {
    throw new ContainerStateError(`container ${c.id.slice(0, 12)} is not running`);
  }
  await setFrozen(cgroupOwner(c), true);
  updateContainer(store, c.id, { state: "paused" }, (x) => x.state === "running");
  containerEvent(store.root, "pause", current);
}

/** `unpause`. */
export async function unpauseContainer(store: Store, c: ContainerRecord): Promise<void> {
  const current = reconcile(store, c);
  if (current.state !== "paused") {
    throw new ContainerStateError(`container ${c.id.slice(0, 12)} is not paused`);
  }
  await setFrozen(cgroupOwner(c), false);
  updateContainer(store, c.id, { state: "running" }, (x) => x.state === "paused");
  containerEvent(store.root, "unpause", current);
}

/** `wait`: blocks until the container is not running; returns its exit code. */
export async function waitContainer(store: Store, c: ContainerRecord): Promise<number> {
  const done = await waitInactive(store, c.id);
  // A removed container (--rm) ended as its last record says.
  return done?.exitCode ?? c.exitCode ?? 0;
}

/**
 * `rm`: removes a container that is not running; with `force` it is killed first. Its mounts,
 * cgroups, directory, log and row are gone afterwards, whether or not its supervisor lived;
 * with `volumes` (`rm -v`) its anonymous volumes too.
 */
export async function removeContainer(
  store: Store,
  c: ContainerRecord,
  force = false,
  volumes = false,
): Promise<void> {
  try {
    await removeOne(store, c, force, volumes);
  } catch (err) {
    // Typed, so that `rm A B C` reports this one and goes on to the others (cli `each`), and
    // naming the container, which a store or kernel error does not.
    if (err instanceof ContainerStateError) throw err;
    throw new TsboxError(
      `could not remove container ${c.id.slice(0, 12)}: ${(err as Error).message ?? err}`,
      { cause: err },
    );
  }
}

async function removeOne(
  store: Store,
  c: ContainerRecord,
  force: boolean,
  volumes: boolean,
): Promise<void> {
  let current = reconcile(store, c);
  if (isActive(current.state)) {
    if (!force) {
      throw new ContainerStateError(
        `cannot remove container "/${c.name}": container is ${current.state}: stop the container before removing or force remove`,
      );
    }
    updateContainer(store, c.id, { stopRequested: true });
    signalPid1(current, SIGKILL);
    if (current.state === "paused") await setFrozen(cgroupOwner(c), false).catch(() => {});
    current = await waitInactive(store, c.id, 10_000) ?? current;
  }
  const row = getContainer(store, c.id) ?? current;
  // This process may be the supervisor itself (a foreground run removing what it failed to
  // start, with a claim it could not clear): never wait for, or kill, ourselves.
  const other = row.supervisorPid !== undefined && row.supervisorPid !== Deno.pid;
  if (other && !(await waitSupervisorGone(row, 10_000))) {
    // A supervisor that does not end after its container did is stuck: end it.
    killPid(row.supervisorPid!, SIGKILL);
    await waitSupervisorGone(row, 5_000);
  }
  await removeContainerFiles(store, row, { volumes });
}

/** `container prune`: removes every stopped container; returns their ids. */
export async function pruneContainers(store: Store): Promise<string[]> {
  const removed: string[] = [];
  for (const c of listContainers(store)) {
    if (c.state !== "exited" && c.state !== "created") continue;
    if (c.supervisorPid !== undefined) continue; // being started right now
    await removeContainerFiles(store, c);
    removed.push(c.id);
  }
  return removed;
}
