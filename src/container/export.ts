/**
 * `export`: the container's filesystem as one tar stream, keeping what a rootfs needs that the
 * image writer does not carry: owners, full modes, device nodes, fifos, hardlinks (as links to
 * the first path seen) and extended attributes (PAX SCHILY.xattr records).
 *
 * @module
 */
import { join } from "node:path";
import { lgetxattr, llistxattr } from "../../ffi/fs.ts";
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

function xattrsOf(path: string): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let names: string[];
  try {
    names = llistxattr(path);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    // overlayfs' own bookkeeping is not part of the container's filesystem.
    if (name.startsWith("trusted.overlay.")) continue;
    const value = lgetxattr(path, name);
    if (value) out.set(name, value);
  }
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

async function* entries(
  root: string,
  submounts: ReadonlySet<string>,
): AsyncGenerator<Uint8Array> {
  const links = new Map<string, string>();
  async function* walk(rel: string): AsyncGenerator<Uint8Array> {
    const names: string[] = [];
    for await (const e of Deno.readDir(rel ? join(root, rel) : root)) names.push(e.name);
    names.sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const host = join(root, path);
      const info = Deno.lstatSync(host);
      const base: Header = {
        name: path,
        mode: info.mode ?? 0,
        uid: info.uid ?? 0,
        gid: info.gid ?? 0,
        size: 0,
        mtime: (info.mtime?.getTime() ?? 0) / 1000,
        type: "0",
        linkname: "",
        devmajor: 0,
        devminor: 0,
      };
      const xattrs = xattrsOf(host);
      if (submounts.has(path)) {
        // A mount point (proc, /etc/hosts, a volume): archived as the empty target the runtime
        // mounted onto, as docker's export has it; what is mounted there is not the container's.
        yield* headerBlocks(
          info.isDirectory
            ? { ...base, name: `${path}/`, type: "5", mode: 0o755, uid: 0, gid: 0 }
            : { ...base, mode: 0o644, uid: 0, gid: 0 },
          new Map(),
        );
        continue;
      }
      if (info.isDirectory) {
        yield* headerBlocks({ ...base, name: `${path}/`, type: "5" }, xattrs);
        yield* walk(path);
        continue;
      }
      if (info.isSymlink) {
        yield* headerBlocks({ ...base, type: "2", linkname: await Deno.readLink(host) }, xattrs);
        continue;
      }
      if (info.isCharDevice || info.isBlockDevice || info.isFifo) {
        const { major, minor } = splitDev(info.isFifo ? 0 : info.rdev ?? 0);
        yield* headerBlocks({
          ...base,
          type: info.isFifo ? "6" : info.isCharDevice ? "3" : "4",
          devmajor: major,
          devminor: minor,
        }, xattrs);
        continue;
      }
      if (!info.isFile) continue; // sockets are not archived
      const key = `${info.dev}:${info.ino}`;
      if ((info.nlink ?? 1) > 1) {
        const first = links.get(key);
        if (first !== undefined) {
          yield* headerBlocks({ ...base, type: "1", linkname: first }, xattrs);
          continue;
        }
        links.set(key, path);
      }
      const size = info.size;
      yield* headerBlocks({ ...base, size }, xattrs);
      const file = await Deno.open(host);
      let written = 0;
      for await (const chunk of file.readable) {
        const take = chunk.subarray(0, Math.max(0, size - written));
        written += take.length;
        if (take.length) yield take;
      }
      // A file that shrank while being read is padded to its announced size.
      if (written < size) yield new Uint8Array(size - written);
      yield pad(size);
    }
  }
  yield* walk("");
  yield new Uint8Array(BLOCK * 2);
}

/** Writes the container's filesystem as a tar archive to `out` (closed at the end). */
export async function exportContainer(
  store: Store,
  c: ContainerRecord,
  out: WritableStream<Uint8Array>,
): Promise<void> {
  await withRootfs(store, c, async (root, submounts) => {
    await ReadableStream.from(entries(root, submounts)).pipeTo(out);
  });
}
