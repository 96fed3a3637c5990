/**
 * `tsbox runc` run by an ordinary user, as runc runs rootless (its `rootless` mode, chosen
 * when the effective uid is not 0, or is 0 inside a user namespace as under rootless podman,
 * where the id maps are written as root writes them and the rest below applies):
 *
 * - The config must have a user namespace (`spec --rootless` writes one mapping the user's own
 *   uid and gid to 0). A mapping of exactly the user's own ids is written by this process
 *   (setgroups denied first, as the kernel requires for an unprivileged gid_map, so the
 *   container skips setgroups); any other mapping goes through the setuid newuidmap and
 *   newgidmap, which check it against /etc/subuid and /etc/subgid.
 * - Cgroups are used when the user can create the container's cgroup (a delegated subtree);
 *   otherwise they are skipped, as runc skips them, unless `linux.resources` asks for limits,
 *   which then fails clearly instead of running the container without them. A container
 *   without a cgroup gets the host's cgroup tree bound read-only where its config mounts
 *   `cgroup`, and `pause`, `update` and `kill --all` say they need a cgroup.
 *
 * @module
 */
import type { Spec } from "../oci/spec.ts";
import { CgroupError } from "./cgroups.ts";
import { createOciCgroup, ociCgroup } from "./oci_cgroup.ts";
import { OciConfigError, resourceLimits } from "./oci_config.ts";
import { type RootlessMapping, writeRootlessMaps } from "./rootless.ts";
import { type IdMapping, writeIdMaps } from "./userns.ts";
import { inUserNamespace } from "./in_userns.ts";

/** What createOciContainer does differently for an unprivileged runtime. */
export interface OciRootless {
  /** No cgroup is made or joined. */
  readonly noCgroup: boolean;
  /**
   * This runtime is root of a user namespace (rootless podman's): it writes id maps and sees
   * its non-dumpable children as root does.
   */
  readonly nsRoot: boolean;
  /** gid_map was written after "deny" in setgroups: the container must not call setgroups. */
  readonly setgroupsDenied: boolean;
  /** Writes the id maps of the cloned process. */
  writeIdMaps(pid: number, mapping: IdMapping): Promise<void>;
}

/**
 * Whether this runtime is rootless, as runc decides it: the effective uid is not 0, or it is
 * 0 inside a user namespace (rootless podman runs its runtime so), where the host's
 * cgroups are not this process's to create.
 */
export function runtimeIsRootless(): boolean {
  return (Deno.uid() ?? 0) !== 0 || inUserNamespace();
}

/** A single range mapping exactly `id` to some id, one wide: what a user may write alone. */
function selfOnly(ranges: IdMapping["uid"], id: number): boolean {
  return ranges.length === 1 && ranges[0].outside === id && ranges[0].count === 1;
}

/** Whether `linux.resources` asks for a limit (device rules do not need a cgroup here). */
export function requestsLimits(spec: Spec): boolean {
  const r = (spec.linux.resources ?? {}) as Record<string, unknown>;
  return Object.entries(r).some(([k, v]) =>
    k !== "devices" && v !== null && v !== undefined &&
    (typeof v !== "object" || (Array.isArray(v) ? v.length > 0 : Object.keys(v).length > 0))
  );
}

function permissionDenied(err: unknown): boolean {
  const code = (err as CgroupError)?.code ??
    ((err as { cause?: { code?: string } })?.cause?.code);
  return err instanceof CgroupError &&
    (code === "EACCES" || code === "EPERM" || code === "EROFS" ||
      /Permission denied|Operation not permitted|Read-only file system/.test(err.message));
}

/**
 * Plans a rootless create: checks the config, tries the cgroup, and returns the options for
 * createOciContainer with the config it should run (cgroup mounts replaced when there is no
 * cgroup).
 */
export async function planRootless(
  spec: Spec,
  cgroupPath: string,
): Promise<{ rootless: OciRootless; spec: Spec }> {
  const namespaces = spec.linux.namespaces ?? [];
  // Root of a user namespace needs none of its own (rootless podman's configs have none).
  if (Deno.uid() !== 0 && !namespaces.some((n) => n.type === "user")) {
    throw new OciConfigError(
      "rootless container requires user namespaces (linux.namespaces has no user; " +
        "`tsbox runc spec --rootless` writes such a config)",
    );
  }
  const uid = Deno.uid() ?? 0;
  const gid = Deno.gid() ?? 0;
  // Root of a user namespace (rootless podman) maps ids of its own namespace as root does.
  const nsRoot = uid === 0;
  const uids = (spec.linux.uidMappings ?? []).map((m) => ({
    inside: m.containerID,
    outside: m.hostID,
    count: m.size,
  }));
  const gids = (spec.linux.gidMappings ?? []).map((m) => ({
    inside: m.containerID,
    outside: m.hostID,
    count: m.size,
  }));
  const maps: Omit<RootlessMapping, "mapping"> = {
    subUids: !nsRoot && !selfOnly(uids, uid),
    subGids: !nsRoot && !selfOnly(gids, gid),
  };
  let noCgroup = false;
  try {
    await createOciCgroup(cgroupPath, resourceLimits(spec));
  } catch (err) {
    if (!permissionDenied(err)) throw err;
    await ociCgroup(cgroupPath).remove().catch(() => {});
    if (requestsLimits(spec)) {
      throw new OciConfigError(
        `rootless: linux.resources sets limits, but uid ${uid} cannot create the cgroup ` +
          `${cgroupPath} (no cgroup delegated to this user): ${(err as Error).message}`,
      );
    }
    noCgroup = true;
  }
  const run: Spec = noCgroup
    ? {
      ...spec,
      mounts: (spec.mounts ?? []).map((m) =>
        m.type === "cgroup" || m.type === "cgroup2"
          ? {
            destination: m.destination,
            type: "bind",
            source: "/sys/fs/cgroup",
            options: ["rbind", "nosuid", "noexec", "nodev", "ro"],
          }
          : m
      ),
    }
    : spec;
  return {
    spec: run,
    rootless: {
      noCgroup,
      nsRoot,
      setgroupsDenied: !nsRoot && !maps.subGids,
      writeIdMaps: async (pid, mapping) =>
        nsRoot ? writeIdMaps(pid, mapping) : await writeRootlessMaps(pid, { ...maps, mapping }),
    },
  };
}
