/**
 * `create` (and the first half of `run`): resolve or pull the image, merge its config with the
 * flags, and record the container with everything needed to start it later.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { parseEnvFile, planProcess } from "../runtime/config.ts";
import type { NetworkMode } from "../runtime/container.ts";
import { checkHostname } from "../runtime/hostname.ts";
import { newContainerId } from "../runtime/id.ts";
import { DEFAULT_CAPS } from "../runtime/capabilities.ts";
import { securitySpec } from "../runtime/security.ts";
import { limitsFrom, mountsFrom, type RunFlags } from "../runtime/run.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { exposedPortsFor } from "../net/publish.ts";
import { checkLimits, hostCpuCount } from "./limits.ts";
import { containerNetwork } from "./network.ts";
import { containerDir } from "./paths.ts";
import { parseSignal } from "./signals.ts";
import { claimCidFile } from "./cidfile.ts";
import { imageForRun, parsePullPolicy, parseRunPlatform } from "./run_image.ts";
import { type RunOptions, runOptionsFrom } from "./run_options.ts";
import { type ContainerRecord, createContainer, type RestartPolicy } from "./state.ts";
import {
  attachVolumes,
  checkBindSources,
  makeBindSources,
  planMounts,
  seedVolumes,
} from "./volumes.ts";

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

function networkFrom(store: Store, flags: RunFlags): NetworkMode {
  const mode = flags.network;
  if (mode?.startsWith("container:")) return containerNetwork(store, mode, flags);
  if (mode === "host") return "host";
  return mode === "none" ? "none" : "private";
}

/** What `run`/`create` need besides the flags. */
export interface CreateGlobals {
  readonly insecureRegistries: readonly string[];
  /** Global `--userns-remap`. */
  readonly usernsRemap?: string;
}

/**
 * Records a new container for `imageName` (pulled when missing, with docker's message) and
 * makes its directory. Returns the record in state "created".
 */
export async function createFromFlags(
  store: Store,
  imageName: string,
  command: readonly string[],
  flags: RunFlags,
  globals: CreateGlobals,
): Promise<ContainerRecord> {
  // Before anything is pulled or recorded: a bad name leaves nothing behind.
  if (flags.hostname) checkHostname(flags.hostname);
  if (flags.rm && flags.restart && flags.restart !== "no") {
    throw new UsageError("conflicting options: cannot specify both --restart and --rm");
  }
  const restart = parseRestart(flags.restart);
  const security = await securitySpec(flags, DEFAULT_CAPS, globals.usernsRemap);
  // Checked as docker checks them, before the image is pulled or anything is created.
  const resources = checkLimits(limitsFrom(flags), hostCpuCount);
  const requestedMounts = mountsFrom(flags);
  const envFiles: string[] = [];
  for (const file of flags.envFile ?? []) {
    envFiles.push(...parseEnvFile(await Deno.readTextFile(file)));
  }
  const network = networkFrom(store, flags);
  const options = runOptionsFrom(flags, network);
  const pull = parsePullPolicy(flags.pull);
  const platform = parseRunPlatform(flags.platform);
  const stopSignalFlag = flags.stopSignal !== undefined ? parseSignal(flags.stopSignal) : undefined;
  const stopTimeout = parseStopTimeout(flags.stopTimeout);
  // A missing `--mount type=bind` source is refused before a pull; `-v` ones are made below.
  const missingSources = await checkBindSources(requestedMounts);
  // Claimed last among the checks: a refused flag leaves no file behind.
  const cidFile = flags.cidfile ? await claimCidFile(flags.cidfile) : undefined;
  try {
    const record = await createRecord(store, imageName, command, flags, {
      network,
      options,
      envFiles,
      requestedMounts,
      missingSources,
      restart,
      security,
      resources,
      stopSignalFlag,
      stopTimeout,
      image: () =>
        imageForRun(store, imageName, {
          pull,
          platform,
          insecure: globals.insecureRegistries,
        }),
    });
    await cidFile?.write(record.id);
    return record;
  } catch (err) {
    await cidFile?.remove();
    throw err;
  }
}

/** `--stop-timeout`: whole seconds; -1 waits for ever, as docker. */
function parseStopTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?[0-9]+$/.test(value.trim()) || Number(value) < -1) {
    throw new UsageError(
      `invalid argument "${value}" for "--stop-timeout" flag: expected whole seconds (-1: no limit)`,
    );
  }
  return Number(value);
}

/** What {@link createFromFlags} checked before creating anything. */
interface Checked {
  readonly network: NetworkMode;
  readonly options: RunOptions;
  readonly envFiles: readonly string[];
  readonly requestedMounts: ReturnType<typeof mountsFrom>;
  readonly missingSources: Awaited<ReturnType<typeof checkBindSources>>;
  readonly restart: RestartPolicy;
  readonly security: Awaited<ReturnType<typeof securitySpec>>;
  readonly resources: ReturnType<typeof checkLimits>;
  readonly stopSignalFlag?: number;
  readonly stopTimeout?: number;
  readonly image: () => Promise<ImageRecord>;
}

async function createRecord(
  store: Store,
  imageName: string,
  command: readonly string[],
  flags: RunFlags,
  checked: Checked,
): Promise<ContainerRecord> {
  const { envFiles, requestedMounts, missingSources, restart, security, resources } = checked;
  const image = await checked.image();
  const id = newContainerId();
  const hostname = flags.hostname || id.slice(0, 12); // "" is docker's "not given"
  const imageConfig = image.config.config ?? {};
  const plan = planProcess(imageConfig, {
    command,
    entrypoint: flags.entrypoint,
    env: [...envFiles, ...(flags.env ?? [])],
    workdir: flags.workdir,
    user: flags.user,
    tty: flags.tty,
  }, hostname);
  const imageStopSignal = (imageConfig as { StopSignal?: string }).StopSignal;
  const stopSignalName = flags.stopSignal ?? imageStopSignal;
  const { mounts, volumes } = planMounts(
    store.root,
    requestedMounts,
    Object.keys(imageConfig.Volumes ?? {}),
  );
  const record = createContainer(store, {
    id,
    name: flags.name,
    imageId: image.id,
    imageName,
    config: {
      argv: plan.argv,
      env: plan.env,
      cwd: plan.cwd,
      user: plan.user,
      hostname,
      network: checked.network,
      resources,
      mounts,
      readOnly: flags.readOnly ?? false,
      tty: flags.tty ?? false,
      interactive: flags.interactive ?? false,
      layers: image.layers.map((l) => l.shortId),
      restart,
      autoRemove: flags.rm ?? false,
      stopSignal: checked.stopSignalFlag ??
        (imageStopSignal ? parseSignal(imageStopSignal) : 15),
      stopSignalName,
      stopTimeout: checked.stopTimeout ?? 10,
      stopTimeoutSet: checked.stopTimeout !== undefined,
      ...checked.options,
      ports: flags.publish,
      publishAll: flags.publishAll,
      exposedPorts: exposedPortsFor(
        { publish: flags.publish, publishAll: flags.publishAll, expose: flags.expose },
        (imageConfig as { ExposedPorts?: Record<string, unknown> }).ExposedPorts,
      ),
      security,
    },
  });
  await Deno.mkdir(containerDir(store.root, id), { recursive: true, mode: 0o700 });
  try {
    await makeBindSources(missingSources);
    attachVolumes(store, id, volumes);
    await seedVolumes(store, record, volumes);
  } catch (err) {
    const { removeContainerFiles } = await import("./cleanup.ts");
    await removeContainerFiles(store, record, { volumes: true }).catch(() => {});
    throw err;
  }
  return record;
}
