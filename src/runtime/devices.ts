/**
 * Devices of a container: docker's default device cgroup rules and host device nodes
 * (`--device`, `--privileged`), which the engine writes into the spec's `linux.devices`.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** One device made available in the container. */
export interface DeviceRequest {
  /** Host device node. */
  readonly source: string;
  /** Path inside the container (under /dev). */
  readonly target: string;
  /** cgroup permissions: some of r, w, m. */
  readonly permissions: string;
}

/** A device cgroup rule (`c 1:3 rwm`); `*` for any major or minor. */
export interface DeviceRule {
  readonly allow: boolean;
  readonly type: "a" | "c" | "b";
  readonly major: number | "*";
  readonly minor: number | "*";
  readonly access: string;
}

/** The rule's line for devices.allow / devices.deny. */
export function deviceRuleLine(r: DeviceRule): string {
  return r.type === "a" ? "a" : `${r.type} ${r.major}:${r.minor} ${r.access}`;
}

function allow(type: "c" | "b", major: number | "*", minor: number | "*", access = "rwm") {
  return { allow: true, type, major, minor, access } as const;
}

/** docker's default device rules: deny all, mknod anything, use only the standard nodes. */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  { allow: false, type: "a", major: "*", minor: "*", access: "rwm" },
  allow("c", "*", "*", "m"),
  allow("b", "*", "*", "m"),
  allow("c", 1, 3), // null
  allow("c", 1, 5), // zero
  allow("c", 1, 7), // full
  allow("c", 1, 8), // random
  allow("c", 1, 9), // urandom
  allow("c", 5, 0), // tty
  allow("c", 5, 1), // console
  allow("c", 5, 2), // ptmx
  allow("c", 136, "*"), // pts/*
  allow("c", 10, 200), // net/tun
];

/** A host device node's type and numbers. */
export interface HostDevice {
  readonly type: "c" | "b";
  readonly major: number;
  readonly minor: number;
}

/** Stats a host device node; throws a UsageError when it is not one. */
export function hostDevice(path: string): HostDevice {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    throw new UsageError(`--device ${path}: no such device on the host`);
  }
  if (!info.isCharDevice && !info.isBlockDevice) {
    throw new UsageError(`--device ${path}: not a device node`);
  }
  const rdev = info.rdev ?? 0;
  // glibc's gnu_dev_major/minor, for rdev values below 2^32.
  const major = ((rdev >>> 8) & 0xfff) >>> 0;
  const minor = ((rdev & 0xff) | ((rdev >>> 12) & 0xfff00)) >>> 0;
  return { type: info.isCharDevice ? "c" : "b", major, minor };
}

/** Top-level device nodes of the host's /dev, for `--privileged`. */
export function allHostDevices(): DeviceRequest[] {
  const out: DeviceRequest[] = [];
  for (const e of Deno.readDirSync("/dev")) {
    const path = `/dev/${e.name}`;
    try {
      const info = Deno.lstatSync(path);
      if (info.isCharDevice || info.isBlockDevice) {
        out.push({ source: path, target: path, permissions: "rwm" });
      }
    } catch { /* raced away */ }
  }
  return out;
}
