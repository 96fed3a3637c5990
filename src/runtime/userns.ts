/**
 * User namespaces for `--userns-remap`: id ranges from /etc/subuid and /etc/subgid (creating
 * the `tsbox` range for `default`), the uid_map/gid_map the parent writes for a cloned child,
 * and idmapped layer mounts so that an image's files keep their owners inside while the
 * container's root is an unprivileged id on the host.
 *
 * @module
 */
import { join } from "../path.ts";
import { bytes, CLONE, cloneProgram, CompiledProgram, FAIL_ON_ZERO } from "../../ffi/clone.ts";
import { closeFd, killPid, pipe, waitPid } from "../../ffi/process.ts";
import { AT_FDCWD, O_CLOEXEC, O_RDONLY, openat } from "../../ffi/fs.ts";
import { umount } from "../../ffi/mount.ts";
import { idmappedBind } from "../../ffi/security.ts";
import { SYS } from "../../ffi/syscall_numbers.ts";
import { TsboxError, UsageError } from "../errors.ts";

/** One line of a uid_map or gid_map: `count` ids from `inside` map to `outside` on the host. */
export interface IdRange {
  readonly inside: number;
  readonly outside: number;
  readonly count: number;
}

/** A container's id mapping. */
export interface IdMapping {
  readonly uid: readonly IdRange[];
  readonly gid: readonly IdRange[];
}

/** Where the subordinate id files live (tests point these at copies). */
export interface SubIdFiles {
  readonly subuid: string;
  readonly subgid: string;
}

/** The host's files. */
export const HOST_SUBID_FILES: SubIdFiles = { subuid: "/etc/subuid", subgid: "/etc/subgid" };

/** The name `--userns-remap=default` uses, as docker uses `dockremap`. */
export const REMAP_USER = "tsbox";
const RANGE = 65536;

/** One `name:start:count` entry of /etc/subuid or /etc/subgid. */
export interface SubIdEntry {
  readonly name: string;
  readonly start: number;
  readonly count: number;
}

/** Parses /etc/subuid or /etc/subgid text; malformed lines are skipped. */
export function parseSubIds(text: string): SubIdEntry[] {
  const out: SubIdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(":");
    if (f.length !== 3 || !f[0] || f[0].startsWith("#")) continue;
    const start = Number(f[1]), count = Number(f[2]);
    if (!Number.isInteger(start) || !Number.isInteger(count) || count <= 0) continue;
    out.push({ name: f[0], start, count });
  }
  return out;
}

/** The first start >= 100000 where `count` ids overlap no entry. */
export function freeRange(entries: readonly SubIdEntry[], count = RANGE): number {
  let start = 100000;
  const sorted = [...entries].sort((a, b) => a.start - b.start);
  for (const e of sorted) {
    if (start + count <= e.start) break;
    start = Math.max(start, e.start + e.count);
  }
  return start;
}

function readOr(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "";
    throw err;
  }
}

function appendEntry(path: string, entry: SubIdEntry): void {
  const text = readOr(path);
  const sep = text === "" || text.endsWith("\n") ? "" : "\n";
  Deno.writeTextFileSync(path, `${text}${sep}${entry.name}:${entry.start}:${entry.count}\n`, {
    mode: 0o644,
  });
}

function idsOf(user: string, kind: "uid" | "gid"): string[] {
  // A numeric user also matches its name in the files, and a name its number, as shadow does.
  const names = [user];
  try {
    const passwd = Deno.readTextFileSync("/etc/passwd").split("\n").map((l) => l.split(":"));
    const hit = passwd.find((f) => f[0] === user || f[kind === "uid" ? 2 : 3] === user);
    if (hit) names.push(hit[0], hit[2]);
  } catch { /* no passwd: the name alone */ }
  return names;
}

/**
 * The mapping for `--userns-remap=VALUE`: `default` uses (and on first use creates) the `tsbox`
 * range; any other value names a user (or `user:group`) whose ranges must exist. Container ids
 * 0..count-1 map onto the range.
 */
export function remapMapping(value: string, files: SubIdFiles = HOST_SUBID_FILES): IdMapping {
  const [user, group = user] = value === "default" ? [REMAP_USER] : value.split(":");
  const lookup = (path: string, name: string, kind: "uid" | "gid"): SubIdEntry | undefined => {
    const names = idsOf(name, kind);
    return parseSubIds(readOr(path)).find((e) => names.includes(e.name));
  };
  let u = lookup(files.subuid, user, "uid");
  let g = lookup(files.subgid, group, "gid");
  if (value === "default") {
    if (!u) {
      u = { name: REMAP_USER, start: freeRange(parseSubIds(readOr(files.subuid))), count: RANGE };
      appendEntry(files.subuid, u);
    }
    if (!g) {
      g = { name: REMAP_USER, start: freeRange(parseSubIds(readOr(files.subgid))), count: RANGE };
      appendEntry(files.subgid, g);
    }
  }
  if (!u) throw new UsageError(`--userns-remap ${value}: no range for ${user} in ${files.subuid}`);
  if (!g) throw new UsageError(`--userns-remap ${value}: no range for ${group} in ${files.subgid}`);
  return {
    uid: [{ inside: 0, outside: u.start, count: u.count }],
    gid: [{ inside: 0, outside: g.start, count: g.count }],
  };
}

/** The host id container id `id` maps to; undefined when it is not mapped. */
export function toHost(ranges: readonly IdRange[], id: number): number | undefined {
  const r = ranges.find((r) => id >= r.inside && id < r.inside + r.count);
  return r ? r.outside + (id - r.inside) : undefined;
}

/** uid_map / gid_map text. */
export function mapText(ranges: readonly IdRange[]): string {
  return ranges.map((r) => `${r.inside} ${r.outside} ${r.count}\n`).join("");
}

/** A failure to set up a user namespace. */
export class UsernsError extends TsboxError {
  constructor(message: string, options?: ErrorOptions) {
    super(`user namespace: ${message}`, options);
    this.name = "UsernsError";
  }
}

/**
 * Writes the maps of `pid` (a child cloned with CLONE_NEWUSER, still blocked on its sync
 * pipe). As root with CAP_SETUID/CAP_SETGID in the parent namespace no setgroups change is
 * needed; an unprivileged writer must deny setgroups before writing gid_map.
 */
export function writeIdMaps(pid: number, mapping: IdMapping, denySetgroups = false): void {
  try {
    if (denySetgroups) Deno.writeTextFileSync(`/proc/${pid}/setgroups`, "deny");
    Deno.writeTextFileSync(`/proc/${pid}/uid_map`, mapText(mapping.uid));
    Deno.writeTextFileSync(`/proc/${pid}/gid_map`, mapText(mapping.gid));
  } catch (err) {
    throw new UsernsError(`writing the id maps of ${pid}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * An fd of a fresh user namespace with `mapping`, for mount_setattr(MOUNT_ATTR_IDMAP): a child
 * cloned with CLONE_NEWUSER holds it while the maps are written and the fd is opened, then is
 * released (it exits on EOF of its pipe) and reaped. The namespace lives on through the fd.
 */
export async function mappedUsernsFd(mapping: IdMapping): Promise<number> {
  const [r, w] = pipe();
  let pid = -1;
  try {
    const program = CompiledProgram.compile([
      { nr: SYS.close, args: [w], what: "close the write end" },
      {
        nr: SYS.read,
        args: [r, bytes(new Uint8Array(8)), 1],
        flags: FAIL_ON_ZERO,
        what: "hold the namespace",
      },
    ], -1);
    try {
      pid = cloneProgram(program, CLONE.NEWUSER);
    } finally {
      program.free();
    }
    writeIdMaps(pid, mapping);
    return openat(AT_FDCWD, `/proc/${pid}/ns/user`, O_RDONLY | O_CLOEXEC);
  } finally {
    closeFd(r);
    closeFd(w);
    if (pid > 0) {
      killPid(pid, 9);
      await waitPid(pid).catch(() => {});
    }
  }
}

/**
 * Binds each layer dir (`lowerBase/<layer>`) as an idmapped mount at `<dir>/<index>`, so that an
 * overlay over them shows the image's owners through `mapping`. Returns the entries relative to
 * `dir` (same order as `layers`) and a function that detaches the binds: overlay keeps its own
 * private clones of its layers, so they may go right after the overlay is mounted.
 */
export async function idmapLayers(
  lowerBase: string,
  layers: readonly string[],
  dir: string,
  mapping: IdMapping,
): Promise<{ entries: string[]; detach: () => void }> {
  const fd = await mappedUsernsFd(mapping);
  const mounted: string[] = [];
  const detach = () => {
    for (const m of mounted.splice(0)) umount(m);
  };
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    const entries: string[] = [];
    for (const [i, layer] of layers.entries()) {
      const target = join(dir, String(i));
      await Deno.mkdir(target, { recursive: true });
      try {
        idmappedBind(join(lowerBase, layer), target, fd);
      } catch (err) {
        throw new UsernsError(
          `idmapped mount of layer ${layer}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      mounted.push(target);
      entries.push(String(i));
    }
    return { entries, detach };
  } catch (err) {
    detach();
    throw err;
  } finally {
    closeFd(fd);
  }
}
