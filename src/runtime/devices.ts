/**
 * Devices of a container: docker's default device cgroup rules, host device nodes (`--device`,
 * `--privileged`) and the child's ops that bind them into its /dev.
 *
 * @module
 */
import { type Op, str } from "../../ffi/clone.ts";
import { MS } from "../../ffi/mount.ts";
import { UsageError } from "../errors.ts";
import { SYSCALLS_X86_64 as NR } from "./seccomp_syscalls.ts";
import { mountOp, op } from "./security_ops.ts";

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

const AT_FDCWD = -100;
const S_IFREG = 0o100000;

/** What tsbox's /dev already holds (files, links and directories made by the program). */
const STANDARD_DEV = new Set([
  "null",
  "zero",
  "full",
  "random",
  "urandom",
  "tty",
  "fd",
  "stdin",
  "stdout",
  "stderr",
  "ptmx",
  "pts",
  "shm",
  "mqueue",
]);

/**
 * Before pivot_root: each device gets an empty file in the container's fresh /dev tmpfs (`dev`
 * is its host path) and the host node bound over it, which also works in a user namespace.
 * Standard names are already there and only get the bind; links and the pts/shm/mqueue
 * directories are left alone.
 */
export function deviceOps(dev: string, devices: readonly DeviceRequest[]): Op[] {
  const ops: Op[] = [];
  const made = new Set<string>();
  for (const d of devices) {
    const rel = d.target.replace(/^\/dev\//, "");
    const top = rel.split("/")[0];
    if (["fd", "stdin", "stdout", "stderr", "ptmx", "pts", "shm", "mqueue"].includes(top)) continue;
    if (rel === "" || rel.split("/").some((c) => c === ".." || c === "." || c === "")) continue;
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (made.has(dir)) continue;
      made.add(dir);
      ops.push(op(NR.mkdirat, `mkdir ${dev}/${dir}`, [AT_FDCWD, str(`${dev}/${dir}`), 0o755]));
    }
    if (!STANDARD_DEV.has(rel) && !made.has(rel)) {
      made.add(rel);
      ops.push(
        op(NR.mknodat, `create ${dev}/${rel}`, [
          AT_FDCWD,
          str(`${dev}/${rel}`),
          S_IFREG | 0o666,
          0,
        ]),
      );
    }
    ops.push(mountOp(d.source, `${dev}/${rel}`, "", MS.BIND));
  }
  return ops;
}
