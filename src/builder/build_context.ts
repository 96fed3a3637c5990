/**
 * Named build contexts (`build --build-context NAME=DIR|docker-image://REF`, as buildx takes
 * them): a directory or an image that `FROM NAME`, `COPY --from=NAME` and
 * `RUN --mount=from=NAME` read. A name that is also a stage's name replaces that stage (the
 * stage is then not built), and one that is an image name replaces that image, as BuildKit
 * does.
 *
 * @module
 */
import { resolve } from "node:path";
import { UsageError } from "../errors.ts";
import { contextRoot, type SourceRoot } from "./context.ts";

/** One named context. */
export type NamedContext =
  | { readonly kind: "dir"; readonly name: string; readonly root: SourceRoot }
  | { readonly kind: "image"; readonly name: string; readonly ref: string };

/** The named contexts of one build, by lower-cased name. */
export type NamedContexts = ReadonlyMap<string, NamedContext>;

/** A `--build-context` value parted into its name and its source (not yet checked on disk). */
export interface BuildContextFlag {
  readonly name: string;
  readonly source: string;
}

/** Parses `NAME=SOURCE`; the name as BuildKit compares it (lower case). */
export function parseBuildContextFlag(value: string): BuildContextFlag {
  const i = value.indexOf("=");
  if (i <= 0 || i === value.length - 1) {
    throw new UsageError(`invalid --build-context ${value}: expected NAME=DIR|docker-image://REF`);
  }
  const name = value.slice(0, i).trim().toLowerCase();
  // A stage name or an image name: no spaces or commas, as neither can have them.
  if (!/^[a-z0-9][a-z0-9._/:@-]*$/.test(name)) {
    throw new UsageError(`invalid --build-context ${value}: invalid name "${name}"`);
  }
  return { name, source: value.slice(i + 1) };
}

/**
 * Resolves parsed flags: a directory (with its own .dockerignore) must exist; `docker-image://`
 * names an image pulled when used; other schemes (git, http, oci-layout) are refused by name.
 */
export async function loadBuildContexts(
  flags: readonly BuildContextFlag[],
): Promise<NamedContexts> {
  const out = new Map<string, NamedContext>();
  for (const { name, source } of flags) {
    if (out.has(name)) throw new UsageError(`--build-context ${name} given twice`);
    const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(source)?.[1]?.toLowerCase();
    if (scheme === "docker-image") {
      const ref = source.slice("docker-image://".length);
      if (ref === "") {
        throw new UsageError(`--build-context ${name}: docker-image:// names no image`);
      }
      out.set(name, { kind: "image", name, ref });
      continue;
    }
    if (scheme !== undefined) {
      throw new UsageError(
        `--build-context ${name}=${source}: ${scheme}:// contexts are not supported ` +
          `(a directory or docker-image://REF)`,
      );
    }
    const dir = resolve(source);
    let info: Deno.FileInfo | undefined;
    try {
      info = await Deno.stat(dir);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (!info?.isDirectory) {
      throw new UsageError(`--build-context ${name}: ${source} is not a directory`);
    }
    out.set(name, { kind: "dir", name, root: await contextRoot(dir) });
  }
  return out;
}
