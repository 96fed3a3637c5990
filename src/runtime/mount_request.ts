/**
 * A user's bind or tmpfs mount (`-v`, `--mount`, `--tmpfs`, a RUN step's `--mount`), its
 * target as seen in the container: the engine writes it into the container's config.json
 * (src/container/spec.ts), whose mounts the runtime makes (oci_mounts.ts).
 *
 * @module
 */

/** A bind or tmpfs mount of a container. */
export type MountRequest =
  | {
    readonly kind: "bind";
    readonly source: string;
    readonly target: string;
    readonly readOnly: boolean;
  }
  | { readonly kind: "tmpfs"; readonly target: string; readonly options: string };
