/**
 * Namespaces a container shares instead of getting its own (docker's `--ipc`, `--pid`,
 * `--uts`, `--cgroupns` modes): the host's, by leaving the kind out of the clone flags, or
 * another container's, by joining its PID 1's `/proc/PID/ns/KIND` file.
 *
 * An IPC namespace is joined by the child's syscall program (`setns`, before /dev/mqueue is
 * mounted, so the queues it shows are the joined namespace's). A PID namespace applies only to
 * children, so it is entered by tsbox's main thread (`pid_for_children`, allowed for root's
 * threaded process) right around the clone and left again before anything else runs.
 *
 * @module
 */
import { CLONE, type Op } from "../../ffi/clone.ts";
import {
  closeNamespaceFd,
  NAMESPACE_TYPES,
  openNamespaceFile,
  setns,
} from "../../ffi/namespace.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";

/**
 * Where a shared namespace comes from: the host's, that of the process with this pid, or a
 * namespace file (an OCI spec's `path`, like `/proc/PID/ns/ipc` or a bind-mounted one).
 */
export type NamespaceSource = "host" | { readonly pid: number } | { readonly path: string };

/** The file to open for a joined namespace of `kind`; undefined for the host's or none. */
export function namespaceFile(
  source: NamespaceSource | undefined,
  kind: string,
): string | undefined {
  if (!source || source === "host") return undefined;
  return "path" in source ? source.path : `/proc/${source.pid}/ns/${kind}`;
}

/** The namespaces a container does not own (all its own when absent). */
export interface SharedNamespaces {
  readonly ipc?: NamespaceSource;
  readonly pid?: NamespaceSource;
  readonly uts?: "host";
  readonly cgroup?: "host";
}

/** The clone flags without the kinds the container shares. */
export function cloneFlagsFor(flags: number, shared: SharedNamespaces | undefined): number {
  if (shared?.ipc) flags &= ~CLONE.NEWIPC;
  if (shared?.pid) flags &= ~CLONE.NEWPID;
  if (shared?.uts) flags &= ~CLONE.NEWUTS;
  return flags;
}

/** Namespace files opened for one start; {@link close} once the child is cloned. */
export interface OpenedNamespaces {
  /** The IPC namespace the child joins with setns. */
  readonly ipcFd?: number;
  /** The PID namespace the child is cloned into. */
  readonly pidFd?: number;
  close(): void;
}

/** Opens the namespace files of the `{pid}` sources (inherited by the clone). */
export function openShared(shared: SharedNamespaces | undefined): OpenedNamespaces {
  const fds: number[] = [];
  const open = (kind: "ipc" | "pid", source: NamespaceSource | undefined) => {
    const file = namespaceFile(source, kind);
    if (file === undefined) return undefined;
    const fd = openNamespaceFile(file);
    fds.push(fd);
    return fd;
  };
  try {
    return {
      ipcFd: open("ipc", shared?.ipc),
      pidFd: open("pid", shared?.pid),
      close: () => fds.splice(0).forEach(closeNamespaceFd),
    };
  } catch (err) {
    fds.forEach(closeNamespaceFd);
    throw err;
  }
}

/**
 * Runs `clone` with this thread's `pid_for_children` set to namespace `pidFd`, and restores
 * it right after (synchronously: no other code of this thread runs in between).
 */
export function cloneInPidNamespace<T>(pidFd: number | undefined, clone: () => T): T {
  if (pidFd === undefined) return clone();
  const own = openNamespaceFile("/proc/self/ns/pid");
  try {
    setns(pidFd, NAMESPACE_TYPES.pid);
    try {
      return clone();
    } finally {
      setns(own, NAMESPACE_TYPES.pid);
    }
  } finally {
    closeNamespaceFd(own);
  }
}

/** The child's setns into a joined IPC namespace, and the close of its fd. */
export function ipcJoinOps(ipcFd: number | undefined): Op[] {
  if (ipcFd === undefined) return [];
  return [
    {
      nr: SYS.setns,
      args: [ipcFd, CLONE.NEWIPC],
      flags: 0,
      what: "join the IPC namespace of the container named by --ipc",
    },
    { nr: SYS.close, args: [ipcFd], flags: 0, what: "close the IPC namespace fd" },
  ];
}
