/**
 * Paths of a stopped container that lie under one of its volumes or bind mounts. A stopped
 * container's root (rootfs_access.ts) is its overlay alone, without those mounts, so `cp` to or
 * from `/data/x` under `-v vol:/data` must go to the volume's data directory (or the bind's
 * host source) instead, as docker's does by mounting them first. The rest of the path is then
 * resolved inside that directory with RESOLVE_IN_ROOT from an fd of it (fd_tree.ts), so a
 * symlink a container left in a volume cannot lead the host outside it.
 *
 * @module
 */
import { posix } from "node:path";
import { AT_FDCWD, close, O_CLOEXEC, O_DIRECTORY, O_PATH, openat } from "../../ffi/fs.ts";
import type { MountRequest } from "../runtime/container.ts";
import { openInRoot } from "./fd_tree.ts";

/** The bind mount holding a container path, and the path below its target. */
export interface MountedPath {
  /** The host directory (volume data, bind source) or file mounted there. */
  readonly source: string;
  /** The path below the mount's target, "" for the target itself. */
  readonly rest: string;
  readonly readOnly: boolean;
}

/** The innermost bind mount (volumes are binds of their data) whose target holds `path`. */
export function mountHolding(
  mounts: readonly MountRequest[],
  path: string,
): MountedPath | undefined {
  const p = posix.normalize(`/${path}`).replace(/(.)\/+$/, "$1");
  let best: (MountRequest & { kind: "bind" }) | undefined;
  for (const m of mounts) {
    if (m.kind !== "bind") continue;
    const t = posix.normalize(m.target).replace(/(.)\/+$/, "$1");
    if (p !== t && !p.startsWith(t === "/" ? "/" : `${t}/`)) continue;
    if (!best || t.length > posix.normalize(best.target).length) best = m;
  }
  if (!best) return undefined;
  const t = posix.normalize(best.target).replace(/(.)\/+$/, "$1");
  return {
    source: best.source,
    rest: p.slice(t.length).replace(/^\/+/, ""),
    readOnly: best.readOnly,
  };
}

/**
 * Opens `m.rest` inside `m.source` (the source itself when rest is ""), resolved in it as in a
 * root. The source is the host path the mount was made from (docker resolves it at create).
 */
export function openMounted(m: MountedPath, flags: number): number {
  if (m.rest === "") return openat(AT_FDCWD, m.source, flags | O_CLOEXEC);
  const dir = openat(AT_FDCWD, m.source, O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    return openInRoot(dir, m.rest, flags);
  } finally {
    close(dir);
  }
}
