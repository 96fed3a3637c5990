/**
 * tsbox's typed API for deno scripts: the same code the `tsbox` command runs.
 *
 * ```ts
 * import { openStore, pull, listImages } from "./mod.ts";
 * const store = await openStore("/var/lib/tsbox");
 * await pull(store, "127.0.0.1:5000/busybox", { onProgress: (e) => console.log(e) });
 * console.log(listImages(store).map((i) => i.tags));
 * ```
 *
 * @module
 */
import { inspectImage, removeImage, requireImage, tagImage } from "./src/image/images.ts";
import type { ImageInspect, RemoveAction, RemoveImageOptions } from "./src/image/images.ts";
import { buildImage } from "./src/builder/builder.ts";
import type { BuildEvent, BuildOptions, BuildResult } from "./src/builder/builder.ts";
import { pullImage } from "./src/image/pull.ts";
import type { PullEvent, PullOptions, PullResult } from "./src/image/pull.ts";
import { type ImageRecord, Store } from "./src/store/mod.ts";
import { type HistoryRow, imageHistory } from "./src/image/history.ts";
import { type LoadedImage, loadImages, type LoadOptions } from "./src/image/load.ts";
import { login, type LoginOptions, logout } from "./src/image/login.ts";
import { type PushEvent, pushImage, type PushOptions, type PushResult } from "./src/image/push.ts";
import { saveImages, saveImagesToFile, type SaveOptions } from "./src/image/save.ts";

export type {
  HistoryRow,
  LoadedImage,
  LoadOptions,
  LoginOptions,
  PushEvent,
  PushOptions,
  PushResult,
  SaveOptions,
};
export { login, logout };
export { ArchiveError } from "./src/image/load.ts";
export type {
  BuildEvent,
  BuildOptions,
  BuildResult,
  ImageInspect,
  ImageRecord,
  PullEvent,
  PullOptions,
  PullResult,
  RemoveAction,
  RemoveImageOptions,
};
export { Store };
export { parseReference, Reference } from "./registry/reference.ts";
export { NotFoundError, TsboxError } from "./src/errors.ts";
export { BuildStepError, DockerfileSyntaxError } from "./src/builder/mod.ts";
export { DatabaseDamagedError, DatabaseError } from "./src/store/mod.ts";

/** Opens (creating if needed) the store at `root` (default `/var/lib/tsbox` or TSBOX_ROOT). */
export function openStore(root?: string): Promise<Store> {
  return Store.open(root ?? Deno.env.get("TSBOX_ROOT") ?? "/var/lib/tsbox");
}

/** Pulls an image; `options.onProgress` receives docker-like per-layer events. */
export function pull(store: Store, name: string, options?: PullOptions): Promise<PullResult> {
  return pullImage(store, name, options);
}

/** Every image in the store, newest first. */
export function listImages(store: Store): ImageRecord[] {
  return store.listImages();
}

/** Docker-shaped inspect data of an image (by reference, id or id prefix). */
export function inspect(store: Store, name: string): ImageInspect {
  return inspectImage(requireImage(store, name));
}

/** Tags `source` as `target`; returns the full target reference. */
export function tag(store: Store, source: string, target: string): string {
  return tagImage(store, source, target);
}

/** Removes an image as `docker rmi` does; returns what was untagged and deleted. */
export function remove(
  store: Store,
  name: string,
  options?: RemoveImageOptions,
): Promise<RemoveAction[]> {
  return removeImage(store, name, options);
}

/** Pushes the local image `name` (`host/repo[:tag]`) to its registry. */
export function push(store: Store, name: string, options?: PushOptions): Promise<PushResult> {
  return pushImage(store, name, options);
}

/** Images as a docker-archive (default) or OCI layout (`format: "oci"`) tar stream. */
export function save(
  store: Store,
  names: readonly string[],
  options?: SaveOptions,
): ReadableStream<Uint8Array> {
  return saveImages(store, names, options);
}

/** Writes {@link save}'s archive to `path`; a failed save leaves no file behind. */
export function saveToFile(
  store: Store,
  names: readonly string[],
  path: string,
  options?: SaveOptions,
): Promise<void> {
  return saveImagesToFile(store, names, path, options);
}

/** Loads every image of a docker-archive or OCI layout tar stream, all or nothing. */
export function load(
  store: Store,
  archive: ReadableStream<Uint8Array>,
  options?: LoadOptions,
): Promise<LoadedImage[]> {
  return loadImages(store, archive, options);
}

/** An image's history, newest step first. */
export function history(store: Store, name: string): HistoryRow[] {
  return imageHistory(requireImage(store, name));
}

// Containers: the same code as `tsbox run -d`, `ps`, `logs`, `stop`, `rm`.
import { runInStore } from "./src/container/run.ts";
import type { RunFlags } from "./src/container/flags.ts";
import {
  type HealthCheck,
  type PortMapping,
  runFlagsOf,
  type RunOptions,
  type TmpfsMount,
  type VolumeMount,
} from "./src/container/run_typed.ts";
import { removeContainer, stopContainer } from "./src/container/lifecycle.ts";
import { type LogEntry, readLogs } from "./src/container/logs.ts";
import { logPath } from "./src/container/paths.ts";
import {
  type ContainerRecord,
  findContainer,
  listContainers,
  reconcile,
  requireContainer,
} from "./src/container/state.ts";
import { type ExecFlags, execRunning, NotRunningError } from "./src/container/exec.ts";
import type { HealthFlags, HealthState } from "./src/container/health.ts";

export type { ContainerRecord, ExecFlags, HealthFlags, HealthState, LogEntry, RunFlags };
export type { HealthCheck, PortMapping, RunOptions, TmpfsMount, VolumeMount };
export { NotRunningError };
export { findContainer };

/** How {@link run} reports what `tsbox run` prints on stderr. */
export interface RunReporting {
  /** Pull progress lines and warnings, as `tsbox run` prints them; nothing when absent. */
  readonly onNotice?: (line: string) => void;
  /** Registries reached over plain HTTP (`--insecure-registry`). */
  readonly insecureRegistries?: readonly string[];
}

/**
 * Runs a container of `image` in `store` as `tsbox run` does, with typed options (sizes in
 * bytes, durations in ms, ports and mounts as objects; the same checks and messages as the
 * flags). With `detach` it returns once the container runs; otherwise once it ended, with its
 * exit code (its output goes to this process's stdout and stderr, as with `tsbox run`). Health
 * results are in `ps(store)`'s records as `health`. Nothing is printed unless `onNotice` is set.
 */
export function run(
  store: Store,
  image: string,
  options: RunOptions & RunReporting = {},
): Promise<{ id: string; exitCode?: number }> {
  return runInStore(store, image, options.command ?? [], runFlagsOf(options), {
    debug: false,
    insecureRegistries: options.insecureRegistries ?? [],
    notice: options.onNotice,
  });
}

/** Every container (`ps -a`), newest first, with states checked against live processes. */
export function ps(store: Store): ContainerRecord[] {
  return listContainers(store);
}

/** A container's log entries (`logs`); `tail` keeps the last N. */
export function logs(store: Store, name: string, tail?: number): Promise<LogEntry[]> {
  return readLogs(logPath(store.root, requireContainer(store, name).id), { tail });
}

/** Stops a container (its stop signal, SIGKILL after `timeoutSec`). */
export function stop(store: Store, name: string, timeoutSec?: number): Promise<void> {
  return stopContainer(store, requireContainer(store, name), timeoutSec);
}

/**
 * Runs `command` in the running container `name` as `tsbox exec` does (its namespaces, cgroup,
 * root and confinement); output goes to this process's stdout and stderr. Returns the command's
 * exit code; throws {@link NotRunningError} when the container is not running.
 */
export async function exec(
  store: Store,
  name: string,
  command: readonly string[],
  flags: Omit<ExecFlags, "tty" | "interactive"> = {},
): Promise<number> {
  return await execRunning(reconcile(store, requireContainer(store, name)), command, flags);
}

/** Removes a container; `force` kills it first. */
export function rm(store: Store, name: string, force = false): Promise<void> {
  return removeContainer(store, requireContainer(store, name), force);
}

/**
 * Builds an image from a Dockerfile (`options.context`, `options.dockerfile`), tagging it with
 * `options.tags`. `options.onProgress` receives each step, RUN output, cache hits and the id.
 */
export function build(store: Store, options: BuildOptions): Promise<BuildResult> {
  return buildImage(store, options);
}
