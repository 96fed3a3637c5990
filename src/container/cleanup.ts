/**
 * Removing a container's traces: rootfs mount, cgroups, directory (upper layer, log, etc
 * files) and its row. Each step tolerates what is already gone, so a removal after a crash,
 * or two removals racing, both end with nothing left. Rootless, files of the container's other
 * ids are removed from inside a user namespace (rmtree.ts).
 *
 * @module
 */
import { TsboxError } from "../errors.ts";
import { unmountRootfs } from "../runtime/rootfs.ts";
import type { Store } from "../store/mod.ts";
import { type CgroupOwner, cgroupOwner, containerCgroup, removeFreezer } from "./cgroup.ts";
import { containerDir } from "./paths.ts";
import { containerEvent } from "../events/log.ts";
import { releaseNetwork } from "./network_release.ts";
import { removeTree } from "./rmtree.ts";
import { type ContainerRecord, deleteContainerRow } from "./state.ts";
import { removeUnusedVolumes, volumeMountsOf } from "./volumes.ts";

/** Unmounts the rootfs and removes the cgroups (killing anything left in them). */
export async function releaseRuntime(owner: CgroupOwner, root: string): Promise<void> {
  const id = typeof owner === "string" ? owner : owner.id;
  await removeFreezer(owner);
  await containerCgroup(owner).remove();
  const rootfs = `${containerDir(root, id)}/rootfs`;
  // A crashed supervisor can leave the overlay mounted (more than once after restarts).
  for (let i = 0; i < 8 && unmountRootfs(rootfs); i++) { /* detach every stacked mount */ }
}

/**
 * Removes everything of a container whose processes are gone. Its anonymous volumes go too with
 * `volumes` (`rm -v`) or when it was started with `--rm`, as docker does, unless another
 * container also mounts them.
 */
export async function removeContainerFiles(
  store: Store,
  c: ContainerRecord,
  opts: { volumes?: boolean } = {},
): Promise<void> {
  const anonymous = opts.volumes || c.config.autoRemove
    ? volumeMountsOf(store, c.id).filter((v) => v.anonymous).map((v) => v.name)
    : [];
  await releaseRuntime(cgroupOwner(c), store.root);
  await releaseNetwork(store, c.id);
  // The row goes only once the files are gone: a failed removal leaves a container that a
  // later `rm` can remove again, never files no row points to.
  await removeTree(containerDir(store.root, c.id)).catch((err) => {
    throw new TsboxError(
      `container ${c.id.slice(0, 12)} kept, its files could not be removed: ${err.message}`,
      { cause: err },
    );
  });
  deleteContainerRow(store, c.id);
  containerEvent(store.root, "destroy", c);
  await removeUnusedVolumes(store, anonymous);
}
