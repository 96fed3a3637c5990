/**
 * docker's defaults the runtime applies when a container's description leaves a value out.
 *
 * @module
 */

/** docker's /dev/shm size when `--shm-size` is not given: 64 MiB. */
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;

/** Where `--init`'s binary appears inside the container (on /dev's tmpfs, not in the image). */
export const INIT_PATH = "/dev/init";
