/**
 * Reading container rows without acting on them: the row shape, the lookup by name, id or id
 * prefix, and the test of whether a row already tells the truth about its processes. Kept
 * apart from state.ts, which reconciles rows that do not (and so loads the code that unmounts,
 * removes cgroups and disconnects networks), so that the read-only commands load only this
 * when every row is settled (state_read.ts).
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import type { HealthState } from "./health.ts";
import { processAlive } from "./proc.ts";
import type { ContainerRecord, ContainerState, RunConfig } from "./state.ts";

/** A row of the containers table as SQLite returns it. */
export interface Row {
  id: string;
  name: string;
  image_id: string;
  image_name: string;
  config: string;
  state: ContainerState;
  pid: number | null;
  pid_start: number | null;
  supervisor_pid: number | null;
  supervisor_start: number | null;
  exit_code: number | null;
  oom_killed: number;
  error: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  restart_count: number;
  stop_requested: number;
  health: string | null;
}

/** An id prefix matches more than one container. */
export class AmbiguousContainerError extends TsboxError {
  constructor(readonly prefix: string) {
    super(`multiple containers found with provided prefix: ${prefix}`);
    this.name = "AmbiguousContainerError";
  }
}

/** A row as a {@link ContainerRecord}. */
export function toRecord(r: Row): ContainerRecord {
  const opt = (v: number | null) => v ?? undefined;
  return {
    id: r.id,
    name: r.name,
    imageId: r.image_id,
    imageName: r.image_name,
    config: JSON.parse(r.config) as RunConfig,
    state: r.state,
    pid: opt(r.pid),
    pidStart: opt(r.pid_start),
    supervisorPid: opt(r.supervisor_pid),
    supervisorStart: opt(r.supervisor_start),
    exitCode: opt(r.exit_code),
    oomKilled: r.oom_killed !== 0,
    error: r.error ?? undefined,
    createdAt: r.created_at,
    startedAt: opt(r.started_at),
    finishedAt: opt(r.finished_at),
    restartCount: r.restart_count,
    stopRequested: r.stop_requested !== 0,
    health: r.health ? JSON.parse(r.health) as HealthState : undefined,
  };
}

/** Whether the row says a process should be alive. */
export function isActive(state: ContainerState): boolean {
  return state === "running" || state === "paused" || state === "restarting";
}

/**
 * Whether row `c` needs no reconciling: an exited row nobody claims (unless it was run with
 * `--rm`: its runner died before removing it), a row whose supervisor lives (same pid and
 * start time), a created row nobody is starting, or an active row whose PID 1 still runs.
 * Anything else has a dead runner whose leftovers state.ts finishes.
 */
export function isSettled(c: ContainerRecord): boolean {
  // An exited row is settled unless a supervisor that died still claims it (it could not
  // clear its claim, which would keep the container from starting again), or it was run with
  // --rm and its runner died before removing it.
  if (c.state === "exited" && c.supervisorPid === undefined && !c.config.autoRemove) return true;
  if (c.supervisorPid !== undefined && processAlive(c.supervisorPid, c.supervisorStart)) {
    return true;
  }
  // A created container nobody is starting is simply created.
  if (c.state === "created" && c.supervisorPid === undefined) return true;
  return isActive(c.state) && c.pid !== undefined && processAlive(c.pid, c.pidStart);
}

/** Every row, newest first, as read (not reconciled). */
export function allRows(store: Store): ContainerRecord[] {
  return store.db.all<Row>("SELECT * FROM containers ORDER BY created_at DESC, id").map(toRecord);
}

/**
 * The row named by `ref`: a name (with or without a leading "/"), a full id, or a unique id
 * prefix, in that order; as read (not reconciled). Throws {@link AmbiguousContainerError} for
 * a prefix of more than one id.
 */
export function lookupRow(store: Store, ref: string): ContainerRecord | undefined {
  const name = ref.replace(/^\//, "");
  let row = store.db.get<Row>("SELECT * FROM containers WHERE name = ?", name) ??
    store.db.get<Row>("SELECT * FROM containers WHERE id = ?", ref);
  if (!row && /^[0-9a-f]{1,63}$/.test(ref)) {
    const rows = store.db.all<Row>(
      "SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2",
      ref,
      `${ref}g`,
    );
    if (rows.length > 1) throw new AmbiguousContainerError(ref);
    row = rows[0];
  }
  return row ? toRecord(row) : undefined;
}
