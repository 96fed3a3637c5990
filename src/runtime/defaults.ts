/**
 * docker's defaults the runtime applies when a container's description leaves a value out.
 *
 * @module
 */
import type { Mount } from "../oci/spec.ts";

/** docker's /dev/shm size when `--shm-size` is not given: 64 MiB. */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** Where `--init`'s binary appears inside the container (on /dev's tmpfs, not in the image). */
export const INIT_PATH = "/dev/init";

/**
 * The /dev tmpfs and its devpts as runc's `spec` and docker write them in a config.json (fresh
 * objects on every call, so a caller may change its copy).
 */
export function devMounts(): Mount[] {
  return [
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
  ];
}
