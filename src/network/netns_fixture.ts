/**
 * For unit tests as root: run code with this thread in a network namespace of the test's own,
 * so that rules and links it makes never touch the host's.
 *
 * @module
 */
import {
  closeNamespaceFd,
  NAMESPACE_TYPES,
  openNamespaceFile,
  setns,
} from "../../ffi/namespace.ts";

/** Runs `fn` with this thread in a fresh network namespace named `prefix-PID` (no await inside). */
export function inFreshNetns(prefix: string, fn: () => void): void {
  const name = `${prefix}-${Deno.pid}`;
  const ip = (...args: string[]) => new Deno.Command("ip", { args }).outputSync();
  ip("netns", "add", name);
  const own = openNamespaceFile("/proc/thread-self/ns/net");
  const fd = openNamespaceFile(`/run/netns/${name}`);
  try {
    setns(fd, NAMESPACE_TYPES.net);
    try {
      fn();
    } finally {
      setns(own, NAMESPACE_TYPES.net);
    }
  } finally {
    closeNamespaceFd(fd);
    closeNamespaceFd(own);
    ip("netns", "del", name);
  }
}
