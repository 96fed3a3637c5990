/**
 * Carrying out COPY/ADD into a stage's mounted root filesystem: destination rules as docker's
 * (a trailing `/` or several sources mean a directory; a directory source copies its contents),
 * every destination path resolved inside the rootfs so image symlinks cannot lead outside it,
 * owners set from `--chown` (root otherwise), modes kept or set from `--chmod`, times kept.
 * ADD also unpacks local tar archives (plain or gzip) into the destination directory.
 *
 * @module
 */
import { posix } from "node:path";
import { AT_FDCWD, AT_SYMLINK_NOFOLLOW, fchownat } from "../../ffi/fs.ts";
import { decompressor } from "../image/decompress.ts";
import { unpackLayer } from "../image/unpack.ts";
import { TsboxError } from "../errors.ts";
import { resolveInRoot } from "../runtime/rootfs.ts";
import { type Source, sourceEntriesIter, type SourceRoot } from "./context.ts";

/** Ownership and mode applied to what is copied. */
export interface CopyOptions {
  /** Owner for every copied entry and created directory; root when unset. */
  readonly owner?: { uid: number; gid: number };
  /** `--chmod` bits for every copied entry. */
  readonly mode?: number;
  /** ADD: unpack local tar archives. */
  readonly extract?: boolean;
  /**
   * The upper directory of the overlay mounted at the rootfs, when it is one. What goes into a
   * directory this copy made is written there directly: such a directory exists in the upper
   * directory alone (a step's upper starts empty), the overlay passes it through, and nothing
   * has looked up the new names through the overlay before they exist. An overlay create
   * costs about twice the upper filesystem's, and copy_file_range cannot cross from the
   * context into an overlay (EXDEV): a COPY of 10,000 files took 1.8 times as long.
   */
  readonly upper?: string;
}

/** A COPY/ADD that cannot be carried out as written. */
export class CopyError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "CopyError";
  }
}

function lstat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

function lchown(path: string, uid: number, gid: number): void {
  fchownat(AT_FDCWD, path, uid, gid, AT_SYMLINK_NOFOLLOW);
}

/**
 * Directories one copy has already made or resolved, container path to host path: a COPY of
 * 10,000 files into a few directories resolves each directory once, not once per file (each
 * resolution is an lstat per path component). Valid while nothing else changes the rootfs.
 */
export type KnownDirs = Map<string, string>;

/**
 * Creates container directory `path` (and missing parents) inside `rootfs`; returns its host
 * path. Created directories get mode 0755 and `owner`.
 */
export function mkdirInRoot(
  rootfs: string,
  path: string,
  owner?: { uid: number; gid: number },
  known?: KnownDirs,
  made?: Set<string>,
): string {
  const parts = posix.normalize(path).split("/").filter(Boolean);
  let current = "/";
  let host = rootfs;
  for (const part of parts) {
    current = posix.join(current, part);
    const seen = known?.get(current);
    if (seen !== undefined) {
      host = seen;
      continue;
    }
    host = resolveInRoot(rootfs, current);
    const info = lstat(host);
    if (!info) {
      Deno.mkdirSync(host, { mode: 0o755 });
      Deno.chmodSync(host, 0o755);
      if (owner) lchown(host, owner.uid, owner.gid);
      made?.add(host);
    } else if (!info.isDirectory) {
      throw new CopyError(`cannot create directory ${current}: a file is in the way`);
    }
    known?.set(current, host);
  }
  return host;
}

/** The host path where container path `path` is created: its parent resolved, the name not. */
function placeInRoot(
  rootfs: string,
  path: string,
  owner?: { uid: number; gid: number },
  known?: KnownDirs,
): string {
  const parent = mkdirInRoot(rootfs, posix.dirname(path), owner, known);
  return `${parent}/${posix.basename(path)}`;
}

function isDirInRoot(rootfs: string, path: string): boolean {
  return lstat(resolveInRoot(rootfs, path))?.isDirectory ?? false;
}

/** Copies `sources` to container path `dest` (absolute) inside `rootfs`. */
export async function copyInto(
  rootfs: string,
  root: SourceRoot,
  sources: readonly Source[],
  dest: string,
  options: CopyOptions,
): Promise<void> {
  const destIsDir = dest.endsWith("/") || sources.length > 1;
  // Files of one COPY that are hard links of each other stay so in the image (docker's).
  const links: HardLinks = new Map();
  const known: KnownDirs = new Map();
  for (const src of sources) {
    if (src.isDir) {
      // Directories this source's walk made: a walk names each entry once, so nothing can be
      // in the way in them (no lstat, which for a new file is a NotFound error thrown and
      // caught: 10,000 of them were a tenth of a big COPY).
      const fresh = new Set<string>();
      mkdirInRoot(rootfs, dest, options.owner, known, fresh);
      for await (const e of sourceEntriesIter(root, src)) {
        await placeEntry(
          rootfs,
          posix.join(dest, e.rel),
          e.host,
          e.info,
          options,
          known,
          links,
          fresh,
        );
      }
      continue;
    }
    if (options.extract && await isTarArchive(src.path)) {
      const dir = mkdirInRoot(rootfs, dest, options.owner);
      await extractArchive(src.path, dir);
      continue;
    }
    const target = destIsDir || isDirInRoot(rootfs, dest) ? posix.join(dest, src.name) : dest;
    if (destIsDir) mkdirInRoot(rootfs, dest, options.owner, known);
    await placeEntry(rootfs, target, src.path, await Deno.lstat(src.path), options, known, links);
  }
}

/** Writes inline content (a COPY heredoc) to container path `dest`. */
export async function writeInto(
  rootfs: string,
  dest: string,
  content: string,
  options: CopyOptions,
): Promise<void> {
  const host = placeInRoot(rootfs, dest, options.owner);
  const existing = lstat(host);
  if (existing?.isDirectory) throw new CopyError(`cannot overwrite directory ${dest} with a file`);
  if (existing) await Deno.remove(host);
  await Deno.writeTextFile(host, content, { mode: 0o644 });
  // Owner before mode: chown clears a file's setuid and setgid bits, even root's.
  if (options.owner) lchown(host, options.owner.uid, options.owner.gid);
  await Deno.chmod(host, options.mode ?? 0o644);
}

/** Where (in the rootfs) a source inode (`dev:ino`) with more than one link was first placed. */
type HardLinks = Map<string, string>;

async function placeEntry(
  rootfs: string,
  path: string,
  from: string,
  info: Deno.FileInfo,
  options: CopyOptions,
  known?: KnownDirs,
  links?: HardLinks,
  fresh?: Set<string>,
): Promise<void> {
  const host = placeInRoot(rootfs, path, options.owner, known);
  const inFresh = fresh?.has(host.slice(0, host.lastIndexOf("/"))) ?? false;
  const existing = inFresh ? undefined : lstat(host);
  // In a directory this copy made: written into the upper directory itself (CopyOptions.upper).
  const direct = inFresh && options.upper !== undefined && host.startsWith(`${rootfs}/`);
  const at = direct ? `${options.upper}${host.slice(rootfs.length)}` : host;
  const uid = options.owner?.uid ?? 0;
  const gid = options.owner?.gid ?? 0;
  const mode = options.mode ?? ((info.mode ?? 0o644) & 0o7777);
  if (info.isDirectory) {
    if (existing && !existing.isDirectory) await Deno.remove(host);
    if (!existing?.isDirectory) {
      Deno.mkdirSync(at);
      fresh?.add(host);
    }
    Deno.chmodSync(at, mode);
    lchown(at, uid, gid);
    if (info.mtime) Deno.utimeSync(at, info.atime ?? info.mtime, info.mtime);
    known?.set(posix.normalize(path), host);
    return;
  }
  if (existing?.isDirectory) {
    throw new CopyError(`cannot overwrite directory ${path} with non-directory ${from}`);
  }
  if (existing) await Deno.remove(host);
  if (info.isSymlink) {
    await Deno.symlink(await Deno.readLink(from), at);
    lchown(at, uid, gid);
    return;
  }
  if (!info.isFile) return; // devices, fifos and sockets in a context are not copied
  // Sync calls (one thread hop each otherwise, per file); the copy is copy_file_range, done
  // by the kernel without the bytes passing through JS. The parent exists (placeInRoot).
  const inode = (info.nlink ?? 1) > 1 ? `${info.dev}:${info.ino}` : undefined;
  const first = inode !== undefined ? links?.get(inode) : undefined;
  if (first !== undefined && (!direct || first.startsWith(`${rootfs}/`))) {
    // A link cannot join the overlay and its upper directory: both names on the same side.
    // The first is in the upper directory under the same name either way (a file this step
    // made, by either path).
    Deno.linkSync(direct ? `${options.upper}${first.slice(rootfs.length)}` : first, at);
    return;
  }
  if (inode !== undefined) links?.set(inode, host);
  Deno.copyFileSync(from, at);
  // Owner before mode: chown clears a file's setuid and setgid bits, even root's (docker's
  // COPY keeps them).
  lchown(at, uid, gid);
  Deno.chmodSync(at, mode);
  if (info.mtime) Deno.utimeSync(at, info.atime ?? info.mtime, info.mtime);
}

/** Whether a file starts like a tar archive, plain or gzip-compressed. */
async function isTarArchive(path: string): Promise<boolean> {
  const file = await Deno.open(path);
  try {
    const head = new Uint8Array(512);
    let got = 0;
    while (got < head.length) {
      const n = await file.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
    if (got >= 2 && head[0] === 0x1f && head[1] === 0x8b) return true;
    return got >= 262 && new TextDecoder().decode(head.subarray(257, 262)) === "ustar";
  } finally {
    file.close();
  }
}

async function extractArchive(path: string, dir: string): Promise<void> {
  const file = await Deno.open(path);
  const head = new Uint8Array(2);
  await file.read(head);
  await file.seek(0, Deno.SeekMode.Start);
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  const stream = file.readable.pipeThrough(decompressor(gz ? "gzip" : "none"));
  await unpackLayer(stream, dir);
}
