/**
 * Every container's OCI bundle: its `config.json` (src/container/spec.ts's {@link specFor}),
 * written at create in the container's directory, with `root.path` the rootfs mount point there.
 * This module gathers what the pure mapping needs from the host and the image, then writes the
 * file (one small write; only cheap reads on `run`'s path: /proc text, the image's passwd).
 *
 * @module
 */
import { join } from "../path.ts";
import { TsboxError } from "../errors.ts";
import type { Store } from "../store/mod.ts";
import { resolveGroupAdd, resolveUser } from "../runtime/user.ts";
import {
  allHostDevices,
  existingMasks,
  existingReadonly,
  type HostDevice,
  hostDevice,
} from "../runtime/security.ts";
import type { Spec } from "../oci/spec.ts";
import type { NamespaceSource } from "../runtime/namespaces.ts";
import { ANNOTATION, type HostFacts, SPEC_VERSION, specFor, type SpecUser } from "./spec.ts";
import { configPath, containerDir } from "./paths.ts";
import type { ContainerRecord, RunConfig } from "./state.ts";
import { sharedNamespaces } from "./namespaces.ts";
import { joinedNetworkPid } from "./network.ts";

/** A file of the image read by create: at most this much (passwd and group are small). */
const MAX_IMAGE_FILE = 1 << 20;

/**
 * `path` (like `etc/passwd`) as the image's layers show it: the top-most layer that has it
 * wins, a whiteout (a 0/0 character device) or a non-directory parent hides it. Only regular
 * files are read and nothing is followed, so a hostile layer's symlink cannot make create read
 * a host file. "" when the image has none.
 */
export function readImageFile(layerDirs: readonly string[], path: string): string {
  const parts = path.split("/");
  for (const layer of [...layerDirs].reverse()) {
    let dir = layer;
    let hidden = false;
    for (const part of parts.slice(0, -1)) {
      dir = join(dir, part);
      const info = lstatOrUndefined(dir);
      if (info === undefined) {
        dir = "";
        break;
      }
      if (!info.isDirectory) hidden = true;
    }
    if (hidden) return "";
    if (dir === "") continue;
    const file = join(dir, parts.at(-1)!);
    const info = lstatOrUndefined(file);
    if (info === undefined) continue;
    if (!info.isFile || info.size > MAX_IMAGE_FILE) return "";
    return Deno.readTextFileSync(file);
  }
  return "";
}

function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch {
    return undefined;
  }
}

/** `--user` and `--group-add` resolved in the image's passwd and group files. */
export function imageUser(config: RunConfig, layerDirs: readonly string[]): SpecUser {
  return specUser(
    config,
    readImageFile(layerDirs, "etc/passwd"),
    readImageFile(layerDirs, "etc/group"),
  );
}

/** `--user` and `--group-add` resolved in passwd and group texts ("" when the image has none). */
export function specUser(config: RunConfig, passwd: string, group: string): SpecUser {
  try {
    const user = resolveUser(config.user, passwd, group);
    const extraGids = config.groupAdd?.length ? resolveGroupAdd(config.groupAdd, group) : [];
    return { resolved: true, user, extraGids };
  } catch (err) {
    // docker's create succeeds and its start fails; the runtime resolves again at start.
    return { resolved: false, error: (err as Error).message };
  }
}

/** The hard RLIMIT_NOFILE of this process, from /proc/self/limits (no FFI on create's path). */
export function nofileCeiling(limits?: string): number {
  let text = limits;
  try {
    text ??= Deno.readTextFileSync("/proc/self/limits");
  } catch {
    return 1048576;
  }
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(text);
  return m && /^[0-9]+$/.test(m[1]) ? Number(m[1]) : 1048576;
}

/** What this host says about docker's defaults for `config`. */
export function hostFacts(config: RunConfig): HostFacts {
  const security = config.security?.security;
  const devices = new Map<string, HostDevice>();
  for (const d of security?.devices ?? []) devices.set(d.source, hostDevice(d.source));
  const privilegedDevices = security?.privileged
    ? allHostDevices().flatMap((d) => {
      try {
        return [{ path: d.target, ...hostDevice(d.source) }];
      } catch {
        return [];
      }
    })
    : [];
  return {
    maskedPaths: existingMasks().map((m) => m.path),
    readonlyPaths: existingReadonly(),
    kernel: Deno.osRelease(),
    nofileCeiling: nofileCeiling(),
    devices,
    privilegedDevices,
  };
}

/** Namespace files of other containers that a container joins (`container:X` modes). */
export interface JoinedPaths {
  readonly networkPath?: string;
  readonly ipcPath?: string;
  readonly pidPath?: string;
}

/**
 * The namespace files container `c` joins, from its targets' PID 1 now: a target must be
 * running (docker's messages otherwise), and one that restarted has a new PID 1.
 */
export function joinedPaths(store: Store, c: ContainerRecord): JoinedPaths {
  const shared = sharedNamespaces(store, c);
  const net = joinedNetworkPid(store, c.config.network);
  const file = (source: NamespaceSource | undefined, kind: string) =>
    source && source !== "host" && "pid" in source ? `/proc/${source.pid}/ns/${kind}` : undefined;
  return {
    networkPath: net === undefined ? undefined : `/proc/${net}/ns/net`,
    ipcPath: file(shared?.ipc, "ipc"),
    pidPath: file(shared?.pid, "pid"),
  };
}

/** The spec of container `id`, from its options, its image and this host. */
export function containerSpec(
  store: Store,
  id: string,
  config: RunConfig,
  joined: JoinedPaths | string = {},
): Spec {
  // A string is the network path alone (the older signature).
  const paths = typeof joined === "string" ? { networkPath: joined } : joined;
  const dir = containerDir(store.root, id);
  const layerDirs = config.layers.map((l) => join(store.linkDir, l));
  return specFor({
    id,
    config,
    rootfs: join(dir, "rootfs"),
    stateDir: dir,
    user: imageUser(config, layerDirs),
    host: hostFacts(config),
    ...paths,
  });
}

/** Writes `spec` to `path` (0600) through a temporary file, so no reader sees half a file. */
async function writeSpec(path: string, spec: Spec): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    await Deno.writeTextFile(tmp, JSON.stringify(spec), { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Writes container `id`'s `config.json` (0600: it holds the environment) into its directory,
 * which must exist; returns its path. A failed write leaves no partial file behind.
 */
export async function writeBundle(
  store: Store,
  id: string,
  config: RunConfig,
  joined: JoinedPaths | string = {},
): Promise<string> {
  const path = configPath(store.root, id);
  await writeSpec(path, containerSpec(store, id, config, joined));
  return path;
}

/**
 * The spec a start of container `c` runs: its config.json with the namespace files of the
 * containers it joins filled in for their PID 1 now (written back, so that the bundle on disk
 * is what runs).
 */
export async function startBundle(store: Store, c: ContainerRecord): Promise<Spec> {
  const paths = joinedPaths(store, c);
  let spec = await loadBundle(store, c.id, c.config);
  if (spec.annotations?.[ANNOTATION.specVersion] !== SPEC_VERSION) {
    // Written by a tsbox whose runtime took limits and namespace modes from the record: they
    // come from the record once more, into the bundle.
    const fresh = containerSpec(store, c.id, c.config, paths);
    const { oomScoreAdj: _, ...process } = spec.process;
    spec = {
      ...spec,
      process: {
        ...process,
        ...(fresh.process.oomScoreAdj !== undefined
          ? { oomScoreAdj: fresh.process.oomScoreAdj }
          : {}),
      },
      annotations: { ...spec.annotations, [ANNOTATION.specVersion]: SPEC_VERSION },
      linux: {
        ...spec.linux,
        namespaces: fresh.linux.namespaces,
        resources: fresh.linux.resources,
      },
    };
    await writeSpec(configPath(store.root, c.id), spec);
  }
  const pathOf: Record<string, string | undefined> = {
    network: paths.networkPath,
    ipc: paths.ipcPath,
    pid: paths.pidPath,
  };
  let changed = false;
  const namespaces = spec.linux.namespaces?.map((n) => {
    const path = pathOf[n.type];
    if (path === undefined || path === n.path) return n;
    changed = true;
    return { type: n.type, path };
  });
  if (!changed) return spec;
  const updated: Spec = { ...spec, linux: { ...spec.linux, namespaces } };
  await writeSpec(configPath(store.root, c.id), updated);
  return updated;
}

/**
 * `tsbox update`: the container's config.json gets the limits of `config` (its resources and
 * PID 1's OOM score), so that the next start applies what the record says.
 */
export async function rewriteResources(store: Store, id: string, config: RunConfig): Promise<void> {
  const path = configPath(store.root, id);
  let spec: Spec;
  try {
    spec = JSON.parse(await Deno.readTextFile(path)) as Spec;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await writeBundle(store, id, config);
    return;
  }
  const fresh = containerSpec(store, id, config);
  const { oomScoreAdj: _, ...process } = spec.process;
  await writeSpec(path, {
    ...spec,
    process: {
      ...process,
      ...(fresh.process.oomScoreAdj !== undefined
        ? { oomScoreAdj: fresh.process.oomScoreAdj }
        : {}),
    },
    linux: { ...spec.linux, resources: fresh.linux.resources },
  });
}

/**
 * The container's spec, as written at create (what every start runs); a container created by
 * an older tsbox gets its config.json written from its record first.
 */
export async function loadBundle(store: Store, id: string, config: RunConfig): Promise<Spec> {
  const path = configPath(store.root, id);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await writeBundle(store, id, config);
    text = await Deno.readTextFile(path);
  }
  try {
    return JSON.parse(text) as Spec;
  } catch (err) {
    throw new TsboxError(`${path}: ${(err as Error).message}`, { cause: err });
  }
}
