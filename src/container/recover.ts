/**
 * What a supervisor started by a watcher (watcher.ts) does before supervising: wait until the
 * run its dead predecessor left is recorded as ended (PID 1 died with it, through its
 * parent-death signal; reconcile in state.ts releases mounts and cgroups and records 137), then
 * decide by the restart policy whether to start the container again. The restart is counted
 * in `RestartCount`, as the supervisor's own restarts are.
 *
 * @module
 */
import type { Store } from "../store/mod.ts";
import { processAlive } from "./proc.ts";
import { shouldRestart } from "./supervisor.ts";
import {
  type ContainerRecord,
  getContainer,
  isActive,
  reconcile,
  updateContainer,
} from "./state.ts";

/** docker's code for a process killed by SIGKILL: what PID 1 got from its parent-death signal. */
const KILLED = 137;

/**
 * Waits (up to `timeoutMs`) until container `id` has no live run, then returns its record
 * when the restart policy brings it back, or undefined when it must stay down: removed,
 * stopped by a user, claimed meanwhile by another supervisor (a `start` typed meanwhile), or
 * a policy that does not restart after this exit.
 */
export async function awaitDeadRun(
  store: Store,
  id: string,
  timeoutMs = 10_000,
): Promise<ContainerRecord | undefined> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const row = getContainer(store, id);
    if (!row) return undefined;
    const c = reconcile(store, row);
    const other = c.supervisorPid !== undefined && c.supervisorPid !== Deno.pid &&
      processAlive(c.supervisorPid, c.supervisorStart);
    if (other) return undefined;
    if (!isActive(c.state) && c.supervisorPid === undefined) {
      return shouldRestart(c, c.exitCode ?? KILLED) ? c : undefined;
    }
    if (Date.now() >= until) return undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Counts the restart once the recovered container runs under this supervisor. */
export function countRecovery(store: Store, id: string): void {
  const c = getContainer(store, id);
  if (!c) return;
  updateContainer(
    store,
    id,
    { restartCount: c.restartCount + 1 },
    (now) => now.supervisorPid === Deno.pid,
  );
}

/** A run shorter than this backs the next restart off, as the supervisor's own restarts do. */
const SHORT_RUN_MS = 10_000;

/**
 * How long to wait before restarting a recovered container: nothing after a run of 10 s or
 * more, else docker's backoff (100 ms doubling per restart, at most a minute), so that a
 * supervisor killed again and again (an OOM loop) does not restart its container in a loop.
 */
export function recoveryDelay(c: ContainerRecord, now = Date.now()): number {
  const ran = c.startedAt === undefined ? Infinity : (c.finishedAt ?? now) - c.startedAt;
  if (ran >= SHORT_RUN_MS) return 0;
  return Math.min(100 * 2 ** Math.min(c.restartCount, 10), 60_000);
}
