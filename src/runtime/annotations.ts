/**
 * The config.json annotations tsbox's engine writes (src/container/spec.ts) that its runtime
 * reads at start: what the runtime-spec has no field for.
 *
 * @module
 */

/** The annotation a spec carries when the image could not satisfy `--user` at create. */
export const USER_ERROR_ANNOTATION = "io.tsbox.user-error";

/** `--group-add` as given: rootless without subordinate gids cannot set the groups. */
export const GROUP_ADD_ANNOTATION = "io.tsbox.group-add";
