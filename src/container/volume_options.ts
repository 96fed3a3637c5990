/**
 * The local volume driver's options, as docker's: `volume create -o type=tmpfs -o device=tmpfs
 * -o o=size=64m` or `-o type=none -o o=bind -o device=/host/dir` (or any filesystem mount(2)
 * takes). They are kept beside the volume in `opts.json` (docker's file and keys), and the
 * volume's `_data` is mounted with them in the host's mount namespace before a container that
 * uses the volume starts, so the container's bind of `_data` sees it. The mount stays until
 * the volume is removed, which unmounts it first: removing the directory of a mounted `_data`
 * would delete the files of what is mounted there (a host directory, for `o=bind`).
 *
 * @module
 */
import { join } from "../path.ts";
import { mount, MS, umount } from "../../ffi/mount.ts";
import { TsboxError, UsageError } from "../errors.ts";

/** The options as docker's local driver records them. */
export interface VolumeOptions {
  readonly MountType: string;
  readonly MountOpts: string;
  readonly MountDevice: string;
}

const KEYS = ["type", "device", "o"];

/** Parses `-o KEY=VALUE` values with docker's checks; undefined without any. */
export function parseVolumeOptions(values: readonly string[]): VolumeOptions | undefined {
  if (values.length === 0) return undefined;
  const opts: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new UsageError(`invalid key value pair format in --opt: ${v}`);
    opts[v.slice(0, eq)] = v.slice(eq + 1);
  }
  for (const key of Object.keys(opts)) {
    if (!KEYS.includes(key)) throw new UsageError(`invalid option key: ${JSON.stringify(key)}`);
  }
  if (opts.type !== undefined && !opts.device) {
    throw new UsageError('missing required option: "device"');
  }
  if (opts.device !== undefined && !opts.type) {
    throw new UsageError('missing required option: "type"');
  }
  return { MountType: opts.type ?? "", MountOpts: opts.o ?? "", MountDevice: opts.device ?? "" };
}

/** `inspect`'s Options: the keys as given. */
export function optionsView(o: VolumeOptions | undefined): Record<string, string> | null {
  if (!o) return null;
  const out: Record<string, string> = {};
  if (o.MountDevice) out.device = o.MountDevice;
  if (o.MountOpts) out.o = o.MountOpts;
  if (o.MountType) out.type = o.MountType;
  return out;
}

function optsPath(dataDir: string): string {
  // The parent of `_data` (node:path's dirname; src/path.ts spares the node layer's boot).
  return join(dataDir, "..", "opts.json");
}

/** Records the options of the volume whose `_data` is `dataDir`. */
export function writeVolumeOptions(dataDir: string, o: VolumeOptions): void {
  Deno.writeTextFileSync(optsPath(dataDir), JSON.stringify(o), { mode: 0o600 });
}

/** The recorded options of the volume whose `_data` is `dataDir`, if any. */
export function readVolumeOptions(dataDir: string): VolumeOptions | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(optsPath(dataDir))) as VolumeOptions;
  } catch {
    return undefined;
  }
}

/** mount(2) flags named in `o`, and the rest as the filesystem's data string. */
export function mountArguments(o: string): { flags: number; data: string } {
  const words: Record<string, number> = {
    ro: MS.RDONLY,
    rw: 0,
    nosuid: MS.NOSUID,
    nodev: MS.NODEV,
    noexec: MS.NOEXEC,
    bind: MS.BIND,
    rbind: MS.BIND | MS.REC,
  };
  let flags = 0;
  const data: string[] = [];
  for (const part of o.split(",").filter(Boolean)) {
    if (part in words) flags |= words[part];
    else data.push(part);
  }
  return { flags, data: data.join(",") };
}

function isMountPoint(path: string): boolean {
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo");
  return mounts.split("\n").some((l) => l.split(" ")[4] === path);
}

/** Mounts the volume's `_data` with its options unless done already (or it has none). */
export function mountVolumeData(dataDir: string): void {
  const o = readVolumeOptions(dataDir);
  if (!o?.MountType || isMountPoint(dataDir)) return;
  const { flags, data } = mountArguments(o.MountOpts);
  // Type "none" with o=bind is a bind mount: no filesystem type for mount(2).
  const type = o.MountType === "none" ? "" : o.MountType;
  try {
    mount(o.MountDevice, dataDir, type, flags, data);
    if (flags & MS.BIND && flags & MS.RDONLY) {
      mount(o.MountDevice, dataDir, "", flags | MS.REMOUNT, data);
    }
  } catch (err) {
    throw new TsboxError(
      `error while mounting volume '${dataDir}': ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Unmounts the volume's `_data` (every stacked mount) before its directory is removed. */
export function unmountVolumeData(dataDir: string): void {
  for (let i = 0; i < 8 && isMountPoint(dataDir); i++) umount(dataDir);
}
