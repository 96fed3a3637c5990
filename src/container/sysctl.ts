/**
 * `--sysctl KEY=VALUE`, checked as docker checks it: only sysctls that belong to a namespace
 * the container has to itself (IPC ones always, since every container has a private IPC
 * namespace; `net.*` unless it shares the host's network namespace). Anything else would
 * change the host for every process on it.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** IPC namespace sysctls docker accepts by name (moby's opts.ValidateSysctl). */
const IPC_KEYS = new Set([
  "kernel.msgmax",
  "kernel.msgmnb",
  "kernel.msgmni",
  "kernel.sem",
  "kernel.shmall",
  "kernel.shmmax",
  "kernel.shmmni",
  "kernel.shm_rmid_forced",
]);
const PREFIXES = ["net.", "fs.mqueue."];

/**
 * Parses and checks `--sysctl` values for a container on network `network` (a NetworkMode).
 * Returns (key, value) pairs in flag order, the last of a repeated key winning as in docker's
 * map. Throws docker's messages.
 */
export function parseSysctls(
  values: readonly string[],
  network: string,
): [string, string][] {
  const out = new Map<string, string>();
  for (const v of values) {
    const eq = v.indexOf("=");
    const key = eq > 0 ? v.slice(0, eq).trim() : "";
    const namespaced = IPC_KEYS.has(key) || PREFIXES.some((p) => key.startsWith(p));
    // A "/" in a key stands for a "." in a name (`net.ipv4.conf.eth0/100.forwarding`): no
    // part may then become empty, "." or "..".
    const parts = key.split(".").map((part) => part.replaceAll("/", "."));
    const safe = /^[A-Za-z0-9_.\-/]+$/.test(key) &&
      parts.every((part) => part !== "" && part !== "." && part !== "..");
    if (!namespaced || !safe) {
      throw new UsageError(
        `invalid argument "${v}" for "--sysctl" flag: sysctl '${v}' is not allowed`,
      );
    }
    if (key.startsWith("net.") && network === "host") {
      throw new UsageError(`sysctl "${key}" not allowed in host network namespace`);
    }
    out.set(key, v.slice(eq + 1));
  }
  return [...out];
}
