/**
 * Container records in the state database: creation with unique names, lookup by name, id or
 * id prefix, state transitions (each one transaction), and reconciling rows with the processes
 * they name, so that a supervisor killed with SIGKILL never leaves a "running" row behind.
 *
 * @module
 */
import { NotFoundError, TsboxError } from "../errors.ts";
import type { MountRequest, NetworkMode } from "../runtime/container.ts";
import type { ResourceLimits } from "../runtime/cgroups.ts";
import type { Store } from "../store/mod.ts";
import { randomName } from "./names.ts";
import { reapDeadRunner } from "./reap.ts";
import { ensureThisBoot } from "./boot.ts";
import {
  allRows,
  AmbiguousContainerError,
  isActive,
  isSettled,
  lookupRow,
  type Row,
  toRecord,
} from "./state_rows.ts";
import type { SecuritySpec } from "./security_flags.ts";
import type { HealthConfig, HealthState } from "./health.ts";
import type { LogOptions } from "./log_opts.ts";
import type { NamespaceModes } from "./namespaces.ts";
import type { NetConfig } from "../network/endpoints.ts";

/** docker's container states (`dead` and `removing` are never stored here). */
export { AmbiguousContainerError, isActive } from "./state_rows.ts";

export type ContainerState = "created" | "running" | "paused" | "restarting" | "exited";

/** `--restart`: what the supervisor does when the container's process ends. */
export interface RestartPolicy {
  readonly name: "no" | "on-failure" | "always" | "unless-stopped";
  /** on-failure only: the most restarts; 0 is unlimited. */
  readonly maxRetries: number;
}

/** Everything needed to start (and restart) the container, fixed at create time. */
export interface RunConfig {
  /** Capabilities, confinement and user namespace mapping (security_flags.ts). */
  readonly security?: SecuritySpec;
  readonly argv: readonly string[];
  /** How many leading words of {@link argv} are the entrypoint (inspect's Entrypoint and Cmd). */
  readonly entrypointLength?: number;
  readonly env: readonly string[];
  readonly cwd: string;
  /** `--user` as given (or the image's), "" for root. */
  readonly user: string;
  readonly hostname: string;
  readonly network: NetworkMode;
  readonly resources: ResourceLimits;
  readonly mounts: readonly MountRequest[];
  readonly readOnly: boolean;
  /** `-t`. */
  readonly tty: boolean;
  /** `-i`. */
  readonly interactive: boolean;
  /** Short ids of the image's layer links, bottom first. */
  readonly layers: readonly string[];
  readonly restart: RestartPolicy;
  /** `--rm`: the supervisor removes the container when it ends. */
  readonly autoRemove: boolean;
  /** Signal number `stop` sends first (the image's StopSignal, else SIGTERM). */
  readonly stopSignal: number;
  /** Seconds `stop` waits before SIGKILL, unless `-t` says otherwise. */
  readonly stopTimeout: number;
  /** `-p` values as given; the port proxy (src/net/publish.ts) reads them at each start. */
  readonly ports?: readonly string[];
  /** `-P`: publish every exposed port on an ephemeral host port. */
  readonly publishAll?: boolean;
  /** Exposed ports ("80/tcp"): the image's EXPOSE, `--expose` and each `-p` port. */
  readonly exposedPorts?: readonly string[];
  /** `--label`s, and anything else a later feature wants to keep with the container. */
  readonly labels?: Readonly<Record<string, string>>;
  /** The healthcheck: the image's HEALTHCHECK merged with `--health-*` (health.ts). */
  readonly healthcheck?: HealthConfig;
  /** The image's SHELL, which runs a `CMD-SHELL` healthcheck (`/bin/sh -c` when absent). */
  readonly shell?: readonly string[];
  /** `--init`: host path of the init binary run as PID 1 in front of {@link argv}. */
  readonly init?: string;
  /** `--group-add`: group names (resolved in the image's /etc/group at start) or gids. */
  readonly groupAdd?: readonly string[];
  /** `--shm-size` in bytes; docker's 64 MiB when absent. */
  readonly shmSize?: number;
  /** `--sysctl`s as (key, value), checked to be namespaced. */
  readonly sysctls?: readonly (readonly [string, string])[];
  /** `--log-opt max-size/max-file`: json-file rotation; unbounded when absent. */
  readonly log?: LogOptions;
  /** The stop signal as given (`--stop-signal` or the image's StopSignal), for inspect. */
  readonly stopSignalName?: string;
  /** `--stop-timeout` was given (inspect shows StopTimeout only then, as docker). */
  readonly stopTimeoutSet?: boolean;
  /** `--ipc`, `--pid`, `--uts`, `--cgroupns` (namespaces.ts); absent: the defaults. */
  readonly namespaces?: NamespaceModes;
  /** Bridge networks, `--dns*`, `--add-host` (src/network/endpoints.ts); absent: none of it. */
  readonly net?: NetConfig;
  /** `run`/`create` options, image and command, canonical (cli/create_line.ts), if known. */
  readonly createCommand?: readonly string[];
}

/** One container as the database records it. */
export interface ContainerRecord {
  /** 64 hex digits. */
  readonly id: string;
  /** Unique name, without docker's leading "/". */
  readonly name: string;
  readonly imageId: string;
  /** The image as the user named it. */
  readonly imageName: string;
  readonly config: RunConfig;
  readonly state: ContainerState;
  /** PID 1 of the container on the host, while running or paused. */
  readonly pid?: number;
  /** Start time of {@link pid} in clock ticks since boot (/proc/PID/stat field 22). */
  readonly pidStart?: number;
  readonly supervisorPid?: number;
  readonly supervisorStart?: number;
  readonly exitCode?: number;
  readonly oomKilled: boolean;
  /** Why the last start failed. */
  readonly error?: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly startedAt?: number;
  readonly finishedAt?: number;
  readonly restartCount: number;
  /** A user stopped it: the restart policy must not bring it back. */
  readonly stopRequested: boolean;
  /** `State.Health`: set when it starts with a healthcheck, kept after it stops. */
  readonly health?: HealthState;
}

/** `--name` is held by another container. */
export class NameConflictError extends TsboxError {
  constructor(readonly containerName: string, readonly holder: string) {
    super(
      `Conflict. The container name "/${containerName}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`,
    );
    this.name = "NameConflictError";
  }
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** What {@link createContainer} records. */
export interface NewContainer {
  readonly id: string;
  /** `--name`; a random adjective_surname when absent. */
  readonly name?: string;
  readonly imageId: string;
  readonly imageName: string;
  readonly config: RunConfig;
}

/**
 * Records a new container in state "created". A `--name` already taken is a
 * {@link NameConflictError} naming the holder; a random name is drawn again on a clash.
 */
export function createContainer(store: Store, c: NewContainer): ContainerRecord {
  if (c.name !== undefined && !NAME_RE.test(c.name.replace(/^\//, ""))) {
    throw new TsboxError(
      `Invalid container name (${c.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  }
  const wanted = c.name?.replace(/^\//, "");
  // Before a new row can be claimed (a foreground run claims without reading others).
  ensureThisBoot(store);
  return store.db.transaction(() => {
    let name = wanted;
    if (name !== undefined) {
      const holder = store.db.get<{ id: string }>("SELECT id FROM containers WHERE name = ?", name);
      if (holder) throw new NameConflictError(name, holder.id);
    } else {
      for (let tries = 0;; tries++) {
        name = randomName(tries > 5);
        if (!store.db.get("SELECT 1 AS x FROM containers WHERE name = ?", name)) break;
      }
    }
    store.db.run(
      `INSERT INTO containers (id, name, image_id, image_name, config, state, created_at)
       VALUES (?, ?, ?, ?, ?, 'created', ?)`,
      c.id,
      name!,
      c.imageId,
      c.imageName,
      JSON.stringify(c.config),
      Date.now(),
    );
    return toRecord(store.db.get<Row>("SELECT * FROM containers WHERE id = ?", c.id)!);
  });
}

/** A container by full id, without reconciling. */
export function getContainer(store: Store, id: string): ContainerRecord | undefined {
  const row = store.db.get<Row>("SELECT * FROM containers WHERE id = ?", id);
  return row ? toRecord(row) : undefined;
}

/**
 * A container by name (with or without a leading "/"), full id, or unique id prefix, in that
 * order, reconciled with the processes it names. Undefined when nothing (or more than one
 * container, for a prefix) matches; {@link requireContainer} tells those apart.
 */
export function findContainer(store: Store, nameOrIdOrPrefix: string): ContainerRecord | undefined {
  try {
    return lookup(store, nameOrIdOrPrefix);
  } catch (err) {
    if (err instanceof AmbiguousContainerError) return undefined;
    throw err;
  }
}

/** Like {@link findContainer}, but throws NotFoundError or AmbiguousContainerError. */
export function requireContainer(store: Store, nameOrIdOrPrefix: string): ContainerRecord {
  const c = lookup(store, nameOrIdOrPrefix);
  if (!c) throw new NotFoundError("container", nameOrIdOrPrefix);
  return c;
}

function lookup(store: Store, ref: string): ContainerRecord | undefined {
  // Rows of a boot that is over name pids that may now be anyone's (boot.ts).
  ensureThisBoot(store);
  const row = lookupRow(store, ref);
  return row ? settle(store, row) : undefined;
}

/** Every container, newest first, reconciled. */
export function listContainers(store: Store): ContainerRecord[] {
  ensureThisBoot(store);
  return allRows(store)
    .map((c) => settle(store, c))
    .filter((c): c is ContainerRecord => c !== undefined);
}

/** The name of a container that uses image `imageId`, if any (for `rmi`). */
export function containerUsingImage(store: Store, imageId: string): string | undefined {
  return store.db.get<{ id: string }>(
    "SELECT id FROM containers WHERE image_id = ? LIMIT 1",
    imageId,
  )?.id.slice(0, 12);
}

/**
 * Makes a row tell the truth. While its supervisor lives (same pid *and* start time), the row
 * is right. When the supervisor is gone but the container's PID 1 still runs, it stays
 * running. When both are gone, what the dead runner left is finished here, once (reap.ts):
 * mounts and cgroups released, then the container recorded as exited (137: PID 1 was killed
 * with its supervisor, through its parent-death signal), or removed when run with `--rm`. A
 * `created` row whose supervisor died while starting gets its mounts released and stays
 * created. Returns the row as it now is; for a container just removed, its last state.
 */
export function reconcile(store: Store, c: ContainerRecord): ContainerRecord {
  if (ensureThisBoot(store)) c = getContainer(store, c.id) ?? c;
  return settle(store, c) ?? reconcileView(c);
}

/** {@link reconcile}, but undefined when the container has just been removed (`--rm`). */
function settle(store: Store, c: ContainerRecord): ContainerRecord | undefined {
  if (isSettled(c)) return c;
  try {
    reapDeadRunner(store, c);
  } catch {
    // The database cannot be written (a full disk): report what the processes say, so that
    // reading the state still works; a later command records it.
    return isActive(c.state)
      ? reconcileView(c)
      : { ...c, supervisorPid: undefined, supervisorStart: undefined };
  }
  // Re-read either way: another process may have changed the row meanwhile.
  return getContainer(store, c.id);
}

/** The row as the processes tell it: its runner and PID 1 are gone. */
function reconcileView(c: ContainerRecord): ContainerRecord {
  return {
    ...c,
    state: "exited",
    exitCode: c.exitCode ?? 137,
    pid: undefined,
    pidStart: undefined,
    supervisorPid: undefined,
    supervisorStart: undefined,
  };
}

/** Fields a state change may set. */
export interface ContainerUpdate {
  state?: ContainerState;
  pid?: number | null;
  pidStart?: number | null;
  supervisorPid?: number | null;
  supervisorStart?: number | null;
  exitCode?: number | null;
  oomKilled?: boolean;
  error?: string | null;
  startedAt?: number | null;
  finishedAt?: number | null;
  restartCount?: number;
  stopRequested?: boolean;
  health?: HealthState | null;
}

const COLUMNS: Record<keyof ContainerUpdate, string> = {
  state: "state",
  pid: "pid",
  pidStart: "pid_start",
  supervisorPid: "supervisor_pid",
  supervisorStart: "supervisor_start",
  exitCode: "exit_code",
  oomKilled: "oom_killed",
  error: "error",
  startedAt: "started_at",
  finishedAt: "finished_at",
  restartCount: "restart_count",
  stopRequested: "stop_requested",
  health: "health",
};

/**
 * Applies `update` to container `id` in one transaction, only if `guard` (when given) holds
 * for the current row. Returns the updated record, or undefined when the row is gone or the
 * guard failed.
 */
export function updateContainer(
  store: Store,
  id: string,
  update: ContainerUpdate,
  guard?: (current: ContainerRecord) => boolean,
): ContainerRecord | undefined {
  return store.db.transaction(() => {
    const row = store.db.get<Row>("SELECT * FROM containers WHERE id = ?", id);
    if (!row || (guard && !guard(toRecord(row)))) return undefined;
    const sets: string[] = [];
    const values: (string | number | null)[] = [];
    for (const [key, column] of Object.entries(COLUMNS) as [keyof ContainerUpdate, string][]) {
      const v = update[key];
      if (v === undefined) continue;
      sets.push(`${column} = ?`);
      values.push(
        typeof v === "boolean"
          ? (v ? 1 : 0)
          : typeof v === "object" && v !== null
          ? JSON.stringify(v)
          : v,
      );
    }
    if (sets.length > 0) {
      store.db.run(`UPDATE containers SET ${sets.join(", ")} WHERE id = ?`, ...values, id);
    }
    return toRecord(store.db.get<Row>("SELECT * FROM containers WHERE id = ?", id)!);
  });
}

/** Deletes the row; returns whether it existed. */
export function deleteContainerRow(store: Store, id: string): boolean {
  return store.db.transaction(() =>
    store.db.run("DELETE FROM containers WHERE id = ?", id).changes > 0
  );
}
