/**
 * `export`: the container's filesystem as one tar stream, keeping what a rootfs needs that the
 * image writer does not carry: owners, full modes, device nodes, fifos, hardlinks (as links to
 * the first path seen) and extended attributes (PAX SCHILY.xattr records). The container's
 * root is walked by fd only (fd_tree.ts), so a running container cannot swap a host file in.
 *
 * @module
 */
import {
  close,
  read,
  readlinkat,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
} from "../../ffi/fs.ts";
import { listDir, type Node, nodeOf, openChild, reopen, typeOf, xattrsOf } from "./fd_tree.ts";
import type { Store } from "../store/mod.ts";
import { withRootfs } from "./rootfs_access.ts";
import type { ContainerRecord } from "./state.ts";

const BLOCK = 512;
const encoder = new TextEncoder();

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function putString(block: Uint8Array, offset: number, width: number, s: string): void {
  block.set(encoder.encode(s).subarray(0, width), offset);
}

function paxBody(records: Map<string, Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [key, value] of records) {
    const rest = encoder.encode(` ${key}=`);
    const base = rest.length + value.length + 1;
    let len = base + String(base).length;
    if (String(len).length !== String(base).length) len = base + String(len).length;
    parts.push(encoder.encode(String(len)), rest, value, encoder.encode("\n"));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

interface Header {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}

function ustar(h: Header): Uint8Array {
  const b = new Uint8Array(BLOCK);
  putString(b, 0, 100, h.name);
  putString(b, 100, 8, octal(h.mode & 0o7777, 8));
  putString(b, 108, 8, octal(Math.min(h.uid, 0o7777777), 8));
  putString(b, 116, 8, octal(Math.min(h.gid, 0o7777777), 8));
  putString(b, 124, 12, octal(Math.min(h.size, 0o77777777777), 12));
  putString(b, 136, 12, octal(Math.max(0, Math.floor(h.mtime)), 12));
  putString(b, 148, 8, "        ");
  putString(b, 156, 1, h.type);
  putString(b, 157, 100, h.linkname);
  putString(b, 257, 8, "ustar\x0000");
  putString(b, 329, 8, octal(h.devmajor, 8));
  putString(b, 337, 8, octal(h.devminor, 8));
  const sum = b.reduce((s, x) => s + x, 0);
  putString(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

function pad(size: number): Uint8Array {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

function headerBlocks(h: Header, xattrs: Map<string, Uint8Array>): Uint8Array[] {
  const pax = new Map<string, Uint8Array>();
  if (encoder.encode(h.name).length > 100) pax.set("path", encoder.encode(h.name));
  if (encoder.encode(h.linkname).length > 100) pax.set("linkpath", encoder.encode(h.linkname));
  if (h.size > 0o77777777777) pax.set("size", encoder.encode(String(h.size)));
  if (h.uid > 0o7777777) pax.set("uid", encoder.encode(String(h.uid)));
  if (h.gid > 0o7777777) pax.set("gid", encoder.encode(String(h.gid)));
  for (const [k, v] of xattrs) pax.set(`SCHILY.xattr.${k}`, v);
  const out: Uint8Array[] = [];
  if (pax.size > 0) {
    const body = paxBody(pax);
    out.push(
      ustar({
        ...h,
        name: `PaxHeaders/${h.name.split("/").filter(Boolean).pop() ?? "root"}`.slice(0, 99),
        size: body.length,
        type: "x",
        linkname: "",
        devmajor: 0,
        devminor: 0,
        mode: 0o644,
      }),
      body,
      pad(body.length),
    );
  }
  out.push(ustar(h));
  return out;
}

/**
 * Major and minor of a device number as glibc encodes them (12 bits of major at 8..19 and the
 * rest at 32..63; 8 bits of minor at 0..7, the rest at 20..31 and 44..63).
 */
export function splitDev(rdev: number): { major: number; minor: number } {
  const d = BigInt(rdev);
  return {
    major: Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n)),
    minor: Number((d & 0xffn) | ((d >> 12n) & 0xffffff00n)),
  };
}

/** Reads at most `size` bytes of regular file node `node`, padded to `size` if it shrank. */
function* fileData(node: Node, size: number): Generator<Uint8Array> {
  const fd = reopen(node);
  try {
    const buf = new Uint8Array(256 * 1024);
    let written = 0;
    while (written < size) {
      const n = read(fd, buf.subarray(0, Math.min(buf.length, size - written)));
      if (n === 0) break;
      written += n;
      yield buf.slice(0, n);
    }
    // A file that shrank while being read is padded to its announced size.
    if (written < size) yield new Uint8Array(size - written);
  } finally {
    close(fd);
  }
}

/**
 * The archive of the tree below directory `root` (an fd), walked by fd only: each entry is
 * opened with O_PATH|O_NOFOLLOW relative to its parent's fd and described by fstat of that fd,
 * and a regular file's bytes are read through the same pinned file. A container that swaps a
 * file for a symlink meanwhile gets its symlink archived, never the host file it points at.
 */
function* entries(
  start: Node,
  prefix: string,
  submounts: ReadonlySet<string>,
): Generator<Uint8Array> {
  const links = new Map<string, string>();
  function* walk(dir: Node, rel: string): Generator<Uint8Array> {
    for (const { name } of listDir(dir)) {
      const node = openChild(dir.fd, name);
      if (!node) continue; // removed since it was listed
      try {
        yield* entry(node, rel ? `${rel}/${name}` : name);
      } finally {
        close(node.fd);
      }
    }
  }
  function* entry(node: Node, path: string): Generator<Uint8Array> {
    const st = node.st;
    const type = typeOf(node);
    const base: Header = {
      name: path,
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      size: 0,
      mtime: st.mtime.sec,
      type: "0",
      linkname: "",
      devmajor: 0,
      devminor: 0,
    };
    if (submounts.has(path)) {
      // A mount point (proc, /etc/hosts, a volume): archived as the empty target the runtime
      // mounted onto, as docker's export has it; what is mounted there is not the container's.
      yield* headerBlocks(
        type === S_IFDIR
          ? { ...base, name: `${path}/`, type: "5", mode: 0o755, uid: 0, gid: 0 }
          : { ...base, mode: 0o644, uid: 0, gid: 0 },
        new Map(),
      );
      return;
    }
    const xattrs = xattrsOf(node);
    if (type === S_IFDIR) {
      yield* headerBlocks({ ...base, name: `${path}/`, type: "5" }, xattrs);
      yield* walk(node, path);
    } else if (type === S_IFLNK) {
      yield* headerBlocks({ ...base, type: "2", linkname: readlinkat(node.fd, "") }, xattrs);
    } else if (type === S_IFCHR || type === S_IFBLK || type === S_IFIFO) {
      yield* headerBlocks({
        ...base,
        type: type === S_IFIFO ? "6" : type === S_IFCHR ? "3" : "4",
        devmajor: type === S_IFIFO ? 0 : st.rdevMajor,
        devminor: type === S_IFIFO ? 0 : st.rdevMinor,
      }, xattrs);
    } else if (type === S_IFREG) {
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1) {
        const first = links.get(key);
        if (first !== undefined) {
          yield* headerBlocks({ ...base, type: "1", linkname: first }, xattrs);
          return;
        }
        links.set(key, path);
      }
      yield* headerBlocks({ ...base, size: st.size }, xattrs);
      yield* fileData(node, st.size);
      yield pad(st.size);
    } // sockets are not archived
  }
  // The whole tree (export) is its entries; a subtree (`cp CONTAINER:PATH -`) starts with itself.
  if (prefix === "") yield* walk(start, "");
  else yield* entry(start, prefix);
  yield new Uint8Array(BLOCK * 2);
}

/**
 * A tar of `node` (a file or a tree) under the name `name`, as `cp CONTAINER:PATH -` writes
 * it: walked by fd as {@link exportContainer} walks a root.
 */
export function archiveOf(node: Node, name: string): ReadableStream<Uint8Array> {
  return ReadableStream.from(entries(node, name, new Set()));
}

/** Writes the container's filesystem as a tar archive to `out` (closed at the end). */
export async function exportContainer(
  store: Store,
  c: ContainerRecord,
  out: WritableStream<Uint8Array>,
): Promise<void> {
  await withRootfs(store, c, async (root) => {
    await ReadableStream.from(entries(nodeOf(root.fd), "", root.submounts)).pipeTo(out);
  });
}
