/**
 * A RUN step's container described as every container is: its options as a {@link RunConfig},
 * and the OCI spec `tsbox run` would write for them (src/container/spec.ts's specFor, the user
 * resolved in the stage's layers), which the runtime starts as it starts every container's
 * config.json. So a RUN step gets the same confinement, mounts and identity as `tsbox run` of
 * the same options.
 *
 * @module
 */
import { join } from "../path.ts";
import { hostFacts, imageUser } from "../container/bundle.ts";
import { specFor } from "../container/spec.ts";
import type { RunConfig } from "../container/state.ts";
import type { Spec } from "../oci/spec.ts";
import type { MountRequest } from "../runtime/mount_request.ts";
import { readBundleConfig } from "../runtime/oci_config.ts";

/** The hostname of every RUN step's container (BuildKit's). */
export const RUN_HOSTNAME = "buildkitsandbox";

/** What a RUN step decides about its container. */
export interface RunStepOptions {
  readonly argv: readonly string[];
  readonly env: readonly string[];
  readonly cwd: string;
  /** The stage's USER ("" for root). */
  readonly user: string;
  readonly network: "host" | "none";
  /** The step's `--mount`s (run_mounts.ts). */
  readonly mounts: readonly MountRequest[];
  /** Lower entries of the stage (relative to the store's link dir), bottom first. */
  readonly layers: readonly string[];
  /**
   * `--security=insecure` (allowed by the build): these capabilities (every one this process
   * can hand on) and `--privileged`'s confinement: no seccomp, no masks, the host's devices.
   */
  readonly insecure?: readonly number[];
}

/** The step's options as the record `tsbox run` keeps: no limits, no restart, no tty. */
export function runStepConfig(o: RunStepOptions): RunConfig {
  return {
    argv: o.argv,
    env: o.env,
    cwd: o.cwd,
    user: o.user,
    hostname: RUN_HOSTNAME,
    // "none" is a namespace of its own with only lo, which the runtime calls "private" too.
    network: o.network,
    resources: {},
    mounts: o.mounts,
    readOnly: false,
    tty: false,
    interactive: false,
    layers: o.layers,
    restart: { name: "no", maxRetries: 0 },
    autoRemove: false,
    stopSignal: 15,
    stopTimeout: 10,
    ...(o.insecure
      ? { security: { capabilities: [...o.insecure], security: { privileged: true } } }
      : {}),
  };
}

/**
 * The OCI spec of the step's container with `id` in `stateDir` (rootfs, etc files), as
 * `tsbox run` writes it for the same options. `linkDir` is the store's link dir the layers are
 * relative to. An image that cannot satisfy USER gives a spec whose start fails with the
 * runtime's UserError.
 */
export function runStepSpec(
  id: string,
  stateDir: string,
  linkDir: string,
  config: RunConfig,
): Spec {
  return specFor({
    id,
    config,
    rootfs: join(stateDir, "rootfs"),
    stateDir,
    user: imageUser(config, config.layers.map((l) => join(linkDir, l))),
    host: hostFacts(config),
  });
}

/**
 * Writes the step's bundle, `stateDir/config.json` (0600: it holds the build's environment),
 * and returns the spec read back from that file by the runtime's reader (oci_config.ts, as
 * `tsbox runc` reads a bundle): a RUN step starts from its config.json as a container's start
 * does (src/container/bundle.ts), so what the runtime runs is what the file says.
 */
export async function writeRunStepBundle(
  id: string,
  stateDir: string,
  linkDir: string,
  config: RunConfig,
): Promise<Spec> {
  const path = join(stateDir, RUN_STEP_CONFIG);
  const spec = runStepSpec(id, stateDir, linkDir, config);
  await Deno.writeTextFile(path, JSON.stringify(spec), { mode: 0o600, createNew: true });
  return readBundleConfig(stateDir);
}

/** The bundle file of a RUN step's container, in its state directory (OCI's name). */
export const RUN_STEP_CONFIG = "config.json";
