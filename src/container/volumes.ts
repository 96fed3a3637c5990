/**
 * Volumes as docker's local driver keeps them: a directory `<root>/volumes/<name>/_data`, a row
 * per volume and a row per container mount in the state database. A container's volumes become
 * bind mounts of their `_data` directories; an empty volume is seeded, when a container is
 * created, with what the image has at the mount point (owners, modes, times, symlinks and hard
 * links as they are, never following a link out of the image's root).
 *
 * @module
 */
import { makeEvent, recordEvent } from "../events/log.ts";
import { join, normalize } from "../path.ts";
import {
  AT_FDCWD,
  close,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  openat,
  S_IFDIR,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { copyDirContents } from "./fd_copy.ts";
import { adopt, type Node, openInRoot, typeOf, withNode } from "./fd_tree.ts";
import { NotFoundError, TsboxError, UsageError } from "../errors.ts";
import type { MountRequest } from "../runtime/container.ts";
import { type MountFlag, VOLUME_NAME } from "../runtime/options.ts";
import { type IdMapping, toHost } from "../runtime/userns.ts";
import type { Store } from "../store/mod.ts";
import { removeTree } from "./rmtree.ts";
import { withRootfs } from "./rootfs_access.ts";
import type { ContainerRecord } from "./state.ts";
import { mountVolumeData, unmountVolumeData } from "./volume_options.ts";

/** The label docker puts on anonymous volumes (`volume prune` without `-a` removes only those). */
export const ANONYMOUS_LABEL = "com.docker.volume.anonymous";

/** One volume as the database records it. */
export interface Volume {
  readonly name: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly labels: Readonly<Record<string, string>>;
  /** Made for one container (`-v /path`, an image's VOLUME). */
  readonly anonymous: boolean;
  /** The directory containers see: `<root>/volumes/<name>/_data`. */
  readonly mountpoint: string;
}

/** `volume rm` of a volume some container still names. */
export class VolumeInUseError extends TsboxError {
  constructor(readonly volume: string, readonly containers: readonly string[]) {
    super(`remove ${volume}: volume is in use - [${containers.join(", ")}]`);
    this.name = "VolumeInUseError";
  }
}

/** `<root>/volumes`. */
export function volumesDir(root: string): string {
  return join(root, "volumes");
}

/** `<root>/volumes/<name>/_data`: what is mounted into containers. */
export function volumeData(root: string, name: string): string {
  return join(volumesDir(root), name, "_data");
}

interface Row {
  name: string;
  created_at: number;
  labels: string;
  anonymous: number;
}

function toVolume(root: string, r: Row): Volume {
  return {
    name: r.name,
    createdAt: r.created_at,
    labels: JSON.parse(r.labels) as Record<string, string>,
    anonymous: r.anonymous !== 0,
    mountpoint: volumeData(root, r.name),
  };
}

function randomVolumeName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function checkName(name: string): void {
  if (!VOLUME_NAME.test(name)) {
    throw new UsageError(
      `create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed`,
    );
  }
}

function ensureDataDir(root: string, name: string): void {
  Deno.mkdirSync(volumesDir(root), { recursive: true, mode: 0o701 });
  Deno.mkdirSync(join(volumesDir(root), name), { recursive: true, mode: 0o701 });
  try {
    Deno.mkdirSync(volumeData(root, name), { mode: 0o755 });
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
  }
}

/** Options of {@link createVolume}. */
export interface CreateVolumeOptions {
  /** The volume's name; a random 64-hex name when absent. */
  readonly name?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly anonymous?: boolean;
}

/**
 * `volume create`: records the volume and makes its directory. An existing volume of that name
 * is returned as it is (`created` false), as docker does.
 */
export function createVolume(
  store: Store,
  opts: CreateVolumeOptions = {},
): { volume: Volume; created: boolean } {
  const name = opts.name ?? randomVolumeName();
  checkName(name);
  const created = store.db.transaction(() =>
    store.db.run(
      "INSERT OR IGNORE INTO volumes (name, created_at, labels, anonymous) VALUES (?, ?, ?, ?)",
      name,
      Date.now(),
      JSON.stringify(opts.labels ?? {}),
      opts.anonymous ? 1 : 0,
    ).changes > 0
  );
  ensureDataDir(store.root, name);
  if (created) volumeEvent(store.root, "create", name);
  return { volume: getVolume(store, name)!, created };
}

/** A volume by name, if recorded. */
export function getVolume(store: Store, name: string): Volume | undefined {
  const row = store.db.get<Row>("SELECT * FROM volumes WHERE name = ?", name);
  return row ? toVolume(store.root, row) : undefined;
}

/** Like {@link getVolume}, but a missing volume is a NotFoundError. */
export function requireVolume(store: Store, name: string): Volume {
  const v = getVolume(store, name);
  if (!v) throw new NotFoundError("volume", name);
  return v;
}

/** Every volume, by name. */
export function listVolumes(store: Store): Volume[] {
  return store.db.all<Row>("SELECT * FROM volumes ORDER BY name")
    .map((r) => toVolume(store.root, r));
}

/** Ids of the containers (any state) whose configuration mounts volume `name`. */
export function volumeUsers(store: Store, name: string): string[] {
  return store.db.all<{ container_id: string }>(
    "SELECT DISTINCT container_id FROM volume_mounts WHERE volume = ? ORDER BY container_id",
    name,
  ).map((r) => r.container_id);
}

/**
 * `volume rm`: deletes the row (refused with {@link VolumeInUseError} while a container names
 * the volume) and then the directory. With `force` a missing volume is not an error.
 */
export async function removeVolume(
  store: Store,
  name: string,
  opts: { force?: boolean } = {},
): Promise<void> {
  const existed = store.db.transaction(() => {
    const users = volumeUsers(store, name);
    if (users.length > 0) throw new VolumeInUseError(name, users);
    return store.db.run("DELETE FROM volumes WHERE name = ?", name).changes > 0;
  });
  if (!existed && !opts.force) throw new NotFoundError("volume", name);
  // A name that passed VOLUME_NAME has no "/" and is not "..": the path stays in volumes/.
  // Rootless, files a container wrote as a subordinate id are removed in a user namespace.
  if (existed) {
    // A mounted _data (volume options) goes first: what is mounted there is not the volume's.
    unmountVolumeData(volumeData(store.root, name));
    await removeTree(join(volumesDir(store.root), name));
    volumeEvent(store.root, "destroy", name);
  }
}

/** docker's volume event: the Actor is the volume's name, of the `local` driver. */
function volumeEvent(root: string, action: "create" | "destroy", name: string): void {
  recordEvent(root, makeEvent("volume", action, name, { driver: "local" }));
}

/** Mounts the `_data` of the volumes of container `id` that have driver options. */
export function mountVolumesOf(store: Store, id: string): void {
  for (const v of volumeMountsOf(store, id)) mountVolumeData(volumeData(store.root, v.name));
}

/** Bytes of the regular files under `dir` (symlinks not followed). */
export function treeSize(dir: string): number {
  let total = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return 0;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory) total += treeSize(path);
    else if (e.isFile) total += Deno.lstatSync(path).size;
  }
  return total;
}

/**
 * `volume prune`: removes volumes no container names; only anonymous ones unless `all`.
 * Returns the names removed and the bytes their files took.
 */
export async function pruneVolumes(
  store: Store,
  opts: { all?: boolean } = {},
): Promise<{ removed: string[]; bytes: number }> {
  const rows = store.db.all<{ name: string }>(
    `SELECT name FROM volumes v
     WHERE NOT EXISTS (SELECT 1 FROM volume_mounts m WHERE m.volume = v.name)
       ${opts.all ? "" : "AND anonymous = 1"}
     ORDER BY name`,
  );
  const removed: string[] = [];
  let bytes = 0;
  for (const { name } of rows) {
    const size = treeSize(volumeData(store.root, name));
    try {
      await removeVolume(store, name);
    } catch (err) {
      // A container created meanwhile took it, or another prune was quicker.
      if (err instanceof VolumeInUseError || err instanceof NotFoundError) continue;
      throw err;
    }
    removed.push(name);
    bytes += size;
  }
  return { removed, bytes };
}

/** A volume a container mounts, as planned at create. */
export interface PlannedVolume {
  readonly name: string;
  readonly anonymous: boolean;
  /** Path inside the container. */
  readonly target: string;
  readonly readOnly: boolean;
  /** Seed the volume from the image when it is empty. */
  readonly copy: boolean;
}

function normalTarget(path: string): string {
  const n = normalize(path);
  return n.length > 1 ? n.replace(/\/+$/, "") : n;
}

/**
 * Turns the user's mounts and the image's VOLUME paths into the container's mounts: every
 * volume (named, anonymous, or an image VOLUME no user mount covers) becomes a bind mount of its
 * data directory. Mounts are ordered parents first, as docker orders them, so that a mount
 * nested in another lands on top of it. Two mounts on one path are a usage error.
 */
export function planMounts(
  root: string,
  requested: readonly MountFlag[],
  imageVolumes: readonly string[] = [],
): { mounts: MountRequest[]; volumes: PlannedVolume[] } {
  const seen = new Set<string>();
  const volumes: PlannedVolume[] = [];
  const mounts: MountRequest[] = [];
  for (const m of requested) {
    const target = normalTarget(m.target);
    if (seen.has(target)) throw new UsageError(`Duplicate mount point: ${target}`);
    seen.add(target);
    if (m.kind === "bind") {
      // Only the bind itself is recorded: the source was made (or refused) at create.
      mounts.push({ kind: "bind", source: m.source, target: m.target, readOnly: m.readOnly });
      continue;
    }
    if (m.kind !== "volume") {
      mounts.push(m);
      continue;
    }
    const v: PlannedVolume = {
      name: m.name ?? randomVolumeName(),
      anonymous: m.name === undefined,
      target: m.target,
      readOnly: m.readOnly,
      copy: !m.noCopy,
    };
    volumes.push(v);
    mounts.push({
      kind: "bind",
      source: volumeData(root, v.name),
      target: v.target,
      readOnly: v.readOnly,
    });
  }
  for (const path of imageVolumes) {
    const target = normalTarget(path);
    if (!target.startsWith("/") || seen.has(target)) continue;
    seen.add(target);
    const v = { name: randomVolumeName(), anonymous: true, target, readOnly: false, copy: true };
    volumes.push(v);
    mounts.push({ kind: "bind", source: volumeData(root, v.name), target, readOnly: false });
  }
  const depth = (m: MountRequest) => normalTarget(m.target).split("/").filter(Boolean).length;
  // Array.prototype.sort is stable: equal depths keep the flag order.
  mounts.sort((a, b) => depth(a) - depth(b));
  return { mounts, volumes };
}

/** A bind mount's host path that is missing (`--mount type=bind`), or could not be made (`-v`). */
export class BindSourceError extends TsboxError {
  constructor(readonly source: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BindSourceError";
  }
}

/**
 * Checks the host side of the bind mounts before a container is created, as docker does: a
 * missing source of `--mount type=bind` is refused with docker's message. Returns the missing
 * sources of `-v /host:/c`, which docker creates ({@link makeBindSources}).
 */
export async function checkBindSources(requested: readonly MountFlag[]): Promise<string[]> {
  const missing: string[] = [];
  for (const m of requested) {
    if (m.kind !== "bind") continue;
    try {
      await Deno.stat(m.source);
      continue;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new BindSourceError(
          m.source,
          `invalid mount config for type "bind": ${m.source}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    if (!("createSource" in m && m.createSource)) {
      throw new BindSourceError(
        m.source,
        `invalid mount config for type "bind": bind source path does not exist: ${m.source}`,
      );
    }
    missing.push(m.source);
  }
  return missing;
}

/** Creates `-v` sources that were missing as directories (mode 0755, parents too), as docker. */
export async function makeBindSources(sources: readonly string[]): Promise<void> {
  for (const source of sources) {
    try {
      await Deno.mkdir(source, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new BindSourceError(
        source,
        `error while creating mount source path '${source}': ${(err as Error).message}`,
        { cause: err },
      );
    }
  }
}

/**
 * Records that container `containerId` mounts `volumes`, creating those that do not exist (one
 * transaction, so a concurrent `volume rm` either sees the use or runs before it).
 */
export function attachVolumes(
  store: Store,
  containerId: string,
  volumes: readonly PlannedVolume[],
): void {
  if (volumes.length === 0) return;
  for (const v of volumes) checkName(v.name);
  store.db.transaction(() => {
    for (const v of volumes) {
      store.db.run(
        "INSERT OR IGNORE INTO volumes (name, created_at, labels, anonymous) VALUES (?, ?, '{}', ?)",
        v.name,
        Date.now(),
        v.anonymous ? 1 : 0,
      );
      store.db.run(
        "INSERT INTO volume_mounts (volume, container_id, destination, read_only) VALUES (?, ?, ?, ?)",
        v.name,
        containerId,
        v.target,
        v.readOnly ? 1 : 0,
      );
    }
  });
  for (const v of volumes) ensureDataDir(store.root, v.name);
}

/** A container's volume mounts, as recorded. */
export interface VolumeMount {
  readonly name: string;
  readonly destination: string;
  readonly readOnly: boolean;
  readonly anonymous: boolean;
}

/** The volumes container `containerId` mounts. */
export function volumeMountsOf(store: Store, containerId: string): VolumeMount[] {
  return store.db.all<
    { name: string; destination: string; read_only: number; anonymous: number }
  >(
    `SELECT m.volume AS name, m.destination, m.read_only, v.anonymous
     FROM volume_mounts m JOIN volumes v ON v.name = m.volume
     WHERE m.container_id = ? ORDER BY m.destination`,
    containerId,
  ).map((r) => ({
    name: r.name,
    destination: r.destination,
    readOnly: r.read_only !== 0,
    anonymous: r.anonymous !== 0,
  }));
}

/**
 * Removes `names` (a removed container's anonymous volumes) unless another container still
 * names one of them; those stay, as docker leaves them.
 */
export async function removeUnusedVolumes(store: Store, names: readonly string[]): Promise<void> {
  for (const name of names) {
    try {
      await removeVolume(store, name, { force: true });
    } catch (err) {
      if (!(err instanceof VolumeInUseError)) throw err;
    }
  }
}

function isEmptyDir(path: string): boolean {
  for (const _ of Deno.readDirSync(path)) return false;
  return true;
}

/**
 * Seeds each of `volumes` that asks for it and is empty with the image's content at its mount
 * point, read through a temporary mount of container `record`'s root filesystem. Each volume is
 * locked while it is checked and filled, so two containers created at once with one new volume
 * do not both copy into it.
 */
export async function seedVolumes(
  store: Store,
  record: ContainerRecord,
  volumes: readonly PlannedVolume[],
): Promise<void> {
  const wanted = volumes.filter((v) => v.copy);
  if (wanted.length === 0) return;
  await withRootfs(store, record, (rootfs) => {
    for (const v of wanted) {
      const lock = Deno.openSync(join(volumesDir(store.root), v.name), { read: true });
      try {
        lock.lockSync(true);
        const data = volumeData(store.root, v.name);
        if (isEmptyDir(data)) {
          copyImagePath(rootfs.fd, v.target, data, record.config.security?.userns);
        }
      } finally {
        lock.close();
      }
    }
    return Promise.resolve();
  });
}

/**
 * Copies the contents of container directory `path` in `rootfs` (a path or an fd of the
 * container's root) into the (empty) directory `dest`, then gives `dest` the source directory's
 * owner and mode, as docker's copy-up does. `path` is resolved inside `rootfs` with
 * RESOLVE_IN_ROOT; below it everything is read through fds and nothing is followed: symlinks are
 * copied as links (fd_copy.ts). Nothing is copied when `path` is missing or not a directory.
 * With `userns` the owners are the host ids the image's ids map to.
 */
export function copyImagePath(
  rootfs: string | number,
  path: string,
  dest: string,
  userns?: IdMapping,
): void {
  const root = typeof rootfs === "number"
    ? rootfs
    : openat(AT_FDCWD, rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  try {
    let src: Node;
    try {
      src = adopt(openInRoot(root, path, O_PATH));
    } catch (err) {
      if (err instanceof SyscallError && (err.code === "ENOENT" || err.code === "ENOTDIR")) return;
      throw err;
    }
    withNode(src, (n) => {
      if (typeOf(n) !== S_IFDIR) return;
      const owner = (uid: number, gid: number) =>
        userns
          ? { uid: toHost(userns.uid, uid) ?? 65534, gid: toHost(userns.gid, gid) ?? 65534 }
          : { uid, gid };
      const out = openat(AT_FDCWD, dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      try {
        copyDirContents(n, out, dest, { owner, xattrs: true, hardlinks: true, devices: true });
      } finally {
        close(out);
      }
    });
  } finally {
    if (root !== rootfs) close(root);
  }
}
