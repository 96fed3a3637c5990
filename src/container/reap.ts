/**
 * Finishing what a dead runner left behind. A supervisor (or a foreground `run`) killed with
 * SIGKILL cannot unmount its container's rootfs, remove its cgroups, or honour `--rm`: the next
 * tsbox command that reads the row and finds the runner gone does it, synchronously, since it
 * happens while reconciling a row (state.ts) and every command reconciles what it reads.
 *
 * "Once, safely": the work runs inside one write transaction that first re-reads the row and
 * goes on only if it is still as the caller saw it. The write lock also keeps a new supervisor
 * from claiming the row (a guarded update) until the mounts and cgroups of the dead run are gone,
 * so a start never has its fresh mount taken away. Every step tolerates what is already gone.
 *
 * @module
 */
import { removeCgroupDirsSync } from "../runtime/cgroups.ts";
import { unmountRootfs } from "../runtime/rootfs.ts";
import type { Store } from "../store/mod.ts";
import { type CgroupOwner, cgroupOwner, containerCgroup, removeFreezerSync } from "./cgroup.ts";
import { containerDir } from "./paths.ts";
import { releaseNetworkSync } from "./network_release.ts";
import type { ContainerRecord } from "./state.ts";
import { containerEvent } from "../events/log.ts";
import { volumeMountsOf, volumesDir, volumeUsers } from "./volumes.ts";

/** Unmounts the rootfs (every stacked mount) and removes the cgroups, without awaiting. */
export function releaseRuntimeSync(owner: CgroupOwner, root: string): void {
  const id = typeof owner === "string" ? owner : owner.id;
  removeFreezerSync(owner);
  removeCgroupDirsSync(containerCgroup(owner).dirs);
  const rootfs = `${containerDir(root, id)}/rootfs`;
  for (let i = 0; i < 8 && unmountRootfs(rootfs); i++) { /* detach every stacked mount */ }
}

/** What {@link reapDeadRunner} did. */
export type ReapOutcome =
  /** Another process changed the row first; nothing was done here. */
  | "raced"
  /** The row now tells the truth (created without a supervisor, or exited 137). */
  | "recorded"
  /** `--rm`: the container, its files and its unused anonymous volumes are gone. */
  | "removed";

interface Seen {
  state: string;
  supervisor_pid: number | null;
  pid: number | null;
}

/**
 * Container `c` (as read) has no live runner: releases its mounts and cgroups, then removes
 * the container when it was run with `--rm` and has run, or else records the truth: exited
 * (137, PID 1 died with its supervisor), or no supervisor any more for a `created` row (it died
 * while starting) or an `exited` one (it died before clearing its claim). Throws what the
 * database throws (a full disk): the caller keeps its reading then.
 */
export function reapDeadRunner(store: Store, c: ContainerRecord): ReapOutcome {
  const orphanVolumes: string[] = [];
  const outcome = store.db.transaction((): ReapOutcome => {
    const now = store.db.get<Seen>(
      "SELECT state, supervisor_pid, pid FROM containers WHERE id = ?",
      c.id,
    );
    if (
      !now || now.state !== c.state || now.supervisor_pid !== (c.supervisorPid ?? null) ||
      now.pid !== (c.pid ?? null)
    ) {
      return "raced";
    }
    let released = true;
    try {
      releaseRuntimeSync(cgroupOwner(c), store.root);
      releaseNetworkSync(store, c.id);
    } catch {
      // Left for `rm` (which releases again); the row must tell the truth meanwhile.
      released = false;
    }
    if (c.state === "created") {
      store.db.run(
        "UPDATE containers SET supervisor_pid = NULL, supervisor_start = NULL WHERE id = ?",
        c.id,
      );
      return "recorded";
    }
    if (c.config.autoRemove && released && removeDirSync(containerDir(store.root, c.id))) {
      const anonymous = volumeMountsOf(store, c.id).filter((v) => v.anonymous);
      store.db.run("DELETE FROM containers WHERE id = ?", c.id);
      if (isActive(c.state)) dieEvent(store, c);
      containerEvent(store.root, "destroy", c);
      // Rootless, a volume's files may belong to subordinate ids that only a user namespace
      // can remove (rmtree.ts): those volumes stay, unused, for `volume prune`.
      for (const v of Deno.uid() === 0 ? anonymous : []) {
        if (volumeUsers(store, v.name).length > 0) continue;
        store.db.run("DELETE FROM volumes WHERE name = ?", v.name);
        orphanVolumes.push(v.name);
      }
      return "removed";
    }
    // Its port proxies died with it.
    store.db.run("DELETE FROM port_bindings WHERE container_id = ?", c.id);
    if (c.state === "exited") {
      store.db.run(
        "UPDATE containers SET supervisor_pid = NULL, supervisor_start = NULL WHERE id = ?",
        c.id,
      );
      return "recorded";
    }
    store.db.run(
      `UPDATE containers SET state = 'exited', exit_code = COALESCE(exit_code, 137),
         finished_at = ?, pid = NULL, pid_start = NULL, supervisor_pid = NULL,
         supervisor_start = NULL
       WHERE id = ?`,
      Date.now(),
      c.id,
    );
    dieEvent(store, c);
    return "recorded";
  });
  // Outside the lock: the volumes' rows are gone, so nothing else can name them any more.
  for (const name of orphanVolumes) removeDirSync(`${volumesDir(store.root)}/${name}`);
  return outcome;
}

/** Removes a tree; false when it could not (it stays for a later `rm`). */
function removeDirSync(path: string): boolean {
  try {
    Deno.removeSync(path, { recursive: true });
    return true;
  } catch (err) {
    return err instanceof Deno.errors.NotFound;
  }
}

function isActive(state: string): boolean {
  return state === "running" || state === "paused" || state === "restarting";
}

/** docker's `die` of a container whose PID 1 died with its runner (137 unless recorded). */
function dieEvent(store: Store, c: ContainerRecord): void {
  containerEvent(store.root, "die", c, { exitCode: String(c.exitCode ?? 137) });
}
