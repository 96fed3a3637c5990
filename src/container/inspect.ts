/**
 * docker-shaped `container inspect` objects.
 *
 * @module
 */
import { inspectPorts } from "../net/publish.ts";
import type { Store } from "../store/mod.ts";
import { configPath, containerDir, logPath } from "./paths.ts";
import { type ContainerRecord, reconcile } from "./state.ts";
import { volumeData, volumeMountsOf } from "./volumes.ts";
import { inspectHostConfig } from "./run_options.ts";
import { inspectNamespaces } from "./namespaces.ts";
import { inspectExtraLimits } from "./extra_limits.ts";
import { inspectNetworkSettings } from "../network/inspect.ts";
import { networkModeName } from "../network/endpoints.ts";
import { RLIM_INFINITY } from "../../ffi/security.ts";
import { parseUlimit } from "../runtime/rlimits.ts";

const ZERO_TIME = "0001-01-01T00:00:00Z";
const iso = (ms?: number) => (ms === undefined ? ZERO_TIME : new Date(ms).toISOString());

/** `--ulimit` values as docker's HostConfig.Ulimits (-1: unlimited); null when none. */
function inspectUlimits(specs: readonly string[] | undefined) {
  if (!specs || specs.length === 0) return null;
  const n = (v: bigint) => v === RLIM_INFINITY ? -1 : Number(v);
  return specs.map(parseUlimit).map((u) => ({
    Name: u.name,
    Hard: n(u.limit.hard),
    Soft: n(u.limit.soft),
  }));
}

/** The inspect object of a container (subset of docker's, same names and shapes). */
export function inspectContainer(store: Store, record: ContainerRecord): Record<string, unknown> {
  const c = reconcile(store, record);
  const cfg = c.config;
  const dir = containerDir(store.root, c.id);
  const ports = inspectPorts(store, c);
  const volumes = new Map(
    volumeMountsOf(store, c.id).map((v) => [volumeData(store.root, v.name), v.name]),
  );
  return {
    Id: c.id,
    Created: iso(c.createdAt),
    Path: cfg.argv[0],
    Args: cfg.argv.slice(1),
    State: {
      Status: c.state,
      Running: c.state === "running" || c.state === "paused",
      Paused: c.state === "paused",
      Restarting: c.state === "restarting",
      OOMKilled: c.oomKilled,
      Dead: false,
      Pid: c.pid ?? 0,
      ExitCode: c.exitCode ?? 0,
      Error: c.error ?? "",
      StartedAt: iso(c.startedAt),
      FinishedAt: iso(c.finishedAt),
      // Only once it has run with a healthcheck, as docker's.
      ...(c.health ? { Health: c.health } : {}),
    },
    Image: c.imageId,
    LogPath: logPath(store.root, c.id),
    // podman's key: the container's OCI bundle config, written at create.
    OCIConfigPath: configPath(store.root, c.id),
    Name: `/${c.name}`,
    RestartCount: c.restartCount,
    Driver: "overlay",
    HostConfig: {
      NetworkMode: networkModeName(cfg.network, cfg.net),
      RestartPolicy: { Name: cfg.restart.name, MaximumRetryCount: cfg.restart.maxRetries },
      AutoRemove: cfg.autoRemove,
      PublishAllPorts: cfg.publishAll ?? false,
      ReadonlyRootfs: cfg.readOnly,
      Memory: cfg.resources.memory ?? 0,
      MemorySwap: cfg.resources.memorySwap ?? 0,
      NanoCpus: Math.round((cfg.resources.cpus ?? 0) * 1e9),
      CpuShares: cfg.resources.cpuShares ?? 0,
      PidsLimit: cfg.resources.pidsLimit ?? null,
      Ulimits: inspectUlimits(cfg.security?.security.ulimits),
      ...inspectHostConfig(cfg),
      ...inspectNamespaces(cfg.namespaces),
      ...inspectExtraLimits(cfg.resources),
    },
    GraphDriver: {
      Name: "overlay",
      Data: { UpperDir: `${dir}/upper`, WorkDir: `${dir}/work`, MergedDir: `${dir}/rootfs` },
    },
    Mounts: cfg.mounts.map((m) =>
      m.kind === "bind" && volumes.has(m.source)
        ? {
          Type: "volume",
          Name: volumes.get(m.source),
          Source: m.source,
          Destination: m.target,
          Driver: "local",
          Mode: m.readOnly ? "ro" : "",
          RW: !m.readOnly,
          Propagation: "",
        }
        : m.kind === "bind"
        ? {
          Type: "bind",
          Source: m.source,
          Destination: m.target,
          Mode: m.readOnly ? "ro" : "",
          RW: !m.readOnly,
          Propagation: "rprivate",
        }
        : { Type: "tmpfs", Source: "", Destination: m.target, Mode: m.options, RW: true }
    ),
    Config: {
      Hostname: cfg.hostname,
      User: cfg.user,
      Tty: cfg.tty,
      OpenStdin: cfg.interactive,
      Env: cfg.env,
      // Records from before entrypointLength was kept show the whole command as Cmd.
      Entrypoint: cfg.entrypointLength ? cfg.argv.slice(0, cfg.entrypointLength) : null,
      Cmd: cfg.argv.length > (cfg.entrypointLength ?? 0)
        ? cfg.argv.slice(cfg.entrypointLength ?? 0)
        : null,
      Image: c.imageName,
      WorkingDir: cfg.cwd,
      Labels: cfg.labels ?? {},
      ...(cfg.exposedPorts?.length
        ? { ExposedPorts: Object.fromEntries(cfg.exposedPorts.map((p) => [p, {}])) }
        : {}),
      // As docker: only when set (by the flag or, for the signal, the image).
      StopSignal: cfg.stopSignalName,
      StopTimeout: cfg.stopTimeoutSet ? cfg.stopTimeout : undefined,
      ...(cfg.healthcheck ? { Healthcheck: cfg.healthcheck } : {}),
    },
    NetworkSettings: {
      ...inspectNetworkSettings(store, {
        id: c.id,
        name: c.name,
        mode: cfg.network,
        net: cfg.net,
      }),
      Ports: ports,
    },
  };
}
