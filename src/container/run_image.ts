/**
 * The image `run`/`create` start from, as `--pull always|missing|never` and `--platform`
 * decide: found locally, pulled, or refused with exit 125 before any container exists.
 *
 * @module
 */
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  type Platform,
} from "../../registry/platform.ts";
import { NotFoundError, TsboxError, UsageError } from "../errors.ts";
import type { ImageRecord, Store } from "../store/mod.ts";

/** docker's `--pull` policies. */
export type PullPolicy = "always" | "missing" | "never";

/** `--pull`; absent means docker's default, missing. */
export function parsePullPolicy(value: string | undefined): PullPolicy {
  if (value === undefined || value === "") return "missing";
  if (value === "always" || value === "missing" || value === "never") return value;
  throw new UsageError(
    `invalid pull option: '${value}': must be one of "always", "missing" or "never"`,
  );
}

/**
 * `--platform`: parsed and checked against the host. tsbox runs no emulator, so a platform
 * other than the host's is refused here, before anything is pulled or created.
 */
export function parseRunPlatform(value: string | undefined): Platform | undefined {
  if (value === undefined || value === "") return undefined;
  let wanted: Platform;
  try {
    wanted = parsePlatform(value);
  } catch (err) {
    throw new UsageError(`--platform: ${(err as Error).message}`);
  }
  const host = hostPlatform();
  if (!samePlatform(wanted, host)) {
    throw new UsageError(
      `--platform ${value}: image platform ${formatPlatform(wanted)} cannot run on this ${
        formatPlatform(host)
      } host (tsbox does not emulate other architectures)`,
    );
  }
  return wanted;
}

function samePlatform(a: Platform, b: Platform): boolean {
  const x = normalizePlatform(a), y = normalizePlatform(b);
  return x.os === y.os && x.architecture === y.architecture &&
    (x.variant === undefined || y.variant === undefined || x.variant === y.variant);
}

/** The platform an image's config states (its os and architecture fields). */
function imagePlatform(image: ImageRecord): Platform | undefined {
  const c = image.config as { os?: string; architecture?: string; variant?: string };
  if (!c.os || !c.architecture) return undefined;
  return { os: c.os, architecture: c.architecture, variant: c.variant };
}

/** What {@link imageForRun} needs besides the name. */
export interface RunImageOptions {
  readonly pull: PullPolicy;
  readonly platform?: Platform;
}

/**
 * Finds `name` in the store or has `pullImage` pull it (told whether the store had it, for
 * docker's messages), as the policy says.
 */
export async function imageForRun(
  store: Store,
  name: string,
  o: RunImageOptions,
  pullImage: (present: boolean) => Promise<ImageRecord>,
): Promise<ImageRecord> {
  const local = store.findImage(name);
  const have = local && imagePlatform(local);
  const mismatch = o.platform && have && !samePlatform(o.platform, have) ? have : undefined;
  if (o.pull === "never") {
    if (!local) throw new NotFoundError("image", name);
    if (mismatch) {
      throw new TsboxError(
        `image with reference ${name} was found but does not match the specified platform: wanted ${
          formatPlatform(o.platform!)
        }, actual: ${formatPlatform(mismatch)}`,
      );
    }
    return local;
  }
  if (o.pull === "missing" && local && !mismatch) return local;
  return await pullImage(local !== undefined);
}
