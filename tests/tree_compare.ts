/**
 * Walks directory trees with lstat (never following symlinks) and compares them: for checking an
 * unpacked or mounted rootfs against one produced by an independent tool, and for proving that
 * a directory was left untouched.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { lgetxattr, llistxattr } from "../ffi/fs.ts";

/** What is recorded of one path. */
export interface TreeEntry {
  /** "file", "dir", "symlink", "fifo", "char", "block", "socket". */
  type: string;
  /** Permission bits including setuid/setgid/sticky. */
  mode: number;
  /** Owner. */
  uid: number;
  /** Group. */
  gid: number;
  /** Size of files, 0 for others. */
  size: number;
  /** Modification time in milliseconds (only when requested). */
  mtime?: number;
  /** Symlink target. */
  target?: string;
  /** sha256 of a file's contents. */
  sha256?: string;
  /** Device number of char and block devices. */
  rdev?: number;
  /** Extended attributes as name=value(hex) (only when requested). */
  xattrs?: string[];
}

/** What to record and compare. */
export interface TreeOptions {
  /** Record modification times (off by default: tools differ on directory mtimes). */
  mtime?: boolean;
  /** Record xattrs whose names this accepts. */
  xattrs?: (name: string) => boolean;
  /** Leave out paths (relative, no leading slash) this accepts, and everything below them. */
  ignore?: (path: string) => boolean;
}

function typeOf(info: Deno.FileInfo): string {
  if (info.isFile) return "file";
  if (info.isDirectory) return "dir";
  if (info.isSymlink) return "symlink";
  if (info.isFifo) return "fifo";
  if (info.isCharDevice) return "char";
  if (info.isBlockDevice) return "block";
  if (info.isSocket) return "socket";
  return "unknown";
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) h.update(chunk);
  return h.digest("hex");
}

/**
 * Records every path under `root` (relative, "" for the root itself) with lstat. Symlinks are
 * recorded, never followed.
 */
export async function scanTree(
  root: string,
  options: TreeOptions = {},
): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  const visit = async (rel: string): Promise<void> => {
    const path = rel === "" ? root : `${root}/${rel}`;
    const info = await Deno.lstat(path);
    const type = typeOf(info);
    const entry: TreeEntry = {
      type,
      mode: info.mode! & 0o7777,
      uid: info.uid!,
      gid: info.gid!,
      size: type === "file" ? info.size : 0,
    };
    if (options.mtime) entry.mtime = info.mtime?.getTime();
    if (type === "symlink") entry.target = await Deno.readLink(path);
    if (type === "file") entry.sha256 = await sha256File(path);
    if (type === "char" || type === "block") entry.rdev = info.rdev ?? 0;
    if (options.xattrs) {
      entry.xattrs = llistxattr(path).filter(options.xattrs).sort().map((name) => {
        const value = lgetxattr(path, name) ?? new Uint8Array();
        return `${name}=${Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("")}`;
      });
    }
    out.set(rel, entry);
    if (type === "dir") {
      const names: string[] = [];
      for await (const e of Deno.readDir(path)) names.push(e.name);
      for (const name of names.sort()) {
        const child = rel === "" ? name : `${rel}/${name}`;
        if (!options.ignore?.(child)) await visit(child);
      }
    }
  };
  await visit("");
  return out;
}

/** Differences between two scans, one line each; empty when they agree. */
export function diffTrees(
  a: Map<string, TreeEntry>,
  b: Map<string, TreeEntry>,
  names: [string, string] = ["a", "b"],
): string[] {
  const diffs: string[] = [];
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const path of paths) {
    const x = a.get(path);
    const y = b.get(path);
    const shown = path === "" ? "/" : path;
    if (!x) diffs.push(`${shown}: only in ${names[1]} (${y!.type})`);
    else if (!y) diffs.push(`${shown}: only in ${names[0]} (${x.type})`);
    else {
      for (const key of Object.keys({ ...x, ...y }) as (keyof TreeEntry)[]) {
        const u = JSON.stringify(x[key]);
        const v = JSON.stringify(y[key]);
        const fmt = (s: string) => key === "mode" && s !== undefined ? Number(s).toString(8) : s;
        if (u !== v) diffs.push(`${shown}: ${key} ${names[0]}=${fmt(u)} ${names[1]}=${fmt(v)}`);
      }
    }
  }
  return diffs;
}

/** Scans both trees and returns their differences. */
export async function compareTrees(
  a: string,
  b: string,
  options: TreeOptions = {},
): Promise<string[]> {
  return diffTrees(await scanTree(a, options), await scanTree(b, options), [a, b]);
}
