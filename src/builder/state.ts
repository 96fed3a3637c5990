/**
 * A build stage's state between steps: the image config so far (kept as its JSON text, whose
 * sha256 would be the image id) and the layers under it. Every step maps one state to the next.
 *
 * @module
 */
import type { ContainerConfig, HistoryEntry, ImageConfig } from "../../registry/manifest.ts";
import { hostPlatform } from "../../registry/platform.ts";
import { sha256Digest } from "../store/digest.ts";
import type { ImageRecord } from "../store/mod.ts";
import type { BuiltLayer } from "./layer.ts";

/** A stage's image so far. */
export interface BuildState {
  /** The image config JSON. */
  readonly configJson: string;
  /** Layers bottom first; their diffIDs are the config's rootfs.diff_ids. */
  readonly layers: readonly BuiltLayer[];
}

/** The id of a state: what its image id would be. */
export function stateId(state: BuildState): string {
  return sha256Digest(state.configJson);
}

/** The parsed config of a state. */
export function configOf(state: BuildState): ImageConfig {
  return JSON.parse(state.configJson) as ImageConfig;
}

/** The empty state of `FROM scratch`. */
export function scratchState(platform?: { os: string; architecture: string; variant?: string }) {
  const p = platform ?? hostPlatform();
  return fromConfig({
    architecture: p.architecture,
    os: p.os,
    ...(p.variant ? { variant: p.variant } : {}),
    config: {},
    rootfs: { type: "layers", diff_ids: [] },
    history: [],
  }, []);
}

/** The state of a stored image, its history completed so that every layer has an entry. */
export function imageState(image: ImageRecord): BuildState {
  const config = structuredClone(image.config);
  const history = config.history ?? [];
  const withLayer = history.filter((h) => !h.empty_layer).length;
  // Images made without history still need one entry per layer for history to line up.
  for (let i = withLayer; i < image.layers.length; i++) {
    history.push({ created: image.created, created_by: "" });
  }
  config.history = history;
  return fromConfig(config, image.layers.map(({ dir: _dir, ...l }) => l));
}

/** Builds a state from a config object, writing its keys in one fixed order. */
export function fromConfig(config: ImageConfig, layers: readonly BuiltLayer[]): BuildState {
  const c = config.config ?? {};
  const ordered: ImageConfig = {
    architecture: config.architecture,
    os: config.os,
    ...(config.variant ? { variant: config.variant } : {}),
    ...(config.created ? { created: config.created } : {}),
    ...(config.author ? { author: config.author } : {}),
    config: orderedContainerConfig(c),
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: (config.history ?? []).map(orderedHistory),
  };
  return { configJson: JSON.stringify(ordered), layers };
}

function orderedContainerConfig(c: ContainerConfig): ContainerConfig {
  const keys: (keyof ContainerConfig)[] = [
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "ArgsEscaped",
    "OnBuild",
  ];
  const out: Record<string, unknown> = {};
  for (const k of keys) if (c[k] !== undefined) out[k] = c[k];
  return out as ContainerConfig;
}

function orderedHistory(h: HistoryEntry): HistoryEntry {
  const out: HistoryEntry = {};
  if (h.created !== undefined) out.created = h.created;
  if (h.created_by !== undefined) out.created_by = h.created_by;
  if (h.author !== undefined) out.author = h.author;
  if (h.comment !== undefined) out.comment = h.comment;
  if (h.empty_layer) out.empty_layer = true;
  return out;
}

/**
 * The state after one step: the config changed by `change`, a history entry for the step, and
 * the step's layer on top when it made one.
 */
export function nextState(
  state: BuildState,
  step: { createdBy: string; created: string; layer?: BuiltLayer },
  change?: (config: ContainerConfig) => void,
): BuildState {
  const config = configOf(state);
  config.config ??= {};
  change?.(config.config);
  config.history = [
    ...(config.history ?? []),
    step.layer
      ? { created: step.created, created_by: step.createdBy }
      : { created: step.created, created_by: step.createdBy, empty_layer: true },
  ];
  config.created = step.created;
  return fromConfig(config, step.layer ? [...state.layers, step.layer] : state.layers);
}
