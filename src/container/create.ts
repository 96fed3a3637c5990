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
import type { Store } from "../store/mod.ts";
import type { Platform } from "../../registry/platform.ts";
import { exposedPortsFor } from "../net/publish.ts";
import { checkLimits, hostCpuCount } from "./limits.ts";
import { healthConfigFrom, type HealthFlags } from "./health.ts";
import { labelsFromFlags, mergeLabels } from "./labels.ts";
import { containerNetwork } from "./network.ts";
import { containerEvent } from "../events/log.ts";
import { type NamespaceFlags, namespaceModes } from "./namespaces.ts";
import { type ExtraLimitFlags, hostResources, withExtraLimits } from "./extra_limits.ts";
import { netConfigFrom } from "./networking.ts";
import { containerDir } from "./paths.ts";
import { parseSignal } from "./signals.ts";
import { claimCidFile } from "./cidfile.ts";
import { imageForRun, parsePullPolicy, parseRunPlatform } from "./run_image.ts";
import { parseStopTimeout, runOptionsFrom } from "./run_options.ts";
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
 * Records a new container for `imageName` (pulled as `--pull` says, with docker's messages)
 * and makes its directory; with `--cidfile`, writes the id there. Returns the record in state
 * "created".
 */
export async function createFromFlags(
  store: Store,
  imageName: string,
  command: readonly string[],
  flags: RunFlags,
  globals: CreateGlobals,
): Promise<ContainerRecord> {
  // Claimed first, as docker does, and removed again when the create fails.
  const cidFile = flags.cidfile ? await claimCidFile(flags.cidfile) : undefined;
  try {
    const record = await create(store, imageName, command, flags, globals);
    await cidFile?.write(record.id);
    return record;
  } catch (err) {
    await cidFile?.remove();
    throw err;
  }
}

async function create(
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
  // The flags' own mistakes are refused before a pull; the image's part is merged below.
  healthConfigFrom(undefined, flags as HealthFlags);
  const security = await securitySpec(flags, DEFAULT_CAPS, globals.usernsRemap);
  // Checked as docker checks them, before the image is pulled or anything is created.
  const resources = withExtraLimits(
    checkLimits(limitsFrom(flags), hostCpuCount),
    flags as ExtraLimitFlags,
    hostResources(),
    (message) => console.error(`WARNING: ${message}`),
  );
  const requestedMounts = mountsFrom(flags);
  const envFiles: string[] = [];
  for (const file of flags.envFile ?? []) {
    envFiles.push(...parseEnvFile(await Deno.readTextFile(file)));
  }
  const network = networkFrom(store, flags);
  const namespaces = namespaceModes(
    store,
    flags as NamespaceFlags,
    !!flags.hostname,
    !!globals.usernsRemap && flags.userns !== "host",
  );
  const net = await netConfigFrom(store, flags);
  const options = runOptionsFrom(flags, network);
  const pull = parsePullPolicy(flags.pull);
  const platform = parseRunPlatform(flags.platform);
  const stopSignalFlag = flags.stopSignal !== undefined ? parseSignal(flags.stopSignal) : undefined;
  const stopTimeout = parseStopTimeout(flags.stopTimeout);
  // A missing `--mount type=bind` source is refused before a pull; `-v` ones are made below.
  const missingSources = await checkBindSources(requestedMounts);
  const ownLabels = await labelsFromFlags(flags.label, flags.labelFile);
  const image = await imageForRun(
    store,
    imageName,
    { pull, platform },
    (present) => pullForRun(store, imageName, globals.insecureRegistries, { platform, present }),
  );
  const id = newContainerId();
  // "" is docker's "not given"; with the host's UTS namespace, the host's name is the one seen.
  const hostname = flags.hostname || (namespaces.uts ? Deno.hostname() : id.slice(0, 12));
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
      network,
      resources,
      mounts,
      readOnly: flags.readOnly ?? false,
      tty: flags.tty ?? false,
      interactive: flags.interactive ?? false,
      layers: image.layers.map((l) => l.shortId),
      restart,
      autoRemove: flags.rm ?? false,
      stopSignal: stopSignalFlag ?? (imageStopSignal ? parseSignal(imageStopSignal) : 15),
      stopSignalName: flags.stopSignal ?? imageStopSignal,
      stopTimeout: stopTimeout ?? 10,
      stopTimeoutSet: stopTimeout !== undefined,
      ...options,
      ports: flags.publish,
      publishAll: flags.publishAll,
      exposedPorts: exposedPortsFor(
        { publish: flags.publish, publishAll: flags.publishAll, expose: flags.expose },
        (imageConfig as { ExposedPorts?: Record<string, unknown> }).ExposedPorts,
      ),
      security,
      labels: mergeLabels(imageConfig.Labels, ownLabels),
      healthcheck: healthConfigFrom(imageConfig.Healthcheck, flags as HealthFlags),
      shell: imageConfig.Shell,
      ...(Object.keys(namespaces).length > 0 ? { namespaces } : {}),
      ...(net ? { net } : {}),
      createCommand: flags.createCommand,
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
  containerEvent(store.root, "create", record);
  return record;
}

/**
 * docker run's pull (of a missing image, or any with `--pull always`), reported on stderr as
 * docker reports it. A missing short name that registries.conf sends to another registry than
 * docker.io may already be in the store under its qualified name: then nothing is pulled.
 */
async function pullForRun(
  store: Store,
  imageName: string,
  insecure: readonly string[],
  o: { platform?: Platform; present: boolean },
) {
  const { parseReference, familiarRepository } = await import("../../registry/reference.ts");
  const { loadRegistriesConf, qualifyName } = await import("../../registry/registries_conf.ts");
  const { formatPlatform } = await import("../../registry/platform.ts");
  const { pullImage } = await import("../image/pull.ts");
  // registries.conf is read only here, when a registry is to be asked.
  const registries = await loadRegistriesConf();
  const qualified = qualifyName(registries, imageName);
  if (!o.present) {
    const local = qualified === imageName ? undefined : store.findImage(qualified);
    if (local) return local;
    console.error(`Unable to find image '${imageName}' locally`);
  }
  const ref = parseReference(qualified);
  console.error(`${ref.digest ?? ref.tag}: Pulling from ${familiarRepository(ref)}`);
  const result = await pullImage(store, imageName, {
    insecure,
    registries,
    platform: o.platform ? formatPlatform(o.platform) : undefined,
  });
  console.error(`Digest: ${result.digest}`);
  console.error(
    result.upToDate
      ? `Status: Image is up to date for ${ref.familiar()}`
      : `Status: Downloaded newer image for ${ref.familiar()}`,
  );
  return result.image;
}
