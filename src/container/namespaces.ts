/**
 * docker's namespace modes for `run`/`create`: `--ipc private|shareable|host|container:NAME`,
 * `--pid host|container:NAME`, `--uts host`, `--cgroupns host|private` (and `--net`, docker's
 * other spelling of `--network`). Checked at create with docker's messages (exit 125 before
 * anything exists), recorded with the target container resolved to its id, and turned into the
 * runtime's shared namespaces at each start, when the target must be running: a container that
 * restarted has a new PID 1, whose namespaces the next start joins.
 *
 * @module
 */
import { TsboxError, UsageError } from "../errors.ts";
import type { NamespaceSource, SharedNamespaces } from "../runtime/namespaces.ts";
import type { Store } from "../store/mod.ts";
import { type ContainerRecord, getContainer, reconcile, requireContainer } from "./state.ts";

/** The flags, as the command line hands them over. */
export interface NamespaceFlags {
  ipc?: string;
  pid?: string;
  uts?: string;
  cgroupns?: string;
  /** `--net`: docker's older spelling of `--network`. */
  net?: string;
}

/** The modes as the container's record keeps them (absent: the default). */
export interface NamespaceModes {
  /** `shareable` (tsbox's default, as docker's before 20.10), `private`, `host`, `container:ID`. */
  readonly ipc?: string;
  /** `host` or `container:ID`; the container's own when absent. */
  readonly pid?: string;
  /** `host`; the container's own when absent. */
  readonly uts?: "host";
  /** `host`; a private cgroup namespace when absent. */
  readonly cgroupns?: "host";
}

const CONTAINER = "container:";

/** `container:NAME` resolved to `container:ID` (docker: `No such container: NAME`). */
function resolveTarget(store: Store, mode: string): string {
  return `${CONTAINER}${requireContainer(store, mode.slice(CONTAINER.length)).id}`;
}

/**
 * Checks the flags as docker's CLI and daemon do and returns the modes to record. `hostname`
 * is whether `-h/--hostname` was given (it conflicts with the host's UTS namespace);
 * `remapped` whether the container gets a user namespace (`--userns-remap`), which cannot
 * hold the host's PID or IPC namespace (their proc and mqueue cannot be mounted from it).
 */
export function namespaceModes(
  store: Store,
  flags: NamespaceFlags,
  hostname: boolean,
  remapped = false,
): NamespaceModes {
  const out: { -readonly [K in keyof NamespaceModes]: NamespaceModes[K] } = {};
  const ipc = flags.ipc ?? "";
  if (ipc.startsWith(CONTAINER) && ipc.length > CONTAINER.length) {
    out.ipc = resolveTarget(store, ipc);
  } else if (["private", "shareable", "host"].includes(ipc)) out.ipc = ipc;
  else if (ipc === "none") throw new UsageError("--ipc none is not supported by tsbox");
  else if (ipc !== "") throw new UsageError("--ipc: invalid IPC mode");
  const pid = flags.pid ?? "";
  if (pid.startsWith(CONTAINER) && pid.length > CONTAINER.length) {
    out.pid = resolveTarget(store, pid);
  } else if (pid === "host") out.pid = pid;
  else if (pid !== "") throw new UsageError("--pid: invalid PID mode");
  const uts = flags.uts ?? "";
  if (uts === "host") {
    if (hostname) throw new UsageError("conflicting options: hostname and the UTS mode");
    out.uts = "host";
  } else if (uts !== "") throw new UsageError("--uts: invalid UTS mode");
  if (remapped && out.pid === "host") {
    throw new UsageError("cannot share the host PID namespace when user namespaces are enabled");
  }
  if (remapped && out.ipc === "host") {
    throw new UsageError("cannot share the host IPC namespace when user namespaces are enabled");
  }
  const cgroupns = flags.cgroupns ?? "";
  if (cgroupns === "host") out.cgroupns = "host";
  else if (!["", "private"].includes(cgroupns)) {
    throw new UsageError("--cgroupns: invalid CGROUP mode");
  }
  return out;
}

/** The running PID 1 of the target of `container:ID` (docker's message when it is not). */
function runningTarget(store: Store, mode: string, what: string): NamespaceSource {
  const id = mode.slice(CONTAINER.length);
  const found = getContainer(store, id);
  const target = found ? reconcile(store, found) : undefined;
  if (!target) throw new TsboxError(`No such container: ${id.slice(0, 12)}`);
  if (target.state === "restarting") {
    throw new TsboxError(`cannot join ${what} of a restarting container: ${target.name}`);
  }
  if ((target.state !== "running" && target.state !== "paused") || !target.pid) {
    throw new TsboxError(`cannot join ${what} of a non running container: ${target.name}`);
  }
  if (what === "IPC" && target.config.namespaces?.ipc === "private") {
    throw new TsboxError("non-shareable IPC (hint: use IpcMode:shareable for the donor container)");
  }
  return { pid: target.pid };
}

/** The namespaces a start of container `c` shares, read now (targets may have restarted). */
export function sharedNamespaces(store: Store, c: ContainerRecord): SharedNamespaces | undefined {
  const m = c.config.namespaces;
  if (!m) return undefined;
  const source = (mode: string | undefined, what: string): NamespaceSource | undefined =>
    mode === "host"
      ? "host"
      : mode?.startsWith(CONTAINER)
      ? runningTarget(store, mode, what)
      : undefined;
  return {
    ipc: source(m.ipc, "IPC"),
    pid: source(m.pid, "PID"),
    uts: m.uts,
    cgroup: m.cgroupns,
  };
}

/** `inspect`'s HostConfig fields for the modes, as docker shows them. */
export function inspectNamespaces(m: NamespaceModes | undefined): Record<string, string> {
  return {
    IpcMode: m?.ipc ?? "shareable",
    PidMode: m?.pid ?? "",
    UTSMode: m?.uts ?? "",
    CgroupnsMode: m?.cgroupns ?? "private",
  };
}

/** Ids of the containers whose IPC or PID namespace `c` joins (to start them first at boot). */
export function joinedContainers(c: Pick<ContainerRecord, "config">): string[] {
  const m = c.config.namespaces;
  return [m?.ipc, m?.pid].filter((v): v is string => v?.startsWith(CONTAINER) ?? false)
    .map((v) => v.slice(CONTAINER.length));
}
