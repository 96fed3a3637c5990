/**
 * Where a container's files live under the store root.
 *
 * @module
 */
import { join } from "../path.ts";

/** `<root>/containers/<id>`: upper, work, rootfs mount point, etc files, log. */
export function containerDir(root: string, id: string): string {
  return join(root, "containers", id);
}

/** The json-file log, named as docker names it. */
export function logPath(root: string, id: string): string {
  return join(containerDir(root, id), `${id}-json.log`);
}

/** The container's OCI bundle config (podman's `OCIConfigPath`): written at create. */
export function configPath(root: string, id: string): string {
  return join(containerDir(root, id), "config.json");
}
