/**
 * A streaming tar reader for image layers: ustar, PAX (local and global extended headers,
 * SCHILY.xattr.*), GNU long names and links (L/K), base-256 numbers, checksum validation.
 *
 * Written by hand rather than taken from npm because an unpacker needs exactness (PAX xattrs as
 * raw bytes, nanosecond mtimes, the byte count of the whole stream) and speed: entry bodies are
 * handed out as views of the stream's own chunks, never copied.
 *
 * @module
 */
import { TsboxError } from "../errors.ts";

/** The kinds of entries a layer may hold. */
export type TarEntryType =
  | "file"
  | "hardlink"
  | "symlink"
  | "char"
  | "block"
  | "directory"
  | "fifo";

/** A point in time: whole seconds since the epoch and nanoseconds. */
export interface TarTime {
  /** Seconds since the epoch (may be negative). */
  sec: number;
  /** 0..999999999. */
  nsec: number;
}

/** One entry's metadata after ustar, GNU and PAX headers have been merged. */
export interface TarHeader {
  /** The path as stored (not cleaned): may be absolute or contain `..`. */
  name: string;
  /** The entry's kind. */
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Owner name, if any. */
  uname: string;
  /** Group name, if any. */
  gname: string;
  /** Body size in bytes (0 for everything but files). */
  size: number;
  /** Modification time. */
  mtime: TarTime;
  /** Access time, when a PAX header gave one. */
  atime?: TarTime;
  /** Target of a symlink, or the path a hardlink points at. */
  linkname: string;
  /** Device numbers of char and block devices. */
  devmajor: number;
  /** Device numbers of char and block devices. */
  devminor: number;
  /** Extended attributes from PAX `SCHILY.xattr.NAME` records, values as raw bytes. */
  xattrs: Map<string, Uint8Array>;
}

/** An entry: its header and its body, which can be read once, as chunks or whole. */
export interface TarEntry {
  /** The entry's metadata. */
  readonly header: TarHeader;
  /**
   * The body as chunks. Each chunk is a view into the stream's data, valid until the next
   * chunk is requested. Only valid until the next entry is requested; unread bytes are skipped.
   */
  chunks(): AsyncGenerator<Uint8Array>;
  /** The whole body in one buffer (for small entries). */
  bytes(): Promise<Uint8Array>;
}

/** The archive is malformed; `offset` is the byte position in the stream where it was noticed. */
export class TarFormatError extends TsboxError {
  constructor(message: string, readonly offset: number) {
    super(`invalid tar archive at byte ${offset}: ${message}`);
    this.name = "TarFormatError";
  }
}

const BLOCK = 512;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Buffered access to a byte stream: exact reads for headers, zero-copy views for bodies. */
class Source {
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buf: Uint8Array = new Uint8Array(0);
  #pos = 0;
  /** Bytes received from the stream so far. */
  received = 0;
  /** Bytes handed out or skipped so far (the stream position). */
  offset = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async #more(): Promise<boolean> {
    for (;;) {
      const r = await this.#reader.read();
      if (r.done) return false;
      if (r.value.length === 0) continue;
      this.#buf = r.value;
      this.#pos = 0;
      this.received += r.value.length;
      return true;
    }
  }

  /** Exactly `n` bytes, or null when the stream ended before the first of them. */
  async readExact(n: number): Promise<Uint8Array | null> {
    if (this.#buf.length - this.#pos >= n) {
      const out = this.#buf.subarray(this.#pos, this.#pos + n);
      this.#pos += n;
      this.offset += n;
      return out;
    }
    const out = new Uint8Array(n);
    let have = 0;
    while (have < n) {
      if (this.#pos === this.#buf.length && !(await this.#more())) {
        if (have === 0) return null;
        throw new TarFormatError("unexpected end of archive", this.offset);
      }
      const take = Math.min(n - have, this.#buf.length - this.#pos);
      out.set(this.#buf.subarray(this.#pos, this.#pos + take), have);
      this.#pos += take;
      this.offset += take;
      have += take;
    }
    return out;
  }

  /** Takes up to `max` (> 0) bytes as a view; throws at end of stream. */
  async take(max: number): Promise<Uint8Array> {
    if (this.#pos === this.#buf.length && !(await this.#more())) {
      throw new TarFormatError("unexpected end of archive", this.offset);
    }
    const take = Math.min(max, this.#buf.length - this.#pos);
    const out = this.#buf.subarray(this.#pos, this.#pos + take);
    this.#pos += take;
    this.offset += take;
    return out;
  }

  async skip(n: number): Promise<void> {
    while (n > 0) n -= (await this.take(n)).length;
  }

  /** Reads the stream to its end so that every byte is counted. */
  async drain(): Promise<void> {
    this.offset += this.#buf.length - this.#pos;
    this.#pos = this.#buf.length;
    while (await this.#more()) {
      this.offset += this.#buf.length;
      this.#pos = this.#buf.length;
    }
  }

  cancel(reason?: unknown): Promise<void> {
    return this.#reader.cancel(reason);
  }
}

function cString(b: Uint8Array, off: number, len: number, what: string, at: number): string {
  let end = off;
  while (end < off + len && b[end] !== 0) end++;
  return decode(b.subarray(off, end), what, at);
}

function decode(b: Uint8Array, what: string, at: number): string {
  // Plain ASCII is the common case and far cheaper than TextDecoder for short fields.
  let ascii = b.length < 1024;
  for (let i = 0; ascii && i < b.length; i++) if (b[i] >= 0x80) ascii = false;
  if (ascii) return String.fromCharCode(...b);
  try {
    return utf8.decode(b);
  } catch {
    throw new TarFormatError(`${what} is not valid UTF-8`, at);
  }
}

/** An octal or base-256 (GNU) numeric field. */
function numeric(b: Uint8Array, off: number, len: number, what: string, at: number): number {
  if (b[off] & 0x80) {
    // Base-256: big-endian two's complement in the bytes after the marker bit.
    let v = BigInt(b[off] & 0x7f);
    const negative = b[off] === 0xff;
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[off + i]);
    if (negative) v -= 1n << BigInt(len * 8 - 1);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new TarFormatError(`${what} field out of range`, at);
    }
    return Number(v);
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end && b[i] !== 0x20 && b[i] !== 0; i++) {
    const d = b[i] - 0x30;
    if (d < 0 || d > 7) throw new TarFormatError(`${what} field is not octal`, at);
    v = v * 8 + d;
    digits++;
  }
  for (; i < end; i++) {
    if (b[i] !== 0x20 && b[i] !== 0) throw new TarFormatError(`${what} field is not octal`, at);
  }
  return digits === 0 ? 0 : v;
}

function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

function verifyChecksum(b: Uint8Array, at: number): void {
  const stored = numeric(b, 148, 8, "checksum", at);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i];
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  // Some historic writers summed signed chars; both are accepted, as GNU tar does.
  if (stored !== unsigned && stored !== signed) {
    throw new TarFormatError(
      `header checksum mismatch (stored ${stored}, computed ${unsigned})`,
      at,
    );
  }
}

/** A PAX value: text for ordinary keys, raw bytes kept for xattrs. */
type Pax = Map<string, Uint8Array>;

function parsePax(body: Uint8Array, at: number): Pax {
  const out: Pax = new Map();
  let p = 0;
  while (p < body.length) {
    if (body[p] === 0) break; // some writers pad the body with NULs
    let sp = p;
    let len = 0;
    while (sp < body.length && body[sp] >= 0x30 && body[sp] <= 0x39) {
      len = len * 10 + body[sp++] - 0x30;
    }
    if (sp === p || body[sp] !== 0x20 || len <= sp - p + 1 || p + len > body.length) {
      throw new TarFormatError("malformed PAX record", at);
    }
    const end = p + len;
    if (body[end - 1] !== 0x0a) throw new TarFormatError("PAX record not ended by newline", at);
    let eq = sp + 1;
    while (eq < end && body[eq] !== 0x3d) eq++;
    if (eq === end) throw new TarFormatError("PAX record without '='", at);
    const key = decode(body.subarray(sp + 1, eq), "PAX key", at);
    out.set(key, body.subarray(eq + 1, end - 1));
    p = end;
  }
  return out;
}

function paxTime(v: string, key: string, at: number): TarTime {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v);
  if (!m) throw new TarFormatError(`PAX ${key} is not a time: ${JSON.stringify(v)}`, at);
  let sec = Number(m[2]);
  let nsec = Number((m[3] ?? "").slice(0, 9).padEnd(9, "0"));
  if (m[1] === "-") {
    sec = -sec;
    if (nsec > 0) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  return { sec, nsec };
}

function paxNumber(v: string, key: string, at: number): number {
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new TarFormatError(`PAX ${key} is not a number: ${JSON.stringify(v)}`, at);
  }
  return Number(v);
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
  "D": "directory",
};

/**
 * Reads a tar stream entry by entry:
 *
 * ```ts
 * const tar = new TarReader(stream);
 * for await (const entry of tar) for await (const chunk of entry.chunks()) use(chunk);
 * console.log(tar.bytesRead);
 * ```
 *
 * After the end-of-archive blocks the rest of the stream is read too, so {@link bytesRead} is
 * the size of the whole stream (what a diffID digest covers).
 */
export class TarReader implements AsyncIterable<TarEntry> {
  #src: Source;
  #remaining = 0;
  #padding = 0;
  #generation = 0;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#src = new Source(stream);
  }

  /** Bytes read from the stream so far; after iteration, the total uncompressed tar size. */
  get bytesRead(): number {
    return this.#src.received;
  }

  /** Stops reading and cancels the underlying stream. */
  cancel(reason?: unknown): Promise<void> {
    return this.#src.cancel(reason);
  }

  [Symbol.asyncIterator](): AsyncGenerator<TarEntry> {
    return this.entries();
  }

  async #skipRest(): Promise<void> {
    await this.#src.skip(this.#remaining + this.#padding);
    this.#remaining = 0;
    this.#padding = 0;
  }

  async #readBody(size: number, at: number): Promise<Uint8Array> {
    if (size > 64 << 20) throw new TarFormatError(`extended header of ${size} bytes`, at);
    const body = size === 0 ? new Uint8Array(0) : await this.#src.readExact(size);
    if (body === null) throw new TarFormatError("unexpected end of archive", this.#src.offset);
    await this.#src.skip((BLOCK - (size % BLOCK)) % BLOCK);
    return body;
  }

  /** The entries in archive order. */
  async *entries(): AsyncGenerator<TarEntry> {
    const src = this.#src;
    let global: Pax = new Map();
    let local: Pax | null = null;
    let longName: string | null = null;
    let longLink: string | null = null;
    for (;;) {
      await this.#skipRest();
      this.#generation++;
      const at = src.offset;
      const b = await src.readExact(BLOCK);
      if (b === null) {
        if (local || longName !== null || longLink !== null) {
          throw new TarFormatError("archive ends after an extended header", at);
        }
        return;
      }
      if (isZeroBlock(b)) {
        await src.drain();
        return;
      }
      verifyChecksum(b, at);
      const flag = String.fromCharCode(b[156]);
      if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
        const body = await this.#readBody(numeric(b, 124, 12, "size", at), at);
        if (flag === "x") local = parsePax(body, at);
        else if (flag === "g") global = new Map([...global, ...parsePax(body, at)]);
        else if (flag === "L") longName = cString(body, 0, body.length, "long name", at);
        else longLink = cString(body, 0, body.length, "long link name", at);
        continue;
      }
      const pax: Pax = local ? new Map([...global, ...local]) : global;
      const header = this.#header(b, flag, at, pax, longName, longLink);
      local = null;
      longName = null;
      longLink = null;
      // Like Go's archive/tar (used by containerd and umoci) and Python's tarfile, only files
      // (and GNU dumpdirs) have a body: reading other kinds' size fields as body lengths would
      // let one archive mean different things to different readers.
      const bodySize = header.type === "file" || flag === "D" ? header.size : 0;
      header.size = header.type === "file" ? bodySize : 0;
      this.#remaining = bodySize;
      this.#padding = (BLOCK - (bodySize % BLOCK)) % BLOCK;
      yield this.#entry(header, this.#generation);
    }
  }

  #header(
    b: Uint8Array,
    flag: string,
    at: number,
    pax: Pax,
    longName: string | null,
    longLink: string | null,
  ): TarHeader {
    let type = TYPES[flag];
    if (type === undefined) {
      throw new TarFormatError(`unsupported entry type ${JSON.stringify(flag)}`, at);
    }
    const magic = String.fromCharCode(...b.subarray(257, 265));
    const ustar = magic.startsWith("ustar\0");
    let name = cString(b, 0, 100, "name", at);
    if (ustar && b[345] !== 0) name = `${cString(b, 345, 155, "name prefix", at)}/${name}`;
    if (longName !== null) name = longName;
    if (flag === "\0" && name.endsWith("/")) type = "directory"; // pre-POSIX directories
    const hasDev = ustar || magic === "ustar  \0";
    const header: TarHeader = {
      name,
      type,
      mode: numeric(b, 100, 8, "mode", at) & 0o7777,
      uid: numeric(b, 108, 8, "uid", at),
      gid: numeric(b, 116, 8, "gid", at),
      size: numeric(b, 124, 12, "size", at),
      mtime: { sec: numeric(b, 136, 12, "mtime", at), nsec: 0 },
      linkname: longLink ?? cString(b, 157, 100, "link name", at),
      uname: hasDev ? cString(b, 265, 32, "uname", at) : "",
      gname: hasDev ? cString(b, 297, 32, "gname", at) : "",
      devmajor: hasDev ? numeric(b, 329, 8, "devmajor", at) : 0,
      devminor: hasDev ? numeric(b, 337, 8, "devminor", at) : 0,
      xattrs: new Map(),
    };
    for (const [key, raw] of pax) {
      if (key.startsWith("SCHILY.xattr.")) {
        header.xattrs.set(key.slice(13), raw.slice());
        continue;
      }
      if (key.startsWith("GNU.sparse.")) {
        throw new TarFormatError(`sparse files are not supported (${name})`, at);
      }
      if (raw.length === 0) continue; // an empty value undoes a global setting
      const v = decode(raw, `PAX ${key}`, at);
      switch (key) {
        case "path":
          if (longName === null) header.name = v;
          break;
        case "linkpath":
          if (longLink === null) header.linkname = v;
          break;
        case "size":
          header.size = paxNumber(v, key, at);
          break;
        case "uid":
          header.uid = paxNumber(v, key, at);
          break;
        case "gid":
          header.gid = paxNumber(v, key, at);
          break;
        case "uname":
          header.uname = v;
          break;
        case "gname":
          header.gname = v;
          break;
        case "mtime":
          header.mtime = paxTime(v, key, at);
          break;
        case "atime":
          header.atime = paxTime(v, key, at);
          break;
      }
    }
    if (header.name.includes("\0") || header.linkname.includes("\0")) {
      throw new TarFormatError(`entry name contains a NUL byte: ${JSON.stringify(name)}`, at);
    }
    return header;
  }

  #entry(header: TarHeader, generation: number): TarEntry {
    return {
      header,
      chunks: () => this.#chunks(header, generation),
      bytes: () => this.#bytes(header, generation),
    };
  }

  #checkCurrent(header: TarHeader, generation: number): void {
    if (generation !== this.#generation) {
      throw new Error(`body of ${header.name} read after moving to the next entry`);
    }
  }

  async *#chunks(header: TarHeader, generation: number): AsyncGenerator<Uint8Array> {
    this.#checkCurrent(header, generation);
    while (this.#remaining > 0) {
      const chunk = await this.#src.take(this.#remaining);
      this.#remaining -= chunk.length;
      yield chunk;
      this.#checkCurrent(header, generation);
    }
  }

  async #bytes(header: TarHeader, generation: number): Promise<Uint8Array> {
    this.#checkCurrent(header, generation);
    const out = await this.#src.readExact(this.#remaining);
    if (out === null) throw new TarFormatError("unexpected end of archive", this.#src.offset);
    this.#remaining = 0;
    return out;
  }
}
