/**
 * Unpacks one uncompressed layer tar into a directory laid out for overlayfs: OCI whiteouts
 * become 0/0 character devices, opaque markers become the `trusted.overlay.opaque` xattr
 * (`user.overlay.*` when rootless, for an overlay mounted with `userxattr`; whiteouts may then
 * also be xattr whiteouts, see {@link UnpackOptions}).
 *
 * A layer is hostile input. Every entry is placed with fd-relative calls:
 *
 * - Entry names are cleaned lexically as if rooted at `/` (`../x` and `/x` both mean `x`).
 * - The parent directory is resolved with `openat2(dirfd, parent, RESOLVE_IN_ROOT |
 *   RESOLVE_NO_MAGICLINKS)`: absolute symlinks and `..` met on the way are interpreted with the
 *   layer directory as `/`, exactly as they will be inside the container. Missing parents are
 *   created by a component-by-component walk with the same semantics.
 * - The final component is then created or changed relative to that parent fd, never followed
 *   (O_CREAT|O_EXCL|O_NOFOLLOW, AT_SYMLINK_NOFOLLOW, unlink-before-replace).
 *
 * We chose "keep it inside" (RESOLVE_IN_ROOT) over "fail on escape" (RESOLVE_BENEATH) because
 * it is the meaning a symlink in a root filesystem has (containerd and umoci resolve the same
 * way), so real images with absolute symlinks to their own directories unpack as they do there,
 * and a hostile entry can at worst write somewhere inside its own layer. Entries that have no
 * meaning inside the layer (replacing the layer root itself, whiteouts of `.` or `..`) fail
 * with {@link UnsafeLayerError} naming the entry.
 *
 * @module
 */
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  close,
  fchmod,
  fchmodat,
  fchown,
  fchownat,
  fsetxattr,
  fstatat,
  futimens,
  lgetxattr,
  linkat,
  lsetxattr,
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
  readlinkat,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  symlinkat,
  type Timespec,
  unlinkat,
  utimensat,
} from "../../ffi/fs.ts";
import { SyscallError } from "../../ffi/errors.ts";
import { TsboxError } from "../errors.ts";
import { StagedWriter } from "../store/staged_write.ts";
import { type TarEntry, type TarHeader, TarReader } from "./tar.ts";

/** How to unpack. */
export interface UnpackOptions {
  /**
   * Not running as root: ownership is not applied, device nodes other than whiteouts are
   * skipped, and opaque directories are marked with `user.overlay.opaque` (what an overlay
   * mounted with `userxattr` reads) instead of `trusted.overlay.opaque`.
   */
  rootless?: boolean;
  /**
   * Write whiteouts as overlayfs' "xattr whiteouts" (kernel 6.7+): a zero-size file carrying
   * `<ns>.overlay.whiteout`, its directory marked `<ns>.overlay.opaque=x`. Used by a rootless
   * unpack anyway where the kernel refuses a 0/0 character device (no whiteout exception for
   * unprivileged mknod, or a filesystem without it).
   */
  xattrWhiteouts?: boolean;
  /**
   * Called before each entry is made (`inodes` 1) and before each chunk of file content is
   * written (`bytes`), with the entry's name. Throwing stops the unpack with that error; pull
   * uses it to keep a floor of free space on the disk.
   */
  reserve?: (bytes: number, inodes: number, entry: string) => void;
}

/** What an unpack did. */
export interface UnpackStats {
  /** Size of the uncompressed tar stream in bytes (all of it, including end padding). */
  bytes: number;
  /** Entries applied: files, directories, links, nodes and whiteouts. */
  files: number;
}

/** A layer entry could not be applied; `entry` is its name as stored in the tar. */
export class LayerError extends TsboxError {
  constructor(readonly entry: string, message: string, options?: ErrorOptions) {
    super(`layer entry ${JSON.stringify(entry)}: ${message}`, options);
    this.name = "LayerError";
  }
}

/** A layer entry that has no meaning inside the layer directory and was refused. */
export class UnsafeLayerError extends LayerError {
  constructor(entry: string, message: string) {
    super(entry, message);
    this.name = "UnsafeLayerError";
  }
}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
const RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
const MAX_SYMLINKS = 40;

/**
 * Unpacks the uncompressed layer `tar` into `dir`, an existing empty directory. Reads the stream
 * to its end. Throws {@link LayerError} / {@link UnsafeLayerError} naming the entry that failed,
 * or a TarFormatError for a malformed archive; `dir` is then left partly filled.
 */
export async function unpackLayer(
  tar: ReadableStream<Uint8Array>,
  dir: string,
  options: UnpackOptions = {},
): Promise<UnpackStats> {
  const reader = new TarReader(tar);
  const root = openat(AT_FDCWD, dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  let unpacker: Unpacker | undefined;
  try {
    unpacker = new Unpacker(root, options);
    for await (const entry of reader) {
      try {
        await unpacker.apply(entry);
      } catch (err) {
        if (err instanceof SyscallError) {
          throw new LayerError(entry.header.name, err.message, { cause: err });
        }
        throw err;
      }
    }
    unpacker.finishDirectories();
    return { bytes: reader.bytesRead, files: unpacker.files };
  } finally {
    unpacker?.dropParent();
    close(root);
  }
}

let umask: number | undefined;
let rootProcess: boolean | undefined;

/** The process's umask, read once (reading it sets it for a moment: see umask(2)). */
function processUmask(): number {
  return umask ??= Deno.umask();
}

/** Whether files this process creates are root's (uid and gid 0). */
function processIsRoot(): boolean {
  return rootProcess ??= Deno.uid() === 0 && Deno.gid() === 0;
}

/** Cleans a tar path lexically as if rooted at `/`: no empty, `.` or `..` components remain. */
export function cleanPath(name: string): string[] {
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return parts;
}

interface DirMeta {
  mode: number;
  atime: Timespec;
  mtime: Timespec;
  ino: bigint;
}

class Unpacker {
  files = 0;
  /** Directories whose mode and times are set last: creating entries in them changes mtime. */
  #dirs = new Map<string, DirMeta>();
  #haveOpenat2 = true;
  #xattrWhiteouts: boolean;
  /** Directories (by inode) marked opaque "y": an xattr whiteout must not weaken that to "x". */
  #opaque = new Set<bigint>();
  /**
   * Whiteouts made so far (rootless), by directory inode. Whiteouts in an opaque directory are
   * redundant, and overlayfs lists them there (readdir of a directory no lower layer adds to is
   * passed through unfiltered; an xattr whiteout is not even recognised, opaque "y" leaving no
   * room for "x"), so the opaque marker removes them and later ones are not made.
   */
  #whiteouts = new Map<bigint, Set<string>>();
  /** File contents go out in few large writes. */
  #staged = new StagedWriter();
  /**
   * The parent directory of the last file or symlink, kept open for the next one (a layer
   * lists a directory's files one after the other): two system calls fewer per file. Resolved
   * inside the root like any parent; it is dropped before any entry other than a file or a
   * symlink, and whenever something existing is removed or replaced, which are the only ways
   * a later resolution of the same path could reach another directory. Creating new names
   * never changes where an existing path leads.
   */
  #parent: { path: string; fd: number } | undefined;
  /** Something was removed since {@link #parent} was opened: reopen it for the next entry. */
  #parentStale = false;

  constructor(readonly root: number, readonly options: UnpackOptions) {
    this.#xattrWhiteouts = options.xattrWhiteouts ?? false;
  }

  get #ns(): string {
    return this.options.rootless ? "user" : "trusted";
  }

  async apply(entry: TarEntry): Promise<void> {
    const h = entry.header;
    this.options.reserve?.(0, 1, h.name);
    const parts = cleanPath(h.name);
    const base = parts.at(-1);
    const fileOrLink = (h.type === "file" || h.type === "symlink") && base !== undefined &&
      !base.startsWith(WHITEOUT);
    // Any other entry may remove or replace what the kept parent's path went through.
    if (!fileOrLink) this.dropParent();
    if (base?.startsWith(WHITEOUT)) return this.#whiteout(h, parts, base);
    if (base === undefined) {
      if (h.type !== "directory") {
        throw new UnsafeLayerError(h.name, `a ${h.type} cannot replace the layer's root`);
      }
      this.#directoryMeta(h, this.root, ".", "");
      this.files++;
      return;
    }
    if (h.type === "block" || h.type === "char") {
      if (this.options.rootless) return;
    }
    if (fileOrLink) {
      const parent = this.#keptParent(h.name, parts);
      if (h.type === "file") await this.#file(entry, parent, base);
      else this.#symlink(h, parent, base);
      this.files++;
      return;
    }
    const parent = this.#openParent(h.name, parts, true);
    try {
      if (h.type === "hardlink") {
        this.#hardlink(h, parts, parent, base);
      } else if (h.type === "directory") {
        if (this.#clear(parent, base, true) !== "dir") mkdirat(parent, base, 0o700);
        this.#directoryMeta(h, parent, base, parts.join("/"));
      } else {
        this.#clear(parent, base, false);
        this.#node(h, parent, base);
      }
      this.files++;
    } finally {
      if (parent !== this.root) close(parent);
    }
  }

  /** The entry's parent directory through {@link #parent}: opened when it is another one. */
  #keptParent(entry: string, parts: string[]): number {
    if (parts.length === 1) return this.root;
    const path = parts.slice(0, -1).join("/");
    if (this.#parent?.path === path && !this.#parentStale) return this.#parent.fd;
    this.dropParent();
    const fd = this.#openParent(entry, parts, true);
    this.#parent = { path, fd };
    return fd;
  }

  /** Closes the kept parent directory (see {@link #parent}). */
  dropParent(): void {
    this.#parentStale = false;
    if (this.#parent === undefined) return;
    const { fd } = this.#parent;
    this.#parent = undefined;
    close(fd);
  }

  /**
   * Runs `make`, which creates `name` in `parent` with O_EXCL semantics; when the name is taken
   * (EEXIST), removes what is there (see {@link #clear}) and runs it again. A new name, the
   * common case, costs no lookup before.
   */
  #create<T>(parent: number, name: string, make: () => T): T {
    try {
      return make();
    } catch (err) {
      if (!(err instanceof SyscallError) || err.code !== "EEXIST") throw err;
    }
    this.#clear(parent, name, false);
    return make();
  }

  /** Applies the deferred modes and mtimes of directories. */
  finishDirectories(): void {
    for (const [path, meta] of this.#dirs) {
      let fd: number;
      try {
        fd = this.#resolve(path === "" ? "." : path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
      } catch (err) {
        // Replaced by a later entry of the same layer: its metadata no longer applies.
        if (err instanceof SyscallError) continue;
        throw err;
      }
      try {
        if (fstatat(fd, "", AT_EMPTY_PATH).ino !== meta.ino) continue;
        fchmod(fd, meta.mode);
        futimens(fd, meta.atime, meta.mtime);
      } catch (err) {
        if (err instanceof SyscallError) throw new LayerError(path, err.message, { cause: err });
        throw err;
      } finally {
        close(fd);
      }
    }
  }

  #resolve(path: string, flags: number): number {
    for (let attempt = 0;; attempt++) {
      try {
        return openat2(this.root, path, flags | O_CLOEXEC, 0, RESOLVE);
      } catch (err) {
        // EAGAIN: the kernel saw a concurrent rename while resolving in-root; try again.
        if (err instanceof SyscallError && err.code === "EAGAIN" && attempt < 8) continue;
        throw err;
      }
    }
  }

  /** An O_PATH fd of the entry's parent directory, resolved inside the root. */
  #openParent(entry: string, parts: string[], create: boolean): number {
    if (parts.length === 1) return this.root;
    const parent = parts.slice(0, -1);
    if (this.#haveOpenat2) {
      try {
        return this.#resolve(parent.join("/"), O_PATH | O_DIRECTORY);
      } catch (err) {
        if (!(err instanceof SyscallError)) throw err;
        if (err.code === "ENOSYS") this.#haveOpenat2 = false;
        else if (err.code !== "ENOENT" || !create) throw err;
      }
    }
    return this.#walk(entry, parent, create);
  }

  /**
   * Resolves `components` from the root one at a time, following symlinks with the root as `/`
   * (as RESOLVE_IN_ROOT does) and creating missing directories when `create` is set.
   */
  #walk(entry: string, components: string[], create: boolean): number {
    const stack = [this.root];
    const queue = [...components];
    let links = 0;
    try {
      while (queue.length > 0) {
        const c = queue.shift()!;
        if (c === "" || c === ".") continue;
        if (c === "..") {
          if (stack.length > 1) close(stack.pop()!);
          continue;
        }
        const cur = stack[stack.length - 1];
        let type: number;
        try {
          type = fstatat(cur, c, AT_SYMLINK_NOFOLLOW).mode & S_IFMT;
        } catch (err) {
          if (!(err instanceof SyscallError) || err.code !== "ENOENT" || !create) throw err;
          mkdirat(cur, c, 0o755);
          type = S_IFDIR;
        }
        if (type === S_IFLNK) {
          if (++links > MAX_SYMLINKS) {
            throw new LayerError(entry, "too many levels of symbolic links in its path");
          }
          const target = readlinkat(cur, c);
          if (target.startsWith("/")) { while (stack.length > 1) close(stack.pop()!); }
          queue.unshift(...target.split("/"));
        } else if (type === S_IFDIR) {
          stack.push(openat(cur, c, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        } else {
          throw new LayerError(entry, `a parent (${c}) is not a directory`);
        }
      }
      return stack.pop()!;
    } finally {
      for (const fd of stack) if (fd !== this.root) close(fd);
    }
  }

  /**
   * Makes room for a new entry `name` in `parent`: removes what is there, except an existing
   * directory when `keepDir` is set (a directory entry over a directory merges). Returns "dir"
   * when a directory was kept.
   */
  #clear(parent: number, name: string, keepDir: boolean): "dir" | null {
    let type: number;
    try {
      type = fstatat(parent, name, AT_SYMLINK_NOFOLLOW).mode & S_IFMT;
    } catch (err) {
      if (err instanceof SyscallError && err.code === "ENOENT") return null;
      throw err;
    }
    // Something existing goes: the kept parent may be in use (it is `parent` itself for a file
    // or symlink entry), so it is closed before the next entry rather than now.
    if (type !== S_IFDIR) {
      this.#parentStale = true;
      unlinkat(parent, name);
      return null;
    }
    if (keepDir) return "dir";
    this.#parentStale = true;
    // The parent is pinned by its fd; Deno's recursive remove does not follow symlinks inside.
    Deno.removeSync(`/proc/self/fd/${parent}/${name}`, { recursive: true });
    return null;
  }

  async #file(entry: TarEntry, parent: number, name: string): Promise<void> {
    const h = entry.header;
    // Two system calls fewer for the common file (root's, 0644 or 0755), with the same result:
    // made by root, a file is root's already (no directory is setgid while the unpack runs:
    // directories get their modes at the end), and a mode that has no special bits and that
    // the umask leaves whole can be given at creation.
    const plainMode = (h.mode & ~0o777) === 0 && (h.mode & processUmask()) === 0;
    const ownedAlready = h.uid === 0 && h.gid === 0 && processIsRoot();
    const fd = this.#create(
      parent,
      name,
      () =>
        openat(
          parent,
          name,
          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
          plainMode ? h.mode : 0o600,
        ),
    );
    try {
      for await (const chunk of entry.chunks()) {
        this.options.reserve?.(chunk.byteLength, 0, h.name);
        this.#staged.write(fd, chunk);
      }
      this.#staged.flush(fd);
      if (!this.options.rootless && !ownedAlready) fchown(fd, h.uid, h.gid);
      // After chown, which clears setuid/setgid.
      if (!plainMode) fchmod(fd, h.mode);
      this.#xattrs(h, (k, v) => fsetxattr(fd, k, v));
      futimens(fd, h.atime ?? h.mtime, h.mtime);
    } finally {
      this.#staged.reset();
      close(fd);
    }
  }

  #symlink(h: TarHeader, parent: number, name: string): void {
    this.#create(parent, name, () => symlinkat(h.linkname, parent, name));
    if (!this.options.rootless) fchownat(parent, name, h.uid, h.gid, AT_SYMLINK_NOFOLLOW);
    this.#xattrs(h, (k, v) => lsetxattr(`/proc/self/fd/${parent}/${name}`, k, v));
    utimensat(parent, name, h.atime ?? h.mtime, h.mtime, AT_SYMLINK_NOFOLLOW);
  }

  #node(h: TarHeader, parent: number, name: string): void {
    const kind = h.type === "char" ? S_IFCHR : h.type === "block" ? S_IFBLK : S_IFIFO;
    const dev = kind === S_IFIFO ? 0n : makedev(h.devmajor, h.devminor);
    mknodat(parent, name, kind | 0o600, dev);
    if (!this.options.rootless) fchownat(parent, name, h.uid, h.gid, AT_SYMLINK_NOFOLLOW);
    fchmodat(parent, name, h.mode, AT_SYMLINK_NOFOLLOW);
    this.#xattrs(h, (k, v) => lsetxattr(`/proc/self/fd/${parent}/${name}`, k, v));
    utimensat(parent, name, h.atime ?? h.mtime, h.mtime, AT_SYMLINK_NOFOLLOW);
  }

  #hardlink(h: TarHeader, parts: string[], parent: number, name: string): void {
    const target = cleanPath(h.linkname);
    if (target.length === 0) {
      throw new UnsafeLayerError(h.name, "a hard link to the layer's root");
    }
    if (target.join("/") === parts.join("/")) return; // a link to itself changes nothing
    const targetParent = this.#openParent(h.name, target, false);
    try {
      // Fails before anything is removed if the target is missing.
      fstatat(targetParent, target[target.length - 1], AT_SYMLINK_NOFOLLOW);
      this.#clear(parent, name, false);
      // Flags 0: a symlink target is linked itself, never followed.
      linkat(targetParent, target[target.length - 1], parent, name, 0);
    } finally {
      if (targetParent !== this.root) close(targetParent);
    }
  }

  #directoryMeta(h: TarHeader, parent: number, name: string, path: string): void {
    const fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    try {
      if (!this.options.rootless) fchown(fd, h.uid, h.gid);
      this.#xattrs(h, (k, v) => fsetxattr(fd, k, v));
      const ino = fstatat(fd, "", AT_EMPTY_PATH).ino;
      // Owner write and search until the end, so that a rootless unpack can fill it.
      if (this.options.rootless) fchmod(fd, h.mode | 0o700);
      this.#dirs.set(path, { mode: h.mode, atime: h.atime ?? h.mtime, mtime: h.mtime, ino });
    } finally {
      close(fd);
    }
  }

  #whiteout(h: TarHeader, parts: string[], base: string): void {
    if (base.startsWith(WHITEOUT + WHITEOUT) && base !== OPAQUE) return; // aufs metadata
    const parent = this.#openParent(h.name, parts, true);
    try {
      if (base === OPAQUE) {
        const dir = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        try {
          fsetxattr(dir, `${this.#ns}.overlay.opaque`, new TextEncoder().encode("y"));
          const ino = fstatat(dir, "", AT_EMPTY_PATH).ino;
          this.#opaque.add(ino);
          if (this.options.rootless) {
            for (const name of this.#whiteouts.get(ino) ?? []) this.#dropWhiteout(dir, name);
            this.#whiteouts.delete(ino);
          }
        } finally {
          close(dir);
        }
      } else {
        const name = base.slice(WHITEOUT.length);
        if (name === "" || name === "." || name === "..") {
          throw new UnsafeLayerError(h.name, `a whiteout of ${JSON.stringify(name)}`);
        }
        this.#clear(parent, name, false);
        this.#whiteoutNode(parent, name);
      }
      this.files++;
    } finally {
      if (parent !== this.root) close(parent);
    }
  }

  /** Removes whiteout `name` of `dir` unless a later entry replaced it. */
  #dropWhiteout(dir: number, name: string): void {
    let st;
    try {
      st = fstatat(dir, name, AT_SYMLINK_NOFOLLOW);
    } catch (err) {
      if (err instanceof SyscallError && err.code === "ENOENT") return;
      throw err;
    }
    const type = st.mode & S_IFMT;
    const device = type === S_IFCHR && st.rdevMajor === 0 && st.rdevMinor === 0;
    const xattr = type === S_IFREG && st.size === 0 &&
      lgetxattr(`/proc/self/fd/${dir}/${name}`, `${this.#ns}.overlay.whiteout`) !== null;
    if (device || xattr) unlinkat(dir, name);
  }

  #whiteoutNode(parent: number, name: string): void {
    if (this.options.rootless) {
      const dirIno = fstatat(parent, "", AT_EMPTY_PATH).ino;
      if (this.#opaque.has(dirIno)) return;
      const made = this.#whiteouts.get(dirIno) ?? new Set<string>();
      this.#whiteouts.set(dirIno, made.add(name));
    }
    if (!this.#xattrWhiteouts) {
      try {
        mknodat(parent, name, S_IFCHR, makedev(0, 0));
        return;
      } catch (err) {
        if (!this.options.rootless || !(err instanceof SyscallError) || err.code !== "EPERM") {
          throw err;
        }
        this.#xattrWhiteouts = true;
      }
    }
    const fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600);
    try {
      fsetxattr(fd, `${this.#ns}.overlay.whiteout`, new TextEncoder().encode("y"));
    } finally {
      close(fd);
    }
    const dir = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    try {
      // "x": this directory holds xattr whiteouts (overlayfs only looks for them there).
      fsetxattr(dir, `${this.#ns}.overlay.opaque`, new TextEncoder().encode("x"));
    } finally {
      close(dir);
    }
  }

  /** Sets the entry's xattrs, except overlayfs' own, which a layer must not forge. */
  #xattrs(h: TarHeader, set: (name: string, value: Uint8Array) => void): void {
    for (const [name, value] of h.xattrs) {
      if (name.startsWith("trusted.overlay.") || name.startsWith("user.overlay.")) continue;
      try {
        set(name, value);
      } catch (err) {
        if (!(err instanceof SyscallError)) throw err;
        // The filesystem has no such namespace (e.g. security.selinux without SELinux).
        if (err.code === "EOPNOTSUPP" || err.code === "ENOTSUP") continue;
        if (this.options.rootless && err.code === "EPERM") continue;
        throw err;
      }
    }
  }
}
