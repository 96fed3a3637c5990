/**
 * COPY/ADD sources: the build context filtered by `.dockerignore` (docker's matching rules, via
 * @balena/dockerignore), or another stage's or image's filesystem for `--from`. Sources are
 * resolved (globs with Go's filepath.Match syntax, symlinks kept inside their root) into a
 * list, and that list gets a digest over the files' contents, modes and owners — not their
 * times, so `touch` alone keeps the cache.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import ignoreModule, { type Ignore } from "@balena/dockerignore";
import { TsboxError } from "../errors.ts";
import { resolveInRoot } from "../runtime/rootfs.ts";
import type { FileDigests } from "./file_digests.ts";

/** A COPY/ADD source that does not exist or is excluded. */
export class SourceNotFoundError extends TsboxError {
  constructor(readonly source: string, detail = "not found") {
    super(`COPY failed: file ${detail}: stat ${source}: file does not exist`);
    this.name = "SourceNotFoundError";
  }
}

/** A root the sources are taken from. */
export interface SourceRoot {
  /** Host directory that is `/` for the sources. */
  readonly dir: string;
  /** Excluded relative paths (the context's .dockerignore); none for stages and images. */
  readonly ignored?: (relPath: string) => boolean;
  /** Whether some patterns re-include paths (`!`): then excluded directories are still walked. */
  readonly hasExceptions?: boolean;
}

/** One resolved source: a file, symlink or directory on the host. */
export interface Source {
  /** Host path. */
  readonly path: string;
  /** Its path relative to the root (for messages and the digest). */
  readonly rel: string;
  /** Base name, used when the destination is a directory. */
  readonly name: string;
  readonly isDir: boolean;
}

/** Reads `.dockerignore` from a context directory into a root description. */
export async function contextRoot(dir: string): Promise<SourceRoot> {
  let text = "";
  try {
    text = await Deno.readTextFile(join(dir, ".dockerignore"));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const patterns = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  if (patterns.length === 0) return { dir };
  const matcher = ignore().add(patterns);
  return {
    dir,
    ignored: (rel: string) => rel !== "" && matcher.ignores(rel),
    hasExceptions: patterns.some((p) => p.startsWith("!")),
  };
}

/** Cleans a source path lexically as if rooted at `/`; "" is the root itself. */
export function cleanRel(path: string): string {
  const parts: string[] = [];
  for (const c of path.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") parts.pop();
    else parts.push(c);
  }
  return parts.join("/");
}

// The package is CommonJS whose typings declare an ES default export: call it as what it is.
const ignore = ignoreModule as unknown as (options?: { ignorecase?: boolean }) => Ignore;

const GLOB_META = /[*?[\\]/;

/** Go's filepath.Match pattern as a RegExp over one `/`-separated path. */
export function globRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]);
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) throw new TsboxError(`syntax error in pattern: ${pattern}`);
      let body = pattern.slice(i + 1, end);
      if (body.startsWith("^")) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, "\\\\")}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** All relative paths under a root that are not excluded, in sorted order. */
async function walk(root: SourceRoot, rel = ""): Promise<{ rel: string; isDir: boolean }[]> {
  return await Array.fromAsync(walkIter(root, rel));
}

/**
 * The walk as it goes (parents first, names sorted): only one directory's names are held at a
 * time, so a context of any size walks in bounded memory.
 */
async function* walkIter(
  root: SourceRoot,
  rel = "",
): AsyncGenerator<{ rel: string; isDir: boolean }> {
  const names: { name: string; isDir: boolean }[] = [];
  // Sync calls: a context of many small files costs one thread hop per call otherwise.
  for (const e of Deno.readDirSync(join(root.dir, rel))) {
    names.push({ name: e.name, isDir: e.isDirectory });
  }
  names.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of names) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    const skip = root.ignored?.(path) ?? false;
    if (!skip) yield { rel: path, isDir: e.isDir };
    if (e.isDir && (!skip || root.hasExceptions)) yield* walkIter(root, path);
  }
}

/** Resolves the sources named in COPY/ADD against a root. */
export async function resolveSources(
  root: SourceRoot,
  names: readonly string[],
): Promise<Source[]> {
  const sources: Source[] = [];
  for (const name of names) {
    const rel = cleanRel(name);
    if (GLOB_META.test(rel)) {
      const re = globRegExp(rel);
      const depth = rel.split("/").length;
      const hits = (await walk(root)).filter((p) =>
        p.rel.split("/").length === depth && re.test(p.rel)
      );
      if (hits.length === 0) throw new SourceNotFoundError(name, "not found");
      for (const h of hits) sources.push(await source(root, h.rel, name));
    } else {
      if (rel !== "" && root.ignored?.(rel)) throw new SourceNotFoundError(name, "not found");
      sources.push(await source(root, rel, name));
    }
  }
  return sources;
}

async function source(root: SourceRoot, rel: string, asWritten: string): Promise<Source> {
  // The named path itself is followed (within the root); what is below it is copied as is.
  const path = rel === "" ? root.dir : resolveInRoot(root.dir, rel);
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new SourceNotFoundError(asWritten);
    throw err;
  }
  const name = rel.split("/").pop() ?? "";
  return { path, rel, name, isDir: info.isDirectory };
}

/** One entry below a source, for copying and the digest. */
export interface TreeEntry {
  /** Relative to the source ("" for the source itself). */
  readonly rel: string;
  readonly host: string;
  readonly info: Deno.FileInfo;
}

/** The entries of a source, parents first; for a directory source its contents, filtered. */
export async function sourceEntries(root: SourceRoot, src: Source): Promise<TreeEntry[]> {
  return await Array.fromAsync(sourceEntriesIter(root, src));
}

/**
 * {@link sourceEntries} one at a time: a copy or digest of a big context never holds every
 * entry at once (the heap then stays small: see design.md on peak memory).
 */
export async function* sourceEntriesIter(
  root: SourceRoot,
  src: Source,
): AsyncGenerator<TreeEntry> {
  if (!src.isDir) {
    yield { rel: "", host: src.path, info: await Deno.lstat(src.path) };
    return;
  }
  const base = src.rel;
  const inner: SourceRoot = {
    dir: src.path,
    ignored: root.ignored ? (p) => root.ignored!(base ? `${base}/${p}` : p) : undefined,
    hasExceptions: root.hasExceptions,
  };
  for await (const e of walkIter(inner)) {
    const host = join(src.path, e.rel);
    yield { rel: e.rel, host, info: Deno.lstatSync(host) };
  }
}

/**
 * Digest of what the sources hold: names, types, modes, owners, sizes, contents, link targets.
 * Each file's content enters as its own sha256, which `digests` (the store's metadata-keyed
 * cache, for the build context) gives without reading a file that has not changed.
 */
export async function sourcesDigest(
  root: SourceRoot,
  sources: readonly Source[],
  digests?: FileDigests,
): Promise<string> {
  const h = createHash("sha256");
  for (const src of sources) {
    h.update(`source ${src.rel} ${src.isDir ? "dir" : "file"}\n`);
    for await (const e of sourceEntriesIter(root, src)) {
      const i = e.info;
      h.update(`${e.rel}\0${i.mode}\0${i.uid}\0${i.gid}\0${i.size}\0`);
      if (i.isFile) {
        const digest = (path: string) => fileDigest(path, i.size);
        h.update(digests ? await digests.digest(e.host, digest) : await digest(e.host));
      } else if (i.isSymlink) h.update(await Deno.readLink(e.host));
      h.update("\n");
    }
  }
  digests?.flush();
  return `sha256:${h.digest("hex")}`;
}

/** Files up to this size are read with sync calls (cheaper than a stream; bounded memory). */
const WHOLE_READ_MAX = 256 << 10;
/** The buffer small files are read through (one digest at a time: each is synchronous). */
const smallBuffer = new Uint8Array(WHOLE_READ_MAX);

/** sha256 of a file's content: read whole when small, else streamed. */
async function fileDigest(path: string, size: number): Promise<string> {
  const h = createHash("sha256");
  if (size <= WHOLE_READ_MAX) {
    // Through one buffer for every small file: a new array per file is garbage that 10,000
    // files turn into tens of MB of peak memory before a collection frees it.
    using file = Deno.openSync(path);
    for (let n = file.readSync(smallBuffer); n !== null; n = file.readSync(smallBuffer)) {
      h.update(smallBuffer.subarray(0, n));
    }
    return h.digest("hex");
  }
  // One buffer for the whole file: no allocation per chunk, memory flat over any file size.
  using file = await Deno.open(path);
  const buf = new Uint8Array(1 << 20);
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
    h.update(buf.subarray(0, n));
  }
  return h.digest("hex");
}
