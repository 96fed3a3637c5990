/**
 * A new time namespace (`linux.namespaces` type `time`) with `linux.timeOffsets`: the
 * container's CLOCK_MONOTONIC and CLOCK_BOOTTIME (and /proc/uptime) run shifted by the offsets.
 *
 * unshare(CLONE_NEWTIME) moves only the caller's future children, and its offsets can be
 * written until a first process enters the namespace. So the container's program unshares it
 * (after becoming root of its user namespace, which owns the time namespace), the runtime
 * writes `/proc/PID/timens_offsets` while the process waits for `start` (the file sets the
 * offsets of the namespace its children will get), and the process enters the namespace at its
 * execve (the kernel switches a process that unshared a time namespace on exec, since 5.16).
 * Joining a time namespace by path is refused.
 *
 * @module
 */
import type { Spec } from "../oci/spec.ts";
import { OciConfigError } from "./oci_config.ts";

/** `linux.timeOffsets`: seconds and nanoseconds by clock. */
export type TimeOffsets = Readonly<
  Record<string, { readonly secs?: number; readonly nanosecs?: number }>
>;

const CLOCKS = ["monotonic", "boottime"];

/** The timeOffsets of `spec`, checked against its namespaces. */
export function timeOffsetsOf(spec: Spec): TimeOffsets | undefined {
  const offsets = (spec.linux as { timeOffsets?: unknown }).timeOffsets;
  const hasTime = (spec.linux.namespaces ?? []).some((n) => n.type === "time" && !n.path);
  if (offsets === undefined || offsets === null) return undefined;
  if (typeof offsets !== "object" || Array.isArray(offsets)) {
    throw new OciConfigError("linux.timeOffsets must be an object");
  }
  if (!hasTime) {
    throw new OciConfigError(
      "linux.timeOffsets is set but linux.namespaces has no new time namespace",
    );
  }
  for (const [clock, v] of Object.entries(offsets)) {
    if (!CLOCKS.includes(clock)) {
      throw new OciConfigError(`linux.timeOffsets: unknown clock ${JSON.stringify(clock)}`);
    }
    const o = v as { secs?: unknown; nanosecs?: unknown };
    if (
      typeof o !== "object" || o === null ||
      !Number.isSafeInteger(o.secs ?? 0) ||
      !Number.isInteger(o.nanosecs ?? 0) || (o.nanosecs as number ?? 0) < 0 ||
      (o.nanosecs as number ?? 0) > 999_999_999
    ) {
      throw new OciConfigError(
        `linux.timeOffsets.${clock} needs integer secs and nanosecs in 0..999999999`,
      );
    }
  }
  return offsets as TimeOffsets;
}

/** The text written to /proc/PID/timens_offsets: one `clock secs nanosecs` line per clock. */
export function timensOffsetsText(offsets: TimeOffsets): string {
  return Object.entries(offsets)
    .map(([clock, o]) => `${clock} ${o.secs ?? 0} ${o.nanosecs ?? 0}\n`).join("");
}

/** Writes the offsets of the time namespace `pid` unshared (before it enters it). */
export function writeTimeOffsets(pid: number, offsets: TimeOffsets | undefined): void {
  if (!offsets || Object.keys(offsets).length === 0) return;
  try {
    // One write per line: the kernel takes each line of a write as one offset.
    for (const line of timensOffsetsText(offsets).split("\n").filter(Boolean)) {
      Deno.writeTextFileSync(`/proc/${pid}/timens_offsets`, `${line}\n`);
    }
  } catch (err) {
    throw new OciConfigError(
      `linux.timeOffsets: writing /proc/${pid}/timens_offsets: ${(err as Error).message}`,
    );
  }
}
