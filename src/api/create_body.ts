/**
 * `POST /containers/create`'s body (docker's Config + HostConfig) turned into the flags `tsbox
 * create` takes, so that the API creates containers with exactly the CLI's code. Every field is
 * type-checked: the body is hostile input, and a wrong type is docker's 400, not a crash.
 *
 * @module
 */
import type { ExtraLimitFlags } from "../container/extra_limits.ts";
import type { HealthFlags } from "../container/health.ts";
import type { RunFlags } from "../container/flags.ts";
import type { NamespaceFlags } from "../container/namespaces.ts";
import { badParameter } from "./errors.ts";

/** The flags a create body turns into: `run`'s, the health check's, the extra limits'. */
export type CreateFlags = RunFlags & HealthFlags & ExtraLimitFlags & NamespaceFlags;

/** A container create request, decoded. */
export interface CreateRequest {
  readonly image: string;
  readonly command: string[];
  readonly flags: CreateFlags;
  /** Legacy links (`NAME[:ALIAS]`) of HostConfig and the endpoint, for links.ts. */
  readonly links: string[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function obj(v: unknown, field: string): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw badParameter(`${field}: expected an object`);
  return v;
}

function str(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw badParameter(`${field}: expected a string`);
  return v;
}

function bool(v: unknown, field: string): boolean | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw badParameter(`${field}: expected a boolean`);
  return v;
}

function int(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw badParameter(`${field}: expected an integer`);
  }
  return v;
}

/** A string list; docker's StrSlice also takes one string. */
function strList(v: unknown, field: string, single = false): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (single && typeof v === "string") return [v];
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw badParameter(`${field}: expected a list of strings`);
  }
  return v as string[];
}

function nonEmpty(list: string[] | undefined): string[] | undefined {
  return list && list.length > 0 ? list : undefined;
}

function strMap(v: unknown, field: string): Record<string, string> | undefined {
  const o = obj(v, field);
  if (!o) return undefined;
  for (const [k, x] of Object.entries(o)) str(x, `${field}.${k}`);
  return o as Record<string, string>;
}

/** Nanoseconds (docker's durations) as a flag value. */
function duration(v: unknown, field: string): string | undefined {
  const ns = int(v, field);
  return ns === undefined || ns === 0 ? undefined : `${ns / 1e6}ms`;
}

/** A number docker's client sends as 0 when its flag was not given, as a flag value. */
function given(v: unknown, field: string): string | undefined {
  const n = int(v, field);
  return n === undefined || n === 0 ? undefined : String(n);
}

/** `HostConfig.BlkioDevice*` (`[{Path, Rate}]`) as `--device-*-bps/iops` values. */
function throttlesFrom(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw badParameter(`HostConfig.${field}: expected a list`);
  const out = v.map((t, i) => {
    const o = obj(t, `HostConfig.${field}[${i}]`) ?? {};
    return `${str(o.Path, `${field}.Path`) ?? ""}:${int(o.Rate, `${field}.Rate`) ?? 0}`;
  });
  return nonEmpty(out);
}

/**
 * The resource fields of HostConfig beyond memory, CPUs, shares and pids, as the flags `tsbox
 * run` takes for them (extra_limits.ts checks both alike, with docker's messages).
 */
function extraLimitsFrom(host: Json): ExtraLimitFlags {
  const weightDevices = host.BlkioWeightDevice;
  if (weightDevices !== undefined && weightDevices !== null && !Array.isArray(weightDevices)) {
    throw badParameter("HostConfig.BlkioWeightDevice: expected a list");
  }
  const weights = (weightDevices ?? []).map((w, i) => {
    const o = obj(w, `HostConfig.BlkioWeightDevice[${i}]`) ?? {};
    return `${str(o.Path, "BlkioWeightDevice.Path") ?? ""}:${
      int(o.Weight, "BlkioWeightDevice.Weight") ?? 0
    }`;
  });
  // null and -1 are docker's "not set" (its client sends -1 without --memory-swappiness).
  const swappiness = int(host.MemorySwappiness, "HostConfig.MemorySwappiness");
  const adj = int(host.OomScoreAdj, "HostConfig.OomScoreAdj");
  return {
    cgroupParent: str(host.CgroupParent, "HostConfig.CgroupParent") || undefined,
    cpusetCpus: str(host.CpusetCpus, "HostConfig.CpusetCpus") || undefined,
    cpusetMems: str(host.CpusetMems, "HostConfig.CpusetMems") || undefined,
    cpuQuota: given(host.CpuQuota, "HostConfig.CpuQuota"),
    cpuPeriod: given(host.CpuPeriod, "HostConfig.CpuPeriod"),
    cpuRtRuntime: given(host.CpuRealtimeRuntime, "HostConfig.CpuRealtimeRuntime"),
    cpuRtPeriod: given(host.CpuRealtimePeriod, "HostConfig.CpuRealtimePeriod"),
    memoryReservation: given(host.MemoryReservation, "HostConfig.MemoryReservation"),
    kernelMemory: given(host.KernelMemory, "HostConfig.KernelMemory"),
    oomKillDisable: bool(host.OomKillDisable, "HostConfig.OomKillDisable") || undefined,
    oomScoreAdj: adj ? String(adj) : undefined,
    blkioWeight: given(host.BlkioWeight, "HostConfig.BlkioWeight"),
    blkioWeightDevice: nonEmpty(weights),
    memorySwappiness: swappiness === undefined || swappiness === -1
      ? undefined
      : String(swappiness),
    deviceReadBps: throttlesFrom(host.BlkioDeviceReadBps, "BlkioDeviceReadBps"),
    deviceWriteBps: throttlesFrom(host.BlkioDeviceWriteBps, "BlkioDeviceWriteBps"),
    deviceReadIops: throttlesFrom(host.BlkioDeviceReadIOps, "BlkioDeviceReadIOps"),
    deviceWriteIops: throttlesFrom(host.BlkioDeviceWriteIOps, "BlkioDeviceWriteIOps"),
    deviceCgroupRule: nonEmpty(strList(host.DeviceCgroupRules, "HostConfig.DeviceCgroupRules")),
  };
}

/** `HostConfig.IpcMode`, `PidMode`, `UTSMode`, `CgroupnsMode` as `--ipc` and the others. */
function namespacesFrom(host: Json): NamespaceFlags {
  return {
    ipc: str(host.IpcMode, "HostConfig.IpcMode") || undefined,
    pid: str(host.PidMode, "HostConfig.PidMode") || undefined,
    uts: str(host.UTSMode, "HostConfig.UTSMode") || undefined,
    cgroupns: str(host.CgroupnsMode, "HostConfig.CgroupnsMode") || undefined,
  };
}

/** `HostConfig.PortBindings` as `-p` values. */
function publishFrom(v: unknown): string[] {
  const bindings = obj(v, "HostConfig.PortBindings") ?? {};
  const out: string[] = [];
  for (const [port, list] of Object.entries(bindings)) {
    if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(port)) {
      throw badParameter(`invalid port specification: "${port}"`);
    }
    if (list === null) continue;
    if (!Array.isArray(list)) {
      throw badParameter(`HostConfig.PortBindings.${port}: expected a list`);
    }
    for (const b of list) {
      const o = obj(b, `HostConfig.PortBindings.${port}`) ?? {};
      const ip = str(o.HostIp, "HostIp") ?? "";
      const hostPort = str(o.HostPort, "HostPort") ?? "";
      const host = ip.includes(":") ? `[${ip}]` : ip;
      out.push(ip ? `${host}:${hostPort}:${port}` : hostPort ? `${hostPort}:${port}` : port);
    }
  }
  return out;
}

/** `HostConfig.Mounts` as `--mount` values. */
function mountsFrom(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw badParameter("HostConfig.Mounts: expected a list");
  return v.map((m, i) => {
    const o = obj(m, `HostConfig.Mounts[${i}]`) ?? {};
    const type = str(o.Type, "Mount.Type") ?? "volume";
    const target = str(o.Target, "Mount.Target");
    if (!target) throw badParameter("Mount.Target: required");
    const parts = [`type=${type}`, `target=${target}`];
    const source = str(o.Source, "Mount.Source");
    if (source) parts.push(`source=${source}`);
    if (bool(o.ReadOnly, "Mount.ReadOnly")) parts.push("readonly");
    for (const p of parts) {
      if (p.includes(",")) throw badParameter(`Mount: a comma in ${JSON.stringify(p)}`);
    }
    return parts.join(",");
  });
}

/** The container path of a `-v`/Binds value (`SRC:DST[:OPTS]` or `DST`). */
function bindTarget(spec: string): string {
  const parts = spec.split(":");
  return parts.length === 1 ? parts[0] : parts[1];
}

/** docker's NetworkMode names as tsbox's `--network` (`default`: the bridge, as the CLI's). */
function networkFrom(mode: string | undefined): string {
  if (mode === undefined || mode === "") return "default";
  return mode;
}

/**
 * `NetworkingConfig.EndpointsConfig`: the aliases and address on the network NetworkMode names
 * (docker's client and compose send the container's one network there). API 1.41 joins one
 * network at create, as dockerd before 1.44 did; more are joined with `/networks/{id}/connect`.
 */
function endpointFrom(
  v: unknown,
  mode: string,
): { aliases?: string[]; ip?: string; ip6?: string; links?: string[] } {
  const config = obj(obj(v, "NetworkingConfig")?.EndpointsConfig, "EndpointsConfig") ?? {};
  const names = Object.keys(config);
  if (names.length > 1) {
    throw badParameter(
      `Container cannot be connected to network endpoints: ${names.join(", ")}`,
    );
  }
  if (names.length === 0) return {};
  const ep = obj(config[names[0]], `EndpointsConfig.${names[0]}`) ?? {};
  const aliases = strList(ep.Aliases, `EndpointsConfig.${names[0]}.Aliases`) ?? [];
  const ipam = obj(ep.IPAMConfig, `EndpointsConfig.${names[0]}.IPAMConfig`);
  const ip = str(ipam?.IPv4Address, "IPAMConfig.IPv4Address") || undefined;
  const ip6 = str(ipam?.IPv6Address, "IPAMConfig.IPv6Address") || undefined;
  // Links here and in HostConfig.Links (compose sends them for `run` and `links:`): links.ts.
  const links = strList(ep.Links, `EndpointsConfig.${names[0]}.Links`);
  // An endpoint for another network than NetworkMode names (docker's client sends `bridge`'s
  // for the `default` mode) carries nothing to apply: aliases are for user networks only.
  const same = names[0] === mode || (mode === "default" && names[0] === "bridge");
  if (!same && (aliases.length > 0 || ip !== undefined || ip6 !== undefined)) {
    throw badParameter(
      `NetworkingConfig names network ${names[0]} but NetworkMode is ${mode}`,
    );
  }
  return { aliases: aliases.length > 0 ? aliases : undefined, ip, ip6, links };
}

/** Decodes a create body (already parsed JSON) and the `name`/`platform` query parameters. */
export function createRequest(body: unknown, name?: string, platform?: string): CreateRequest {
  if (!isObject(body)) throw badParameter("Config cannot be empty in order to create a container");
  const image = str(body.Image, "Image");
  if (!image) throw badParameter("Config cannot be empty in order to create a container");
  const host = obj(body.HostConfig, "HostConfig") ?? {};
  if (name !== undefined && name !== "" && !/^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/.test(name)) {
    throw badParameter(
      `Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`,
    );
  }
  const entrypoint = strList(body.Entrypoint, "Entrypoint", true);
  let command = strList(body.Cmd, "Cmd", true) ?? [];
  // tsbox's --entrypoint is one word; the rest of docker's list goes before the command.
  if (entrypoint && entrypoint.length > 1) command = [...entrypoint.slice(1), ...command];
  const restart = obj(host.RestartPolicy, "HostConfig.RestartPolicy");
  const restartName = str(restart?.Name, "RestartPolicy.Name");
  const retries = int(restart?.MaximumRetryCount, "RestartPolicy.MaximumRetryCount") ?? 0;
  const log = obj(host.LogConfig, "HostConfig.LogConfig");
  const logType = str(log?.Type, "LogConfig.Type");
  if (logType && logType !== "json-file") {
    throw badParameter(`logging driver ${logType}: tsbox writes json-file logs only`);
  }
  const memory = int(host.Memory, "HostConfig.Memory");
  const swap = int(host.MemorySwap, "HostConfig.MemorySwap");
  const nanoCpus = int(host.NanoCpus, "HostConfig.NanoCpus");
  const cpuShares = int(host.CpuShares, "HostConfig.CpuShares");
  const pids = int(host.PidsLimit, "HostConfig.PidsLimit");
  const shm = int(host.ShmSize, "HostConfig.ShmSize");
  const health = obj(body.Healthcheck, "Healthcheck");
  const healthTest = strList(health?.Test, "Healthcheck.Test");
  const ulimits = host.Ulimits === undefined || host.Ulimits === null
    ? []
    : Array.isArray(host.Ulimits)
    ? host.Ulimits.map((u, i) => {
      const o = obj(u, `HostConfig.Ulimits[${i}]`) ?? {};
      return `${str(o.Name, "Ulimit.Name")}=${int(o.Soft, "Ulimit.Soft")}:${
        int(o.Hard, "Ulimit.Hard")
      }`;
    })
    : (() => {
      throw badParameter("HostConfig.Ulimits: expected a list");
    })();
  const devices = host.Devices === undefined || host.Devices === null
    ? []
    : Array.isArray(host.Devices)
    ? host.Devices.map((d, i) => {
      const o = obj(d, `HostConfig.Devices[${i}]`) ?? {};
      const onHost = str(o.PathOnHost, "Device.PathOnHost") ?? "";
      const inCtr = str(o.PathInContainer, "Device.PathInContainer") || onHost;
      const perms = str(o.CgroupPermissions, "Device.CgroupPermissions") || "rwm";
      return `${onHost}:${inCtr}:${perms}`;
    })
    : (() => {
      throw badParameter("HostConfig.Devices: expected a list");
    })();
  const binds = strList(host.Binds, "HostConfig.Binds") ?? [];
  const mounts = mountsFrom(host.Mounts);
  // Config.Volumes lists every mount point, named and bound ones too (compose sends both): only
  // those no bind or mount covers are anonymous volumes, as dockerd reads them.
  const covered = new Set([
    ...binds.map(bindTarget),
    ...mounts.map((m) => /(?:^|,)target=([^,]*)/.exec(m)?.[1] ?? ""),
  ]);
  const anonymous = Object.keys(obj(body.Volumes, "Volumes") ?? {}).filter((p) => !covered.has(p));
  const network = networkFrom(str(host.NetworkMode, "HostConfig.NetworkMode"));
  const endpoint = endpointFrom(body.NetworkingConfig, network);
  const flags: CreateFlags = {
    ...extraLimitsFrom(host),
    ...namespacesFrom(host),
    name: name ? name.replace(/^\//, "") : undefined,
    hostname: str(body.Hostname, "Hostname") || undefined,
    env: strList(body.Env, "Env"),
    workdir: str(body.WorkingDir, "WorkingDir") || undefined,
    user: str(body.User, "User") || undefined,
    entrypoint: entrypoint === undefined ? undefined : entrypoint[0] ?? "",
    network,
    networkAlias: endpoint.aliases,
    ip: endpoint.ip,
    ip6: endpoint.ip6,
    dns: nonEmpty(strList(host.Dns, "HostConfig.Dns")),
    dnsSearch: nonEmpty(strList(host.DnsSearch, "HostConfig.DnsSearch")),
    dnsOption: nonEmpty(strList(host.DnsOptions, "HostConfig.DnsOptions")),
    addHost: nonEmpty(strList(host.ExtraHosts, "HostConfig.ExtraHosts")),
    memory: memory ? String(memory) : undefined,
    memorySwap: swap ? String(swap) : undefined,
    cpus: nanoCpus ? String(nanoCpus / 1e9) : undefined,
    cpuShares: cpuShares ? String(cpuShares) : undefined,
    pidsLimit: pids ? String(pids) : undefined,
    interactive: bool(body.OpenStdin, "OpenStdin"),
    tty: bool(body.Tty, "Tty"),
    volume: [...binds, ...anonymous],
    mount: mounts,
    tmpfs: Object.entries(strMap(host.Tmpfs, "HostConfig.Tmpfs") ?? {}).map(([p, o]) =>
      o ? `${p}:${o}` : p
    ),
    readOnly: bool(host.ReadonlyRootfs, "HostConfig.ReadonlyRootfs"),
    rm: bool(host.AutoRemove, "HostConfig.AutoRemove"),
    restart: restartName && restartName !== "no"
      ? (restartName === "on-failure" && retries > 0 ? `${restartName}:${retries}` : restartName)
      : undefined,
    stopSignal: str(body.StopSignal, "StopSignal") || undefined,
    stopTimeout: body.StopTimeout === undefined || body.StopTimeout === null
      ? undefined
      : String(int(body.StopTimeout, "StopTimeout")),
    publish: publishFrom(host.PortBindings),
    publishAll: bool(host.PublishAllPorts, "HostConfig.PublishAllPorts"),
    expose: Object.keys(obj(body.ExposedPorts, "ExposedPorts") ?? {}),
    label: Object.entries(strMap(body.Labels, "Labels") ?? {}).map(([k, v]) => `${k}=${v}`),
    init: bool(host.Init, "HostConfig.Init"),
    // The API's create never pulls: docker's client pulls (POST /images/create) on a 404.
    pull: "never",
    platform: platform || undefined,
    groupAdd: strList(host.GroupAdd, "HostConfig.GroupAdd"),
    shmSize: shm ? String(shm) : undefined,
    sysctl: Object.entries(strMap(host.Sysctls, "HostConfig.Sysctls") ?? {}).map(([k, v]) =>
      `${k}=${v}`
    ),
    logOpt: Object.entries(strMap(log?.Config, "LogConfig.Config") ?? {}).map(([k, v]) =>
      `${k}=${v}`
    ),
    capAdd: strList(host.CapAdd, "HostConfig.CapAdd"),
    capDrop: strList(host.CapDrop, "HostConfig.CapDrop"),
    privileged: bool(host.Privileged, "HostConfig.Privileged"),
    securityOpt: strList(host.SecurityOpt, "HostConfig.SecurityOpt"),
    device: devices,
    ulimit: ulimits,
    userns: str(host.UsernsMode, "HostConfig.UsernsMode") || undefined,
  };
  if (healthTest && healthTest.length > 0) {
    if (healthTest[0] === "NONE") flags.healthcheck = false;
    else if (healthTest[0] === "CMD-SHELL") flags.healthCmd = healthTest.slice(1).join(" ");
    else if (healthTest[0] === "CMD") {
      // tsbox's --health-cmd runs through the shell; quote each word for it.
      flags.healthCmd = healthTest.slice(1).map((w) => `'${w.replaceAll("'", `'\\''`)}'`)
        .join(" ");
    }
    flags.healthInterval = duration(health?.Interval, "Healthcheck.Interval");
    flags.healthTimeout = duration(health?.Timeout, "Healthcheck.Timeout");
    flags.healthStartPeriod = duration(health?.StartPeriod, "Healthcheck.StartPeriod");
    const retriesHc = int(health?.Retries, "Healthcheck.Retries");
    flags.healthRetries = retriesHc ? String(retriesHc) : undefined;
  }
  const links = [
    ...new Set([...strList(host.Links, "HostConfig.Links") ?? [], ...endpoint.links ?? []]),
  ];
  return { image, command, flags, links };
}
