/**
 * tsbox run by an ordinary user: where its files go, which ids its containers get, and how the
 * id maps of a container's user namespace are written. As podman does, container root is the
 * user itself and container ids 1.. map onto the user's /etc/subuid and /etc/subgid ranges,
 * written by the setuid `newuidmap`/`newgidmap` (the only host programs on the runtime path);
 * without a range only the user's own id is mapped.
 *
 * @module
 */
import { join } from "../path.ts";
import { TsboxError, UsageError } from "../errors.ts";
import type { IdMapping as OciIdMapping, Mount, Spec } from "../oci/spec.ts";
import { overlayOptions } from "./rootfs.ts";
import type { Cgroup, ResourceLimits } from "./cgroups.ts";
import { type Env, env, isRootless, ownPrivateDir, passwdEntry } from "./rootless_paths.ts";

export { defaultRoot, type Env, isRootless } from "./rootless_paths.ts";
import {
  HOST_SUBID_FILES,
  type IdMapping,
  type IdRange,
  mapText,
  parseSubIds,
  type SubIdFiles,
  UsernsError,
} from "./userns.ts";

/**
 * The directory for per-boot runtime files of a rootless tsbox: `$XDG_RUNTIME_DIR/tsbox`, or
 * `/tmp/tsbox-<uid>` (created 0700, and refused when someone else owns it). Created on call.
 */
export function runtimeDir(uid: number = Deno.uid() ?? 0, e: Env = env()): string {
  if (!isRootless(uid)) return "/run/tsbox";
  if (e.XDG_RUNTIME_DIR?.startsWith("/")) {
    const dir = join(e.XDG_RUNTIME_DIR, "tsbox");
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }
  const dir = `/tmp/tsbox-${uid}`;
  if (!ownPrivateDir(dir, uid)) {
    throw new TsboxError(`${dir} is not a private directory of uid ${uid}`);
  }
  return dir;
}

/** The user and group a rootless tsbox runs as. */
export interface HostIdentity {
  readonly uid: number;
  readonly gid: number;
  /** Login name, when /etc/passwd has one (subuid entries may name it or the uid). */
  readonly name?: string;
}

/** This process's identity, with its name from /etc/passwd. */
export function currentIdentity(): HostIdentity {
  const uid = Deno.uid() ?? 0;
  const gid = Deno.gid() ?? 0;
  // Without a passwd entry, subordinate entries are matched by number only.
  return { uid, gid, name: passwdEntry(uid)?.[0] };
}

/** A rootless container's id mapping and how it must be written. */
export interface RootlessMapping {
  readonly mapping: IdMapping;
  /** uid_map needs newuidmap (it maps subordinate ids). */
  readonly subUids: boolean;
  /** gid_map needs newgidmap. */
  readonly subGids: boolean;
}

function readOrEmpty(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "";
    throw err;
  }
}

function rangesFor(text: string, self: number, owner: HostIdentity): IdRange[] {
  const names = [String(owner.uid), ...(owner.name ? [owner.name] : [])];
  const out: IdRange[] = [{ inside: 0, outside: self, count: 1 }];
  let next = 1;
  for (const e of parseSubIds(text).filter((e) => names.includes(e.name))) {
    out.push({ inside: next, outside: e.start, count: e.count });
    next += e.count;
  }
  return out;
}

/**
 * The mapping of a rootless container: 0 is the user (and the user's primary group), 1.. the
 * user's subordinate ranges in file order.
 */
export function rootlessMapping(
  who: HostIdentity,
  files: SubIdFiles = HOST_SUBID_FILES,
): RootlessMapping {
  const uid = rangesFor(readOrEmpty(files.subuid), who.uid, who);
  const gid = rangesFor(readOrEmpty(files.subgid), who.gid, who);
  return { mapping: { uid, gid }, subUids: uid.length > 1, subGids: gid.length > 1 };
}

/** Arguments of newuidmap/newgidmap for `pid`: `PID inside outside count...`. */
export function newIdMapArgs(pid: number, ranges: readonly IdRange[]): string[] {
  return [String(pid), ...ranges.flatMap((r) => [r.inside, r.outside, r.count].map(String))];
}

/** Where the setuid helpers are looked up (PATH may not be set for a service). */
const HELPER_DIRS = ["/usr/bin", "/bin", "/usr/local/bin", "/usr/sbin"];

function helperPath(name: string): string | undefined {
  const path = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d.startsWith("/"));
  for (const dir of [...path, ...HELPER_DIRS]) {
    try {
      if (Deno.statSync(join(dir, name)).isFile) return join(dir, name);
    } catch { /* next */ }
  }
  return undefined;
}

async function runHelper(name: string, args: string[]): Promise<void> {
  const path = helperPath(name);
  if (!path) {
    throw new UsernsError(`${name} not found (install the uidmap package for subordinate ids)`);
  }
  const out = await new Deno.Command(path, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim();
    throw new UsernsError(`${name} ${args.join(" ")}: ${why || `exit ${out.code}`}`);
  }
}

/**
 * Writes the maps of `pid` (a child cloned with CLONE_NEWUSER, still waiting for them).
 * Subordinate ranges go through newuidmap/newgidmap; a map of the user's own id alone is
 * written directly, gid_map after denying setgroups (the kernel's rule for unprivileged maps).
 */
export async function writeRootlessMaps(pid: number, m: RootlessMapping): Promise<void> {
  if (m.subUids) await runHelper("newuidmap", newIdMapArgs(pid, m.mapping.uid));
  if (m.subGids) await runHelper("newgidmap", newIdMapArgs(pid, m.mapping.gid));
  try {
    if (!m.subUids) Deno.writeTextFileSync(`/proc/${pid}/uid_map`, mapText(m.mapping.uid));
    if (!m.subGids) {
      Deno.writeTextFileSync(`/proc/${pid}/setgroups`, "deny");
      Deno.writeTextFileSync(`/proc/${pid}/gid_map`, mapText(m.mapping.gid));
    }
  } catch (err) {
    throw new UsernsError(`writing the id maps of ${pid}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

let saidSingle = false;

/** Says once per process that only the user's own id is mapped (no subordinate range). */
export function warnSingleId(
  m: RootlessMapping,
  who: HostIdentity,
  log: (message: string) => void = () => {},
): void {
  if ((m.subUids && m.subGids) || saidSingle) return;
  saidSingle = true;
  const user = who.name ?? String(who.uid);
  log(
    `WARN: no /etc/subuid or /etc/subgid range for ${user}: only your own id is mapped ` +
      `(root in the container is you; other ids and groups are unavailable)`,
  );
}

/**
 * Whether the kernel lets an unprivileged user create a user namespace, and why not: Debian's
 * `kernel.unprivileged_userns_clone` and `user.max_user_namespaces`.
 */
export function userNamespacesAllowed(read: (path: string) => string = readOrEmpty): {
  allowed: boolean;
  reason?: string;
} {
  const clone = read("/proc/sys/kernel/unprivileged_userns_clone").trim();
  if (clone === "0") return { allowed: false, reason: "kernel.unprivileged_userns_clone is 0" };
  const max = read("/proc/sys/user/max_user_namespaces").trim();
  if (max === "0") return { allowed: false, reason: "user.max_user_namespaces is 0" };
  return { allowed: true };
}

/** A stand-in for a container cgroup where the user cannot create one. */
export class NoCgroup implements Cgroup {
  readonly dirs: readonly string[] = [];
  apply(): Promise<void> {
    return Promise.resolve();
  }
  join(): Promise<void> {
    return Promise.resolve();
  }
  pids(): Promise<number[]> {
    return Promise.resolve([]);
  }
  oomKilled(): Promise<boolean> {
    return Promise.resolve(false);
  }
  remove(): Promise<void> {
    return Promise.resolve();
  }
}

/** Names of the resource flags set in `limits`. */
export function limitFlags(limits: ResourceLimits): string[] {
  const names: [keyof ResourceLimits, string][] = [
    ["memory", "--memory"],
    ["memorySwap", "--memory-swap"],
    ["cpus", "--cpus"],
    ["cpuShares", "--cpu-shares"],
    ["pidsLimit", "--pids-limit"],
  ];
  return names.filter(([k]) => limits[k] !== undefined).map(([, flag]) => flag);
}

let saidNoCgroup = false;

/**
 * A rootless container's cgroup: `create` (createCgroup) where the user may write one (a
 * delegated hierarchy); otherwise none, with a one-line warning, and limit flags refused
 * rather than silently ignored.
 */
export async function rootlessCgroup(
  limits: ResourceLimits,
  create: () => Promise<Cgroup>,
  log: (message: string) => void = () => {},
): Promise<Cgroup> {
  try {
    return await create();
  } catch (err) {
    const denied = err instanceof Deno.errors.PermissionDenied ||
      (err instanceof Error && err.cause instanceof Deno.errors.PermissionDenied) ||
      (err instanceof Error &&
        /permission denied|read-only file system|EACCES|EPERM|EROFS/i.test(err.message));
    if (!denied) throw err;
  }
  const flags = limitFlags(limits);
  if (flags.length > 0) {
    throw new UsageError(
      `${flags.join(", ")}: rootless tsbox cannot write a cgroup here (no cgroup delegation ` +
        `for this user), so resource limits cannot be enforced`,
    );
  }
  if (!saidNoCgroup) {
    saidNoCgroup = true;
    log("WARN: rootless: no writable cgroup for this user; running without resource limits");
  }
  return new NoCgroup();
}

/**
 * The overlay options of a rootless container's layers (lower entries relative to
 * `lowerBase`, `userxattr`), which its first process mounts itself in its own namespaces.
 */
export function rootlessOverlay(
  lowerBase: string,
  layers: readonly string[],
  stateDir: string,
): { lowerBase: string; options: string } {
  const options = `${
    overlayOptions({
      lowerBase,
      lower: [...layers].reverse(),
      upper: join(stateDir, "upper"),
      work: join(stateDir, "work"),
      target: join(stateDir, "rootfs"),
    })
  },userxattr`;
  if (options.length >= 4096) {
    throw new TsboxError(`too many layers (${layers.length}) for one overlay mount`);
  }
  return { lowerBase, options };
}

/**
 * `spec` as a rootless start runs it: in a user namespace mapped as `maps`; without
 * subordinate gids, devpts without the tty group (gid 5 is not mapped); with the host's
 * network, the host's /sys bound read-only instead of sysfs, which only the owner of the
 * network namespace may mount.
 */
export function rootlessSpec(spec: Spec, maps: RootlessMapping): Spec {
  const namespaces = spec.linux.namespaces ?? [];
  const hostNetwork = !namespaces.some((n) => n.type === "network");
  const mounts = (spec.mounts ?? []).map((m): Mount => {
    if (m.destination === "/dev/pts" && m.type === "devpts" && !maps.subGids) {
      return { ...m, options: (m.options ?? []).filter((o) => !o.startsWith("gid=")) };
    }
    if (m.destination === "/sys" && m.type === "sysfs" && hostNetwork) {
      // Flags may be added to a locked mount, never cleared: nosuid, nodev, noexec stay set.
      const options = (m.options ?? []).filter((o) => o !== "rw");
      return { destination: "/sys", type: "bind", source: "/sys", options: ["rbind", ...options] };
    }
    return m;
  });
  const conv = (ranges: readonly IdRange[]): OciIdMapping[] =>
    ranges.map((r) => ({ containerID: r.inside, hostID: r.outside, size: r.count }));
  return {
    ...spec,
    mounts,
    linux: {
      ...spec.linux,
      namespaces: [...namespaces.filter((n) => n.type !== "user"), { type: "user" }],
      uidMappings: conv(maps.mapping.uid),
      gidMappings: conv(maps.mapping.gid),
    },
  };
}
