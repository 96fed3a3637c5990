/**
 * Namespaces a container shares instead of getting its own (docker's `--ipc`, `--pid`,
 * `--uts`, `--cgroupns` modes): the host's, left out of the spec's `linux.namespaces`, or
 * another container's, joined by its PID 1's `/proc/PID/ns/KIND` file as the spec's `path`
 * (the child joins those with setns, oci_program.ts). A PID namespace applies only to
 * children, so it is entered by tsbox's main thread (`pid_for_children`, allowed for root's
 * threaded process) right around the clone and left again before anything else runs.
 *
 * @module
 */
import {
  closeNamespaceFd,
  NAMESPACE_TYPES,
  openNamespaceFile,
  setns,
} from "../../ffi/namespace.ts";

/**
 * Where a shared namespace comes from: the host's, that of the process with this pid, or a
 * namespace file (an OCI spec's `path`, like `/proc/PID/ns/ipc` or a bind-mounted one).
 */
export type NamespaceSource = "host" | { readonly pid: number } | { readonly path: string };

/** The namespaces a container does not own (all its own when absent). */
export interface SharedNamespaces {
  readonly ipc?: NamespaceSource;
  readonly pid?: NamespaceSource;
  readonly uts?: "host";
  readonly cgroup?: "host";
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
