/**
 * Extracting a tar (`cp - CONTAINER:DIR`, which reads one from stdin) into a directory by fd
 * only. Every path of an entry is resolved below the directory with RESOLVE_BENEATH and
 * RESOLVE_NO_SYMLINKS, so an archive whose entry `a` is a symlink to `/etc` and whose next entry
 * is `a/passwd` is refused instead of writing the host's /etc/passwd; names with `..` or that
 * are absolute are taken relative to the directory and refused when they would leave it.
 * Owners, modes and times are the archive's (as docker's daemon extracts a `cp` tar).
 *
 * @module
 */
import {
  AT_SYMLINK_NOFOLLOW,
  close,
  fchmod,
  fchown,
  fchownat,
  futimens,
  linkat,
  makedev,
  mkdirat,
  mknodat,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  openat,
  openat2,
  RESOLVE_BENEATH,
  RESOLVE_NO_SYMLINKS,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  symlinkat,
  unlinkat,
  writeAll,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { TsboxError } from "../errors.ts";
import { decompressor } from "../image/decompress.ts";
import { type TarEntry, TarFormatError, TarReader } from "../image/tar.ts";

/** An archive entry that cannot be extracted where it says (a name leaving the directory). */
export class ArchiveEntryError extends TsboxError {
  constructor(readonly entry: string, reason: string) {
    super(`archive entry ${JSON.stringify(entry)} ${reason}`);
    this.name = "ArchiveEntryError";
  }
}

const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;

/**
 * The entry's path as parts below the directory, or undefined for the directory itself (`.`,
 * `./`). `..` that would leave the directory is refused.
 */
export function entryParts(name: string): string[] | undefined {
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") {
      if (parts.length === 0) throw new ArchiveEntryError(name, "leaves the archive");
      parts.pop();
    } else parts.push(p);
  }
  return parts.length ? parts : undefined;
}

function code(err: unknown): string | undefined {
  return err instanceof SyscallError ? err.code : undefined;
}

/** O_PATH fd of directory `parts` below `dir`, made (0755) where missing; never via a symlink. */
function openDirs(dir: number, parts: readonly string[], entry: string): number {
  let fd = openat2(dir, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0, BENEATH);
  try {
    for (const part of parts) {
      let next: number;
      try {
        next = openat2(fd, part, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, BENEATH);
      } catch (err) {
        if (code(err) === "ELOOP") {
          throw new ArchiveEntryError(entry, `goes through the symlink ${part}`);
        }
        if (code(err) !== "ENOENT") throw err;
        mkdirat(fd, part, 0o755);
        next = openat2(fd, part, O_PATH | O_DIRECTORY | O_CLOEXEC, 0, BENEATH);
      }
      close(fd);
      fd = next;
    }
    return fd;
  } catch (err) {
    close(fd);
    throw err;
  }
}

/** Removes what is at `name` in `dir` unless it is a directory (a file is replaced). */
function clear(dir: number, name: string): void {
  try {
    unlinkat(dir, name);
  } catch (err) {
    if (code(err) !== "ENOENT" && code(err) !== "EISDIR") throw err;
  }
}

async function extractEntry(dir: number, entry: TarEntry): Promise<string | undefined> {
  const h = entry.header;
  const parts = entryParts(h.name);
  if (!parts) return undefined; // the directory itself
  const name = parts.at(-1)!;
  const parent = openDirs(dir, parts.slice(0, -1), h.name);
  const mtime = { sec: h.mtime.sec, nsec: h.mtime.nsec };
  try {
    if (h.type === "directory") {
      try {
        mkdirat(parent, name, 0o700);
      } catch (err) {
        if (code(err) !== "EEXIST") throw err;
      }
      const fd = openat2(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, BENEATH);
      try {
        fchown(fd, h.uid, h.gid);
        fchmod(fd, h.mode & 0o7777);
        futimens(fd, mtime, mtime);
      } finally {
        close(fd);
      }
    } else if (h.type === "file") {
      clear(parent, name);
      const fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
      try {
        for await (const chunk of entry.chunks()) writeAll(fd, chunk);
        fchown(fd, h.uid, h.gid);
        fchmod(fd, h.mode & 0o7777); // after the chown, which clears set-id bits
        futimens(fd, mtime, mtime);
      } finally {
        close(fd);
      }
    } else if (h.type === "symlink") {
      clear(parent, name);
      symlinkat(h.linkname, parent, name);
      fchownat(parent, name, h.uid, h.gid, AT_SYMLINK_NOFOLLOW);
    } else if (h.type === "hardlink") {
      const target = entryParts(h.linkname);
      if (!target) throw new ArchiveEntryError(h.name, "links to the archive's root");
      const from = openDirs(dir, target.slice(0, -1), h.name);
      try {
        clear(parent, name);
        linkat(from, target.at(-1)!, parent, name);
      } finally {
        close(from);
      }
    } else {
      const kind = h.type === "fifo" ? S_IFIFO : h.type === "char" ? S_IFCHR : S_IFBLK;
      clear(parent, name);
      mknodat(parent, name, kind | (h.mode & 0o7777), makedev(h.devmajor, h.devminor));
      fchownat(parent, name, h.uid, h.gid, AT_SYMLINK_NOFOLLOW);
    }
  } finally {
    close(parent);
  }
  return parts[0];
}

/**
 * `stream` decompressed as its first bytes say (gzip or zstd; anything else is passed on as
 * it is), as docker's daemon takes a `cp` archive.
 */
export async function decompressed(
  stream: ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  const reader = stream.getReader();
  let head = new Uint8Array(0);
  while (head.length < 4) {
    const { value, done } = await reader.read();
    if (done) break;
    const joined = new Uint8Array(head.length + value.length);
    joined.set(head);
    joined.set(value, head.length);
    head = joined;
  }
  const kind = head[0] === 0x1f && head[1] === 0x8b
    ? "gzip"
    : head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd
    ? "zstd"
    : "none";
  const first = head;
  const whole = new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.length) controller.enqueue(first);
    },
    async pull(controller) {
      const { value, done } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return whole.pipeThrough(decompressor(kind));
}

/**
 * Extracts the tar `stream` (possibly gzip- or zstd-compressed) into directory fd `dir`.
 * Returns the top-level names it made, in the archive's order.
 */
export async function extractTar(
  stream: ReadableStream<Uint8Array>,
  dir: number,
): Promise<string[]> {
  const top: string[] = [];
  try {
    for await (const entry of new TarReader(await decompressed(stream))) {
      const first = await extractEntry(dir, entry);
      if (first !== undefined && !top.includes(first)) top.push(first);
    }
  } catch (err) {
    if (err instanceof TarFormatError) {
      throw new TsboxError(`source must be a (compressed) tar archive: ${err.message}`, {
        cause: err,
      });
    }
    throw err;
  }
  return top;
}
