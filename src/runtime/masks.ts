/**
 * The /proc and /sys paths docker hides or makes read-only, which of them this kernel has, and
 * the child's ops that mask them after pivot_root.
 *
 * @module
 */
import type { Op } from "../../ffi/clone.ts";
import { MS } from "../../ffi/mount.ts";
import { mountOp } from "./security_ops.ts";

/** Paths docker hides: files get /dev/null bound over them, directories an empty r/o tmpfs. */
export const MASKED_PATHS: readonly string[] = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/interrupts",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** Paths docker makes read-only. */
export const READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/** A masked path and whether it is a directory (both as the host's /proc and /sys show it). */
export interface MaskedPath {
  readonly path: string;
  readonly dir: boolean;
}

/**
 * The masked paths that exist: /proc and /sys show the same kernel inside and out, so the
 * host's view decides; missing ones are skipped, as runc does.
 */
export function existingMasks(paths: readonly string[] = MASKED_PATHS): MaskedPath[] {
  return paths.flatMap((path) => {
    try {
      return [{ path, dir: Deno.statSync(path).isDirectory }];
    } catch {
      return [];
    }
  });
}

/** The read-only paths that exist on this kernel. */
export function existingReadonly(paths: readonly string[] = READONLY_PATHS): string[] {
  return paths.filter((p) => {
    try {
      Deno.statSync(p);
      return true;
    } catch {
      return false;
    }
  });
}

// proc is mounted nosuid,nodev,noexec; a remount must repeat locked flags in a user namespace.
const PROC_FLAGS = MS.NOSUID | MS.NODEV | MS.NOEXEC;

/** After pivot_root: hide the masked paths, remount the read-only ones. */
export function maskOps(masked: readonly MaskedPath[], readonly: readonly string[]): Op[] {
  const ops: Op[] = [];
  for (const m of masked) {
    ops.push(
      m.dir
        ? mountOp("tmpfs", m.path, "tmpfs", MS.RDONLY | PROC_FLAGS, "size=0,mode=555")
        : mountOp("/dev/null", m.path, "", MS.BIND),
    );
  }
  for (const p of readonly) {
    ops.push(
      mountOp(p, p, "", MS.BIND | MS.REC),
      mountOp(p, p, "", MS.BIND | MS.REMOUNT | MS.RDONLY | PROC_FLAGS),
    );
  }
  return ops;
}
