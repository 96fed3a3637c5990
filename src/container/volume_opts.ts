/**
 * The local driver's options of `volume create -o` (docker's `type`, `device`, `o`): the volume's
 * data directory becomes a mount of `device` with filesystem `type` and mount options `o`
 * (`type=tmpfs,device=tmpfs,o=size=64m`, or `type=none,o=bind,device=/host/dir`). The mount is
 * made in the host's mount namespace when the volume is created or a container is created with
 * it (a reboot drops it), so containers bind the mounted directory as they bind any volume's.
 * Before a volume's files are removed its mount goes, so removing a volume never deletes what a
 * bound host directory holds.
 *
 * @module
 */
import { mount, MS, umount } from "../../ffi/mount.ts";
import { TsboxError, UsageError } from "../errors.ts";

/** The options docker's local driver takes. */
const KEYS = ["type", "device", "o"];

/** Mount flags that `o=` may name; everything else is passed to the filesystem as data. */
const FLAGS: Record<string, number> = {
  ro: MS.RDONLY,
  rw: 0,
  nosuid: MS.NOSUID,
  nodev: MS.NODEV,
  noexec: MS.NOEXEC,
  bind: MS.BIND,
  rbind: MS.BIND | MS.REC,
};

/** Parses `-o KEY=VALUE` values, refusing keys the local driver does not have (docker's words). */
export function parseVolumeOpts(values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf("=");
    if (i <= 0) throw new UsageError(`invalid option: ${JSON.stringify(v)}`);
    const key = v.slice(0, i);
    if (!KEYS.includes(key)) throw new TsboxError(`invalid option key: ${JSON.stringify(key)}`);
    out[key] = v.slice(i + 1);
  }
  if (Object.keys(out).length > 0 && (out.type === undefined || out.device === undefined)) {
    throw new TsboxError('missing required option: "type" and "device" are required');
  }
  return out;
}

/** Whether `path` is a mount point (in this process's mount namespace). */
export function isMountPoint(path: string): boolean {
  const mountinfo = Deno.readTextFileSync("/proc/self/mountinfo");
  const escaped = path.replace(
    /[ \t\n\\]/g,
    (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`,
  );
  return mountinfo.split("\n").some((l) => l.split(" ")[4] === escaped);
}

/** Mounts the volume's `device` on `data` unless it is mounted there already. */
export function mountVolumeData(data: string, opts: Readonly<Record<string, string>>): void {
  if (opts.type === undefined || isMountPoint(data)) return;
  let flags = 0;
  const fsData: string[] = [];
  for (const o of (opts.o ?? "").split(",").filter(Boolean)) {
    if (Object.hasOwn(FLAGS, o)) flags |= FLAGS[o];
    else fsData.push(o);
  }
  const type = (flags & MS.BIND) !== 0 ? "" : opts.type;
  try {
    mount(opts.device, data, type, flags, fsData.join(","));
  } catch (err) {
    throw new TsboxError(
      `error while mounting volume '${data}': ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Takes every mount off `data`; throws when one stays (busy), so its files are never removed. */
export function unmountVolumeData(data: string): void {
  for (let i = 0; i < 8 && isMountPoint(data); i++) umount(data, 0);
  if (isMountPoint(data)) throw new TsboxError(`volume data ${data} is still mounted`);
}
