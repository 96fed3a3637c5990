/**
 * `commit`: a container's changes (its overlay upper dir) as a new image on top of the one it
 * was created from, with the container's process config (command, environment, user, ...) as
 * the new image's config and docker's `--change` instructions applied over it. The layer and
 * the image are written the way `build` writes its steps (build/layer.ts, build/builder.ts).
 *
 * @module
 */
import { resolve } from "node:path";
import type { ContainerConfig } from "../../registry/manifest.ts";
import { parseReference } from "../../registry/reference.ts";
import { close } from "../../ffi/fs.ts";
import { recordImage } from "../builder/builder.ts";
import { publishLayer } from "../builder/layer.ts";
import { configOf, fromConfig, imageState, nextState } from "../builder/state.ts";
import { makeBuildDir } from "../builder/sweep.ts";
import { TsboxError, UsageError } from "../errors.ts";
import { applyChanges, parseChanges } from "../image/changes.ts";
import type { TarWriterEntry } from "../image/tar_writer.ts";
import type { IdRange } from "../runtime/userns.ts";
import { removeTree } from "../store/layers.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { cgroupOwner, setFrozen } from "./cgroup.ts";
import { upperEntries } from "./commit_layer.ts";
import { openStoreDir } from "./diff.ts";
import { containerDir } from "./paths.ts";
import { containerEvent } from "../events/log.ts";
import { type ContainerRecord, reconcile, requireContainer } from "./state.ts";

/** `commit`'s options, as docker's flags. */
export interface CommitOptions {
  /** `-a/--author`. */
  readonly author?: string;
  /** `-m/--message`: the history entry's comment. */
  readonly message?: string;
  /** `-c/--change` instructions, in order. */
  readonly changes?: readonly string[];
  /** `-p/--pause`: freeze a running container while its files are read (default true). */
  readonly pause?: boolean;
  /** `REPOSITORY[:TAG]` to name the image; untagged when absent. */
  readonly reference?: string;
}

/**
 * The container's own config as an image config, as docker's commit takes `Config`: the
 * command split back into the image's entrypoint and the rest, the environment without what
 * the runtime adds at each start, and the image's other settings kept.
 */
export function committedConfig(c: ContainerRecord, base: ContainerConfig): ContainerConfig {
  const out: ContainerConfig = structuredClone(base);
  const argv = [...c.config.argv];
  const entrypoint = base.Entrypoint ?? [];
  const keepsEntrypoint = entrypoint.length > 0 &&
    entrypoint.every((a, i) => argv[i] === a);
  if (keepsEntrypoint) {
    out.Entrypoint = entrypoint;
    out.Cmd = argv.slice(entrypoint.length);
  } else {
    // No entrypoint, or `--entrypoint` replaced it (docker's --entrypoint is one word).
    out.Entrypoint = entrypoint.length > 0 ? argv.slice(0, 1) : base.Entrypoint;
    out.Cmd = entrypoint.length > 0 ? argv.slice(1) : argv;
  }
  const hadTerm = (base.Env ?? []).some((e) => e.startsWith("TERM="));
  out.Env = c.config.env.filter((e) =>
    e !== `HOSTNAME=${c.config.hostname}` && !(c.config.tty && !hadTerm && e === "TERM=xterm")
  );
  if (c.config.user) out.User = c.config.user;
  if (c.config.cwd !== "/" || base.WorkingDir) out.WorkingDir = c.config.cwd;
  if (c.config.labels && Object.keys(c.config.labels).length > 0) {
    out.Labels = { ...c.config.labels };
  }
  if (c.config.exposedPorts?.length) {
    out.ExposedPorts = Object.fromEntries(c.config.exposedPorts.map((p) => [p, {}]));
  }
  if (c.config.stopSignalName) out.StopSignal = c.config.stopSignalName;
  return out;
}

/** Host ids back to the container's own (the inverse of a `--userns-remap` mapping). */
function toInside(ranges: readonly IdRange[] | undefined, id: number): number {
  const r = ranges?.find((r) => id >= r.outside && id < r.outside + r.count);
  return r ? r.inside + (id - r.outside) : id;
}

/** The first entry pulled ahead: undefined when there is none (an empty change set). */
async function peeked(
  entries: AsyncGenerator<TarWriterEntry>,
): Promise<AsyncIterable<TarWriterEntry> | undefined> {
  const first = await entries.next();
  if (first.done) {
    await entries.return(undefined);
    return undefined;
  }
  return (async function* () {
    yield first.value;
    yield* entries;
  })();
}

/** Makes the layer of the container's upper dir (undefined when it changed nothing). */
async function containerLayer(store: Store, c: ContainerRecord, scratch: string) {
  const upper = openStoreDir(`${containerDir(store.root, c.id)}/upper`);
  if (upper === undefined) return undefined; // never started: nothing written
  const lower: number[] = [];
  try {
    for (const l of [...c.config.layers].reverse()) {
      const fd = openStoreDir(`${store.linkDir}/${l}`);
      if (fd !== undefined) lower.push(fd);
    }
    const userns = c.config.security?.userns;
    const entries = await peeked(upperEntries(upper, lower, (uid, gid) => ({
      uid: toInside(userns?.uid, uid),
      gid: toInside(userns?.gid, gid),
    })));
    return entries ? await publishLayer(store, entries, scratch) : undefined;
  } finally {
    close(upper);
    for (const fd of lower) close(fd);
  }
}

/**
 * Commits container `name` as a new image and returns it. The flags are checked before the
 * container is touched; a running container is frozen while its files are read unless
 * `pause` is false, and thawed again whatever happens.
 */
export async function commitContainer(
  store: Store,
  name: string,
  o: CommitOptions = {},
): Promise<ImageRecord> {
  const changes = parseChanges(o.changes ?? []);
  let tag: string | undefined;
  if (o.reference !== undefined) {
    const ref = parseReference(o.reference);
    if (ref.digest) {
      throw new UsageError(`refusing to create a tag with a digest reference: ${o.reference}`);
    }
    tag = ref.toString();
  }
  const c = reconcile(store, requireContainer(store, name));
  const image = store.getImage(c.imageId);
  if (!image) {
    throw new TsboxError(`the image of container ${c.name} (${c.imageId}) is no longer stored`);
  }
  const config = committedConfig(c, image.config.config ?? {});
  applyChanges(config, changes);
  const freeze = c.state === "running" && o.pause !== false;
  // Absolute: a killed commit's directory is swept as a killed build's is.
  const scratch = await makeBuildDir(resolve(store.root));
  let layer;
  try {
    if (freeze) await setFrozen(cgroupOwner(c), true);
    try {
      layer = await containerLayer(store, c, scratch);
    } finally {
      if (freeze) await setFrozen(cgroupOwner(c), false);
    }
  } finally {
    await removeTree(scratch);
  }
  const created = new Date().toISOString();
  const next = nextState(
    imageState(image),
    { createdBy: c.config.argv.join(" "), created, layer },
    (cfg) => {
      for (const k of Object.keys(cfg)) delete (cfg as Record<string, unknown>)[k];
      Object.assign(cfg, config);
    },
  );
  const full = configOf(next);
  const entry = full.history!.at(-1)!;
  if (o.author) {
    full.author = o.author;
    entry.author = o.author;
  } else delete full.author;
  if (o.message) entry.comment = o.message;
  const made = await recordImage(store, fromConfig(full, next.layers), tag ? [tag] : []);
  containerEvent(store.root, "commit", c, {
    comment: o.message ?? "",
    imageID: made.id,
    ...(tag ? { imageRef: tag } : {}),
  });
  return made;
}
