/**
 * Namespaces of other processes: opening `/proc/<pid>/ns/*` and setns(2).
 *
 * Deno is multi-threaded: user and mount namespaces, and for a plain user every namespace owned
 * by a container's user namespace, are joined by a cloned child's syscall program instead (see
 * src/runtime/exec.ts, src/net/netns_sockets.ts). {@link setns} is for what root's threads may
 * do themselves.
 *
 * @module
 */
import { check, cstr, errno, openLibc } from "./libc.ts";
import { SyscallError } from "./errors.ts";

const libc = openLibc({
  setns: { parameters: ["i32", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
});

const O_RDONLY = 0;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;

/** Namespace kinds as named under /proc/PID/ns, with their CLONE_NEW* type. */
export const NAMESPACE_TYPES = {
  user: 0x10000000,
  ipc: 0x08000000,
  uts: 0x04000000,
  net: 0x40000000,
  pid: 0x20000000,
  cgroup: 0x02000000,
  mnt: 0x00020000,
  time: 0x00000080,
} as const;

/** A namespace kind, e.g. "mnt". */
export type NamespaceKind = keyof typeof NAMESPACE_TYPES;

/** The identity of `pid`'s namespace of `kind` (the /proc link text, e.g. `mnt:[4026531841]`). */
export function namespaceId(pid: number | "self" | "thread-self", kind: string): string {
  return Deno.readLinkSync(`/proc/${pid}/ns/${kind}`);
}

/** Opens `path` (a namespace file or /proc/PID/root) close-on-exec. */
export function openNamespaceFile(path: string, directory = false): number {
  const flags = directory ? O_PATH | O_DIRECTORY | O_CLOEXEC : O_RDONLY | O_CLOEXEC;
  return check(libc.open(cstr(path), flags, 0), "open", [path]);
}

/** setns(2) for the calling thread. */
export function setns(fd: number, type: number): void {
  if (libc.setns(fd, type) < 0) {
    throw new SyscallError("setns", [fd, `0x${type.toString(16)}`], errno());
  }
}

/** Closes `fd`, ignoring errors. */
export function closeNamespaceFd(fd: number): void {
  libc.close(fd);
}
