/**
 * COPY/ADD flags that change which files are copied and where: `--exclude=PATTERN` (repeatable;
 * dockerignore syntax, matched against each path relative to the source being copied as well
 * as to the root, as BuildKit does) and `--parents` (each source keeps its path from the root,
 * or from a `/./` pivot in its name: `COPY --parents ./a/./b/f /d/` makes `/d/b/f`).
 *
 * @module
 */
import { posix } from "node:path";
import ignoreModule, { type Ignore } from "@balena/dockerignore";
import { cleanRel, resolveSources, type SourceRoot } from "./context.ts";
import { copyInto, type CopyOptions } from "./copy.ts";

// The package is CommonJS whose typings declare an ES default export: call it as what it is.
const ignore = ignoreModule as unknown as (options?: { ignorecase?: boolean }) => Ignore;

const GLOB_META = /[*?[\\]/;

/** The directories a source name's excludes are relative to: its fixed part and its parent. */
function anchors(name: string): string[] {
  const parts = cleanRel(name).split("/").filter((p) => p !== "");
  const fixed: string[] = [];
  for (const p of parts) {
    if (GLOB_META.test(p)) break;
    fixed.push(p);
  }
  const all = fixed.length === parts.length ? [fixed.join("/"), fixed.slice(0, -1).join("/")] : [
    fixed.join("/"),
  ];
  return [...new Set(all)];
}

/** `root` with `patterns` excluded besides what it already leaves out. */
export function excludingRoot(
  root: SourceRoot,
  names: readonly string[],
  patterns: readonly string[],
): SourceRoot {
  if (patterns.length === 0) return root;
  const matcher = ignore().add([...patterns]);
  const bases = [...new Set(names.flatMap(anchors))];
  const excluded = (rel: string) =>
    bases.some((b) => {
      if (b === "") return matcher.ignores(rel);
      return rel.startsWith(`${b}/`) && matcher.ignores(rel.slice(b.length + 1));
    });
  return {
    dir: root.dir,
    ignored: (rel) => (root.ignored?.(rel) ?? false) || (rel !== "" && excluded(rel)),
    hasExceptions: root.hasExceptions || patterns.some((p) => p.startsWith("!")),
  };
}

/**
 * Copies the sources `names` from `root` to `dest` in `rootfs`; with `parents`, each one under
 * `dest` at its own path (from the root or the name's `/./` pivot).
 */
export async function copySources(
  rootfs: string,
  root: SourceRoot,
  names: readonly string[],
  dest: string,
  options: CopyOptions,
  parents: boolean,
): Promise<void> {
  if (!parents) {
    await copyInto(rootfs, root, await resolveSources(root, names), dest, options);
    return;
  }
  for (const name of names) {
    const at = name.lastIndexOf("/./");
    const pivot = at < 0 ? "" : cleanRel(name.slice(0, at));
    for (const src of await resolveSources(root, [name])) {
      const kept = pivot && src.rel.startsWith(`${pivot}/`)
        ? src.rel.slice(pivot.length + 1)
        : src.rel;
      const to = src.isDir ? posix.join(dest, kept) : posix.join(dest, posix.dirname(kept));
      await copyInto(rootfs, root, [src], `${to}/`, options);
    }
  }
}
