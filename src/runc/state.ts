/**
 * The runtime's record of its containers: `<root>/<id>/state.json` (written atomically: a temp
 * file renamed over it) beside `exec.fifo`, which exists from `create` until `start`. A
 * container's status is read from its process, not stored: created while the fifo exists and
 * the process lives, paused while its cgroup is frozen, running while the process lives,
 * stopped otherwise. The process's start time (field 22 of /proc/PID/stat) is recorded with
 * its pid, so that a reused pid is never taken for the container.
 *
 * @module
 */
import { AT_FDCWD, mknodat, S_IFIFO } from "../../ffi/fs.ts";
import type { Spec } from "../oci/spec.ts";
import { TsboxError } from "../errors.ts";
import { isFrozen, ociCgroup } from "../runtime/oci_cgroup.ts";

/** What `create` records. */
export interface ContainerRecord {
  readonly id: string;
  readonly pid: number;
  /** Clock ticks after boot when the process started (pid reuse check). */
  readonly startTime: string;
  readonly bundle: string;
  readonly rootfs: string;
  /** RFC 3339 creation time. */
  readonly created: string;
  readonly cgroupPath: string;
  /** The config as create read it (hooks for later points, the seccomp profile for exec). */
  readonly config: Spec;
}

/** The runtime-spec statuses. */
export type Status = "creating" | "created" | "running" | "paused" | "stopped";

/** A container id runc accepts: letters, digits, `_+-.`, no path separators. */
export function checkId(id: string | undefined): string {
  if (!id) throw new TsboxError("container id cannot be empty");
  if (!/^[\w+\-.]+$/.test(id) || id === "." || id === "..") {
    throw new TsboxError(`invalid id format: ${id}`);
  }
  return id;
}

/** A container the runtime does not know. */
export class ContainerNotExistError extends TsboxError {
  constructor(readonly id: string) {
    super(`container does not exist`);
    this.name = "ContainerNotExistError";
  }
}

/** The state directory of container `id` under `root`. */
export function stateDir(root: string, id: string): string {
  return `${root}/${checkId(id)}`;
}

/** Makes `<root>/<id>` with its exec fifo; fails when the id is taken. */
export function makeStateDir(root: string, id: string): string {
  Deno.mkdirSync(root, { recursive: true, mode: 0o700 });
  const dir = stateDir(root, id);
  try {
    // 0711: the container's process may be another user when it opens the fifo by this dir.
    Deno.mkdirSync(dir, { mode: 0o711 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new TsboxError(`container with id exists: ${id}`);
    }
    throw err;
  }
  Deno.chmodSync(dir, 0o711);
  mknodat(AT_FDCWD, `${dir}/exec.fifo`, S_IFIFO | 0o622);
  Deno.chmodSync(`${dir}/exec.fifo`, 0o622);
  return dir;
}

/** Writes the record atomically. */
export function writeRecord(root: string, rec: ContainerRecord): void {
  const dir = stateDir(root, rec.id);
  const tmp = `${dir}/.state.json.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
  Deno.renameSync(tmp, `${dir}/state.json`);
}

/**
 * Reads the record of `id`. The state files are read and written with synchronous calls, as
 * the cgroup files are (oci_cgroup.ts): a runtime command is a short process, and the first
 * use of each asynchronous op costs it more than the op itself.
 */
export function readRecord(root: string, id: string): ContainerRecord {
  try {
    return JSON.parse(Deno.readTextFileSync(`${stateDir(root, id)}/state.json`));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new ContainerNotExistError(id);
    throw err;
  }
}

/** Field 22 (starttime) and field 3 (state) of /proc/PID/stat; undefined when gone. */
export function procStat(pid: number): { state: string; startTime: string } | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0], startTime: fields[19] };
}

/** Whether the recorded process still runs (a zombie or another process at that pid: no). */
export function processAlive(rec: ContainerRecord): boolean {
  const st = procStat(rec.pid);
  return st !== undefined && st.state !== "Z" && st.startTime === rec.startTime;
}

/** The container's status, read from its process, fifo and freezer. */
export function statusOf(root: string, rec: ContainerRecord): Status {
  if (!processAlive(rec)) return "stopped";
  try {
    Deno.statSync(`${stateDir(root, rec.id)}/exec.fifo`);
    return "created";
  } catch { /* started */ }
  if (rec.cgroupPath && isFrozen(ociCgroup(rec.cgroupPath))) return "paused";
  return "running";
}

/**
 * The container's cgroup; a rootless container without one (its recorded path is "") fails
 * with a message naming `what` needed it.
 */
export function cgroupOf(rec: ContainerRecord, what: string): ReturnType<typeof ociCgroup> {
  if (!rec.cgroupPath) {
    throw new TsboxError(
      `${what}: container ${rec.id} has no cgroup (rootless, and no cgroup is delegated to this user)`,
    );
  }
  return ociCgroup(rec.cgroupPath);
}

/** The runtime-spec state JSON of a container. */
export function stateJson(root: string, rec: ContainerRecord): Record<string, unknown> {
  const status = statusOf(root, rec);
  return {
    ociVersion: "1.0.2",
    id: rec.id,
    pid: status === "stopped" ? 0 : rec.pid,
    status,
    bundle: rec.bundle,
    rootfs: rec.rootfs,
    created: rec.created,
    owner: "",
    annotations: rec.config.annotations ?? {},
  };
}

/** Ids of every container under `root`. */
export function listIds(root: string): string[] {
  try {
    return [...Deno.readDirSync(root)].filter((e) => e.isDirectory).map((e) => e.name).sort();
  } catch {
    return [];
  }
}
