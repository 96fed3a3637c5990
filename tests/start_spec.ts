/**
 * A container's config.json and start options for tests that call the runtime's
 * `Container.start` directly: the spec `tsbox run` writes for the options given
 * (src/container/spec.ts), over the busybox layers of a test store.
 */
import { join } from "../src/path.ts";
import { hostFacts, imageUser } from "../src/container/bundle.ts";
import { specFor } from "../src/container/spec.ts";
import type { RunConfig } from "../src/container/state.ts";
import { CONFIG } from "../src/container/run_config_fixture.ts";
import type { Spec } from "../src/oci/spec.ts";
import type { StartOptions } from "../src/runtime/container.ts";

/** What a test sets: RunConfig fields, `capabilities` (kept set) and start options. */
export type StartFields = Partial<Omit<RunConfig, "security">> & {
  readonly capabilities?: readonly number[];
};

/** The spec and start options of container `id` in `root`, on `layers` (short links). */
export function startSpec(
  root: string,
  id: string,
  layers: readonly string[],
  fields: StartFields,
  options: Partial<StartOptions> = {},
): { spec: Spec; options: StartOptions } {
  const { capabilities, ...own } = fields;
  const config: RunConfig = {
    ...CONFIG,
    hostname: id.slice(0, 12),
    ...own,
    layers,
    ...(capabilities ? { security: { capabilities: [...capabilities], security: {} } } : {}),
  };
  const stateDir = join(root, "containers", id);
  const spec = specFor({
    id,
    config,
    rootfs: join(stateDir, "rootfs"),
    stateDir,
    user: imageUser(config, layers.map((l) => join(root, "l", l))),
    host: hostFacts(config),
  });
  return {
    spec,
    options: {
      id,
      stateDir,
      lowerBase: join(root, "l"),
      layers,
      stdio: ["null", "null", "null"],
      ...options,
    },
  };
}
