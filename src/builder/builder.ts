/**
 * `build`: runs a Dockerfile's stages step by step. Each step maps a stage's state (image config
 * and layers) to the next, looked up first in the build cache. Steps that change files run on
 * an overlay of the stage's layers with a fresh upper directory — RUN as a container started
 * with the runtime, COPY/ADD/WORKDIR by writing into the mounted overlay — and the upper
 * directory afterwards is the step's layer. The image is recorded only when every step
 * succeeded, so a failed build leaves no half-made image behind.
 *
 * @module
 */
import { imageEvent } from "../events/log.ts";
import { join, posix, resolve } from "node:path";
import type { ContainerConfig } from "../../registry/manifest.ts";
import { MediaType, ociLayerMediaType } from "../../registry/manifest.ts";
import type { RegistryClient } from "../../registry/client.ts";
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  type Platform,
} from "../../registry/platform.ts";
import { parseReference } from "../../registry/reference.ts";
import { TsboxError, UsageError } from "../errors.ts";
import type { PullEvent } from "../image/pull.ts";
import { DEFAULT_PATH } from "../runtime/config.ts";
import { mountOverlay, resolveInRoot, unmountRootfs } from "../runtime/rootfs.ts";
import { sha256Digest } from "../store/digest.ts";
import { removeTree } from "../store/layers.ts";
import type { ImageRecord, Store } from "../store/mod.ts";
import { cacheGet, cacheKey, cachePut } from "./cache.ts";
import { contextRoot, resolveSources, type SourceRoot, sourcesDigest } from "./context.ts";
import { mkdirInRoot } from "./copy.ts";
import { excludingRoot } from "./copy_flags.ts";
import { FileDigests } from "./file_digests.ts";
import { Downloads } from "./add_url.ts";
import { type Dockerfile, type Instruction, parseDockerfile, type Stage } from "./dockerfile.ts";
import { findStage, StageScheduler } from "./graph.ts";
import type { NamedContexts } from "./build_context.ts";
import { exportFilesystem, type OutputSpec } from "./export.ts";
import {
  type CacheRecord,
  type CacheSpec,
  exportCache,
  importCache,
  recordsFor,
} from "./cache_io.ts";
import { GitCheckouts } from "./add_git.ts";
import { type BuiltLayer, commitLayer } from "./layer.ts";
import type { Secrets } from "./secrets.ts";
import type { SshAgents } from "./ssh.ts";
import {
  type BuildState,
  configOf,
  fromConfig,
  imageState,
  nextState,
  scratchState,
  stateId,
} from "./state.ts";
import { unpackContextArchive } from "./stdin_context.ts";
import { BuildInstructionError, PlatformMismatchError, runsOn } from "./build_errors.ts";
import { execForm } from "./exec_form.ts";
import { healthcheckOf } from "./healthcheck_step.ts";
import {
  copyArgs,
  copyExcludes,
  copyStep,
  type CopyStepContext,
  download,
  type FromSource,
  gitStep,
  splitUrls,
} from "./copy_step.ts";
import { runMountSpecs, runNetwork, runStep, type RunStepContext } from "./run_step.ts";
import type { MountSpec } from "./run_mounts.ts";

export { BuildInstructionError, BuildStepError, PlatformMismatchError } from "./build_errors.ts";
import { makeBuildDir, sweepAbandonedBuilds } from "./sweep.ts";
import { expandOnly, type Lookup, processWord, processWords } from "./words.ts";

/** What a build reports as it goes. */
export type BuildEvent =
  | {
    readonly type: "step";
    /** 1-based step number over every stage built. */
    readonly step: number;
    readonly total: number;
    /** The instruction as written, e.g. `COPY app /app`. */
    readonly instruction: string;
    /**
     * The step as BuildKit names its vertex: `[STAGE N/M]` (N of the stage's M steps; the
     * stage's name or `stage-I` in a Dockerfile of several stages, no name otherwise).
     */
    readonly vertex?: string;
  }
  | {
    readonly type: "output";
    readonly data: Uint8Array;
    /** The step that printed it (RUN output). */
    readonly step?: number;
  }
  | { readonly type: "pull"; readonly event: PullEvent }
  | {
    readonly type: "step-done";
    readonly step: number;
    /** True when the step's result came from the build cache. */
    readonly cached: boolean;
    /** Short id (12 hex) of the state after the step. */
    readonly id: string;
    readonly elapsedMs: number;
    /**
     * When stages run at the same time: the stage and step (`builder 3/9`), since the step's
     * end no longer follows its start.
     */
    readonly label?: string;
  }
  | { readonly type: "done"; readonly id: string; readonly tags: readonly string[] }
  /** Something went wrong that does not stop the build (shown on stderr). */
  | { readonly type: "warning"; readonly message: string };

/** Options of {@link buildImage}. */
export interface BuildOptions {
  /**
   * The build context directory. Without it the context is {@link contextArchive}, or empty
   * (a Dockerfile given as {@link dockerfileText} alone, as `docker build -` reads it).
   */
  readonly context?: string;
  /**
   * A tar of the context (plain, gzip or zstd), as `docker build -` takes on stdin; unpacked
   * into the build's own directory.
   */
  readonly contextArchive?: ReadableStream<Uint8Array>;
  /**
   * The Dockerfile: `<context>/Dockerfile` by default; with {@link contextArchive} a path
   * inside the archive.
   */
  readonly dockerfile?: string;
  /** The Dockerfile's text itself (`-f -`); {@link dockerfile} is then not read. */
  readonly dockerfileText?: string;
  /** `--label` values for the final image's config (over the Dockerfile's LABELs). */
  readonly labels?: Readonly<Record<string, string>>;
  /** References to tag the result with. */
  readonly tags?: readonly string[];
  /** `--build-arg` values. */
  readonly buildArgs?: Readonly<Record<string, string>>;
  /** Ignore the cache (results are still recorded for later builds). */
  readonly noCache?: boolean;
  /** `--no-cache-filter`: stages (by name or index) whose steps ignore the cache. */
  readonly noCacheStages?: readonly string[];
  /** Build up to this stage (name or index). */
  readonly target?: string;
  /** Network for RUN: the host's (default, so package managers work) or none. */
  readonly network?: "host" | "none";
  /** Platform for base images that are pulled (`os/arch[/variant]`). */
  readonly platform?: string;
  /** Registries reached over plain HTTP besides loopback. */
  readonly insecure?: readonly string[];
  /** Stages run at the same time at most (`--jobs`); the number of CPUs by default. */
  readonly jobs?: number;
  /**
   * Secrets for `RUN --mount=type=secret`, by id (`--secret`, read by loadSecrets). Their
   * bytes reach only the steps that mount them, never the image, cache, output or database.
   */
  readonly secrets?: Secrets;
  /** `--pull`: pull every base image, even one the store has (a pull failure fails the build). */
  readonly pull?: boolean;
  /** The registry client base images are pulled with (the API's per-request credentials). */
  readonly client?: RegistryClient;
  /** `--ssh` agents for `RUN --mount=type=ssh`, by id (loadSshAgents). */
  readonly ssh?: SshAgents;
  /**
   * `--build-context` directories and images, by lower-cased name (loadBuildContexts): read by
   * `FROM`, `COPY --from` and `RUN --mount from=` in place of a stage or image of that name.
   */
  readonly buildContexts?: NamedContexts;
  /**
   * Where the result goes (`--output`, parseOutputFlag): an image (the default), the final
   * filesystem as a directory or tar (no image is recorded then), or an image archive.
   */
  readonly output?: OutputSpec;
  /**
   * `--cache-from`: caches read into the store before the build (a cache that cannot be read
   * is a warning). Not read with {@link noCache}.
   */
  readonly cacheFrom?: readonly CacheSpec[];
  /** `--cache-to`: where this build's steps and their layers are written afterwards. */
  readonly cacheTo?: CacheSpec;
  /**
   * Whether RUN output of stages running at once comes with each line prefixed by its stage
   * and step (the default); false leaves it as the step printed it, for a consumer that tells
   * steps apart by the output event's `step` (BuildKit's plain progress).
   */
  readonly prefixOutput?: boolean;
  /** `--allow security.insecure`: RUN `--security=insecure` steps run privileged. */
  readonly allowInsecure?: boolean;
  readonly onProgress?: (event: BuildEvent) => void;
}

/** What {@link buildImage} returns. */
export interface BuildResult {
  /** The image built; absent when `output` sent the filesystem to a directory or tar instead. */
  readonly image?: ImageRecord;
  /** Full references the image was tagged with. */
  readonly tags: readonly string[];
  /** Per step: whether it came from the cache. */
  readonly cached: readonly boolean[];
}

/** Build args docker accepts without an ARG declaration. */
const PREDEFINED_ARGS = [
  "HTTP_PROXY",
  "http_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "FTP_PROXY",
  "ftp_proxy",
  "NO_PROXY",
  "no_proxy",
  "ALL_PROXY",
  "all_proxy",
];

const DEFAULT_SHELL = ["/bin/sh", "-c"];

/** One stage while it is built: what it has set so far. */
interface StageRun {
  readonly stage: Stage;
  /** Whether the stage has a CMD of its own (an ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

/** Builds an image from a Dockerfile into `store`. */
export async function buildImage(store: Store, options: BuildOptions): Promise<BuildResult> {
  const emit = options.onProgress ?? (() => {});
  const tags = (options.tags ?? []).map((t) => {
    const ref = parseReference(t);
    if (ref.digest) throw new UsageError(`invalid tag ${t}: a tag cannot carry a digest`);
    return ref.toString();
  });
  const labels = Object.entries(options.labels ?? {});
  for (const [k] of labels) if (k === "") throw new UsageError("invalid label: empty name");
  if (options.context !== undefined && options.contextArchive !== undefined) {
    throw new UsageError("give a context directory or a context archive, not both");
  }
  // What killed builds left (mounts, cgroups, directories) goes before this one adds its own.
  try {
    await sweepAbandonedBuilds(store);
  } catch (err) {
    emit({ type: "warning", message: (err as Error).message });
  }
  // Absolute: overlay options are read after mountOverlay switched to the link directory.
  const scratchDir = await makeBuildDir(resolve(store.root));
  try {
    const contextDir = await prepareContext(options, scratchDir);
    const { text, file } = await readDockerfile(options, contextDir);
    const df = parseDockerfile(text, file);
    const lastStage = targetIndex(df, options.target);
    for (const name of options.noCacheStages ?? []) {
      const t = name.toLowerCase();
      if (!df.stages.some((s) => s.name === t || String(s.index) === t)) {
        throw new UsageError(`--no-cache-filter: stage "${name}" could not be found`);
      }
    }
    const context = await contextRoot(contextDir);
    if (!options.noCache) {
      for (const spec of options.cacheFrom ?? []) {
        try {
          await importCache(store, spec, scratchDir, { insecure: options.insecure });
        } catch (err) {
          // As BuildKit: a cache that cannot be read leaves the build to run its steps.
          emit({ type: "warning", message: (err as Error).message });
        }
      }
    }
    const builder = new Builder(store, options, df, file, context, scratchDir, emit);
    let final = await builder.build(lastStage);
    if (options.cacheTo) {
      const records = recordsFor(builder.records, options.cacheTo.mode, lastStage);
      await exportCache(store, records, options.cacheTo, { insecure: options.insecure });
    }
    if (labels.length > 0) final = withLabels(final, labels);
    const output = options.output ?? { type: "image" };
    if (output.type === "local" || output.type === "tar") {
      // The filesystem only, as BuildKit's local and tar exporters: no image is recorded.
      await builder.withFilesystem(final, (rootfs) => exportFilesystem(rootfs, output));
      return { tags: [], cached: builder.cached };
    }
    const image = await recordImage(store, final, tags);
    if (output.type === "docker" || output.type === "oci") {
      const { saveImages, saveImagesToFile } = await import("../image/save.ts");
      const names = tags.length > 0 ? tags : [image.id];
      if (output.dest === "-") {
        await saveImages(store, names, { format: output.type }).pipeTo(Deno.stdout.writable, {
          preventClose: true,
        });
      } else await saveImagesToFile(store, names, output.dest, { format: output.type });
    }
    emit({ type: "done", id: image.id, tags });
    return { image, tags, cached: builder.cached };
  } finally {
    await removeTree(scratchDir);
  }
}

/**
 * The context directory: the one given, the archive unpacked into the build's own directory
 * (so a killed build's copy is swept with it), or an empty one (a Dockerfile alone on stdin).
 */
async function prepareContext(options: BuildOptions, scratch: string): Promise<string> {
  if (options.context !== undefined) {
    let info: Deno.FileInfo | undefined;
    try {
      info = await Deno.stat(options.context);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (!info?.isDirectory) {
      throw new UsageError(`unable to prepare context: path "${options.context}" not found`);
    }
    return options.context;
  }
  const dir = join(scratch, "context");
  await Deno.mkdir(dir, { mode: 0o755 });
  if (options.contextArchive) await unpackContextArchive(options.contextArchive, dir);
  return dir;
}

/** `Dockerfile`, or podman's and buildah's `Containerfile` when only that one is there. */
function defaultDockerfile(contextDir: string): string {
  const exists = (name: string) => {
    try {
      Deno.lstatSync(join(contextDir, name));
      return true;
    } catch {
      return false;
    }
  };
  return !exists("Dockerfile") && exists("Containerfile") ? "Containerfile" : "Dockerfile";
}

/** The Dockerfile's text and the name messages give it. */
async function readDockerfile(
  options: BuildOptions,
  contextDir: string,
): Promise<{ text: string; file: string }> {
  if (options.dockerfileText !== undefined) {
    return { text: options.dockerfileText, file: "Dockerfile" };
  }
  const name = options.dockerfile ?? defaultDockerfile(contextDir);
  // In an archive the name is a path inside it, followed no further out than its root.
  const path = options.contextArchive !== undefined
    ? resolveInRoot(contextDir, name)
    : options.dockerfile ?? join(contextDir, name);
  const shown = options.contextArchive !== undefined ? `${name} in the context archive` : path;
  try {
    return { text: await Deno.readTextFile(path), file: posix.basename(name) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UsageError(`unable to read the Dockerfile: ${shown}: no such file`);
    }
    if (err instanceof Deno.errors.IsADirectory) {
      throw new UsageError(`unable to read the Dockerfile: ${shown}: is a directory`);
    }
    throw err;
  }
}

/** `--label`s on the final image's config (no step of their own, as BuildKit does). */
function withLabels(state: BuildState, labels: readonly [string, string][]): BuildState {
  const config = configOf(state);
  config.config ??= {};
  const merged: Record<string, string> = { ...(config.config.Labels ?? {}) };
  for (const [k, v] of labels) merged[k] = v;
  // Sorted, so that the same labels given in another order give the same image id.
  config.config.Labels = Object.fromEntries(
    Object.entries(merged).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
  );
  return fromConfig(config, state.layers);
}

function targetIndex(df: Dockerfile, target?: string): number {
  if (target === undefined) return df.stages.length - 1;
  const t = target.toLowerCase();
  const i = df.stages.findIndex((s) => s.name === t || String(s.index) === t);
  if (i < 0) throw new UsageError(`target stage "${target}" could not be found`);
  return i;
}

/** Stores config and manifest blobs and records the image with its tags (also `commit`'s). */
export async function recordImage(
  store: Store,
  state: BuildState,
  tags: readonly string[],
): Promise<ImageRecord> {
  const configBytes = new TextEncoder().encode(state.configJson);
  const id = sha256Digest(configBytes);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: id, size: configBytes.length },
    // A base pulled as Docker v2s2 keeps Docker layer types: the OCI manifest names the same
    // blobs with OCI types, so that other tools can read what tsbox pushes.
    layers: state.layers.map((l) => ({
      mediaType: ociLayerMediaType(l.mediaType),
      digest: l.blobDigest,
      size: l.blobSize,
    })),
  });
  const manifestBytes = new TextEncoder().encode(manifest);
  const manifestDigest = sha256Digest(manifestBytes);
  if (!await store.blobs.has(id)) await store.blobs.put(id, configBytes);
  if (!await store.blobs.has(manifestDigest)) await store.blobs.put(manifestDigest, manifestBytes);
  const image = store.addImage({
    id,
    configJson: state.configJson,
    manifestDigest,
    manifestMediaType: MediaType.OciManifest,
    layers: state.layers.map((l) => ({ ...l, shortId: store.layerShortId(l.diffId) ?? l.shortId })),
    tag: tags[0],
  });
  for (const t of tags.slice(1)) store.tag(id, t);
  // docker's `tag` event for each name the build gave.
  for (const t of tags) imageEvent(store.root, "tag", id, parseReference(t).familiar());
  return store.getImage(image.id)!;
}

function isHostPlatform(p: Platform): boolean {
  return formatPlatform(normalizePlatform(p)) === formatPlatform(normalizePlatform(hostPlatform()));
}

function envMap(env: readonly string[] | null | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env ?? []) {
    const i = e.indexOf("=");
    if (i > 0) m.set(e.slice(0, i), e.slice(i + 1));
  }
  return m;
}

function setEnv(env: string[], name: string, value: string): string[] {
  const out = env.filter((e) => !e.startsWith(`${name}=`));
  out.push(`${name}=${value}`);
  return out;
}

class Builder {
  /** Per step number (1-based, at index step - 1): whether it came from the cache. */
  readonly cached: boolean[] = [];
  /** Each cached step's key and result, for `--cache-to`. */
  readonly records: CacheRecord[] = [];
  readonly #stages: StageScheduler<BuildState>;
  #globalArgs = new Map<string, string | undefined>();
  #mounts = 0;
  /**
   * Context files' digests by metadata: an unchanged context is not read again. Not for a
   * context archive, unpacked afresh into this build's own directory each time.
   */
  #digests: FileDigests | undefined;
  /** ADD URL downloads of this build, by URL and checksum. */
  readonly #downloads = new Downloads(() => join(this.scratch, `download-${++this.#mounts}`));
  /** ADD git sources of this build: refs resolved and checkouts fetched once. */
  readonly #gits = new GitCheckouts(() => join(this.scratch, `git-${++this.#mounts}`));

  constructor(
    readonly store: Store,
    readonly options: BuildOptions,
    readonly df: Dockerfile,
    readonly file: string,
    readonly context: SourceRoot,
    readonly scratch: string,
    readonly emit: (e: BuildEvent) => void,
  ) {
    this.#digests = options.context !== undefined ? new FileDigests(store) : undefined;
    this.#stages = new StageScheduler(
      df,
      options.jobs ?? navigator.hardwareConcurrency ?? 1,
      (s) => this.#runStage(s.stage, s.firstStep),
      (name) => options.buildContexts?.has(name) ?? false,
    );
    const buildArgs = options.buildArgs ?? {};
    for (const ins of df.globalArgs) {
      for (const [name, def] of this.#argDecls(ins, (n) => this.#globalArgs.get(n))) {
        this.#globalArgs.set(name, buildArgs[name] ?? def);
      }
    }
    const p = options.platform ? parsePlatform(options.platform) : hostPlatform();
    const plat = `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
    for (
      const [k, v] of Object.entries({
        TARGETPLATFORM: plat,
        TARGETOS: p.os,
        TARGETARCH: p.architecture,
        TARGETVARIANT: p.variant ?? "",
        BUILDPLATFORM: plat,
        BUILDOS: p.os,
        BUILDARCH: p.architecture,
      })
    ) if (!this.#globalArgs.has(k)) this.#globalArgs.set(k, v);
  }

  #argDecls(ins: Instruction, lookup: Lookup): [string, string | undefined][] {
    const out: [string, string | undefined][] = [];
    for (const word of processWords(ins.args, lookup, { escape: this.df.escape })) {
      const i = word.indexOf("=");
      if (i === 0) throw new BuildInstructionError(this.file, ins, `invalid ARG ${word}`);
      out.push(i < 0 ? [word, undefined] : [word.slice(0, i), word.slice(i + 1)]);
    }
    return out;
  }

  /**
   * Builds stage `target` and the stages it needs (the graph, src/builder/graph.ts), independent
   * ones at the same time; returns the target's final state.
   */
  build(target: number): Promise<BuildState> {
    return this.#stages.run(target, (n) => this.#globalArgs.get(n));
  }

  /** `stage step/total` while stages run at the same time (their lines are then told apart). */
  #label(stage: Stage, step: number): string | undefined {
    if (!this.#stages.concurrent) return undefined;
    return `${stage.name ?? stage.index} ${step}/${this.#stages.total}`;
  }

  /** Builds one stage; returns its final state. */
  async #runStage(stage: Stage, firstStep: number): Promise<BuildState> {
    const run: StageRun = { stage, cmdSet: false };
    const started = Date.now();
    let step = firstStep;
    const total = this.#stages.total;
    const vertex = (n: number) => {
      const name = this.df.stages.length > 1 ? `${stage.name ?? `stage-${stage.index}`} ` : "";
      return `[${name}${n - firstStep + 1}/${stage.instructions.length + 1}]`;
    };
    this.emit({ type: "step", step, total, instruction: stage.from.text, vertex: vertex(step) });
    let state = await this.#from(stage);
    this.cached[step - 1] = false;
    this.emit({
      type: "step-done",
      step,
      cached: false,
      id: shortId(state),
      elapsedMs: Date.now() - started,
      label: this.#label(stage, step),
    });
    // Build args in effect in this stage: declared by ARG inside it.
    const args = new Map<string, string | undefined>();
    for (const ins of stage.instructions) {
      if (this.#stages.failed) throw new TsboxError("stopped: another stage failed");
      const t0 = Date.now();
      const n = ++step;
      this.emit({ type: "step", step: n, total, instruction: ins.text, vertex: vertex(n) });
      if (ins.keyword === "ARG") {
        const lookup = this.#lookup(state, args);
        for (const [name, def] of this.#argDecls(ins, lookup)) {
          const given = this.options.buildArgs?.[name];
          args.set(name, given ?? def ?? this.#globalArgs.get(name));
        }
        this.cached[n - 1] = true;
        this.emit({
          type: "step-done",
          step: n,
          cached: true,
          id: shortId(state),
          elapsedMs: Date.now() - t0,
          label: this.#label(stage, n),
        });
        continue;
      }
      const { next, cached } = await this.#cachedStep(state, ins, args, run, n);
      state = next;
      if (ins.keyword === "CMD") run.cmdSet = true;
      this.cached[n - 1] = cached;
      this.emit({
        type: "step-done",
        step: n,
        cached,
        id: shortId(state),
        elapsedMs: Date.now() - t0,
        label: this.#label(stage, n),
      });
    }
    return state;
  }

  async #from(stage: Stage): Promise<BuildState> {
    const lookup = (n: string) => this.#globalArgs.get(n);
    const words = processWords(stage.from.args, lookup, { escape: this.df.escape });
    const name = words[0];
    if (!name) throw new BuildInstructionError(this.file, stage.from, "empty base image name");
    const platform = stage.from.flags.find((f) => f.name === "platform")?.value;
    const platformValue = platform ? processWord(platform, lookup) : this.options.platform;
    const named = this.options.buildContexts?.get(name.toLowerCase());
    if (named?.kind === "image") return imageState(await this.#image(named.ref, platformValue));
    if (named) {
      throw new BuildInstructionError(
        this.file,
        stage.from,
        `build context ${named.name} is a directory, not an image: FROM cannot use it`,
      );
    }
    const previous = findStage(this.df, name, stage.index);
    if (previous) return await this.#stages.waitFor(previous.index);
    if (name.toLowerCase() === "scratch") {
      return scratchState(platformValue ? parsePlatform(platformValue) : undefined);
    }
    return imageState(await this.#image(name, platformValue));
  }

  /**
   * A base image: the local one when it suits the platform asked for (any when none was),
   * else pulled for that platform. An image of another platform is refused by name.
   */
  async #image(name: string, platform?: string): Promise<ImageRecord> {
    const wanted = platform === undefined ? undefined : parsePlatform(platform);
    const local = this.store.findImage(name);
    if (local && !this.options.pull && (!wanted || runsOn(local, wanted))) return local;
    const { pullImage } = await import("../image/pull.ts");
    let pulled: ImageRecord;
    try {
      pulled = (await pullImage(this.store, name, {
        platform,
        // A base of another platform (one variant of `build --platform a,b`) leaves the name
        // on the host's image: the next `run NAME` must not start an emulated one.
        tag: wanted === undefined || isHostPlatform(wanted),
        insecure: this.options.insecure,
        client: this.options.client,
        onProgress: (event) => this.emit({ type: "pull", event }),
      })).image;
    } catch (err) {
      if (!local || !wanted || this.options.pull) throw err;
      throw new PlatformMismatchError(name, wanted, local, (err as Error).message);
    }
    if (wanted && !runsOn(pulled, wanted)) throw new PlatformMismatchError(name, wanted, pulled);
    return pulled;
  }

  #lookup(state: BuildState, args: Map<string, string | undefined>): Lookup {
    const env = envMap(configOf(state).config?.Env);
    return (n) =>
      env.get(n) ?? args.get(n) ??
        (PREDEFINED_ARGS.includes(n) ? this.options.buildArgs?.[n] : undefined);
  }

  async #cachedStep(
    state: BuildState,
    ins: Instruction,
    args: Map<string, string | undefined>,
    run: StageRun,
    step: number,
  ): Promise<{ next: BuildState; cached: boolean }> {
    const argList = [...args.entries()].filter(([, v]) => v !== undefined).map(([k, v]) =>
      `${k}=${v}`
    )
      .sort();
    for (const name of PREDEFINED_ARGS) {
      const v = this.options.buildArgs?.[name];
      if (v !== undefined && !args.has(name)) argList.push(`${name}=${v}`);
    }
    const extra = await this.#inputsDigest(state, ins, args, run);
    const network = ins.keyword === "RUN"
      ? runNetwork(ins, this.options.network ?? "host", (d) => this.#fail(ins, d))
      : ins.keyword === "ENTRYPOINT"
      ? `cmd set ${run.cmdSet}`
      : "";
    const key = cacheKey([
      stateId(state),
      ins.text,
      ...ins.heredocs.map((h) => h.body),
      argList.join("\n"),
      extra,
      network,
    ]);
    if (!this.options.noCache && !this.#noCacheStage(run.stage)) {
      const hit = await cacheGet(this.store, key);
      if (hit) {
        this.records.push({ key, state: hit, stage: run.stage.index });
        return { next: hit, cached: true };
      }
    }
    const next = await this.#execute(state, ins, args, argList, run, step);
    cachePut(this.store, key, next);
    this.records.push({ key, state: next, stage: run.stage.index });
    return { next, cached: false };
  }

  /** Whether `--no-cache-filter` names the stage. */
  #noCacheStage(stage: Stage): boolean {
    const names = this.options.noCacheStages;
    if (!names || names.length === 0) return false;
    return names.some((n) => {
      const t = n.toLowerCase();
      return t === stage.name || t === String(stage.index);
    });
  }

  /**
   * For COPY/ADD: a digest of the sources' contents (or of the stage/image they come from). For
   * RUN: the same for what its bind mounts show (a cache, tmpfs or secret mount adds nothing:
   * BuildKit keys neither a cache's nor a secret's contents).
   */
  async #inputsDigest(
    state: BuildState,
    ins: Instruction,
    args: Map<string, string | undefined>,
    run: StageRun,
  ): Promise<string> {
    if (ins.keyword === "RUN") {
      const parts: string[] = [];
      const lookup = this.#lookup(state, args);
      for (const m of this.#mountSpecs(ins, lookup)) {
        if (m.type !== "bind") continue;
        const from = m.from === undefined ? undefined : await this.#fromSource(m.from, run);
        if (from?.state) parts.push(`bind ${stateId(from.state)}`);
        else {
          const root = from?.root ?? this.context;
          const sources = await resolveSources(root, [m.source]);
          parts.push(`bind ${await sourcesDigest(root, sources, this.#digests)}`);
        }
      }
      return parts.join("\n");
    }
    if (ins.keyword !== "COPY" && ins.keyword !== "ADD") return "";
    const copy = this.#copyContext(run);
    const { sources } = copyArgs(copy, state, ins, this.#lookup(state, args));
    const from = ins.flags.find((f) => f.name === "from")?.value;
    if (from !== undefined) {
      const src = await this.#fromSource(processWord(from, this.#lookup(state, args)), run);
      if (src.state) return `from ${stateId(src.state)}`;
      const root = excludingRoot(src.root, sources, copyExcludes(ins, this.#lookup(state, args)));
      return `from context ${await sourcesDigest(
        root,
        await resolveSources(root, sources),
        this.#digests,
      )}`;
    }
    const { urls, local, gits } = splitUrls(copy, ins, sources);
    const parts: string[] = [];
    // A git source enters as the commit its ref names now (resolved without a fetch).
    for (const g of gits) parts.push(`git ${g} ${await gitStep(copy, ins, this.#gits.commit(g))}`);
    for (const url of urls) {
      parts.push(
        `url ${url} ${(await download(copy, ins, url, this.#lookup(state, args))).digest}`,
      );
    }
    if (local.length > 0) {
      const root = excludingRoot(
        this.context,
        local,
        copyExcludes(ins, this.#lookup(state, args)),
      );
      parts.push(await sourcesDigest(root, await resolveSources(root, local), this.#digests));
    }
    return parts.join("\n");
  }

  /**
   * What `name` names from inside stage `run`: a `--build-context` (a directory's root, or an
   * image), an earlier stage (awaited) or an image.
   */
  async #fromSource(name: string, run: StageRun): Promise<FromSource> {
    const named = this.options.buildContexts?.get(name.toLowerCase());
    if (named?.kind === "dir") return { root: named.root };
    if (named) return { state: imageState(await this.#image(named.ref)) };
    const stage = findStage(this.df, name, run.stage.index);
    if (stage) return { state: await this.#stages.waitFor(stage.index) };
    return { state: imageState(await this.#image(name)) };
  }

  /** Mounts the filesystem of a stage or image for a RUN mount; writes go to a throwaway dir. */
  async #view(
    from: string,
    run: StageRun,
  ): Promise<{ dir: string; release: () => Promise<void> }> {
    const src = await this.#fromSource(from, run);
    if (src.state) return await this.#mountState(src.state);
    return await this.#mountDir(src.root.dir);
  }

  /**
   * An overlay over a host directory (a `--build-context`): a RUN bind sees it, and a `rw`
   * bind's writes land in the throwaway upper dir, never in the user's directory.
   */
  #mountDir(hostDir: string): Promise<{ dir: string; release: () => Promise<void> }> {
    return this.#overlay("/", () => [posix.relative("/", resolve(hostDir))]);
  }

  /** The `--mount`s of a RUN (and its `--security` checked against `--allow`). */
  #mountSpecs(ins: Instruction, lookup: Lookup): MountSpec[] {
    return runMountSpecs(
      ins,
      lookup,
      this.df.escape,
      this.options.allowInsecure ?? false,
      (d) => this.#fail(ins, d),
    );
  }

  #mountState(state: BuildState): Promise<{ dir: string; release: () => Promise<void> }> {
    return this.#overlay(this.store.linkDir, async () => (await this.#lowers(state)).reverse());
  }

  /**
   * A throwaway overlay in the scratch dir over `lower()` (below `lowerBase`), with its own
   * upper and work dirs; `release` unmounts it and removes them.
   */
  async #overlay(
    lowerBase: string,
    lower: () => string[] | Promise<string[]>,
  ): Promise<{ dir: string; release: () => Promise<void> }> {
    const dir = join(this.scratch, `r${++this.#mounts}`);
    const rootfs = join(dir, "rootfs");
    for (const d of ["upper", "work", "rootfs"]) {
      await Deno.mkdir(join(dir, d), { recursive: true });
    }
    mountOverlay({
      lowerBase,
      lower: await lower(),
      upper: join(dir, "upper"),
      work: join(dir, "work"),
      target: rootfs,
    });
    return {
      dir: rootfs,
      release: async () => {
        unmountRootfs(rootfs);
        await removeTree(dir);
      },
    };
  }

  async #execute(
    state: BuildState,
    ins: Instruction,
    args: Map<string, string | undefined>,
    argList: string[],
    run: StageRun,
    step: number,
  ): Promise<BuildState> {
    const created = new Date().toISOString();
    const lookup = this.#lookup(state, args);
    const esc = { escape: this.df.escape };
    const word = () => processWord(ins.args.trim(), lookup, esc);
    const config = configOf(state).config ?? {};
    const shell = config.Shell ?? DEFAULT_SHELL;
    const command = (form: string[] | undefined) => form ?? [...shell, ins.args.trim()];
    const simple = (change: (c: ContainerConfig) => void, shown = ins.text) =>
      nextState(state, { createdBy: shown, created }, change);
    switch (ins.keyword) {
      case "RUN":
        return await runStep(this.#runContext(run, step), state, ins, argList, created, lookup);
      case "COPY":
      case "ADD":
        return await copyStep(
          this.#copyContext(run),
          state,
          ins,
          this.#lookup(state, args),
          created,
        );
      case "WORKDIR": {
        const dir = posix.resolve(config.WorkingDir || "/", word());
        const layer = await this.#inRootfs(state, false, (rootfs) => {
          mkdirInRoot(rootfs, dir);
          return Promise.resolve();
        });
        return nextState(
          state,
          { createdBy: `WORKDIR ${dir}`, created, layer },
          (c) => c.WorkingDir = dir,
        );
      }
      case "ENV":
      case "LABEL": {
        const pairs = this.#pairs(ins, lookup);
        return simple((c) => {
          if (ins.keyword === "ENV") {
            let env = c.Env ?? [];
            if (!env.some((e) => e.startsWith("PATH="))) env = [`PATH=${DEFAULT_PATH}`, ...env];
            for (const [k, v] of pairs) env = setEnv(env, k, v);
            c.Env = env;
          } else {
            c.Labels = { ...(c.Labels ?? {}) };
            for (const [k, v] of pairs) c.Labels[k] = v;
          }
        }, `${ins.keyword} ${pairs.map(([k, v]) => `${k}=${v}`).join(" ")}`);
      }
      case "MAINTAINER":
        return simple(() => {});
      case "CMD":
      case "ENTRYPOINT": {
        const argv = command(execForm(ins.args));
        return simple((c) => {
          if (ins.keyword === "CMD") c.Cmd = argv;
          else {
            c.Entrypoint = argv;
            // As docker: a new ENTRYPOINT drops the CMD inherited from the base image.
            if (!run.cmdSet) c.Cmd = null;
          }
        }, `${ins.keyword} ${JSON.stringify(argv)}`);
      }
      case "EXPOSE": {
        const ports = processWords(ins.args, lookup, esc).map((
          p,
        ) => (p.includes("/") ? p : `${p}/tcp`));
        for (const p of ports) {
          if (!/^\d+(-\d+)?\/(tcp|udp|sctp)$/i.test(p)) {
            throw new BuildInstructionError(this.file, ins, `invalid port ${p}`);
          }
        }
        return simple((c) => {
          c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
          for (const p of ports) c.ExposedPorts[p.toLowerCase()] = {};
        }, `EXPOSE ${ports.join(" ")}`);
      }
      case "USER": {
        const user = word();
        return simple((c) => c.User = user, `USER ${user}`);
      }
      case "VOLUME": {
        const json = execForm(ins.args);
        const vols = json
          ? json.map((v) => expandOnly(v, lookup))
          : processWords(ins.args, lookup, esc);
        return simple((c) => {
          c.Volumes = { ...(c.Volumes ?? {}) };
          for (const v of vols) c.Volumes[v] = {};
        }, `VOLUME ${JSON.stringify(vols)}`);
      }
      case "STOPSIGNAL": {
        const sig = word();
        return simple((c) => c.StopSignal = sig, `STOPSIGNAL ${sig}`);
      }
      case "SHELL": {
        const json = execForm(ins.args);
        if (!json || json.length === 0) {
          throw new BuildInstructionError(
            this.file,
            ins,
            "SHELL requires the arguments to be in JSON form",
          );
        }
        return simple((c) => c.Shell = json, `SHELL ${JSON.stringify(json)}`);
      }
      case "HEALTHCHECK":
        return simple((c) => c.Healthcheck = healthcheckOf(ins, (d) => this.#fail(ins, d)));
      case "ONBUILD":
        return simple((c) => c.OnBuild = [...(c.OnBuild ?? []), ins.args.trim()]);
    }
    throw new BuildInstructionError(this.file, ins, "unsupported instruction");
  }

  /** What a COPY/ADD step needs of this build (copy_step.ts). */
  #copyContext(run: StageRun): CopyStepContext {
    return {
      context: this.context,
      escape: this.df.escape,
      download: (url, checksum) => this.#downloads.get(url, checksum),
      inRootfs: (state, alwaysLayer, fn) => this.#inRootfs(state, alwaysLayer, fn),
      fromSource: (name) => this.#fromSource(name, run),
      git: (source, keepGitDir) => this.#gits.get(source, keepGitDir),
      withReadOnly: (state, fn) => this.#withReadOnly(state, fn),
      fail: (ins, detail) => this.#fail(ins, detail),
    };
  }

  /** What a RUN step needs of this build (run_step.ts). */
  #runContext(run: StageRun, step: number): RunStepContext {
    return {
      store: this.store,
      context: this.context,
      secrets: this.options.secrets ?? new Map(),
      ssh: this.options.ssh,
      allowInsecure: this.options.allowInsecure ?? false,
      escape: this.df.escape,
      network: this.options.network ?? "host",
      scratch: this.scratch,
      fresh: (kind) => join(this.scratch, `${kind}-${++this.#mounts}`),
      lowers: (state) => this.#lowers(state),
      view: (from) => this.#view(from, run),
      emit: this.emit,
      step,
      label: this.options.prefixOutput === false ? undefined : this.#label(run.stage, step),
      fail: (ins, detail) => this.#fail(ins, detail),
    };
  }

  /** Throws the instruction's error (names the file and line). */
  #fail(ins: Instruction, detail: string): never {
    throw new BuildInstructionError(this.file, ins, detail);
  }

  #pairs(ins: Instruction, lookup: Lookup): [string, string][] {
    const words = processWords(ins.args, lookup, { escape: this.df.escape });
    if (words.length > 0 && !words[0].includes("=")) {
      // Legacy form: `ENV NAME value with spaces`.
      const rest = ins.args.trim().slice(ins.args.trim().search(/\s/)).trim();
      if (words.length < 2) {
        throw new BuildInstructionError(this.file, ins, `${ins.keyword} names no value`);
      }
      return [[words[0], processWord(rest, lookup, { escape: this.df.escape })]];
    }
    return words.map((w) => {
      const i = w.indexOf("=");
      if (i <= 0) {
        throw new BuildInstructionError(
          this.file,
          ins,
          `${ins.keyword} names can not be blank: ${w}`,
        );
      }
      return [w.slice(0, i), w.slice(i + 1)];
    });
  }

  /** Mounts the state's overlay with a fresh upper dir, runs `fn`, and commits the change set. */
  async #inRootfs(
    state: BuildState,
    alwaysLayer: boolean,
    fn: (rootfs: string, upper: string) => Promise<void>,
  ): Promise<BuiltLayer | undefined> {
    const dir = join(this.scratch, `m${++this.#mounts}`);
    const upper = join(dir, "upper");
    const rootfs = join(dir, "rootfs");
    for (const d of [upper, join(dir, "work"), rootfs]) {
      await Deno.mkdir(d, { recursive: true, mode: 0o755 });
    }
    await Deno.chmod(upper, 0o755);
    mountOverlay({
      lowerBase: this.store.linkDir,
      lower: (await this.#lowers(state)).reverse(),
      upper,
      work: join(dir, "work"),
      target: rootfs,
    });
    try {
      await fn(rootfs, upper);
    } finally {
      unmountRootfs(rootfs);
    }
    try {
      return await commitLayer(this.store, upper, alwaysLayer);
    } finally {
      await removeTree(dir);
    }
  }

  /** Lower entries (relative to the link dir), bottom first; an empty dir for no layers. */
  async #lowers(state: BuildState): Promise<string[]> {
    if (state.layers.length > 0) {
      return state.layers.map((l) => this.store.layerShortId(l.diffId) ?? l.shortId);
    }
    const empty = join(this.scratch, "empty");
    await Deno.mkdir(empty, { recursive: true, mode: 0o755 });
    return [posix.relative(this.store.linkDir, empty)];
  }

  /** Runs `fn` on a state's merged filesystem (for `--output`; writes are thrown away). */
  withFilesystem(state: BuildState, fn: (rootfs: string) => Promise<void>): Promise<void> {
    return this.#withReadOnly(state, fn);
  }

  /** Mounts a state's filesystem for reading (its upper dir is thrown away). */
  async #withReadOnly(state: BuildState, fn: (rootfs: string) => Promise<void>): Promise<void> {
    const view = await this.#mountState(state);
    try {
      await fn(view.dir);
    } finally {
      await view.release();
    }
  }
}

/** 12 hex digits of a state's id, as docker shows intermediate ids. */
function shortId(state: BuildState): string {
  return stateId(state).slice(7, 19);
}
