/**
 * The OCI tar of a directory in overlay form (a build step's upper dir, or a built layer's
 * directory in the store): hard links, fifos, device nodes and xattrs kept, as docker's layers
 * keep them; 0/0 character devices become `.wh.NAME` whiteouts and `trusted.overlay.opaque=y`
 * directories get `.wh..wh..opq`. Entries come in byte-sorted order with owners and
 * modification times, so the same tree always gives the same bytes: a built layer's tar is made
 * again from its directory when pushed or saved, and must hash to the diffID it was built with.
 *
 * @module
 */
import { join } from "node:path";
import { lgetxattr, llistxattr, lremovexattr } from "../../ffi/fs.ts";
import type { TarWriterEntry } from "./tar_writer.ts";

function sortedNames(dir: string): string[] {
  const names: string[] = [];
  // Sync calls: a layer of many small files costs one thread hop per call otherwise.
  for (const e of Deno.readDirSync(dir)) names.push(e.name);
  // Byte order, as Go's sort of strings: stable across locales.
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function isOpaque(path: string): boolean {
  const v = lgetxattr(path, "trusted.overlay.opaque");
  return v !== null && new TextDecoder().decode(v) === "y";
}

/**
 * overlayfs' own xattrs (origin, impure, redirect, the opaque marker): they describe the upper
 * dir to the overlay that made it, never a file of the image, so no layer carries them.
 */
function isOverlayXattr(name: string): boolean {
  return name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.");
}

/** Options of {@link diffEntries}. */
export interface DiffOptions {
  /**
   * Remove overlayfs' xattrs other than the opaque marker from the walked tree as it goes, so
   * that the directory can serve as the layer's own (an overlay lower must not carry an upper's
   * origin or redirect marks).
   */
  readonly scrub?: boolean;
  /**
   * Read every file body into this one buffer (no allocation per chunk, so memory stays flat
   * over any amount of data). Only for a consumer that is done with each chunk before it asks
   * for the next, as {@link tarDigest} is; a stream may hold chunks and must not use it.
   */
  readonly sharedBuffer?: Uint8Array;
}

/** The xattrs a layer entry carries, sorted by name; overlay's own left out (or scrubbed). */
function entryXattrs(path: string, scrub: boolean): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  for (const name of llistxattr(path)) {
    if (isOverlayXattr(name)) {
      if (scrub && !name.endsWith(".overlay.opaque")) lremovexattr(path, name);
      continue;
    }
    const value = lgetxattr(path, name);
    if (value !== null) out.push([name, value]);
  }
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Linux's encoding of a device number (glibc's gnu_dev_major/minor). */
function devParts(rdev: number): { devmajor: number; devminor: number } {
  const dev = BigInt(rdev);
  return {
    devmajor: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)),
    devminor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)),
  };
}

/**
 * The OCI tar entries of an overlay upper directory (or of a layer directory in the same
 * form), parents before children. A file with several links is written once, at its first name
 * in walk order; its other names are hard link entries pointing there.
 */
export async function* diffEntries(
  upper: string,
  options: DiffOptions = {},
): AsyncGenerator<TarWriterEntry> {
  yield* walk(upper, "", options, new Map());
}

async function* walk(
  upper: string,
  prefix: string,
  options: DiffOptions,
  /** First archive name of each multiply-linked inode seen, by `dev:ino`. */
  links: Map<string, string>,
): AsyncGenerator<TarWriterEntry> {
  for (const name of sortedNames(join(upper, prefix))) {
    const rel = prefix ? `${prefix}/${name}` : name;
    const path = join(upper, rel);
    const info = Deno.lstatSync(path);
    const mode = (info.mode ?? 0) & 0o7777;
    const owner = { uid: info.uid ?? 0, gid: info.gid ?? 0 };
    const mtime = Math.floor((info.mtime?.getTime() ?? 0) / 1000);
    if (info.isCharDevice && (info.rdev ?? 0) === 0) {
      const wh = prefix ? `${prefix}/.wh.${name}` : `.wh.${name}`;
      yield { type: "file", name: wh, size: 0, body: new Uint8Array(), mode: 0o644, mtime };
      continue;
    }
    if (info.isSocket) continue; // a socket is a live endpoint, not content (docker skips them)
    const common = { name: rel, mode, mtime, ...owner };
    if (!info.isDirectory && (info.nlink ?? 1) > 1) {
      const key = `${info.dev}:${info.ino}`;
      const first = links.get(key);
      if (first !== undefined) {
        yield { ...common, type: "hardlink", target: first };
        continue;
      }
      links.set(key, rel);
    }
    const xattrs = entryXattrs(path, options.scrub ?? false);
    if (info.isDirectory) {
      yield { ...common, type: "directory", xattrs };
      if (isOpaque(path)) {
        yield { type: "file", name: `${rel}/.wh..wh..opq`, size: 0, body: new Uint8Array(), mtime };
      }
      yield* walk(upper, rel, options, links);
    } else if (info.isSymlink) {
      yield { ...common, type: "symlink", target: await Deno.readLink(path), xattrs };
    } else if (info.isFile) {
      const body = fileBody(path, info.size, options.sharedBuffer);
      yield { ...common, type: "file", size: info.size, body, xattrs };
    } else if (info.isFifo) {
      yield { ...common, type: "fifo", xattrs };
    } else if (info.isCharDevice || info.isBlockDevice) {
      const type = info.isCharDevice ? "char" as const : "block" as const;
      yield { ...common, type, ...devParts(info.rdev ?? 0), xattrs };
    }
  }
}

/**
 * Files up to this size are read in one call: a stream per file costs more than reading it
 * (a context of 10,000 small files), and memory stays bounded by this size.
 */
const WHOLE_READ_MAX = 256 << 10;

/** A file's bytes, opened only when the tar writer reaches it (one file open at a time). */
async function* fileBody(
  path: string,
  size: number,
  shared?: Uint8Array,
): AsyncGenerator<Uint8Array> {
  if (shared) {
    using file = Deno.openSync(path);
    for (;;) {
      const n = file.readSync(shared);
      if (n === null) return;
      yield shared.subarray(0, n);
    }
  }
  if (size <= WHOLE_READ_MAX) {
    // Its size is checked by the tar writer against the header: a file that grew or shrank
    // since its lstat fails the archive.
    yield Deno.readFileSync(path);
    return;
  }
  // The readable closes the file at its end, or when the writer stops reading.
  yield* (await Deno.open(path)).readable;
}
