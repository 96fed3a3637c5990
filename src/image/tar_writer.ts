/**
 * A small streaming tar writer for image archives (`save`) and built layers: regular files,
 * directories, symlinks, hard links, fifos and device nodes in POSIX ustar, with a PAX extended
 * header when a name does not fit ustar's fields or an entry carries xattrs (`SCHILY.xattr.NAME`
 * records, as docker's and GNU tar's layers write them).
 *
 * Bodies stream through without being buffered; each file's size must be known up front (it is
 * in the header) and is enforced, so a body that runs short or long fails the archive instead of
 * silently shifting every later entry.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { TsboxError } from "../errors.ts";

const BLOCK = 512;
const encoder = new TextEncoder();

/** One entry to write. */
export type TarWriterEntry =
  & {
    /** Path inside the archive, `/`-separated, relative. */
    name: string;
    /** Permission bits; 0644 for files, 0755 for directories by default. */
    mode?: number;
    /** Modification time in seconds since the epoch; 0 by default (reproducible archives). */
    mtime?: number;
    /** Owner uid; 0 by default (image archives carry no host ownership unless asked to). */
    uid?: number;
    /** Owner gid; 0 by default. */
    gid?: number;
    /** Extended attributes, written as PAX `SCHILY.xattr.NAME` records in this order. */
    xattrs?: ReadonlyArray<readonly [string, Uint8Array]>;
  }
  & (
    | {
      type: "file";
      /** Exact body length in bytes. */
      size: number;
      /** The body: bytes, or chunks that must add up to `size`. */
      body: Uint8Array | AsyncIterable<Uint8Array>;
    }
    | { type: "directory" }
    | { type: "symlink"; target: string }
    /** A second name of a file written earlier in the archive (`target`, its archive path). */
    | { type: "hardlink"; target: string }
    | { type: "fifo" }
    | { type: "char" | "block"; devmajor: number; devminor: number }
  );

/** ustar type flags by entry type. */
const FLAGS: Record<TarWriterEntry["type"], string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  directory: "5",
  fifo: "6",
};

/** A body whose length differs from the size its header announced. */
export class TarWriteError extends TsboxError {
  constructor(message: string) {
    super(message);
    this.name = "TarWriteError";
  }
}

/**
 * The tar archive of `entries` as a byte stream, ended by the two zero blocks. Entries are
 * pulled one at a time as the consumer reads, so a slow destination throttles the source.
 */
export function tarStream(
  entries: Iterable<TarWriterEntry> | AsyncIterable<TarWriterEntry>,
): ReadableStream<Uint8Array> {
  return ReadableStream.from(tarChunks(entries));
}

/**
 * The sha256 (`sha256:<hex>`) and size of the tar of `entries`, hashed as it is produced with
 * no stream between: each chunk is hashed before the next is made, so bodies may reuse one
 * buffer (diffEntries' `sharedBuffer`).
 */
export async function tarDigest(
  entries: Iterable<TarWriterEntry> | AsyncIterable<TarWriterEntry>,
): Promise<{ digest: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of tarChunks(entries)) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { digest: `sha256:${hash.digest("hex")}`, bytes };
}

async function* tarChunks(
  entries: Iterable<TarWriterEntry> | AsyncIterable<TarWriterEntry>,
): AsyncGenerator<Uint8Array> {
  for await (const entry of entries) {
    yield* headerBlocks(entry);
    if (entry.type !== "file") continue;
    let written = 0;
    const chunks = entry.body instanceof Uint8Array ? [entry.body] : entry.body;
    for await (const chunk of chunks) {
      written += chunk.byteLength;
      if (written > entry.size) {
        throw new TarWriteError(
          `${entry.name}: body is longer than the ${entry.size} bytes announced`,
        );
      }
      if (chunk.byteLength > 0) yield chunk;
    }
    if (written !== entry.size) {
      throw new TarWriteError(
        `${entry.name}: body ended after ${written} of ${entry.size} bytes`,
      );
    }
    const pad = (BLOCK - (entry.size % BLOCK)) % BLOCK;
    if (pad) yield new Uint8Array(pad);
  }
  yield new Uint8Array(BLOCK * 2);
}

/** The header block(s) of an entry: a PAX `x` record first when ustar cannot hold a field. */
function headerBlocks(entry: TarWriterEntry): Uint8Array[] {
  const name = entry.type === "directory" && !entry.name.endsWith("/")
    ? `${entry.name}/`
    : entry.name;
  const linkname = entry.type === "symlink" || entry.type === "hardlink" ? entry.target : "";
  const size = entry.type === "file" ? entry.size : 0;
  const pax = new Map<string, string | Uint8Array>();
  const split = splitUstarName(name);
  if (!split) pax.set("path", name);
  if (encoder.encode(linkname).length > 100) pax.set("linkpath", linkname);
  if (size > 0o77777777777) pax.set("size", String(size));
  const uid = entry.uid ?? 0;
  const gid = entry.gid ?? 0;
  if (uid > 0o7777777) pax.set("uid", String(uid));
  if (gid > 0o7777777) pax.set("gid", String(gid));
  for (const [key, value] of entry.xattrs ?? []) pax.set(`SCHILY.xattr.${key}`, value);
  const mode = entry.mode ?? (entry.type === "directory" ? 0o755 : 0o644);
  const mtime = Math.max(0, Math.floor(entry.mtime ?? 0));
  const flag = FLAGS[entry.type];
  const dev = entry.type === "char" || entry.type === "block"
    ? { major: entry.devmajor, minor: entry.devminor }
    : { major: 0, minor: 0 };
  const blocks: Uint8Array[] = [];
  if (pax.size > 0) {
    const body = paxRecords(pax);
    const paxName = `PaxHeaders/${name.replace(/\/$/, "").split("/").pop()}`.slice(0, 99);
    blocks.push(
      ustarHeader({
        name: ["", paxName],
        mode: 0o644,
        size: body.length,
        mtime,
        flag: "x",
        linkname: "",
        uid: 0,
        gid: 0,
        dev: { major: 0, minor: 0 },
      }),
    );
    blocks.push(body);
    const pad = (BLOCK - (body.length % BLOCK)) % BLOCK;
    if (pad) blocks.push(new Uint8Array(pad));
  }
  blocks.push(
    ustarHeader({
      name: split ?? ["", truncateBytes(name, 100)],
      mode,
      size: pax.has("size") ? 0 : size,
      mtime,
      flag,
      linkname: pax.has("linkpath") ? truncateBytes(linkname, 100) : linkname,
      uid: pax.has("uid") ? 0 : uid,
      gid: pax.has("gid") ? 0 : gid,
      dev,
    }),
  );
  return blocks;
}

/** Splits a name into ustar's prefix (155 bytes) and name (100 bytes), if it fits. */
function splitUstarName(name: string): [string, string] | undefined {
  const bytes = encoder.encode(name);
  if (bytes.length <= 100) return ["", name];
  if (bytes.length > 256) return undefined;
  // The split must fall on a `/`, with the prefix within 155 bytes and the rest within 100.
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== "/") continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (encoder.encode(prefix).length <= 155 && encoder.encode(rest).length <= 100 && rest) {
      return [prefix, rest];
    }
  }
  return undefined;
}

function truncateBytes(s: string, max: number): string {
  let out = s;
  while (encoder.encode(out).length > max) out = out.slice(0, -1);
  return out;
}

/**
 * PAX records `"%d %s=%s\n"`, where the leading length counts itself. Values are text, or raw
 * bytes for xattrs (a capability set is binary).
 */
function paxRecords(fields: Map<string, string | Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [key, value] of fields) {
    const head = encoder.encode(` ${key}=`);
    const body = typeof value === "string" ? encoder.encode(value) : value;
    const restLength = head.length + body.length + 1;
    let length = restLength + 1;
    while (String(length).length + restLength !== length) length++;
    parts.push(encoder.encode(String(length)), head, body, encoder.encode("\n"));
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

interface UstarFields {
  name: [prefix: string, name: string];
  mode: number;
  size: number;
  mtime: number;
  flag: string;
  linkname: string;
  uid: number;
  gid: number;
  dev: { major: number; minor: number };
}

function ustarHeader(f: UstarFields): Uint8Array {
  const b = new Uint8Array(BLOCK);
  const put = (offset: number, length: number, value: string) => {
    const bytes = encoder.encode(value);
    b.set(bytes.subarray(0, length), offset);
  };
  const octal = (offset: number, length: number, value: number) =>
    put(offset, length, value.toString(8).padStart(length - 1, "0") + "\0");
  put(0, 100, f.name[1]);
  octal(100, 8, f.mode & 0o7777);
  octal(108, 8, f.uid);
  octal(116, 8, f.gid);
  octal(124, 12, f.size);
  octal(136, 12, f.mtime);
  put(148, 8, "        "); // checksum counted as spaces
  put(156, 1, f.flag);
  put(157, 100, f.linkname);
  put(257, 8, "ustar\x0000");
  octal(329, 8, f.dev.major);
  octal(337, 8, f.dev.minor);
  put(345, 155, f.name[0]);
  let sum = 0;
  for (const byte of b) sum += byte;
  put(148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}
