/**
 * The one mount type of the runtime: a user's bind or tmpfs mount. A {@link ContainerSpec}
 * carries it with the target as seen in the container; the child program gets the same type
 * with the target resolved in the rootfs (a host path), see program.ts's `extraMounts`.
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
