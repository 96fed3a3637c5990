/**
 * `create`'s flags in two steps: {@link createOptions} parses and checks them into typed values
 * (bytes as numbers, capabilities as numbers, mounts, signals, policies) before any image is
 * pulled; {@link runConfigFor} merges those with the image's config into the container's record,
 * which spec.ts's `specFor` turns into the OCI spec. Neither touches the store.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { ContainerConfig } from "../../registry/manifest.ts";
import type { Platform } from "../../registry/platform.ts";
import { DEFAULT_CAPS } from "../runtime/capabilities.ts";
import type { ResourceLimits } from "../runtime/cgroups.ts";
import { parseEnvFile, planProcess } from "../runtime/config.ts";
import type { NetworkMode } from "../runtime/container.ts";
import type { NetConfig } from "../network/endpoints.ts";
import { checkHostname } from "../runtime/hostname.ts";
import { exposedPortsFor } from "../net/publish.ts";
import type { MountFlag } from "./flag_values.ts";
import { limitsFrom, mountsFrom, type RunFlags } from "./flags.ts";
import { healthConfigFrom, type HealthFlags } from "./health.ts";
import { labelsFromFlags, mergeLabels } from "./labels.ts";
import { checkLimits, hostCpuCount } from "./limits.ts";
import { type ExtraLimitFlags, hostResources, withExtraLimits } from "./extra_limits.ts";
import type { NamespaceModes } from "./namespaces.ts";
import { parsePullPolicy, parseRunPlatform, type PullPolicy } from "./run_image.ts";
import { parseStopTimeout, type RunOptions, runOptionsFrom } from "./run_options.ts";
import { type SecuritySpec, securitySpec } from "./security_flags.ts";
import { parseSignal } from "./signals.ts";
import type { RestartPolicy, RunConfig } from "./state.ts";
import { planMounts, type PlannedVolume } from "./volumes.ts";

/** `--restart no|on-failure[:N]|always|unless-stopped`. */
export function parseRestart(value: string | undefined): RestartPolicy {
  if (value === undefined || value === "" || value === "no") return { name: "no", maxRetries: 0 };
  const [name, count] = value.split(":");
  if (name === "on-failure") {
    if (count !== undefined && !/^\d+$/.test(count)) {
      throw new UsageError(`invalid restart policy: maximum retry count must be an integer`);
    }
    return { name, maxRetries: Number(count ?? 0) };
  }
  if ((name === "always" || name === "unless-stopped") && count === undefined) {
    return { name, maxRetries: 0 };
  }
  throw new UsageError(`invalid restart policy '${value}'`);
}

/** The flags of `create`, parsed and checked: what does not depend on the image. */
export interface CreateOptions {
  readonly restart: RestartPolicy;
  readonly security: SecuritySpec;
  readonly resources: ResourceLimits;
  /** `-v`, `--mount`, `--tmpfs` in flag order; volumes still by name. */
  readonly mounts: readonly MountFlag[];
  /** `--env-file` lines, then `-e` values. */
  readonly env: readonly string[];
  readonly network: NetworkMode;
  /** Namespaces shared with the host or another container (`--ipc`, `--pid`, ...). */
  readonly namespaces: NamespaceModes;
  /** Bridge networks and their DNS and hosts settings; absent: none of it. */
  readonly net?: NetConfig;
  readonly run: RunOptions;
  readonly pull: PullPolicy;
  readonly platform?: Platform;
  /** `--stop-signal` as a number. */
  readonly stopSignal?: number;
  /** `--stop-timeout` seconds. */
  readonly stopTimeout?: number;
  /** `--label` and `--label-file`. */
  readonly labels: Readonly<Record<string, string>>;
}

/** What parsing needs besides the flags. */
export interface OptionContext {
  /** Global `--userns-remap`. */
  readonly usernsRemap?: string;
  /** `--network container:NAME`: resolves NAME (in the store) to the mode recorded. */
  readonly joinContainer?: (mode: string) => NetworkMode;
  /** Bridge networks, `--ip`, `--dns*`, `--add-host` (networking.ts): checked in the store. */
  readonly netConfig?: (flags: RunFlags) => Promise<NetConfig | undefined>;
  /** `--ipc`, `--pid`, `--uts`, `--cgroupns` (namespaces.ts): other containers in the store. */
  readonly namespaces?: (flags: RunFlags) => NamespaceModes;
  /** Where a limit the host cannot apply is reported (docker's WARNING lines by default). */
  readonly warn?: (message: string) => void;
}

/** `--network`: the host's, none, another container's, or a private one (the default). */
export function networkMode(
  mode: string | undefined,
  joinContainer?: (mode: string) => NetworkMode,
): NetworkMode {
  if (mode?.startsWith("container:")) {
    if (!joinContainer) throw new UsageError(`--network ${mode}: no container to join`);
    return joinContainer(mode);
  }
  if (mode === "host") return "host";
  return mode === "none" ? "none" : "private";
}

/**
 * Parses `flags`, refusing docker's usage errors in docker's order, before anything is pulled
 * or recorded. Reads only the files the flags name (env files, label files, a seccomp profile)
 * and the host facts docker checks against (devices, CPUs, capabilities).
 */
export async function createOptions(flags: RunFlags, ctx: OptionContext): Promise<CreateOptions> {
  // Before anything is pulled or recorded: a bad name leaves nothing behind.
  if (flags.hostname) checkHostname(flags.hostname);
  if (flags.rm && flags.restart && flags.restart !== "no") {
    throw new UsageError("conflicting options: cannot specify both --restart and --rm");
  }
  const restart = parseRestart(flags.restart);
  // The flags' own mistakes are refused before a pull; the image's part is merged later.
  healthConfigFrom(undefined, flags as HealthFlags);
  const security = await securitySpec(flags, DEFAULT_CAPS, ctx.usernsRemap);
  // Checked as docker checks them, before the image is pulled or anything is created.
  const resources = withExtraLimits(
    checkLimits(limitsFrom(flags), hostCpuCount),
    flags as ExtraLimitFlags,
    hostResources(),
    ctx.warn ?? (() => {}),
  );
  const mounts = mountsFrom(flags);
  const env: string[] = [];
  for (const file of flags.envFile ?? []) env.push(...parseEnvFile(await Deno.readTextFile(file)));
  env.push(...(flags.env ?? []));
  const network = networkMode(flags.network, ctx.joinContainer);
  const namespaces = ctx.namespaces?.(flags) ?? {};
  const net = await ctx.netConfig?.(flags);
  const run = runOptionsFrom(flags, network);
  const pull = parsePullPolicy(flags.pull);
  const platform = parseRunPlatform(flags.platform);
  const stopSignal = flags.stopSignal !== undefined ? parseSignal(flags.stopSignal) : undefined;
  const stopTimeout = parseStopTimeout(flags.stopTimeout);
  const labels = await labelsFromFlags(flags.label, flags.labelFile);
  return {
    restart,
    security,
    resources,
    mounts,
    env,
    network,
    namespaces,
    ...(net ? { net } : {}),
    run,
    pull,
    platform,
    stopSignal,
    stopTimeout,
    labels,
  };
}

/** What {@link runConfigFor} merges. */
export interface ConfigInput {
  readonly flags: RunFlags;
  readonly options: CreateOptions;
  /** COMMAND [ARG...] after the image. */
  readonly command: readonly string[];
  /** The image's runtime defaults (`config` of its image config). */
  readonly image: ContainerConfig;
  /** The image's layer links, bottom first. */
  readonly layers: readonly string[];
  /** The new container's id (its first 12 digits are the default hostname). */
  readonly id: string;
  /** The store root: named volumes live under it. */
  readonly root: string;
}

/** The container's record config and the volumes it needs (anonymous ones get fresh names). */
export function runConfigFor(
  input: ConfigInput,
): { config: RunConfig; volumes: PlannedVolume[] } {
  const { flags, options: o, image } = input;
  // "" is docker's "not given"; with the host's UTS namespace, the host's name is the one seen.
  const hostname = flags.hostname || (o.namespaces.uts ? Deno.hostname() : input.id.slice(0, 12));
  const plan = planProcess(image, {
    command: input.command,
    entrypoint: flags.entrypoint,
    env: o.env,
    workdir: flags.workdir,
    user: flags.user,
    tty: flags.tty,
  }, hostname);
  const { mounts, volumes } = planMounts(input.root, o.mounts, Object.keys(image.Volumes ?? {}));
  const config: RunConfig = {
    argv: plan.argv,
    entrypointLength: plan.entrypoint.length,
    env: plan.env,
    cwd: plan.cwd,
    user: plan.user,
    hostname,
    network: o.network,
    resources: o.resources,
    mounts,
    readOnly: flags.readOnly ?? false,
    tty: flags.tty ?? false,
    interactive: flags.interactive ?? false,
    layers: input.layers,
    restart: o.restart,
    autoRemove: flags.rm ?? false,
    stopSignal: o.stopSignal ?? (image.StopSignal ? parseSignal(image.StopSignal) : 15),
    stopSignalName: flags.stopSignal ?? image.StopSignal,
    stopTimeout: o.stopTimeout ?? 10,
    stopTimeoutSet: o.stopTimeout !== undefined,
    ...o.run,
    ports: flags.publish,
    publishAll: flags.publishAll,
    exposedPorts: exposedPortsFor(
      { publish: flags.publish, publishAll: flags.publishAll, expose: flags.expose },
      image.ExposedPorts,
    ),
    security: o.security,
    labels: mergeLabels(image.Labels, o.labels),
    healthcheck: healthConfigFrom(image.Healthcheck, flags as HealthFlags),
    shell: image.Shell,
    ...(Object.keys(o.namespaces).length > 0 ? { namespaces: o.namespaces } : {}),
    ...(o.net ? { net: o.net } : {}),
    createCommand: flags.createCommand,
  };
  return { config, volumes };
}
