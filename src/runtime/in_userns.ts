/**
 * Whether this process runs in a user namespace other than the host's: its uid_map is not
 * the whole range (rootless podman runs its OCI runtime as root of such a namespace).
 *
 * @module
 */

/** True when /proc/self/uid_map maps less than every id onto itself. */
export function inUserNamespace(): boolean {
  try {
    const map = Deno.readTextFileSync("/proc/self/uid_map").trim().split(/\s+/);
    return map.join(" ") !== "0 0 4294967295";
  } catch {
    return false;
  }
}
