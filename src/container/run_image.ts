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
import { parseReference } from "../../registry/reference.ts";
import { NotFoundError, TsboxError, UsageError } from "../errors.ts";
import { checkEmulation } from "../image/emulation.ts";
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
 * `--platform`: parsed and checked against the host. Another architecture's programs run
 * through the host's binfmt_misc handler (Debian's qemu-user-static), as with docker and
 * podman: without one the platform is refused here, naming what is missing, before anything is
 * pulled or created.
 */
export function parseRunPlatform(value: string | undefined): Platform | undefined {
  if (value === undefined || value === "") return undefined;
  let wanted: Platform;
  try {
    wanted = parsePlatform(value);
  } catch (err) {
    throw new UsageError(`--platform: ${(err as Error).message}`);
  }
  if (!samePlatform(wanted, hostPlatform())) checkEmulation(wanted);
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

/**
 * The image of `wanted`'s platform in the image index a multi-platform build recorded under
 * `name`, if there is one (src/builder/platforms.ts).
 */
function indexVariant(store: Store, name: string, wanted: Platform): ImageRecord | undefined {
  let ref: string;
  try {
    ref = parseReference(name).toString();
  } catch {
    return undefined; // an id
  }
  const entry = store.indexOf(ref).find((e) => samePlatform(wanted, parsePlatform(e.platform)));
  return entry && store.getImage(entry.imageId);
}

/** What {@link imageForRun} needs besides the name. */
export interface RunImageOptions {
  readonly pull: PullPolicy;
  readonly platform?: Platform;
  /** Told docker's warning when the image is another platform's and none was asked for. */
  readonly warn?: (message: string) => void;
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
  const image = await findOrPull(store, name, o, pullImage);
  if (!o.platform) checkForeign(image, o.warn);
  return image;
}

/**
 * An image of another platform run without `--platform` (a foreign-only image): docker warns
 * that the platforms differ and runs it through the host's emulator, so the emulator is
 * checked first, as for `--platform`, and its absence is one line naming what is missing
 * rather than the exec error of a program the kernel cannot run.
 */
export function checkForeign(image: ImageRecord, warn?: (message: string) => void): void {
  const have = imagePlatform(image);
  const host = hostPlatform();
  if (!have || samePlatform(have, host)) return;
  checkEmulation(normalizePlatform(have));
  warn?.(
    `The requested image's platform (${formatPlatform(normalizePlatform(have))}) does not ` +
      `match the detected host platform (${
        formatPlatform(normalizePlatform(host))
      }) and no specific platform was requested`,
  );
}

async function findOrPull(
  store: Store,
  name: string,
  o: RunImageOptions,
  pullImage: (present: boolean) => Promise<ImageRecord>,
): Promise<ImageRecord> {
  const local = (o.platform && indexVariant(store, name, o.platform)) || store.findImage(name);
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
