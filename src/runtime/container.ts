/**
 * Starting and supervising one container: rootfs overlay, cgroup, the cloned first process
 * running its syscall program (ffi/clone.ts), waiting, and tearing down mounts and cgroups.
 *
 * @module
 */
import { join } from "../path.ts";
import { CLONE } from "../../ffi/clone.ts";
import { TsboxError, UsageError } from "../errors.ts";
import type { Cgroup, ResourceLimits } from "./cgroups.ts";
import { type Host, linuxHost } from "./host.ts";
import { execCandidates, getEnv } from "./config.ts";
import { buildProgram, type ChildPlan, INIT_PATH } from "./program.ts";
import type { MountRequest } from "./mount_request.ts";
import { DEFAULT_CAPS } from "./capabilities.ts";
import { ensureMountTarget, overlayOptions, resolveInRoot } from "./rootfs.ts";
import { rootlessCgroup, type RootlessMapping, warnSingleId } from "./rootless.ts";
import { resolveGroupAdd, resolveUser } from "./user.ts";
import { cloneFlagsFor, namespaceFile, type SharedNamespaces } from "./namespaces.ts";
import { checkInsideRoot, prepareSecurity, type SecurityOptions } from "./security.ts";
import { prepareSettings, type SecuritySettings } from "./security_settings.ts";
import { type IdMapping, toHost } from "./userns.ts";
import { launch as launchChild, type Launched } from "./launch.ts";
import { startError } from "./start_error.ts";
import { MS } from "../../ffi/mount.ts";
import type { WindowSize } from "../../ffi/terminal.ts";

/** Network mode: a private namespace with only `lo` ("none" is the same here), or the host's. */
export type NetworkMode = "private" | "none" | "host" | `container:${string}`;

/** A user mount; its target as seen in the container (mount_request.ts). */
export type { MountRequest } from "./mount_request.ts";

/** What to run and how: everything `run` decided, with the image already in the store. */
export interface ContainerSpec {
  /** 64 hex digits. */
  readonly id: string;
  /** `<root>/containers/<id>`: upper, work, rootfs, hostname, hosts, resolv.conf. */
  readonly stateDir: string;
  /** The directory lower entries are relative to (the store's link dir). */
  readonly lowerBase: string;
  /** Lower entries (short links) relative to `lowerBase`, bottom layer first. */
  readonly layers: readonly string[];
  readonly argv: readonly string[];
  /** Environment without HOME; HOME comes from the image's passwd unless set. */
  readonly env: readonly string[];
  readonly cwd: string;
  /** `--user` (`uid[:gid]` or `name[:group]`), "" for root. */
  readonly user: string;
  readonly hostname: string;
  readonly network: NetworkMode;
  /**
   * `container:ID` networks: PID 1 of that container, whose network namespace the new one
   * joins instead of getting its own.
   */
  readonly networkPid?: number;
  /** A network namespace file to join (an OCI spec's `path`); wins over {@link networkPid}. */
  readonly networkPath?: string;
  /** `--ipc`, `--pid`, `--uts`, `--cgroupns` modes: namespaces not the container's own. */
  readonly namespaces?: SharedNamespaces;
  readonly resources: ResourceLimits;
  readonly mounts: readonly MountRequest[];
  readonly readOnly: boolean;
  /** 0, 1, 2: "inherit" tsbox's own, "null" for /dev/null, or an fd of this process. */
  readonly stdio: readonly ("inherit" | "null" | number)[];
  /** Capabilities to keep; docker's 14 by default. */
  readonly capabilities?: readonly number[];
  /**
   * `-t`: PID 1 gets a pty from the container's own devpts as 0, 1, 2 and controlling terminal
   * (stdio is then ignored); its master is {@link Container.terminal}.
   */
  readonly tty?: { readonly size?: WindowSize };
  /**
   * Confinement: capabilities aside, docker's defaults (masks, seccomp, devices) when absent;
   * every part stated when it comes from an OCI spec (from_spec.ts).
   */
  readonly security?: SecurityOptions | SecuritySettings;
  /** A directory where compiled default seccomp filters are cached between starts. */
  readonly filterCacheDir?: string;
  /** Run in a user namespace with this mapping (`--userns-remap`); the host's ids when absent. */
  readonly userns?: IdMapping;
  /** Signal PID 1 receives when the starting process dies (e.g. 9: it dies with its supervisor). */
  readonly parentDeathSignal?: number;
  /**
   * Called with PID 1's host pid once it sits in its namespaces and cgroup, before it is
   * released to run its program (port proxies start here). A rejection aborts the start.
   */
  readonly beforeRelease?: (pid: number) => Promise<void>;
  /** Called once PID 1 has ended, before the cgroup and rootfs are torn down. */
  readonly afterExit?: () => Promise<void>;
  /** `--init`: host path of the init binary that runs as PID 1 in front of {@link argv}. */
  readonly init?: string;
  /** Supplementary groups besides the user's own: names (in the image's /etc/group) or gids. */
  readonly groupAdd?: readonly string[];
  /** `--shm-size` in bytes (docker's 64 MiB when absent). */
  readonly shmSize?: number;
  /** `--sysctl`s, already checked to be namespaced (src/container/sysctl.ts). */
  readonly sysctls?: readonly (readonly [string, string])[];
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

let lastCap: number | undefined;
function capLastCap(): number {
  lastCap ??= Number(readIfExists("/proc/sys/kernel/cap_last_cap").trim() || "40");
  return lastCap;
}

function hostsFile(hostname: string, network: NetworkMode): string {
  if (network === "host") return readIfExists("/etc/hosts");
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

/** A running container. */
export class Container {
  #waited?: Promise<ContainerExit>;

  private constructor(
    readonly spec: ContainerSpec,
    /** PID of the container's PID 1, in the host's PID namespace. */
    readonly pid: number,
    readonly cgroup: Cgroup,
    readonly rootfs: string,
    /** The pty master when started with `tty` (the owner closes it). */
    readonly terminal: number | undefined,
    readonly host: Host,
  ) {}

  /**
   * Prepares the rootfs and cgroup, starts PID 1, and returns once its execve succeeded. When a
   * step fails, what the steps before it did is undone (cgroup removed, rootfs unmounted, PID 1
   * killed and reaped). `host` makes the host-side calls (tests pass a recording fake).
   */
  static async start(spec: ContainerSpec, host: Host = linuxHost): Promise<Container> {
    if (host.isRootless()) return await Container.#startRootless(spec, host);
    const dir = spec.stateDir;
    const rootfs = join(dir, "rootfs");
    for (const d of ["upper", "work", "rootfs"]) await host.mkdir(join(dir, d), 0o700);
    // The overlay's root takes the upper dir's owner and mode: give it the top layer's.
    const top = spec.layers.at(-1);
    const rootInfo = top ? await host.stat(join(spec.lowerBase, top)) : undefined;
    await host.chmod(join(dir, "upper"), (rootInfo?.mode ?? 0o755) & 0o7777);
    if (rootInfo?.uid != null) {
      // In a user namespace the owner is the host id the image's owner maps to.
      const uid = spec.userns ? toHost(spec.userns.uid, rootInfo.uid) : rootInfo.uid;
      const gid = spec.userns ? toHost(spec.userns.gid, rootInfo.gid ?? 0) : rootInfo.gid;
      await host.chown(join(dir, "upper"), uid ?? null, gid ?? null);
    }
    // With a user namespace the layers are seen through idmapped mounts of them.
    const idmapped = spec.userns
      ? await host.idmapLayers(spec.lowerBase, spec.layers, join(dir, "idmap"), spec.userns)
      : undefined;
    try {
      host.mountOverlay({
        lowerBase: idmapped ? join(dir, "idmap") : spec.lowerBase,
        lower: [...(idmapped?.entries ?? spec.layers)].reverse(),
        upper: join(dir, "upper"),
        work: join(dir, "work"),
        target: rootfs,
      });
    } finally {
      idmapped?.detach();
    }
    let cgroup: Cgroup | undefined;
    let plan: Prepared | undefined;
    try {
      plan = await prepare(spec, rootfs, host);
      cgroup = await host.createCgroup(spec.id, { ...spec.resources, devices: plan.deviceRules });
      const { pid, terminal } = await launch(spec, plan, cgroup, host);
      return new Container(spec, pid, cgroup, rootfs, terminal, host);
    } catch (err) {
      await cgroup?.remove().catch(() => {});
      host.unmount(rootfs);
      throw err;
    } finally {
      plan?.release();
    }
  }

  /**
   * Rootless: a user namespace mapped onto the user's own and subordinate ids, the overlay
   * mounted (with `userxattr`) by the container itself inside its namespaces, and a cgroup
   * only where the user may write one.
   */
  static async #startRootless(spec: ContainerSpec, host: Host): Promise<Container> {
    if (spec.userns) {
      throw new UsageError(
        "--userns-remap needs root; rootless tsbox maps your own subordinate ids itself",
      );
    }
    const { who, maps } = host.rootlessIdentity();
    const warn = spec.warn ?? (() => {});
    warnSingleId(maps, who, warn);
    const dir = spec.stateDir;
    const rootfs = join(dir, "rootfs");
    for (const d of ["upper", "work", "rootfs"]) await host.mkdir(join(dir, d), 0o700);
    // The overlay's root takes the upper dir's mode (its owner is the user: root inside).
    const top = spec.layers.at(-1);
    const rootInfo = top ? await host.stat(join(spec.lowerBase, top)) : undefined;
    await host.chmod(join(dir, "upper"), (rootInfo?.mode ?? 0o755) & 0o7777);
    const options = `${
      overlayOptions({
        lowerBase: spec.lowerBase,
        lower: [...spec.layers].reverse(),
        upper: join(dir, "upper"),
        work: join(dir, "work"),
        target: rootfs,
      })
    },userxattr`;
    if (options.length >= 4096) {
      throw new TsboxError(`too many layers (${spec.layers.length}) for one overlay mount`);
    }
    const overlay = { lowerBase: spec.lowerBase, options };
    // Device rules need the devices controller of the host: a user namespace cannot create
    // device nodes anyway, and only the ones bound into /dev are reachable. Limits that cannot
    // be enforced fail here, before anything is mounted.
    const cgroup = await rootlessCgroup(
      spec.resources,
      () => host.createCgroup(spec.id, spec.resources),
      warn,
    );
    // overlayfs makes work/work mode 000 on every mount; root removes it regardless, the user
    // cannot.
    const openWork = () => host.chmod(join(dir, "work", "work"), 0o700).catch(() => {});
    let prepared: Prepared | undefined;
    try {
      const held = await host.holdOverlay(rootfs, overlay, maps);
      try {
        prepared = await prepare(spec, rootfs, host, { view: held.view, maps, overlay });
      } finally {
        await held.release();
        await openWork();
      }
      const { pid, terminal } = await launch(spec, prepared, cgroup, host, (pid) => {
        return host.writeRootlessMaps(pid, maps);
      });
      await openWork();
      return new Container(spec, pid, cgroup, rootfs, terminal, host);
    } catch (err) {
      await cgroup.remove().catch(() => {});
      await openWork();
      throw err;
    } finally {
      prepared?.release();
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
      await this.spec.afterExit?.().catch(() => {});
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
    await Deno.remove(this.spec.stateDir, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}

interface Prepared {
  plan: Omit<ChildPlan, "syncFd" | "closeFds">;
  /** Device cgroup rules (security.ts). */
  deviceRules: { allow: boolean; line: string }[];
  /** Frees native memory the program points into; call once the child is cloned (idempotent). */
  release: () => void;
}

/** A rootless start: the rootfs is mounted in a holder's namespace, seen through `view`. */
interface RootlessPrepare {
  readonly view: string;
  readonly maps: RootlessMapping;
  readonly overlay: { readonly lowerBase: string; readonly options: string };
}

async function prepare(
  spec: ContainerSpec,
  rootfs: string,
  host: Host,
  rootless?: RootlessPrepare,
): Promise<Prepared> {
  // Paths are resolved and created where this process sees the rootfs, and handed to the
  // child as the paths it will see in its own namespace.
  const seen = rootless?.view ?? rootfs;
  const toChild = (p: string) => rootless ? rootfs + p.slice(seen.length) : p;
  const target = (path: string, kind: "dir" | "file") =>
    toChild(ensureMountTarget(seen, path, kind));
  const groupText = readIfExists(resolveInRoot(seen, "/etc/group"));
  const user = resolveUser(spec.user, readIfExists(resolveInRoot(seen, "/etc/passwd")), groupText);
  const groups = spec.groupAdd?.length
    ? [...new Set([...user.groups, ...resolveGroupAdd(spec.groupAdd, groupText)])]
    : user.groups;
  if (groups.length > user.groups.length && rootless && !rootless.maps.subGids) {
    // Only the user's own gid is mapped: setgroups is denied, so the groups could not be set.
    throw new UsageError("--group-add needs subordinate group ids (/etc/subgid) when rootless");
  }
  const env = [...spec.env];
  if (getEnv(env, "HOME") === undefined) env.push(`HOME=${user.home}`);
  if (spec.init) assertCommandFound(seen, spec.argv[0], env, spec.cwd);
  const files = {
    hostname: `${spec.hostname}\n`,
    hosts: hostsFile(spec.hostname, spec.network),
    "resolv.conf": resolvConf(),
  };
  const etcFiles: { source: string; target: string }[] = [];
  for (const [name, content] of Object.entries(files)) {
    const source = join(spec.stateDir, name);
    await host.writeTextFile(source, content, 0o644);
    etcFiles.push({ source, target: target(`/etc/${name}`, "file") });
  }
  const inRoot = (path: string) => resolveInRoot(seen, path);
  checkInsideRoot(inRoot, spec.cwd, "working directory");
  for (const m of spec.mounts) checkInsideRoot(inRoot, m.target, "mount target");
  const extraMounts: MountRequest[] = spec.mounts.map((m) => {
    if (m.kind === "tmpfs") return { ...m, target: target(m.target, "dir") };
    const kind = Deno.statSync(m.source).isDirectory ? "dir" : "file";
    return { ...m, target: target(m.target, kind) };
  });
  target(spec.cwd, "dir");
  const capabilities = spec.capabilities ?? DEFAULT_CAPS;
  const dev = target("/dev", "dir");
  const remapped = spec.userns !== undefined && !rootless;
  if (remapped) {
    // Detached with the rootfs (lazy unmount takes submounts along).
    host.mountTmpfs(dev, MS.NOSUID | MS.STRICTATIME, "mode=755,size=65536k");
  }
  const security = spec.security && "kind" in spec.security
    ? prepareSettings(spec.security, capabilities, spec.filterCacheDir)
    : prepareSecurity(spec.security ?? {}, capabilities, spec.filterCacheDir);
  let released = false;
  return {
    deviceRules: security.deviceRules,
    release: () => {
      if (!released) security.free();
      released = true;
    },
    plan: {
      rootfs,
      targets: {
        proc: target("/proc", "dir"),
        dev,
        sys: target("/sys", "dir"),
      },
      etcFiles,
      extraMounts,
      readOnly: spec.readOnly,
      hostname: spec.hostname,
      loopbackUp: spec.network !== "host" && joinedNetwork(spec) === undefined,
      cgroupNamespace: spec.namespaces?.cgroup !== "host",
      keepHostname: spec.namespaces?.uts === "host",
      cwd: spec.cwd,
      uid: user.uid,
      gid: user.gid,
      groups,
      capabilities,
      security: security.plan,
      devPremounted: remapped,
      rebindRootfs: remapped,
      overlay: rootless?.overlay,
      // Only the user's own gid mapped: no setgroups, and no tty group for devpts.
      setgroupsDenied: rootless && !rootless.maps.subGids,
      ptsGid: rootless && !rootless.maps.subGids ? null : undefined,
      bindSys: rootless !== undefined && spec.network === "host",
      lastCap: capLastCap(),
      stdio: spec.stdio,
      // --init: the init is PID 1 and runs the command itself (catatonit's `--`).
      argv: spec.init ? [INIT_PATH, "--", ...spec.argv] : spec.argv,
      env,
      candidates: spec.init ? [INIT_PATH] : execCandidates(spec.argv[0], env),
      parentDeathSignal: spec.parentDeathSignal,
      init: spec.init,
      shmSize: spec.shmSize,
      sysctls: spec.sysctls,
    },
  };
}

/** The network namespace file a container joins instead of getting its own, if any. */
function joinedNetwork(spec: ContainerSpec): string | undefined {
  return spec.networkPath ??
    (spec.networkPid === undefined ? undefined : `/proc/${spec.networkPid}/ns/net`);
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
  spec: ContainerSpec,
  prepared: Prepared,
  cgroup: Cgroup,
  host: Host,
  rootlessMaps?: (pid: number) => Promise<void>,
): Promise<Launched> {
  const userns = spec.userns;
  const writeMaps = rootlessMaps ??
    (userns ? (pid: number) => host.writeIdMaps(pid, userns) : undefined);
  const open: number[] = [];
  let hooked = false;
  // Opened here, inherited by the clone: the child joins them with setns (see networkOps).
  const openNs = (file: string | undefined) => {
    if (file === undefined) return undefined;
    const fd = host.openNamespace(file);
    open.push(fd);
    return fd;
  };
  try {
    const netnsFd = openNs(joinedNetwork(spec));
    const ipcFd = openNs(namespaceFile(spec.namespaces?.ipc, "ipc"));
    const pidFd = openNs(namespaceFile(spec.namespaces?.pid, "pid"));
    let flags = CLONE.NEWPID | CLONE.NEWNS | CLONE.NEWUTS | CLONE.NEWIPC;
    if (spec.network !== "host" && netnsFd === undefined) flags |= CLONE.NEWNET;
    if (writeMaps) flags |= CLONE.NEWUSER;
    return await launchChild(host, {
      argv0: spec.argv[0],
      tty: spec.tty !== undefined,
      flags: cloneFlagsFor(flags, spec.namespaces),
      pidNamespaceFd: pidFd,
      program: (fds) =>
        buildProgram({
          ...prepared.plan,
          joinNetnsFd: netnsFd,
          joinIpcFd: ipcFd,
          syncFd: fds.syncFd,
          closeFds: fds.closeFds,
          // -t: the child sends its pty master over the socket pair (see tty.ts).
          ...(fds.terminalSocket !== undefined
            ? {
              stdio: ["inherit", "inherit", "inherit"],
              terminal: {
                socketFd: fds.terminalSocket,
                size: spec.tty?.size,
                uid: prepared.plan.uid,
              },
            }
            : {}),
        }),
      cloned: () => prepared.release(),
      afterClone: writeMaps,
      beforeRelease: async (pid) => {
        await cgroup.join(pid);
        if (spec.resources.oomScoreAdj !== undefined) {
          await host.writeOomScoreAdj(pid, spec.resources.oomScoreAdj);
        }
        hooked = spec.beforeRelease !== undefined;
        await spec.beforeRelease?.(pid);
      },
      abandoned: async () => {
        if (hooked) await spec.afterExit?.();
      },
    });
  } finally {
    for (const fd of open) host.closeFd(fd);
  }
}
