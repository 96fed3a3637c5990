/**
 * `create` (and the first half of `run`): resolve or pull the image, merge its config with the
 * flags, and record the container with everything needed to start it later.
 *
 * @module
 */
import { lazyImport } from "../lazy.ts";
import type { NetworkMode } from "../runtime/container.ts";
import { newContainerId } from "../runtime/id.ts";
import type { RunFlags } from "./flags.ts";
import type { Store } from "../store/mod.ts";
import type { Platform } from "../../registry/platform.ts";
import { containerNetwork, joinedNetworkPid } from "./network.ts";
import { netConfigFrom } from "./networking.ts";
import { containerEvent } from "../events/log.ts";
import { type NamespaceFlags, namespaceModes } from "./namespaces.ts";
import { type JoinedPaths, joinedPaths, writeBundle } from "./bundle.ts";
import { containerDir } from "./paths.ts";
import { claimCidFile } from "./cidfile.ts";
import { createOptions, runConfigFor } from "./create_options.ts";
import { imageForRun } from "./run_image.ts";
import { type ContainerRecord, createContainer } from "./state.ts";
import { attachVolumes, checkBindSources, makeBindSources, seedVolumes } from "./volumes.ts";

/**
 * `container:X`: the network namespace the spec joins, X's PID 1's while X runs (X may be
 * stopped at create; the start joins whatever PID 1 X has then).
 */
function networkPath(store: Store, network: NetworkMode): string | undefined {
  if (!network.startsWith("container:")) return undefined;
  try {
    return `/proc/${joinedNetworkPid(store, network)}/ns/net`;
  } catch {
    return undefined;
  }
}

/**
 * The namespace files of the containers this one joins, where they run now (each start fills
 * them in again, bundle.ts's startBundle).
 */
function joinedNow(store: Store, record: ContainerRecord): JoinedPaths {
  try {
    return joinedPaths(store, record);
  } catch {
    return { networkPath: networkPath(store, record.config.network) };
  }
}

/** What `run`/`create` need besides the flags. */
export interface CreateGlobals {
  readonly insecureRegistries: readonly string[];
  /** Global `--userns-remap`. */
  readonly usernsRemap?: string;
  /**
   * Lines docker prints on stderr while it creates (the pull of a missing image, warnings about
   * flags and networks); nothing is printed when absent.
   */
  readonly notice?: (line: string) => void;
  /** The id to create the container with (`run -d` spawned its supervisor for it); else a new one. */
  readonly id?: string;
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
  const notice = globals.notice ?? (() => {});
  const options = await createOptions(flags, {
    usernsRemap: globals.usernsRemap,
    warn: (message) => notice(`WARNING: ${message}`),
    joinContainer: (mode) => containerNetwork(store, mode, flags),
    netConfig: (f) => netConfigFrom(store, f, notice),
    namespaces: (f) =>
      namespaceModes(
        store,
        f as NamespaceFlags,
        !!f.hostname,
        !!globals.usernsRemap && f.userns !== "host",
      ),
  });
  // A missing `--mount type=bind` source is refused before a pull; `-v` ones are made below.
  const missingSources = await checkBindSources(options.mounts);
  const { pull, platform } = options;
  const image = await imageForRun(
    store,
    imageName,
    { pull, platform, warn: (message) => notice(`WARNING: ${message}`) },
    (present) =>
      pullForRun(store, imageName, globals.insecureRegistries, { platform, present }, notice),
  );
  const id = globals.id ?? newContainerId();
  const { config, volumes } = runConfigFor({
    flags,
    options,
    command,
    image: image.config.config ?? {},
    layers: image.layers.map((l) => l.shortId),
    id,
    root: store.root,
  });
  const record = createContainer(store, {
    id,
    name: flags.name,
    imageId: image.id,
    imageName,
    config,
  });
  await Deno.mkdir(containerDir(store.root, id), { recursive: true, mode: 0o700 });
  try {
    await writeBundle(store, id, config, joinedNow(store, record));
    await makeBindSources(missingSources);
    attachVolumes(store, id, volumes);
    await seedVolumes(store, record, volumes);
  } catch (err) {
    const { removeContainerFiles } = await import("./cleanup.ts");
    const remove = () => removeContainerFiles(store, record, { volumes: true });
    await remove().catch(() => {
      // A full disk (the bundle's write failed): the database's write-ahead log cannot grow,
      // and folding it into the database frees the room that deleting the row needs (run.ts).
      store.db.run("PRAGMA wal_checkpoint(TRUNCATE)");
      return remove();
    }).catch(() => {});
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
  notice: (line: string) => void,
) {
  const { parseReference, familiarRepository } = await lazyImport<
    typeof import("../../registry/reference.ts")
  >(new URL("../../registry/reference.ts", import.meta.url));
  const { loadRegistriesConf, qualifyName } = await lazyImport<
    typeof import("../../registry/registries_conf.ts")
  >(new URL("../../registry/registries_conf.ts", import.meta.url));
  const { formatPlatform } = await lazyImport<typeof import("../../registry/platform.ts")>(
    new URL("../../registry/platform.ts", import.meta.url),
  );
  const { pullImage } = await lazyImport<typeof import("../image/pull.ts")>(
    new URL("../image/pull.ts", import.meta.url),
  );
  // registries.conf is read only here, when a registry is to be asked.
  const registries = await loadRegistriesConf();
  const qualified = qualifyName(registries, imageName);
  if (!o.present) {
    const local = qualified === imageName ? undefined : store.findImage(qualified);
    if (local) return local;
    notice(`Unable to find image '${imageName}' locally`);
  }
  const ref = parseReference(qualified);
  notice(`${ref.digest ?? ref.tag}: Pulling from ${familiarRepository(ref)}`);
  const result = await pullImage(store, imageName, {
    insecure,
    registries,
    platform: o.platform ? formatPlatform(o.platform) : undefined,
  });
  notice(`Digest: ${result.digest}`);
  notice(
    result.upToDate
      ? `Status: Image is up to date for ${ref.familiar()}`
      : `Status: Downloaded newer image for ${ref.familiar()}`,
  );
  return result.image;
}
