/**
 * Starting and supervising one container from its OCI runtime spec (the bundle's
 * config.json, src/oci/spec.ts): the rootfs overlay the engine's layers make, the cgroup, the
 * cloned first process running the syscall program oci_program.ts builds from the spec (the
 * same reading as `tsbox runc create`, oci_plan.ts), waiting, and tearing down mounts and
 * cgroups. What a spec cannot carry (stdio fds, callbacks, the layers to mount) is
 * {@link StartOptions}.
 *
 * @module
 */
import { join } from "../path.ts";
import { TsboxError, UsageError } from "../errors.ts";
import type { Spec } from "../oci/spec.ts";
import type { Cgroup, ResourceLimits } from "./cgroups.ts";
import { type Host, linuxHost } from "./host.ts";
import { execCandidates } from "./config.ts";
import { INIT_PATH } from "./defaults.ts";
import { CLONE_FLAGS, idMapping, resourceLimits } from "./oci_config.ts";
import { type OciPrepared, prepareOci } from "./oci_plan.ts";
import { buildOciProgram } from "./oci_program.ts";
import { ociPlanExtras } from "./oci_program_extras.ts";
import type { StdioSource } from "./program.ts";
import { resolveInRoot } from "./rootfs.ts";
import {
  rootlessCgroup,
  type RootlessMapping,
  rootlessOverlay,
  rootlessSpec,
  warnSingleId,
} from "./rootless.ts";
import { UserError } from "./user.ts";
import { checkInsideRoot } from "./security.ts";
import { toHost } from "./userns.ts";
import { launch as launchChild, type Launched } from "./launch.ts";
import { startError } from "./start_error.ts";
import { GROUP_ADD_ANNOTATION, USER_ERROR_ANNOTATION } from "./annotations.ts";
import type { WindowSize } from "../../ffi/terminal.ts";

/** Network mode: a private namespace with only `lo` ("none" is the same here), or the host's. */
export type NetworkMode = "private" | "none" | "host" | `container:${string}`;

/** A user mount; its target as seen in the container (mount_request.ts). */
export type { MountRequest } from "./mount_request.ts";

/** What a start needs besides the container's config.json: fds, callbacks, its storage. */
export interface StartOptions {
  /** 64 hex digits. */
  readonly id: string;
  /** `<root>/containers/<id>`: upper, work, rootfs, hostname, hosts, resolv.conf. */
  readonly stateDir: string;
  /** The directory lower entries are relative to (the store's link dir). */
  readonly lowerBase: string;
  /** Lower entries (short links) relative to `lowerBase`, bottom layer first. */
  readonly layers: readonly string[];
  /** 0, 1, 2: "inherit" tsbox's own, "null" for /dev/null, or an fd of this process. */
  readonly stdio: readonly StdioSource[];
  /**
   * A pty from the container's own devpts as 0, 1, 2 and controlling terminal (stdio is then
   * ignored); its master is {@link Container.terminal}. `process.terminal` asks for it too.
   */
  readonly tty?: { readonly size?: WindowSize };
  /** `--cgroup-parent` as recorded (the spec's cgroupsPath was written from it). */
  readonly cgroupParent?: string;
  /** A directory where compiled seccomp filters are cached between starts. */
  readonly filterCacheDir?: string;
  /** Signal PID 1 receives when the starting process dies (e.g. 9: it dies with its supervisor). */
  readonly parentDeathSignal?: number;
  /**
   * Called with PID 1's host pid once it sits in its namespaces and cgroup, before it is
   * released to run its program (port proxies start here). A rejection aborts the start.
   */
  readonly beforeRelease?: (pid: number) => Promise<void>;
  /** Called once PID 1 has ended, before the cgroup and rootfs are torn down. */
  readonly afterExit?: () => Promise<void>;
  /** Warnings of a start (rootless: no subordinate ids, no cgroup); none printed when absent. */
  readonly warn?: (message: string) => void;
}

/** How the container ended. */
export interface ContainerExit {
  /** docker's code: the exit status, or 128+N when signal N killed it. */
  readonly exitCode: number;
  /** Signal that killed PID 1, if any. */
  readonly signal?: number;
  /** True when the OOM killer killed something in the container's cgroup. */
  readonly oomKilled: boolean;
}

export { ContainerStartError, startError } from "./start_error.ts";

const ENOENT = 2;

function readIfExists(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

function hostsFile(hostname: string, hostNetwork: boolean): string {
  if (hostNetwork) return readIfExists("/etc/hosts");
  return [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
    `127.0.1.1\t${hostname}`,
    "",
  ].join("\n");
}

function resolvConf(): string {
  // Loopback resolvers of the host are unreachable from a private network namespace.
  const lines = readIfExists("/etc/resolv.conf").split("\n")
    .filter((l) => !/^\s*nameserver\s+(127\.|::1)/.test(l));
  return lines.join("\n");
}

/** docker's `--cpus` period: a quota over it is the `--cpus` the flags asked for. */
const CPU_PERIOD = 100_000;

/** The cgroup limits of `spec`, as the flags that asked for them (the same cgroup writes). */
export function startLimits(spec: Spec, cgroupParent?: string): ResourceLimits {
  const { cpuQuota, cpuPeriod, ...limits } = resourceLimits(spec);
  const cpus = cpuQuota !== undefined && cpuQuota > 0 && cpuPeriod === CPU_PERIOD;
  return {
    ...limits,
    ...(cpus ? { cpus: cpuQuota / CPU_PERIOD } : {}),
    ...(!cpus && cpuQuota !== undefined ? { cpuQuota } : {}),
    ...(!cpus && cpuPeriod !== undefined ? { cpuPeriod } : {}),
    ...(cgroupParent ? { cgroupParent } : {}),
  };
}

/** A rootless start: the user's mapping, and the overlay PID 1 mounts itself. */
interface Rootless {
  readonly maps: RootlessMapping;
  readonly overlay: { readonly lowerBase: string; readonly options: string };
}

/** A running container. */
export class Container {
  #waited?: Promise<ContainerExit>;

  private constructor(
    readonly spec: Spec,
    readonly options: StartOptions,
    /** PID of the container's PID 1, in the host's PID namespace. */
    readonly pid: number,
    readonly cgroup: Cgroup,
    readonly rootfs: string,
    /** The pty master when started with `tty` (the owner closes it). */
    readonly terminal: number | undefined,
    readonly host: Host,
  ) {}

  /**
   * Prepares the rootfs and cgroup, starts PID 1 as `spec` describes it, and returns once its
   * execve succeeded. When a step fails, what the steps before it did is undone (cgroup
   * removed, rootfs unmounted, PID 1 killed and reaped). `host` makes the host-side calls
   * (tests pass a recording fake). Rootless (an ordinary user): a user namespace mapped onto
   * the user's own and subordinate ids, the overlay mounted (with `userxattr`) by the
   * container itself inside its namespaces, and a cgroup only where the user may write one.
   */
  static async start(
    spec: Spec,
    o: StartOptions,
    host: Host = linuxHost,
  ): Promise<Container> {
    const userError = spec.annotations?.[USER_ERROR_ANNOTATION];
    if (userError !== undefined) throw new UserError(userError);
    const warn = o.warn ?? (() => {});
    const userns = idMapping(spec);
    const dir = o.stateDir;
    const rootfs = join(dir, "rootfs");
    let rootless: Rootless | undefined;
    if (host.isRootless()) {
      if (userns) {
        throw new UsageError(
          "--userns-remap needs root; rootless tsbox maps your own subordinate ids itself",
        );
      }
      const { who, maps } = host.rootlessIdentity();
      warnSingleId(maps, who, warn);
      if (!maps.subGids && spec.annotations?.[GROUP_ADD_ANNOTATION]) {
        // Only the user's own gid mapped: setgroups is denied, so the groups could not be set.
        throw new UsageError("--group-add needs subordinate group ids (/etc/subgid) when rootless");
      }
      rootless = { maps, overlay: rootlessOverlay(o.lowerBase, o.layers, dir) };
    }
    for (const d of ["upper", "work", "rootfs"]) await host.mkdir(join(dir, d), 0o700);
    // The overlay's root takes the upper dir's owner and mode: give it the top layer's.
    const top = o.layers.at(-1);
    const rootInfo = top ? await host.stat(join(o.lowerBase, top)) : undefined;
    await host.chmod(join(dir, "upper"), (rootInfo?.mode ?? 0o755) & 0o7777);
    if (!rootless && rootInfo?.uid != null) {
      // In a user namespace the owner is the host id the image's owner maps to; rootless, it
      // is the user (root inside).
      const uid = userns ? toHost(userns.uid, rootInfo.uid) : rootInfo.uid;
      const gid = userns ? toHost(userns.gid, rootInfo.gid ?? 0) : rootInfo.gid;
      await host.chown(join(dir, "upper"), uid ?? null, gid ?? null);
    }
    const run = rootless ? rootlessSpec(spec, rootless.maps) : spec;
    const limits = startLimits(spec, o.cgroupParent);
    // overlayfs makes work/work mode 000 on every mount; root removes it regardless, the user
    // cannot.
    const openWork = () =>
      rootless ? host.chmod(join(dir, "work", "work"), 0o700).catch(() => {}) : Promise.resolve();
    let mounted = false;
    let cgroup: Cgroup | undefined;
    let prepared: OciPrepared | undefined;
    // Frees the native memory PID 1's program points into, once it is cloned (or not).
    let released = false;
    const release = () => {
      if (!released) prepared?.security.free();
      released = true;
    };
    try {
      if (rootless) {
        // Device rules need the devices controller of the host: a user namespace cannot create
        // device nodes anyway. Limits that cannot be enforced fail here, before any mount.
        const { devices: _, ...own } = limits;
        cgroup = await rootlessCgroup(own, () => host.createCgroup(o.id, own), warn);
        const held = await host.holdOverlay(rootfs, rootless.overlay, rootless.maps);
        try {
          prepared = await prepare(run, o, rootfs, host, held.view);
        } finally {
          await held.release();
          await openWork();
        }
      } else {
        await mountRootfs(o, rootfs, host, userns);
        mounted = true;
        prepared = await prepare(run, o, rootfs, host);
        if (userns) prepared = premountDev(prepared, host);
        cgroup = await host.createCgroup(o.id, limits);
      }
      const { pid, terminal } = await launch(run, o, prepared, cgroup, host, release, rootless);
      await openWork();
      return new Container(spec, o, pid, cgroup, rootfs, terminal, host);
    } catch (err) {
      await cgroup?.remove().catch(() => {});
      if (mounted) host.unmount(rootfs);
      await openWork();
      throw err;
    } finally {
      release();
    }
  }

  /** Sends a signal to PID 1; false when it is already gone. */
  kill(signal: number): boolean {
    return this.host.killPid(this.pid, signal);
  }

  /**
   * Waits for PID 1 to end, then kills what is left in the cgroup, removes it and unmounts the
   * rootfs. Safe to call more than once.
   */
  wait(): Promise<ContainerExit> {
    this.#waited ??= (async () => {
      const status = await this.host.waitPid(this.pid);
      await this.options.afterExit?.().catch(() => {});
      const oomKilled = await this.cgroup.oomKilled();
      await this.cgroup.remove();
      this.host.unmount(this.rootfs);
      const exitCode = status.signal !== undefined ? 128 + status.signal : status.exitCode ?? 0;
      return { exitCode, signal: status.signal, oomKilled };
    })();
    return this.#waited;
  }

  /** Deletes the container's directory (upper layer included). Call after {@link wait}. */
  async remove(): Promise<void> {
    await this.wait();
    await Deno.remove(this.options.stateDir, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

/** Mounts the overlay of the layers on `rootfs` (through idmapped layers with a user namespace). */
async function mountRootfs(
  o: StartOptions,
  rootfs: string,
  host: Host,
  userns: ReturnType<typeof idMapping>,
): Promise<void> {
  const dir = o.stateDir;
  const idmapped = userns
    ? await host.idmapLayers(o.lowerBase, o.layers, join(dir, "idmap"), userns)
    : undefined;
  try {
    host.mountOverlay({
      lowerBase: idmapped ? join(dir, "idmap") : o.lowerBase,
      lower: [...(idmapped?.entries ?? o.layers)].reverse(),
      upper: join(dir, "upper"),
      work: join(dir, "work"),
      target: rootfs,
    });
  } finally {
    idmapped?.detach();
  }
}

/**
 * `--userns-remap`: /dev's tmpfs mounted by this process (detached with the rootfs, a lazy
 * unmount takes submounts along), and PID 1 keeps its host ids until its identity ops, see
 * oci_program.ts (`hostIdsUntilIdentity`).
 */
function premountDev(prepared: OciPrepared, host: Host): OciPrepared {
  const { mounts } = prepared.base;
  const dev = mounts.mounts.find((m) => m.destination === "/dev" && m.fstype === "tmpfs");
  if (dev) host.mountTmpfs(dev.target, dev.options.flags, dev.options.data);
  return {
    ...prepared,
    base: {
      ...prepared.base,
      hostIdsUntilIdentity: true,
      mounts: { ...mounts, mounts: mounts.mounts.filter((m) => m !== dev) },
    },
  };
}

/** The mounts every container gets; the others are the container's own (checked below). */
const STANDARD_MOUNTS = new Set([
  "/proc",
  "/sys",
  "/dev",
  "/dev/pts",
  "/dev/shm",
  "/dev/mqueue",
  INIT_PATH,
  "/etc/hostname",
  "/etc/hosts",
  "/etc/resolv.conf",
]);

/**
 * The parent's side before the clone: the etc files written in the state dir, the working
 * directory and the container's own mount targets checked to stay in the rootfs, and the spec
 * read for the program (oci_plan.ts). `view` is where this process sees the rootfs (rootless).
 */
async function prepare(
  spec: Spec,
  o: StartOptions,
  rootfs: string,
  host: Host,
  view?: string,
): Promise<OciPrepared> {
  const seen = view ?? rootfs;
  const hostNetwork = !spec.linux.namespaces?.some((n) => n.type === "network");
  const hostname = spec.hostname ?? "";
  const files = {
    hostname: `${hostname}\n`,
    hosts: hostsFile(hostname, hostNetwork),
    "resolv.conf": resolvConf(),
  };
  for (const [name, content] of Object.entries(files)) {
    await host.writeTextFile(join(o.stateDir, name), content, 0o644);
  }
  const inRoot = (path: string) => resolveInRoot(seen, path);
  const p = spec.process;
  checkInsideRoot(inRoot, p.cwd, "working directory");
  for (const m of spec.mounts ?? []) {
    if (!STANDARD_MOUNTS.has(m.destination)) checkInsideRoot(inRoot, m.destination, "mount target");
  }
  if (p.args[0] === INIT_PATH && p.args[1] === "--" && p.args.length > 2) {
    assertCommandFound(seen, p.args[2], [...(p.env ?? [])], p.cwd);
  }
  return prepareOci(spec, rootfs, {
    id: o.id,
    lastCap: host.lastCap(),
    warn: o.warn ?? (() => {}),
    view,
    filterCacheDir: o.filterCacheDir,
  });
}

/**
 * `--init`: the init would report a missing command only as its own failure (exit 1), so the
 * command is looked up here first, for docker's message and exit code 127.
 */
function assertCommandFound(root: string, argv0: string, env: string[], cwd: string): void {
  const found = execCandidates(argv0, env).some((candidate) => {
    const path = candidate.startsWith("/") ? candidate : `${cwd}/${candidate}`;
    try {
      // Resolved inside the rootfs (symlinks included), so lstat sees the file itself.
      return Deno.lstatSync(resolveInRoot(root, path)).isFile;
    } catch {
      return false;
    }
  });
  if (!found) throw startError({ opIndex: -1, errno: ENOENT }, [], argv0);
}

/** PID 1's launch: its program, clone flags and held steps around the shared handshake. */
async function launch(
  spec: Spec,
  o: StartOptions,
  prepared: OciPrepared,
  cgroup: Cgroup,
  host: Host,
  release: () => void,
  rootless?: Rootless,
): Promise<Launched> {
  const { base, ns } = prepared;
  if (ns.newTime) {
    // Its offsets must be written before the process enters it at execve, which here follows
    // the release at once (only `tsbox runc` waits on a fifo in between).
    throw new TsboxError("config.json: time namespaces are supported by tsbox runc only");
  }
  const mapping = idMapping(spec);
  const writeMaps = rootless
    ? (pid: number) => host.writeRootlessMaps(pid, rootless.maps)
    : ns.newUser && mapping
    ? (pid: number) => host.writeIdMaps(pid, mapping)
    : undefined;
  const args = spec.process.args;
  const init = args[0] === INIT_PATH && args[1] === "--" && args.length > 2;
  const open: number[] = [];
  let hooked = false;
  // Opened here, inherited by the clone: the child joins them with setns.
  const openNs = (file: string) => {
    const fd = host.openNamespace(file);
    open.push(fd);
    return fd;
  };
  try {
    const joins = ns.joins.map((j) => ({
      fd: openNs(j.path),
      type: CLONE_FLAGS[j.type],
      what: j.type,
    }));
    const pidFd = ns.pidPath !== undefined ? openNs(ns.pidPath) : undefined;
    const oomScoreAdj = spec.process.oomScoreAdj;
    return await launchChild(host, {
      argv0: init ? args[2] : args[0],
      tty: o.tty !== undefined || spec.process.terminal === true,
      flags: ns.cloneFlags,
      pidNamespaceFd: pidFd,
      program: (fds) =>
        buildOciProgram({
          ...base,
          // The spec's seccomp flags, as `tsbox runc` applies them.
          ...ociPlanExtras(spec, base.seccomp, undefined),
          noPivot: false,
          preserveFds: 0,
          joins,
          syncFd: fds.syncFd,
          closeFds: fds.closeFds,
          statusFd: fds.statusFd,
          overlay: rootless?.overlay,
          setgroupsDenied: rootless !== undefined && !rootless.maps.subGids,
          dumpable: rootless !== undefined,
          parentDeathSignal: o.parentDeathSignal,
          // -t: the child sends its pty master over the socket pair (see tty.ts).
          ...(fds.terminalSocket !== undefined
            ? { terminal: { socketFd: fds.terminalSocket, size: o.tty?.size, uid: base.uid } }
            : { stdio: o.stdio }),
        }),
      cloned: release,
      afterClone: writeMaps,
      beforeRelease: async (pid) => {
        await cgroup.join(pid);
        if (oomScoreAdj !== undefined && oomScoreAdj !== null) {
          await host.writeOomScoreAdj(pid, oomScoreAdj);
        }
        hooked = o.beforeRelease !== undefined;
        await o.beforeRelease?.(pid);
      },
      abandoned: async () => {
        if (hooked) await o.afterExit?.();
      },
    });
  } finally {
    for (const fd of open) host.closeFd(fd);
  }
}
